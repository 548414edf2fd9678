package diagnose_test

import (
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// realCrash compiles testdata/c/NAME.c with gcc, runs it until it crashes
// (under gdb, which dumps the core: labtest.CrashCore; kernel.core_pattern
// does not matter), and analyses the core with the real pipeline.
func realCrash(t *testing.T, name string, cflags ...string) *crash.Report {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog-"+name)
	args := append([]string{"-o", bin, filepath.Join("testdata", "c", name+".c")}, cflags...)
	if out, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %s: %v\n%s", name, err, out)
	}
	core, _ := labtest.CrashCore(t, dir, nil, bin)
	return analyse(t, core, name, analyze.Options{NoPHP: true})
}

// phpCrash runs testdata/php/NAME.php with the PHP CLI (no php.ini, only
// the given -d settings) until it crashes, and analyses the core.
func phpCrash(t *testing.T, name string, ini ...string) *crash.Report {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php CLI not installed")
	}
	dir := t.TempDir()
	script, err := filepath.Abs(filepath.Join("testdata", "php", name+".php"))
	if err != nil {
		t.Fatal(err)
	}
	args := []string{php, "-n"}
	for _, kv := range ini {
		args = append(args, "-d", kv)
	}
	args = append(args, script)
	core, _ := labtest.CrashCore(t, dir, nil, args...)
	return analyse(t, core, name, analyze.Options{})
}

func analyse(t *testing.T, core, name string, opts analyze.Options) *crash.Report {
	t.Helper()
	r, err := analyze.Core(core, opts)
	if err != nil {
		t.Fatalf("analyze %s: %v", name, err)
	}
	return r
}

// TestRealPHPCores checks the rules on cores of the PHP CLI crashing the
// ways the crash lab's FPM workers do.
func TestRealPHPCores(t *testing.T) {
	kb, err := diagnose.Load()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		script string
		ini    []string
		rule   string
	}{
		{"ffi_null", []string{"extension=ffi", "ffi.enable=1"}, "ffi-call-crash"},
		{"self_kill", []string{"extension=posix"}, "signal-sent-by-process"},
		{"shortcode_recursion", []string{"pcre.jit=1"}, "callback-recursion-stack-overflow"},
	}
	fps := map[string]string{}
	for _, c := range cases {
		t.Run(c.script, func(t *testing.T) {
			r := phpCrash(t, c.script, c.ini...)
			if r.PHP == nil || len(r.PHP.Frames) == 0 {
				t.Fatalf("no PHP stack in the report (warnings %v)", r.Warnings)
			}
			ds := kb.Diagnose(r, diagnose.Evidence{})
			if len(ds) == 0 || ds[0].Rule != c.rule {
				var ids []string
				for _, d := range ds {
					ids = append(ids, d.Rule)
				}
				t.Fatalf("diagnoses %v, want %s first; fault %q", ids, c.rule, r.Fault.Kind)
			}
			if len(ds) > 1 {
				t.Errorf("more rules match: %v", ds[1:])
			}
			t.Logf("%s: %s", ds[0].Rule, ds[0].Explanation)
			fp := diagnose.Fingerprint(r)
			if other, dup := fps[fp]; dup {
				t.Errorf("fingerprint %s shared with %s", fp, other)
			}
			fps[fp] = c.script
			r2 := phpCrash(t, c.script, c.ini...)
			if again := diagnose.Fingerprint(r2); again != fp {
				t.Errorf("fingerprint changed between two runs: %s then %s\n%s %v\n%s %v", fp, again, r.Fault.Kind, diagnose.FingerprintFrames(r), r2.Fault.Kind, diagnose.FingerprintFrames(r2))
			}
		})
	}
}

// TestRealCores checks the rules against cores of real crashing programs
// analysed by the real pipeline: the names the symbolizer gives (libc
// internals, pcre2_jit_match_8), the signal details and the unwinder's
// cycles are what the rules must match.
func TestRealCores(t *testing.T) {
	kb, err := diagnose.Load()
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		prog   string
		cflags []string
		rule   string
	}{
		{"pcre_null", []string{"-O2", "-lpcre2-8"}, "pcre-jit-fault"},
		{"double_free", []string{"-O2"}, "heap-corruption"},
		{"assert_fail", []string{"-O2"}, "assertion-failure"},
		{"selfkill", []string{"-O2"}, "signal-sent-by-process"},
		{"recurse", []string{"-O1"}, "recursion-stack-overflow"},
		{"divide", []string{"-O2"}, "unknown-crash"},
	}
	fps := map[string]string{}
	for _, c := range cases {
		t.Run(c.prog, func(t *testing.T) {
			r := realCrash(t, c.prog, c.cflags...)
			ds := kb.Diagnose(r, diagnose.Evidence{})
			var ids []string
			for _, d := range ds {
				ids = append(ids, d.Rule)
			}
			if len(ds) == 0 || ds[0].Rule != c.rule {
				th := r.CrashedThread()
				var top []string
				for i := 0; th != nil && i < len(th.Frames) && i < 8; i++ {
					top = append(top, th.Frames[i].Function+"@"+filepath.Base(th.Frames[i].Module))
				}
				t.Fatalf("diagnoses %v, want %s first; signal %+v fault %q frames %v", ids, c.rule, r.Signal, r.Fault.Kind, top)
			}
			t.Logf("%s: %s", ds[0].Rule, ds[0].Explanation)
			fp := diagnose.Fingerprint(r)
			if other, dup := fps[fp]; dup {
				t.Errorf("fingerprint %s shared with %s", fp, other)
			}
			fps[fp] = c.prog
			// Another run: other pid, other ASLR layout, same crash.
			r2 := realCrash(t, c.prog, c.cflags...)
			if again := diagnose.Fingerprint(r2); again != fp {
				t.Errorf("fingerprint changed between two runs: %s then %s\n%s %v\n%s %v", fp, again, r.Fault.Kind, diagnose.FingerprintFrames(r), r2.Fault.Kind, diagnose.FingerprintFrames(r2))
			}
		})
	}
}
