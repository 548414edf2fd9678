package audit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
)

// TestLabAudit audits the crash lab's own FPM configuration: the tracing
// JIT (set by the lab's 99-lab.ini after Debian's 10-opcache.ini) and cores
// enabled (rlimit_core + process.dumpable), as the lab's cores prove.
func TestLabAudit(t *testing.T) {
	lab := labtest.Get(t)
	r := mustRun(t, Options{FPMConfig: lab.FPMConfig, PHPIniScanDir: lab.PHPIniDir, Binary: lab.PHPFPM})
	if len(r.Installations) != 1 {
		t.Fatalf("installations: %d (warnings %v)", len(r.Installations), r.Warnings)
	}
	in := r.Installations[0]
	if !strings.HasPrefix(lab.PHPVersion, in.Version) {
		t.Errorf("version %q, lab says %q", in.Version, lab.PHPVersion)
	}
	if !in.JIT.Tracing || !in.JIT.Active {
		t.Errorf("JIT = %+v, want active tracing (the lab runs the tracing JIT)", in.JIT)
	}
	if e := in.INI["opcache.jit"].Evidence; e == nil || !strings.HasSuffix(e.File, "/99-lab.ini") {
		t.Errorf("opcache.jit evidence %+v, want the lab's 99-lab.ini", e)
	}
	if !hasStatus(r, "php.ini_override", StatusInfo) {
		t.Errorf("the lab ini overriding Debian's 10-opcache.ini is not reported")
	}
	if !hasStatus(r, "php.tracing_jit_pcre_jit", StatusRisky) {
		t.Errorf("tracing JIT + PCRE JIT on %s not flagged", lab.PHPVersion)
	}
	// The lab's FPM layer lets cores through (the machine-wide layers are
	// judged in TestLabLive, while the lab's core_pattern is in force).
	for _, c := range []string{"fpm.rlimit_core", "fpm.process_dumpable"} {
		if lab.Dumpable && !hasStatus(r, c, StatusOK) {
			t.Errorf("%s: %v, want ok", c, statusOf(r, c))
		}
	}
}

// TestLabLive runs the lab twice, with and without process.dumpable, and
// leaves it running (--keep) while coroner audits it live: the running
// master and workers, the lab's own kernel.core_pattern. The audit's
// verdict must match what the lab's crash did: a core, or none.
func TestLabLive(t *testing.T) {
	lab := labtest.Get(t) // skips when not root / CORONER_NO_LAB
	if testing.Short() {
		t.Skip("runs the crash lab (-short)")
	}
	script, err := labtest.Script()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(script); err != nil {
		t.Skip("lab/run.sh not found")
	}
	// Serialise with the labs of other test binaries: they all change
	// kernel.core_pattern and restore it.
	labtest.HoldExclusive(t, lab)
	for _, dumpable := range []bool{true, false} {
		name := "dumpable"
		if !dumpable {
			name = "no-dumpable"
		}
		t.Run(name, func(t *testing.T) { labLive(t, script, dumpable) })
	}
}

func labLive(t *testing.T, script string, dumpable bool) {
	out := t.TempDir()
	args := []string{"--out", out, "--scenario", "kill-segv", "--no-c", "--keep"}
	if !dumpable {
		args = append(args, "--no-dumpable")
	}
	b, err := exec.Command(script, args...).CombinedOutput()
	// --stop restores kernel.core_pattern and stops what the lab started.
	defer func() {
		if sb, err := exec.Command(script, "--stop", out).CombinedOutput(); err != nil {
			t.Errorf("lab/run.sh --stop: %v\n%s", err, sb)
		}
	}()
	if err != nil {
		t.Fatalf("lab/run.sh %v: %v\n%s", args, err, b)
	}
	l, err := labtest.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	if l.Dumpable != dumpable {
		t.Fatalf("lab manifest dumpable = %v", l.Dumpable)
	}
	r := mustRun(t, Options{FPMConfig: l.FPMConfig, PHPIniScanDir: l.PHPIniDir, Binary: l.PHPFPM, NginxConfig: l.NginxConfig})
	if len(r.Installations) != 1 {
		t.Fatalf("installations: %+v", r.Installations)
	}
	in := r.Installations[0]
	if !in.JIT.Tracing || !in.JIT.Active {
		t.Errorf("JIT = %+v, want active tracing", in.JIT)
	}
	workers := 0
	for _, p := range in.Processes {
		if p.Role == "worker" {
			workers++
			if p.Dumpable == nil || *p.Dumpable != dumpable {
				t.Errorf("worker %d dumpable = %v, want %v", p.PID, p.Dumpable, dumpable)
			}
		}
	}
	if workers == 0 {
		t.Errorf("no running lab worker audited: %+v", in.Processes)
	}
	if got := r.CoresWritten(); got != dumpable {
		t.Errorf("audit: cores written = %v, want %v; problems:\n%s", got, dumpable, strings.Join(problems(r), "\n"))
	}
	if !dumpable && !hasStatus(r, "fpm.process_dumpable", StatusBlocks) {
		t.Errorf("fpm.process_dumpable: %v, want blocks", statusOf(r, "fpm.process_dumpable"))
	}
	// What the lab saw.
	s := l.Scenarios["kill-segv"]
	if s == nil {
		t.Fatal("no kill-segv scenario in the lab output")
	}
	died, dumped := false, false
	for _, line := range s.FPMLog {
		if strings.Contains(line, "exited on signal") {
			died = true
			dumped = strings.Contains(line, "core dumped")
		}
	}
	if !died {
		t.Fatalf("lab: no worker death in %v", s.FPMLog)
	}
	cores, _ := filepath.Glob(filepath.Join(out, "cores", "core*"))
	gotCore := dumped && (s.Core != "" || len(cores) > 0)
	if gotCore != dumpable {
		t.Errorf("lab: core = %v (FPM %q, core %q, %v), audit said %v", gotCore, s.FPMLog, s.Core, cores, dumpable)
	}
}

// TestApacheLive runs the Apache lab (lab/run.sh --apache) with and
// without CoreDumpDirectory and leaves it running (--keep) while coroner
// audits it live: Apache's layers, its running children. The audit's
// verdict must match what the lab's crash did: Apache logged AH00051 with a
// core, or AH00052 and no core.
func TestApacheLive(t *testing.T) {
	lab := labtest.Apache(t) // skips when not root / CORONER_NO_LAB
	if testing.Short() {
		t.Skip("runs the crash lab (-short)")
	}
	script, err := labtest.Script()
	if err != nil {
		t.Fatal(err)
	}
	labtest.HoldExclusive(t, lab)
	for _, dumpable := range []bool{true, false} {
		name := "core-dump-directory"
		if !dumpable {
			name = "none"
		}
		t.Run(name, func(t *testing.T) { apacheLive(t, script, dumpable) })
	}
}

func apacheLive(t *testing.T, script string, dumpable bool) {
	out := t.TempDir()
	args := []string{"--apache", "--out", out, "--scenario", "ffi-null-code", "--keep"}
	if !dumpable {
		args = append(args, "--no-dumpable")
	}
	b, err := exec.Command(script, args...).CombinedOutput()
	defer func() {
		if sb, err := exec.Command(script, "--stop", out).CombinedOutput(); err != nil {
			t.Errorf("lab/run.sh --stop: %v\n%s", err, sb)
		}
	}()
	if err != nil {
		t.Fatalf("lab/run.sh %v: %v\n%s", args, err, b)
	}
	l, err := labtest.Read(out)
	if err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, Options{ApacheConfig: l.ApacheConfig, PHPIniScanDir: ":" + filepath.Join(out, "conf", "php.d")})
	if len(r.Installations) != 1 || r.Installations[0].SAPI != SAPIApache {
		t.Fatalf("installations: %+v (warnings %v)", r.Installations, r.Warnings)
	}
	in := r.Installations[0]
	if !in.JIT.Tracing || !in.JIT.Active {
		t.Errorf("JIT = %+v, want the lab's tracing JIT", in.JIT)
	}
	children := 0
	for _, p := range in.Processes {
		if p.Role == "worker" {
			children++
			if p.Dumpable == nil || *p.Dumpable != dumpable {
				t.Errorf("child %d dumpable = %v, want %v", p.PID, p.Dumpable, dumpable)
			}
		}
	}
	if children == 0 {
		t.Errorf("no running Apache child of the lab audited: %+v", in.Processes)
	}
	if got := r.CoresWritten(); got != dumpable {
		t.Errorf("audit: cores written = %v, want %v; problems:\n%s", got, dumpable, strings.Join(problems(r), "\n"))
	}
	if !dumpable && !hasStatus(r, "apache.core_dump_directory", StatusBlocks) {
		t.Errorf("apache.core_dump_directory: %v, want blocks", statusOf(r, "apache.core_dump_directory"))
	}
	// What the lab saw: Apache's record of the death, and the core.
	s := l.Scenarios["ffi-null-code"]
	if s == nil || len(s.ApacheError) == 0 {
		t.Fatalf("lab: no Apache record of the death: %+v", s)
	}
	logged := strings.Contains(s.ApacheError[0], "AH00051")
	cores, _ := filepath.Glob(filepath.Join(out, "scenarios", "ffi-null-code", "core*"))
	if logged != dumpable || (len(cores) > 0) != dumpable {
		t.Errorf("lab: Apache logged %q, cores %v; the audit said cores written = %v", s.ApacheError, cores, dumpable)
	}
}
