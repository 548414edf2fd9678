package php

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// truthFrame is one frame of testdata/cli/lib.php's truth().
type truthFrame struct {
	Function, Class, Type, File string
	Line                        int
}

// cliCore runs testdata/cli/main.php with php-cli (OPcache and the tracing
// JIT on) until it dies of SIGSEGV and returns the core and the truth file.
// It skips when php is missing or cores are not written as plain files.
func cliCore(t testing.TB, env ...string) (corePath, truthPath string) {
	t.Helper()
	phpBin, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php (CLI) not installed")
	}
	pat, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Skipf("read core_pattern: %v", err)
	}
	pattern := strings.TrimSpace(string(pat))
	if strings.HasPrefix(pattern, "|") {
		t.Skipf("kernel.core_pattern pipes cores to a program (%s): no core file to read", pattern)
	}
	src, err := filepath.Abs("testdata/cli")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range []string{"main.php", "lib.php", "view.php"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	coreDir := dir
	if strings.HasPrefix(pattern, "/") {
		coreDir = filepath.Dir(pattern)
	}
	truthPath = filepath.Join(dir, "truth.json")
	cmd := exec.Command("sh", "-c", `ulimit -c unlimited && exec "$0" -d opcache.enable_cli=1 -d opcache.jit=tracing -d opcache.jit_buffer_size=16M -d ffi.enable=1 main.php`, phpBin)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), append(env, "CORONER_TRUTH="+truthPath)...)
	return crashForCore(t, cmd, coreDir, pattern), truthPath
}

// crashForCore runs cmd (a shell that raises its core limit and execs the
// program, in cmd.Dir), which must crash, and returns its core, found in
// coreDir as kernel.core_pattern (pattern) names it. It skips when no core
// appears.
func crashForCore(t testing.TB, cmd *exec.Cmd, coreDir, pattern string) string {
	t.Helper()
	start := time.Now().Add(-time.Second)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	pid := strconv.Itoa(cmd.Process.Pid) // sh execs the program: same pid
	const limit = 2 * time.Minute
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("%s did not crash within %v (killed): %s", cmd.Path, limit, out.String())
	}
	if err == nil {
		t.Fatalf("%s did not crash: %s", cmd.Path, out.String())
	}
	// The kernel writes the core before the parent sees the exit status.
	ents, _ := os.ReadDir(coreDir)
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.ModTime().Before(start) || !strings.Contains(e.Name(), "core") {
			continue
		}
		if coreDir != cmd.Dir && !strings.Contains(e.Name(), pid) {
			continue // a shared core directory: only this process's core
		}
		p := filepath.Join(coreDir, e.Name())
		if coreDir != cmd.Dir {
			t.Cleanup(func() { os.Remove(p) })
		}
		return p
	}
	t.Skipf("%s crashed (%v) but no core appeared in %s (core_pattern %q, ulimit?): %s", cmd.Path, err, coreDir, pattern, out.String())
	return ""
}

// comparable reduces PHP frames to what debug_backtrace shows, skipping the
// internal functions running at the crash (debug_backtrace ran before them).
func compareFrames(t *testing.T, got []truthFrame, want []truthFrame) {
	t.Helper()
	for len(got) > 0 && got[0].File == "" {
		got = got[1:]
	}
	if len(got) != len(want) {
		t.Errorf("%d PHP frames, debug_backtrace() saw %d:\n got %+v\nwant %+v", len(got), len(want), got, want)
		return
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("frame %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestCLICore(t *testing.T) {
	corePath, truthPath := cliCore(t)
	var want []truthFrame
	b, err := os.ReadFile(truthPath)
	if err != nil {
		t.Fatalf("truth: %v", err)
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatalf("truth: %v", err)
	}
	if len(want) < 6 {
		t.Fatalf("truth has %d frames: %+v", len(want), want)
	}
	res, err := Analyze(inputFromCore(t, corePath))
	if err != nil || res == nil {
		t.Fatalf("Analyze = %v, %v", res, err)
	}
	if res.SAPI != "cli" || res.ZTS || !strings.HasPrefix(res.Version, "8.") {
		t.Errorf("version %q sapi %q zts %v", res.Version, res.SAPI, res.ZTS)
	}
	var got []truthFrame
	for _, f := range res.Frames {
		got = append(got, truthFrame{f.Function, f.Class, f.CallType, f.File, f.Line})
	}
	compareFrames(t, got, want)
	if len(res.Frames) > 0 && (res.Frames[0].Function != "posix_kill" || res.Frames[0].Kind != "internal") {
		t.Errorf("innermost frame %+v, want internal posix_kill", res.Frames[0])
	}
	for _, f := range res.Frames {
		if f.Function == "boom" && strings.Join(f.Args, ", ") != `7, array(1), 2.5` {
			t.Errorf("boom args = %q", f.Args)
		}
		if f.Function == "show" && (len(f.Args) != 2 || !strings.HasSuffix(f.Args[1], "(60 bytes)")) {
			t.Errorf("show args = %q, want the long label truncated", f.Args)
		}
	}
	if res.INI["opcache.jit"] != "tracing" || res.INI["pcre.jit"] != "1" || res.INI["opcache.jit_buffer_size"] != "16M" {
		t.Errorf("INI = %v", res.INI)
	}
	if res.JIT == nil || !res.JIT.Active || res.JIT.CRTO != "1254" {
		t.Errorf("JIT = %+v", res.JIT)
	}
	found := false
	for _, e := range res.Extensions {
		found = found || e.Name == "standard" && e.Version == res.Version
	}
	if !found {
		t.Errorf("extensions %v lack standard %s", res.Extensions, res.Version)
	}
	if res.Request == nil || !strings.HasSuffix(res.Request.Script, "main.php") {
		t.Errorf("request = %+v", res.Request)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %q", res.Warnings)
	}
	// The validated scan for EG(ini_directives), used for versions whose
	// offset is not in the table, finds the table's value.
	in := inputFromCore(t, corePath)
	g, _ := findGlobals(in.Modules)
	l, _ := LayoutFor(res.Version)
	m := &mem{r: in.Memory, l: &l}
	byTable, _, scanned1, err1 := iniDirectives(m, g)
	l.EGIniDirectives = 0
	byScan, _, scanned2, err2 := iniDirectives(m, g)
	if err1 != nil || err2 != nil || byTable != byScan || scanned1 || !scanned2 {
		t.Errorf("EG(ini_directives): table %#x (%v), scan %#x (%v)", byTable, err1, byScan, err2)
	}
}

func TestCLICoreDeepRecursion(t *testing.T) {
	corePath, _ := cliCore(t, "CORONER_DEPTH=1")
	res, err := Analyze(inputFromCore(t, corePath))
	if err != nil || res == nil {
		t.Fatalf("Analyze = %v, %v", res, err)
	}
	n := len(res.Frames)
	if n < 10000 {
		t.Fatalf("%d frames, want a deep recursion", n)
	}
	if res.Frames[n-1].Function != "{main}" || res.Frames[n-2].Function != "shortcode" {
		t.Errorf("outermost frames %+v %+v", res.Frames[n-2], res.Frames[n-1])
	}
	if len(res.Cycles) == 0 || res.Cycles[0].Length != 3 || res.Cycles[0].Repeats*3 < n-10 {
		t.Errorf("cycles %+v for %d frames", res.Cycles, n)
	}
	names := map[string]bool{}
	for _, f := range res.Frames[:3] {
		names[f.Function] = true
	}
	for _, fn := range []string{"shortcode", "{closure}", "preg_replace_callback"} {
		if !names[fn] {
			t.Errorf("cycle lacks %s: %+v", fn, res.Frames[:3])
		}
	}
}
