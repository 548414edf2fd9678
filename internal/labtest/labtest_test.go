package labtest

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestLabArtifacts checks what the lab produced: every scenario has a core,
// its ground truth and gdb's output, the logs saw the crash, repeated
// scenarios crashed other workers, the C programs left cores, and
// kernel.core_pattern was restored.
func TestLabArtifacts(t *testing.T) {
	before, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	l := Get(t)
	if err := l.Complete(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	if strings.Contains(string(after), l.Dir) {
		t.Errorf("kernel.core_pattern still points into the lab after the run: %q (was %q)", after, before)
	}
	if l.PHPVersion == "" || !strings.HasPrefix(l.PHPVersion, "8.") || l.Port == 0 {
		t.Errorf("php version %q, port %d", l.PHPVersion, l.Port)
	}
	for _, p := range []string{l.PHPFPM, l.FPMConfig, l.NginxConfig, l.NginxErrorLog, l.NginxAccessLog, l.FPMLog, l.KernelLog} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("lab file: %v", err)
		}
	}
	pids := map[int]string{}
	for key, s := range l.Scenarios {
		checkScenario(t, key, s)
		if other, dup := pids[s.PID]; dup {
			t.Errorf("%s and %s: same worker pid %d", key, other, s.PID)
		}
		pids[s.PID] = key
	}
	for _, name := range []string{"ffi-null-code", "shortcode-recursion"} {
		if s := l.Scenarios[name+"-2"]; s == nil || s.Name != name {
			t.Errorf("no second run of %s: %+v", name, s)
		}
	}
	rec := l.Scenarios["shortcode-recursion"].Truth
	if !rec.Outermost || len(rec.RecursionFunctions) == 0 || rec.Frames[len(rec.Frames)-1].Function != "{main}" {
		t.Errorf("shortcode-recursion truth: outermost %v, recursion %v, frames %+v", rec.Outermost, rec.RecursionFunctions, rec.Frames)
	}
	wantSig := map[string]int{"ffi-null-code": 11, "shortcode-recursion": 11, "kill-segv": 11, "abort": 6, "method-closure-include": 11}
	for name, sig := range wantSig {
		if got := l.Scenarios[name].Signal; got != sig {
			t.Errorf("%s: signal %d, want %d", name, got, sig)
		}
	}
	if s := l.Scenarios["method-closure-include"]; s.Method != "POST" || len(s.Secrets) == 0 {
		t.Errorf("method-closure-include: method %s, secrets %q", s.Method, s.Secrets)
	}
	for name, c := range l.CPrograms {
		checkCProgram(t, name, c)
	}
	if l.CPrograms["pcre-null"].Debug || !l.CPrograms["null-write"].Debug {
		t.Errorf("debug flags: pcre-null %v (built without -g), null-write %v (built with -g)",
			l.CPrograms["pcre-null"].Debug, l.CPrograms["null-write"].Debug)
	}
}

var segfaultLine = regexp.MustCompile(`\] (\S+)\[(\d+)\]: segfault at [0-9a-f]+ ip [0-9a-f]+ sp [0-9a-f]+ error \d+`)

func checkScenario(t *testing.T, key string, s *Scenario) {
	t.Helper()
	if s.Truth == nil {
		t.Errorf("%s: no truth", key)
		return
	}
	if s.Truth.PID != s.PID {
		t.Errorf("%s: truth written by pid %d, worker %d died", key, s.Truth.PID, s.PID)
	}
	if s.Truth.RequestURI != s.URL || s.Truth.Method != s.Method {
		t.Errorf("%s: requested %s %s, PHP saw %s %s", key, s.Method, s.URL, s.Truth.Method, s.Truth.RequestURI)
	}
	if q := s.URL[strings.Index(s.URL, "?")+1:]; strings.Contains(s.URL, "?") && s.Truth.Query != q {
		t.Errorf("%s: query %q, PHP saw %q", key, q, s.Truth.Query)
	}
	if !filepath.IsAbs(s.Truth.ScriptFilename) || s.Truth.Host == "" {
		t.Errorf("%s: script %q host %q", key, s.Truth.ScriptFilename, s.Truth.Host)
	}
	for i, f := range s.Truth.Frames {
		if f.Function == "" {
			t.Errorf("%s: frame %d has no function: %+v", key, i, f)
		}
	}
	if last := s.Truth.Frames[len(s.Truth.Frames)-1]; last.Function != "{main}" || last.File != s.Truth.ScriptFilename {
		t.Errorf("%s: outermost frame %+v, want {main} in %s", key, last, s.Truth.ScriptFilename)
	}
	if !strings.Contains(filepath.Base(s.Core), "."+strconv.Itoa(s.PID)+".") {
		t.Errorf("%s: core %s is not the one of pid %d", key, s.Core, s.PID)
	}
	if fpm := strings.Join(s.FPMLog, "\n"); !strings.Contains(fpm, "child "+strconv.Itoa(s.PID)+" exited on signal "+strconv.Itoa(s.Signal)) ||
		!strings.Contains(fpm, "core dumped") {
		t.Errorf("%s: FPM log lacks the core-dumped exit of %d: %q", key, s.PID, fpm)
	}
	if ng := strings.Join(s.NginxError, "\n"); !strings.Contains(ng, "upstream") || !strings.Contains(ng, s.Method+" "+s.URL+" HTTP/1.1") {
		t.Errorf("%s: nginx did not log the failed upstream for %s %s: %q", key, s.Method, s.URL, ng)
	}
	checkKernel(t, key, s.PID, "php-fpm", s.Kernel)
	gdb, err := os.ReadFile(s.GDB)
	if err != nil || !strings.Contains(string(gdb), "#0 ") || !strings.Contains(string(gdb), "rip") || !strings.Contains(string(gdb), "=> 0x") {
		t.Errorf("%s: gdb output lacks bt / info registers / x/6i $pc (%v)", key, err)
	}
	var raw map[string]json.RawMessage // the truth file has every field of the contract
	if b, err := os.ReadFile(s.TruthPath); err != nil || json.Unmarshal(b, &raw) != nil {
		t.Errorf("%s: truth %s unreadable", key, s.TruthPath)
	} else {
		for _, f := range []string{"frames", "outermost", "recursion_functions", "request_uri", "method", "query", "script_filename", "host", "pid"} {
			if _, ok := raw[f]; !ok {
				t.Errorf("%s: truth lacks %q", key, f)
			}
		}
	}
}

// checkKernel: the kernel lines are about this process (the kernel
// rate-limits them machine-wide, so they may be missing).
func checkKernel(t *testing.T, key string, pid int, comm string, lines []string) {
	t.Helper()
	if len(lines) == 0 {
		t.Logf("%s: no kernel line (signal sent, or rate-limited by the kernel)", key)
		return
	}
	m := segfaultLine.FindStringSubmatch(lines[0])
	if m == nil {
		t.Errorf("%s: first kernel line is not a segfault line: %q", key, lines[0])
		return
	}
	if m[2] != strconv.Itoa(pid) && !strings.HasPrefix(m[1], comm) {
		t.Errorf("%s: kernel line about %s[%s], want pid %d", key, m[1], m[2], pid)
	}
}

func checkCProgram(t *testing.T, name string, c *CCore) {
	t.Helper()
	want := 11
	if name == "go-panic" {
		want = 6 // the Go runtime aborts itself after the nil dereference
	}
	if c.Signal != want {
		t.Errorf("%s: signal %d, want %d", name, c.Signal, want)
	}
	if _, err := os.Stat(c.Source); err != nil {
		t.Errorf("%s: source: %v", name, err)
	}
	if c.PID != 0 && !strings.Contains(filepath.Base(c.Core), "."+strconv.Itoa(c.PID)+".") {
		t.Errorf("%s: core %s is not the one of pid %d", name, c.Core, c.PID)
	}
	gdb, err := os.ReadFile(c.GDB)
	if err != nil || !strings.Contains(string(gdb), "#0 ") {
		t.Errorf("%s: gdb output has no backtrace (%v)", name, err)
	}
	if name == "cpp-namespace" && !strings.Contains(string(gdb), "shop::billing::Invoice::total") {
		t.Errorf("%s: gdb does not show the demangled method", name)
	}
	if name == "thread-crash" && strings.Count(string(gdb), "Thread ") < 2 {
		t.Errorf("%s: gdb output lacks the other thread", name)
	}
	if want == 11 {
		checkKernel(t, name, c.PID, name, c.Kernel)
	}
}

// TestReadRelativeManifest: a manifest with paths relative to its directory
// (a lab output copied elsewhere) reads with absolute paths.
func TestReadRelativeManifest(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "scenarios", "kill-segv"), 0o755); err != nil {
		t.Fatal(err)
	}
	truth := `{"frames":[{"function":"{main}","file":"/srv/kill.php","line":3}],"request_uri":"/kill.php?mode=kill","pid":7}`
	if err := os.WriteFile(filepath.Join(dir, "scenarios", "kill-segv", "truth.json"), []byte(truth), 0o644); err != nil {
		t.Fatal(err)
	}
	manifest := `{"scenarios":{"kill-segv":{"name":"kill-segv","core":"scenarios/kill-segv/core","pid":7,"signal":11,
		"truth_path":"scenarios/kill-segv/truth.json"}},"c_programs":{"null-write":{"core":"c/null-write/core"}}}`
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	s := l.Scenarios["kill-segv"]
	if l.Dir != dir || s.Core != filepath.Join(dir, "scenarios/kill-segv/core") || s.Truth == nil || s.Truth.PID != 7 ||
		s.Truth.Frames[0].Function != "{main}" || l.CPrograms["null-write"].Core != filepath.Join(dir, "c/null-write/core") {
		t.Errorf("read: dir %s, scenario %+v, truth %+v", l.Dir, s, s.Truth)
	}
	if err := l.Complete(); err == nil || !strings.Contains(err.Error(), "scenario abort missing") {
		t.Errorf("Complete on a partial lab: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"scenarios":{"x":null}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(dir); err == nil {
		t.Error("Read accepted a null scenario")
	}
}

// TestReleaseLabs runs the lab on every release's PHP in its chroot: each
// scenario crashed a worker of that PHP version with a core, PHP's own
// backtrace and gdb's view, and kernel.core_pattern was put back.
func TestReleaseLabs(t *testing.T) {
	for suite, version := range Releases {
		t.Run(suite, func(t *testing.T) {
			l := Release(t, suite)
			if err := l.Complete(); err != nil {
				t.Fatal(err)
			}
			if suite == "zts" {
				if l.Release != "custom" || !l.ZTS || !strings.HasPrefix(l.PHPVersion, version+".") {
					t.Errorf("release %q zts %v php %q, want a custom ZTS PHP %s", l.Release, l.ZTS, l.PHPVersion, version)
				}
			} else {
				if l.Release != suite || l.Sysroot == "" || !strings.HasPrefix(l.PHPVersion, version+".") {
					t.Errorf("release %q sysroot %q php %q, want %s with PHP %s", l.Release, l.Sysroot, l.PHPVersion, suite, version)
				}
				if _, err := os.Stat(filepath.Join(l.Sysroot, l.PHPFPMInSysroot)); err != nil {
					t.Errorf("php-fpm in the sysroot: %v", err)
				}
			}
			after, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
			if strings.Contains(string(after), l.Dir) {
				t.Errorf("kernel.core_pattern still points into the lab: %q", after)
			}
			for _, name := range ScenarioNames {
				checkScenario(t, name, l.Scenarios[name])
			}
		})
	}
}

// TestExtractTar: archives are extracted with pages of zeros as holes and
// the right sizes, and entries that would leave the directory are refused.
func TestExtractTar(t *testing.T) {
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	data := make([]byte, 3*4096+100)
	copy(data[4096:], "middle page")
	copy(data[len(data)-3:], "end")
	files := map[string][]byte{"usr/lib/a.so": data, "zero": make([]byte, 8192), "empty": nil}
	for _, name := range []string{"usr/lib/a.so", "zero", "empty"} {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(files[name])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(files[name])
	}
	tw.Close()
	enc, _ := zstd.NewWriter(nil)
	archive := enc.EncodeAll(plain.Bytes(), nil)
	dir := t.TempDir()
	if err := ExtractTar(bytes.NewReader(archive), dir); err != nil {
		t.Fatal(err)
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
	// An uncompressed archive is read too; "../" entries are refused.
	var evil bytes.Buffer
	tw = tar.NewWriter(&evil)
	tw.WriteHeader(&tar.Header{Name: "../escape", Mode: 0o644, Size: 1, Typeflag: tar.TypeReg})
	tw.Write([]byte{1})
	tw.Close()
	if err := ExtractTar(bytes.NewReader(evil.Bytes()), dir); err == nil || !strings.Contains(err.Error(), "leaves the directory") {
		t.Errorf("../escape: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "..", "escape")); err == nil {
		t.Error("../escape was written")
	}
}

// TestFixtures: the checked-in cores are found and extracted.
func TestFixtures(t *testing.T) {
	fs := Fixtures(t)
	if len(fs) < 4 {
		t.Fatalf("%d fixtures", len(fs))
	}
	for _, f := range fs {
		if _, err := os.Stat(f.PlainCore(t)); err != nil {
			t.Errorf("%s: %v", f.Name, err)
		}
		if f.GDB == "" {
			t.Errorf("%s has no gdb.txt", f.Name)
		}
		if strings.HasPrefix(f.Name, "php-") && f.Truth == nil {
			t.Errorf("%s has no truth.json", f.Name)
		}
	}
	if _, err := os.Stat(filepath.Join(fs[0].Sysroot, "usr/lib/x86_64-linux-gnu/libc.so.6")); err != nil {
		t.Errorf("libc not in the sysroot: %v", err)
	}
}
