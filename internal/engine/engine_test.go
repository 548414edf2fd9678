package engine

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
)

// divisionCore compiles the knowledge base's division-by-zero program with
// gcc, runs it until it dumps core (kernel.core_pattern is read, never
// changed) and returns the core.
func divisionCore(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	pattern, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if p := strings.TrimSpace(string(pattern)); err != nil || p == "" || strings.ContainsAny(p, "|/") {
		t.Skipf("kernel.core_pattern is %q: cores do not land in the crashing program's directory (this test never changes it)", p)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "divide")
	if out, err := exec.Command("gcc", "-O2", "-o", bin, filepath.Join("..", "diagnose", "testdata", "c", "divide.c")).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	cmd := exec.Command("sh", "-c", "ulimit -c unlimited && exec ./divide")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("divide did not crash: %s", out)
	}
	cores, _ := filepath.Glob(filepath.Join(dir, "core*"))
	if len(cores) != 1 {
		t.Skipf("%d core files in %s (RLIMIT_CORE may be capped)", len(cores), dir)
	}
	return cores[0]
}

// TestRun: a plain core and the same core compressed give the same
// diagnosed, fingerprinted report, named after the file that was given;
// the evidence callback sees the analysed report before the diagnosis.
func TestRun(t *testing.T) {
	core := divisionCore(t)
	gz := filepath.Join(t.TempDir(), "core.divide.gz")
	out, err := exec.Command("sh", "-c", `gzip -c "$0" > "$1"`, core, gz).CombinedOutput()
	if err != nil {
		t.Fatalf("gzip: %v %s", err, out)
	}
	e := New(Options{})
	ctx := context.Background()
	var seen *crash.Report
	plain, err := e.Run(ctx, Request{Core: Core{Path: core}, Evidence: func(rep *crash.Report) diagnose.Evidence {
		seen = rep
		return diagnose.Evidence{Messages: []string{"from the logs"}}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if seen != plain {
		t.Error("the evidence callback did not see the report")
	}
	if plain.Signal.Name != "SIGFPE" || plain.Fault.Kind != crash.FaultArithmetic || len(plain.Diagnosis) == 0 || plain.Fingerprint == "" {
		t.Fatalf("signal %s, fault %s, diagnosis %v, fingerprint %q", plain.Signal.Name, plain.Fault.Kind, plain.Diagnosis, plain.Fingerprint)
	}
	if abs, _ := filepath.Abs(core); plain.Process.CorePath != abs {
		t.Errorf("core path %q, want %q", plain.Process.CorePath, abs)
	}
	packed, err := e.Run(ctx, Request{Core: Core{Path: gz}})
	if err != nil {
		t.Fatal(err)
	}
	if packed.Process.CorePath != gz {
		t.Errorf("compressed core reported as %q, want %q (not the temporary copy)", packed.Process.CorePath, gz)
	}
	if packed.Fingerprint != plain.Fingerprint || packed.Diagnosis[0].Rule != plain.Diagnosis[0].Rule {
		t.Errorf("compressed: %s %s, plain: %s %s", packed.Fingerprint, packed.Diagnosis[0].Rule, plain.Fingerprint, plain.Diagnosis[0].Rule)
	}
	bare, err := e.Run(ctx, Request{Core: Core{Path: core}, NoDiagnosis: true})
	if err != nil {
		t.Fatal(err)
	}
	if bare.Diagnosis != nil || bare.Fingerprint != "" || bare.Fault.Kind != plain.Fault.Kind {
		t.Errorf("NoDiagnosis: diagnosis %v, fingerprint %q", bare.Diagnosis, bare.Fingerprint)
	}
	// Diagnose alone, on the bare report, finishes the pipeline.
	if err := e.Diagnose(bare, diagnose.Evidence{}); err != nil || bare.Fingerprint != plain.Fingerprint {
		t.Errorf("Diagnose: %v, fingerprint %q", err, bare.Fingerprint)
	}
}

func TestRunErrors(t *testing.T) {
	e := New(Options{})
	ctx := context.Background()
	if _, err := e.Run(ctx, Request{}); !errors.Is(err, ErrNoCore) {
		t.Errorf("no core named: %v", err)
	}
	notCore := filepath.Join(t.TempDir(), "notes.txt")
	os.WriteFile(notCore, []byte("not a core"), 0o644)
	if _, err := e.Run(ctx, Request{Core: Core{Path: notCore}}); err == nil {
		t.Error("a text file analysed as a core")
	}
	if _, err := e.Run(ctx, Request{Core: Core{Path: filepath.Join(t.TempDir(), "missing")}}); err == nil {
		t.Error("a missing file analysed")
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := e.Run(canceled, Request{Core: Core{Path: notCore}}); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled context: %v", err)
	}
	bad := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(bad, []byte("version: 2\n"), 0o644)
	if err := New(Options{Rules: []string{bad}}).Diagnose(&crash.Report{}, diagnose.Evidence{}); err == nil {
		t.Error("a broken rules file loaded")
	}
	for c, want := range map[Core]string{{Path: "/x"}: "/x", {PID: 7}: "the newest core of pid 7", {Latest: true}: "the newest core"} {
		if c.String() != want {
			t.Errorf("%+v: %q", c, c.String())
		}
	}
}
