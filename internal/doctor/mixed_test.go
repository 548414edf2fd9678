package doctor

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// mixedHost is a host where PHP-FPM workers crashed (the lab) next to other
// programs: python3, perl and a C++ service crash for real here, and the
// PHP CLI twice (a NULL passed to strlen through FFI, and posix_kill of
// itself), each with its core named by another kernel.core_pattern (the
// pid first, in the middle, last), and the kernel's lines about them are
// added to the lab's logs.
type mixedHost struct {
	lab      *labtest.Lab
	logs     []string
	coreDirs []string
	// crashes by program: php-cli, python3, perl, inventory, php-kill
	crashes map[string]labtest.Crashed
}

var mixedPatterns = map[string]string{
	"php-cli":   "core.%p.%s.%e",    // pid first
	"python3":   "core-%s-%p-%e-%t", // pid in the middle
	"perl":      "core.%e.%t.%p",    // pid last
	"inventory": "%e.%p.%s.%t.core", // not even named core*
	"php-kill":  "php-core.%p",      // pid last, another name
}

func newMixedHost(t *testing.T) *mixedHost {
	t.Helper()
	l := labtest.Get(t)
	for _, bin := range []string{"python3", "perl", "g++", "php8.2"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	dir := t.TempDir()
	cores := filepath.Join(dir, "cores")
	if err := os.Mkdir(cores, 0o755); err != nil {
		t.Fatal(err)
	}
	inv := filepath.Join(dir, "inventory")
	if out, err := exec.Command("g++", "-O0", "-g", "-o", inv, filepath.Join("testdata", "mixed", "inventory.cpp")).CombinedOutput(); err != nil {
		t.Fatalf("g++: %v\n%s", err, out)
	}
	python := "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		python = "python3"
	}
	argv := map[string][]string{
		"php-cli":   {"php8.2", "-d", "ffi.enable=1", "-r", `$f = FFI::cdef("size_t strlen(const char *s);"); echo $f->strlen(null);`},
		"python3":   {python, "-c", "import ctypes; ctypes.string_at(0)"},
		"perl":      {"perl", "-e", "kill SEGV => $$"},
		"inventory": {inv},
		"php-kill":  {"php8.2", "-r", "posix_kill(getmypid(), 11);"},
	}
	h := &mixedHost{lab: l, crashes: map[string]labtest.Crashed{}}
	var kernel []string
	for _, name := range []string{"php-cli", "python3", "perl", "inventory", "php-kill"} {
		c := labtest.Crash(t, dir, filepath.Join(cores, mixedPatterns[name]), argv[name]...)
		if c.Core == "" {
			t.Fatalf("%s (pid %d) left no core in %s", name, c.PID, cores)
		}
		h.crashes[name] = c
		kernel = append(kernel, c.Kernel...)
		time.Sleep(1100 * time.Millisecond) // a second of its own, like the lab's crashes
	}
	klog := filepath.Join(dir, "kernel-others.log")
	if err := os.WriteFile(klog, []byte(strings.Join(kernel, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h.logs = []string{l.NginxErrorLog, l.FPMLog, l.KernelLog, klog}
	h.coreDirs = []string{cores}
	for _, s := range l.Scenarios {
		h.coreDirs = append(h.coreDirs, s.Core)
	}
	for _, c := range l.CPrograms {
		h.coreDirs = append(h.coreDirs, c.Core)
	}
	return h
}

// TestMixedHost: on a host where PHP-FPM workers crashed next to python,
// perl, a C++ service and the PHP CLI, logs counts the PHP deaths only,
// lists the other programs apart, gives no rate over a short window and no
// crash loop across causes, and links every core by the pid its notes
// hold, wherever the file name puts the pid; doctor groups and diagnoses
// PHP crashes only, and with --all-processes speaks of "the process".
func TestMixedHost(t *testing.T) {
	h := newMixedHost(t)
	entries, _ := coredumps.Discover(coredumps.DiscoverOptions{Sources: []string{coredumps.SourceDir}, Dirs: h.coreDirs, NoJournal: true, Quick: true})
	var inputs []logs.Input
	for _, p := range h.logs {
		inputs = append(inputs, logs.Input{Path: p})
	}
	res, err := logs.Analyze(context.Background(), logs.Options{Inputs: inputs, Cores: entries})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	phpDeaths := len(h.lab.Scenarios) + 1 // the FPM workers and the PHP CLI
	if s.Scope != "php" || s.Incidents != phpDeaths {
		t.Errorf("scope %s, %d PHP deaths, want %d", s.Scope, s.Incidents, phpDeaths)
	}
	others := map[string]int{}
	for _, c := range s.Others {
		others[c.Key] = c.N
	}
	if others["python3"] != 1 || others["inventory"] != 1 {
		t.Errorf("other processes %v, want python3 and inventory once each", s.Others)
	}
	// The lab's lines were written when the lab ran (its output is cached)
	// and the other crashes now: the window is short only while the cache
	// is younger than an hour. Over an hour or more, a rate is right.
	short := s.SpanSeconds < logs.MinRateSpan.Seconds()
	if len(s.Loops) != 0 {
		t.Errorf("loops %+v", s.Loops)
	}
	if short && s.PerHour != 0 {
		t.Errorf("per hour %v over %.0fs: a rate over less than an hour", s.PerHour, s.SpanSeconds)
	}
	if !short {
		if want := float64(s.Incidents) * 3600 / s.SpanSeconds; s.PerHour < want*0.9 || s.PerHour > want*1.1 {
			t.Errorf("per hour %v over %.0fs for %d deaths, want about %.1f", s.PerHour, s.SpanSeconds, s.Incidents, want)
		}
	}
	byPID := map[int]*logs.Incident{}
	for _, inc := range res.Incidents {
		byPID[inc.PID] = inc
	}
	for name, sc := range h.lab.Scenarios {
		inc := byPID[sc.PID]
		if inc == nil || !inc.PHP || inc.Core != sc.Core {
			t.Errorf("scenario %s (pid %d): incident %+v", name, sc.PID, inc)
		}
	}
	for name, c := range h.crashes {
		if name == "perl" || name == "php-kill" {
			continue // a sent signal: no kernel line
		}
		inc := byPID[c.PID]
		if inc == nil {
			if len(c.Kernel) == 0 {
				t.Logf("%s: the kernel rate-limited its line", name)
				continue
			}
			t.Errorf("%s (pid %d): no incident from %q", name, c.PID, c.Kernel)
			continue
		}
		if inc.PHP != (name == "php-cli") {
			t.Errorf("%s: PHP %v (%s)", name, inc.PHP, inc.ProcessWhy)
		}
		// Linked by the pid the core's notes hold, whatever the name.
		if inc.Core != c.Core || inc.CoreConfidence != logs.ConfHigh {
			t.Errorf("%s (pid %d, core %s named %s): linked core %q (%s)", name, c.PID, c.Core, mixedPatterns[name], inc.Core, inc.CoreConfidence)
		}
	}
	// The cores of signals sent by the process itself have no kernel line:
	// not linked, and said why (the PHP one as a PHP process's).
	perl, phpKill := h.crashes["perl"], h.crashes["php-kill"]
	found := 0
	for _, u := range res.CoreLinks.Unlinked {
		for _, c := range []labtest.Crashed{perl, phpKill} {
			if u.Path != c.Core {
				continue
			}
			found++
			if u.PID != c.PID || !strings.Contains(u.Why, "no crash of pid") || u.PHP != (c.PID == phpKill.PID) {
				t.Errorf("unlinked core: %+v", u)
			}
		}
	}
	if found != 2 || res.CoreLinks.Linked+len(res.CoreLinks.Unlinked) != res.CoreLinks.Cores {
		t.Errorf("core links %+v; the cores of perl and of php's posix_kill are not both listed as unlinked", res.CoreLinks)
	}
	var text bytes.Buffer
	if err := logs.WriteText(&text, res, logs.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"PHP process deaths", "other processes (not PHP", "python3 (1)", "not linked: " + perl.Core} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("logs text lacks %q", want)
		}
	}
	if (short && strings.Contains(text.String(), "per hour")) || strings.Contains(text.String(), "CRASH LOOP") {
		t.Errorf("logs text gives a rate or a loop:\n%s", text.String())
	}

	// doctor: PHP groups only; the others in one line.
	opts := Options{Logs: h.logs, CoreDirs: h.coreDirs, FPMConfig: h.lab.FPMConfig, PHPIniScanDir: h.lab.PHPIniDir, MaxCores: 20}
	dres, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range dres.Groups {
		if g.Report != nil && !diagnose.IsPHPProcess(g.Report) {
			t.Errorf("group %s is of %s, not PHP", g.Key, g.Report.Process.Executable)
		}
		for _, inc := range g.Incidents {
			if !inc.PHP {
				t.Errorf("group %s has the incident of %s (not PHP)", g.Key, inc.Comm)
			}
		}
	}
	names := map[string]bool{}
	for _, o := range dres.Others {
		names[o.Name] = true
	}
	for _, want := range []string{"python3", "perl", "inventory"} {
		if !names[want] {
			t.Errorf("doctor's other programs %v lack %s", names, want)
		}
	}
	text.Reset()
	if err := Text(&text, dres); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "Other programs crashed too") || (short && strings.Contains(text.String(), "per hour")) {
		t.Errorf("doctor text:\n%s", text.String())
	}
	if !strings.Contains(strings.Join(dres.Warnings, "\n"), "core "+phpKill.Core+" (pid "+strconv.Itoa(phpKill.PID)) {
		t.Errorf("doctor does not say that the PHP core %s is linked to no crash: %q", phpKill.Core, dres.Warnings)
	}

	// --all-processes: the others are diagnosed, as processes.
	opts.AllProcesses = true
	dres, err = Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, g := range dres.Groups {
		if g.Report == nil || diagnose.IsPHPProcess(g.Report) || len(g.Diagnosis) == 0 {
			continue
		}
		seen++
		d := g.Diagnosis[0]
		for _, bad := range []string{"The worker", "the worker", "PHP 8.3", "catch_workers_output", "magic methods", "Magic methods"} {
			if strings.Contains(d.Explanation, bad) {
				t.Errorf("%s (%s): explanation says %q: %s", g.Report.Process.Executable, d.Rule, bad, d.Explanation)
			}
		}
		for _, f := range d.Fix {
			if strings.Contains(f.Description, "PHP") || f.Setting == "catch_workers_output" {
				t.Errorf("%s (%s): fix %q", g.Report.Process.Executable, d.Rule, f.Description)
			}
		}
	}
	if seen < 3 {
		t.Errorf("--all-processes: %d groups of other programs, want at least 3", seen)
	}
}

// TestTruncatedCoreJoinsItsGroup: a truncated copy of the lab's FFI crash
// (its stack lost) has a fingerprint of its own, made of the frames that
// were read; doctor puts it in the group of the whole crash whose frames it
// begins, and says so, instead of a group of its own with another
// diagnosis.
func TestTruncatedCoreJoinsItsGroup(t *testing.T) {
	l := labtest.Get(t)
	full := l.Scenarios["ffi-null-code"].Core
	st, err := os.Stat(full)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	part := filepath.Join(dir, "core.php-fpm8.2.cut")
	out, err := exec.Command("sh", "-c", `head -c "$0" "$1" > "$2"`, strconv.FormatInt(st.Size()/4, 10), full, part).CombinedOutput()
	if err != nil {
		t.Fatalf("cut: %v %s", err, out)
	}
	res, err := Run(context.Background(), Options{NoLogs: true, NoAudit: true, CoreDirs: []string{full, part}, MaxCores: 5})
	if err != nil {
		t.Fatal(err)
	}
	if res.Analysed != 2 || len(res.Groups) != 1 {
		t.Fatalf("%d analysed, groups %v; warnings %q", res.Analysed, keys(res.Groups), res.Warnings)
	}
	g := res.Groups[0]
	if len(g.Cores) != 2 || g.Report.Process.Truncated || g.Diagnosis[0].Rule != "ffi-call-crash" || g.Count != 2 {
		t.Errorf("group: cores %v, report truncated %v, diagnosis %v, count %d", g.Cores, g.Report.Process.Truncated, rules(g.Diagnosis), g.Count)
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), part+" is truncated") {
		t.Errorf("warnings %q", res.Warnings)
	}
}
