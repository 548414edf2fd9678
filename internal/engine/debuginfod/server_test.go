package debuginfod_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/engine/debuginfod"
	"github.com/coroner-dev/coroner/internal/engine/debuginfod/httpget"
	"github.com/coroner-dev/coroner/internal/engine/diskcache"
	"github.com/coroner-dev/coroner/internal/engine/symbols"
)

// TestMain gives the clients of these tests (and the analyses) net/http,
// as coroner-service does.
func TestMain(m *testing.M) {
	debuginfod.DefaultTransport = httpget.Transport{}
	os.Exit(m.Run())
}

// inPrivateNetwork runs the test named name again in a child process in a
// network namespace of its own where only the loopback is up, and reports
// whether the caller is that child. elfutils' debuginfod listens on every
// interface; in such a namespace that is the loopback alone.
func inPrivateNetwork(t *testing.T, name string) bool {
	if os.Getenv("CORONER_TEST_NETNS") == name {
		return true
	}
	if os.Geteuid() != 0 {
		t.Skip("a private network namespace needs root")
	}
	for _, tool := range []string{"unshare", "ip", "debuginfod", "gcc", "gdb", "objcopy", "strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (debuginfod: apt-get install debuginfod)", tool)
		}
	}
	cmd := exec.Command("unshare", "--net", "sh", "-c", `ip link set lo up && exec "$0" "$@"`,
		os.Args[0], "-test.run=^"+name+"$", "-test.v", "-test.timeout=5m")
	cmd.Env = append(os.Environ(), "CORONER_TEST_NETNS="+name)
	out, err := cmd.CombinedOutput()
	t.Logf("in a private network namespace:\n%s", out)
	if err != nil || !strings.Contains(string(out), "--- PASS: "+name) {
		t.Fatalf("the test failed or did not run there: %v", err)
	}
	return false
}

// splitDebug builds tailcall.c like a distribution package: -O2 -g, the
// DWARF moved (compressed, as Debian's dh_strip does) into a debug file
// put in serveDir, the binary stripped. It returns the binary and its
// build-id.
func splitDebug(t *testing.T, serveDir string) (bin, id string) {
	dir := t.TempDir()
	bin = filepath.Join(dir, "tailcall")
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("gcc", "-O2", "-g", "-o", bin, filepath.Join("..", "analyze", "testdata", "tailcall.c"))
	run("objcopy", "--only-keep-debug", "--compress-debug-sections=zlib", bin, filepath.Join(serveDir, "tailcall.debug"))
	run("strip", "--strip-debug", "--strip-unneeded", bin)
	o, err := symbols.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.BuildID == "" || o.HasDebugInfo() {
		t.Fatalf("build-id %q, debug info left %v", o.BuildID, o.HasDebugInfo())
	}
	return bin, o.BuildID
}

// buildLean builds cmd/coroner as make build does: the command line's
// build (-tags noservice) as DIR/coroner, the service build as
// DIR/coroner-service. It returns DIR/coroner.
func buildLean(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, b := range []struct{ out, tags string }{{"coroner", "noservice"}, {"coroner-service", ""}} {
		cmd := exec.Command("go", "build", "-tags", b.tags, "-o", filepath.Join(dir, b.out), "../../../cmd/coroner")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build -tags %q: %v\n%s", b.tags, err, out)
		}
	}
	return filepath.Join(dir, "coroner")
}

// TestAgainstDebuginfodServer fetches a debug file from elfutils'
// debuginfod serving a directory, then analyses a core of the stripped
// program with it: the static function the crash is in and the tail call
// to it are named from the fetched DWARF, as gdb names them with the same
// server. A second fetch is served from the cache with the server gone;
// an unknown build-id, a closed port and a server that never answers give
// clear errors; without the option nothing is asked.
func TestAgainstDebuginfodServer(t *testing.T) {
	if !inPrivateNetwork(t, "TestAgainstDebuginfodServer") {
		return
	}
	serveDir := t.TempDir()
	bin, id := splitDebug(t, serveDir)
	const url = "http://127.0.0.1:8002"
	srv := exec.Command("debuginfod", "-F", "-p", "8002", "-d", filepath.Join(t.TempDir(), "db.sqlite"), "-t", "0", "-g", "0", "-v", serveDir)
	logPath := filepath.Join(t.TempDir(), "debuginfod.log")
	logFile, _ := os.Create(logPath)
	srv.Stdout, srv.Stderr = logFile, logFile
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = srv.Process.Kill()
			_ = srv.Wait()
		}
	}
	defer stop()
	ready := false
	for i := 0; i < 100 && !ready; i++ {
		resp, err := http.Get(url + "/buildid/" + id + "/debuginfo")
		if err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if !ready {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !ready {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("debuginfod did not serve %s:\n%s", id, log)
	}
	requests := func() int {
		log, _ := os.ReadFile(logPath)
		return strings.Count(string(log), "GET /buildid/")
	}

	// The core, made by gdb; gdb's backtrace with the same server is the
	// oracle.
	core := filepath.Join(t.TempDir(), "core")
	if out, err := exec.Command("gdb", "-nx", "-batch", "-ex", "run", "-ex", "generate-core-file "+core, bin).CombinedOutput(); err != nil {
		if _, statErr := os.Stat(core); statErr != nil {
			t.Fatalf("gdb: %v\n%s", err, out)
		}
	}
	gdbCmd := exec.Command("gdb", "-nx", "-batch", "-iex", "set debuginfod enabled on", "-ex", "bt", bin, core)
	gdbCmd.Env = append(os.Environ(), "DEBUGINFOD_URLS="+url, "DEBUGINFOD_CACHE_PATH="+t.TempDir())
	gdbOut, _ := gdbCmd.CombinedOutput()

	before := requests()
	plain, err := analyze.Core(core, analyze.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if n := requests(); n != before {
		t.Errorf("an analysis without --debuginfod asked the server %d times", n-before)
	}
	if f := plain.CrashedThread().Frames[0]; f.FunctionSource == "dwarf" {
		t.Fatalf("frame #0 has DWARF without the server: %+v", f)
	}

	cacheDir := t.TempDir()
	rep, err := analyze.Core(core, analyze.Options{Debuginfod: []string{url}, CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	fr := rep.CrashedThread().Frames
	for _, w := range rep.Warnings {
		t.Logf("warning: %s", w)
	}
	if fr[0].Function != "leaf" || fr[0].FunctionSource != "dwarf" || fr[0].Line == 0 {
		t.Errorf("frame #0 %q (%s) at line %d, want leaf from the fetched DWARF", fr[0].Function, fr[0].FunctionSource, fr[0].Line)
	}
	if len(fr[0].TailCalls) != 1 || fr[0].TailCalls[0].Function != "middle" || len(fr[1].Inlined) != 1 {
		t.Errorf("tail call %+v, inlined in #1 %+v", fr[0].TailCalls, fr[1].Inlined)
	}
	for _, name := range []string{"leaf", "middle", "wrapped", "top"} {
		if !strings.Contains(string(gdbOut), " "+name+" (") {
			t.Errorf("gdb with debuginfod does not show %s:\n%s", name, gdbOut)
		}
	}

	cache, _ := diskcache.Open(cacheDir, 0)
	c := &debuginfod.Client{URLs: []string{url}, Cache: cache}
	t.Run("lean executable", func(t *testing.T) {
		// The command line's build (-tags noservice) links no HTTP
		// client: it asks the coroner-service next to it.
		lean := buildLean(t)
		analyzeWith := func(bin, server string) (*crash.Report, string) {
			t.Helper()
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, "analyze", "--json", "--cache-dir", t.TempDir(), "--debuginfod", server, core)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s: %v\n%s", bin, err, stderr.String())
			}
			var rep crash.Report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatal(err)
			}
			return &rep, strings.Join(rep.Warnings, "\n")
		}
		n := requests()
		rep, warnings := analyzeWith(lean, url)
		if f := rep.CrashedThread().Frames[0]; f.Function != "leaf" || f.FunctionSource != "dwarf" || f.Line == 0 {
			t.Errorf("frame #0 %q (%s) at line %d through coroner-service, want leaf from the fetched DWARF; warnings:\n%s", f.Function, f.FunctionSource, f.Line, warnings)
		}
		if requests() == n {
			t.Error("the server was not asked")
		}
		if _, warnings := analyzeWith(lean, "http://127.0.0.1:1"); !strings.Contains(warnings, "127.0.0.1:1 unreachable") || !strings.Contains(warnings, "refused") {
			t.Errorf("closed port through coroner-service: %q", warnings)
		}
		if _, err := os.Stat("/usr/lib/coroner/coroner-service"); err == nil {
			t.Skip("a coroner-service is installed on this host: coroner alone finds it")
		}
		alone := filepath.Join(t.TempDir(), "coroner")
		if out, err := exec.Command("cp", lean, alone).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		if _, warnings := analyzeWith(alone, url); !strings.Contains(warnings, "coroner-service, which is not installed") {
			t.Errorf("without coroner-service: %q", warnings)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if _, err := c.Fetch(context.Background(), strings.Repeat("ab", 20)); !errors.Is(err, debuginfod.ErrNotFound) {
			t.Errorf("a build-id nobody has: %v", err)
		}
		n := requests()
		if _, err := c.Fetch(context.Background(), strings.Repeat("ab", 20)); !errors.Is(err, debuginfod.ErrNotFound) || requests() != n {
			t.Errorf("asked again at once (%d requests): %v", requests()-n, err)
		}
	})
	t.Run("cached", func(t *testing.T) {
		stop()
		p, err := c.Fetch(context.Background(), id)
		if err != nil {
			t.Fatalf("with the server stopped: %v", err)
		}
		o, err := symbols.Open(bin)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		if err := o.UseDebugFile(p); err != nil {
			t.Error(err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		_, err := (&debuginfod.Client{URLs: []string{"http://127.0.0.1:1"}}).Fetch(context.Background(), strings.Repeat("cd", 20))
		if err == nil || !strings.Contains(err.Error(), "unreachable") || !strings.Contains(err.Error(), "refused") {
			t.Errorf("closed port: %v", err)
		}
		rep, err := analyze.Core(core, analyze.Options{Debuginfod: []string{"http://127.0.0.1:1"}})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, w := range rep.Warnings {
			found = found || strings.Contains(w, "127.0.0.1:1 unreachable")
		}
		if !found {
			t.Errorf("no warning about the unreachable server: %q", rep.Warnings)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		go func() { // accept and never answer
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
			}
		}()
		slow := &debuginfod.Client{URLs: []string{fmt.Sprintf("http://%s", ln.Addr())}, Timeout: 500 * time.Millisecond}
		_, err = slow.Fetch(context.Background(), strings.Repeat("ef", 20))
		if err == nil || !strings.Contains(err.Error(), "no answer within") || errors.Is(err, debuginfod.ErrNotFound) {
			t.Errorf("silent server: %v", err)
		}
	})
}

// TestExecutableFromDebuginfod analyses the core of a program whose file is
// gone from this host (as for a core from a container that was removed):
// without a server its frames are named by address only and the report is
// partial; with elfutils' debuginfod serving the program, the executable
// is fetched by the build-id the core records and its frames are named
// and unwound from it.
func TestExecutableFromDebuginfod(t *testing.T) {
	if !inPrivateNetwork(t, "TestExecutableFromDebuginfod") {
		return
	}
	dir, serveDir := t.TempDir(), t.TempDir()
	bin := filepath.Join(dir, "tailcall")
	if out, err := exec.Command("gcc", "-O2", "-g", "-o", bin, filepath.Join("..", "analyze", "testdata", "tailcall.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	o, err := symbols.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	id := o.BuildID
	o.Close()
	core := filepath.Join(t.TempDir(), "core")
	if out, err := exec.Command("gdb", "-nx", "-batch", "-ex", "run", "-ex", "generate-core-file "+core, bin).CombinedOutput(); err != nil {
		if _, statErr := os.Stat(core); statErr != nil {
			t.Fatalf("gdb: %v\n%s", err, out)
		}
	}
	if err := os.Rename(bin, filepath.Join(serveDir, "tailcall")); err != nil {
		t.Fatal(err)
	}
	const url = "http://127.0.0.1:8003"
	srv := exec.Command("debuginfod", "-F", "-p", "8003", "-d", filepath.Join(t.TempDir(), "db.sqlite"), "-t", "0", "-g", "0", serveDir)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	ready := false
	for i := 0; i < 100 && !ready; i++ {
		if resp, err := http.Get(url + "/buildid/" + id + "/executable"); err == nil {
			resp.Body.Close()
			ready = resp.StatusCode == http.StatusOK
		}
		if !ready {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !ready {
		t.Fatalf("debuginfod did not serve the executable %s", id)
	}

	plain, err := analyze.Core(core, analyze.Options{NoAutoRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	if f := plain.CrashedThread().Frames[0]; f.Function != "" {
		t.Fatalf("frame #0 named %q with the program gone and no server", f.Function)
	}
	if plain.Root == nil || len(plain.Root.Unresolved) == 0 {
		t.Errorf("no unresolved object in the partial report: %+v", plain.Root)
	}
	rep, err := analyze.Core(core, analyze.Options{NoAutoRoot: true, Debuginfod: []string{url}, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range rep.Warnings {
		t.Logf("warning: %s", w)
	}
	fr := rep.CrashedThread().Frames
	if fr[0].Function != "leaf" {
		t.Errorf("frame #0 %+v, want leaf from the fetched executable", fr[0])
	}
	named := map[string]bool{}
	for _, f := range fr {
		named[f.Function] = true
	}
	if !named["top"] || !named["_start"] {
		t.Errorf("the unwind through the fetched executable does not reach top and _start: %+v", fr)
	}
	for _, m := range rep.Modules {
		if filepath.Base(m.Path) == "tailcall" && m.Missing {
			t.Errorf("module still missing: %+v", m)
		}
	}
}
