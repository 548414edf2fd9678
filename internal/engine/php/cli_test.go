package php

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
)

// truthFrame is one frame of testdata/cli/lib.php's truth().
type truthFrame struct {
	Function, Class, Type, File string
	Line                        int
}

// cliCore runs testdata/cli/main.php with php-cli (OPcache and the tracing
// JIT on) until it dies of SIGSEGV and returns the core (dumped by gdb:
// labtest.CrashCore, whatever kernel.core_pattern is) and the truth file.
// It skips when php is missing.
func cliCore(t testing.TB, env ...string) (corePath, truthPath string) {
	t.Helper()
	phpBin, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php (CLI) not installed")
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
	truthPath = filepath.Join(dir, "truth.json")
	corePath, _ = labtest.CrashCore(t, dir, append(env, "CORONER_TRUTH="+truthPath),
		phpBin, "-d", "opcache.enable_cli=1", "-d", "opcache.jit=tracing", "-d", "opcache.jit_buffer_size=16M", "-d", "ffi.enable=1", "main.php")
	return corePath, truthPath
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
