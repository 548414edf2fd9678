package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// fixtures are Sources for tests that run anywhere: the real audit of a
// fixture host tree, the real log parsers on fixture logs and the real
// knowledge base (all through Host), with the host name, the cores and
// their analyses replaced: a core's analysis is a report the engine made
// of a real lab core (internal/render/testdata), given the pid of a crash
// in the fixture logs.
type fixtures struct {
	Sources
	cores    []*coredumps.Entry
	reports  map[string]fixtureReport // by core path
	auditErr error
	noLogs   bool
	analysed []string
}

type fixtureReport struct {
	file string // under internal/render/testdata/markdown
	pid  int
}

func (f *fixtures) Hostname() (string, error) { return "fixture-host", nil }

func (f *fixtures) Audit(o audit.Options) (*audit.Report, error) {
	if f.auditErr != nil {
		return nil, f.auditErr
	}
	return f.Sources.Audit(o)
}

func (f *fixtures) Logs(ctx context.Context, q LogQuery) (*logs.Result, error) {
	if f.noLogs {
		return nil, nil
	}
	return f.Sources.Logs(ctx, q)
}

func (f *fixtures) Cores(coredumps.DiscoverOptions) ([]*coredumps.Entry, []error) {
	return f.cores, []error{errors.New("/var/crash: permission denied")}
}

// Analyze does what engine.Run does after the analysis: evidence, diagnosis
// and fingerprint, on the fixture report.
func (f *fixtures) Analyze(ctx context.Context, req engine.Request) (*crash.Report, error) {
	f.analysed = append(f.analysed, req.Core.Path)
	fr, ok := f.reports[req.Core.Path]
	if !ok {
		return nil, fmt.Errorf("%s: not an ELF core file", req.Core.Path)
	}
	b, err := os.ReadFile(filepath.Join("..", "render", "testdata", "markdown", fr.file))
	if err != nil {
		return nil, err
	}
	var rep crash.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, err
	}
	rep.Process.PID = fr.pid
	rep.Diagnosis, rep.Fingerprint = nil, ""
	if err := f.Diagnose(&rep, req.Evidence(&rep)); err != nil {
		return nil, err
	}
	return &rep, nil
}

// fixtureLogs copies the log fixtures of the logs package (a PHP-FPM pool
// whose workers crash in PCRE's JIT, overflow the stack, time out and
// abort, seen by nginx, the FPM master and the kernel) into a directory.
func fixtureLogs(t *testing.T) []string {
	t.Helper()
	src := filepath.Join("..", "source", "logs", "testdata", "host")
	dir := t.TempDir()
	var out []string
	for _, name := range []string{"nginx/error.log", "php8.2-fpm.log", "kern.log", "journal.json"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, filepath.Base(name))
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		out = append(out, p)
	}
	// kern.log has no years: its mtime (just after the newest line) decides.
	stamp := time.Date(2027, 1, 1, 1, 0, 0, 0, time.Local)
	if err := os.Chtimes(filepath.Join(dir, "kern.log"), stamp, stamp); err != nil {
		t.Fatal(err)
	}
	return out
}

func fixtureOptions(t *testing.T) (Options, *fixtures) {
	t.Helper()
	opts := Options{
		Root:     filepath.Join("..", "audit", "testdata", "debian12-defects"),
		Logs:     fixtureLogs(t),
		MaxCores: 5,
	}
	host, err := Host(opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixtures{
		Sources: host,
		cores: []*coredumps.Entry{
			{Source: coredumps.SourceDir, Path: "/cores/core.php-fpm8.2.4101", PID: 4101, Analysable: coredumps.Yes,
				Time: time.Date(2026, 12, 31, 23, 59, 58, 0, time.Local)},
			{Source: coredumps.SourceDir, Path: "/cores/core.php-fpm8.2.5555", PID: 5555, Analysable: coredumps.Yes},
			{Source: coredumps.SourceDir, Path: "/cores/core.old", PID: 77, Analysable: coredumps.Yes,
				Time: time.Date(2020, 1, 1, 0, 0, 0, 0, time.Local)},
		},
		reports: map[string]fixtureReport{
			"/cores/core.php-fpm8.2.4101": {"pcre-jit-fault.json", 4101},
			"/cores/core.php-fpm8.2.5555": {"callback-recursion-stack-overflow.json", 5555},
		},
	}
	opts.Sources = f
	return opts, f
}

// TestRunOnFixtures drives a whole doctor run without the lab: the audit
// of a fixture host tree, fixture logs, cores whose analyses are reports of
// real lab cores. A core and the log incident of its pid make one group,
// with the request read from the core; the incidents without a core are
// grouped by crash site and diagnosed from the logs and the configuration.
func TestRunOnFixtures(t *testing.T) {
	opts, f := fixtureOptions(t)
	opts.Since = time.Date(2026, 1, 1, 0, 0, 0, 0, time.Local)
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Host != "fixture-host" || res.Audit == nil || res.Logs == nil {
		t.Fatalf("host %q, audit %v, logs %v; warnings %v", res.Host, res.Audit != nil, res.Logs != nil, res.Warnings)
	}
	if len(res.Cores) != 2 {
		t.Errorf("%d cores in the time window, want 2 (core.old is older than --since)", len(res.Cores))
	}
	// The cores linked to incidents first, newest incident first: the
	// core of 4101 goes to the FPM death of 4101 dumped at the same second
	// (not to the kernel line of 4101 an hour earlier), then the journal's
	// core of 4104 (not a fixture: its analysis fails), then the others.
	if len(f.analysed) != 3 || f.analysed[0] != "/cores/core.php-fpm8.2.4101" || !strings.HasSuffix(f.analysed[1], ".4104.1798758140000000.zst") {
		t.Errorf("analysed %v, want the core of 4101, then of 4104, then the other", f.analysed)
	}
	if res.Analysed != 2 {
		t.Errorf("analysed %d cores, want 2", res.Analysed)
	}
	warnings := strings.Join(res.Warnings, "\n")
	for _, w := range []string{"cores: /var/crash: permission denied", ".4104.1798758140000000.zst: not an ELF core file"} {
		if !strings.Contains(warnings, w) {
			t.Errorf("warnings lack %q: %s", w, warnings)
		}
	}
	var pcre, overflow *Group
	for _, g := range res.Groups {
		if g.Report != nil && g.Report.Process.PID == 4101 {
			pcre = g
		}
		if g.Report != nil && g.Report.Process.PID == 5555 {
			overflow = g
		}
	}
	if pcre == nil || overflow == nil {
		t.Fatalf("groups %v", keys(res.Groups))
	}
	if len(pcre.Incidents) != 1 || pcre.Incidents[0].PID != 4101 || len(pcre.Diagnosis) == 0 || pcre.Diagnosis[0].Rule != "pcre-jit-fault" {
		t.Errorf("pcre group: incidents %d, diagnosis %v", len(pcre.Incidents), rules(pcre.Diagnosis))
	}
	// The request the worker served, read from the core, replaces the URI
	// the logs linked by time.
	if len(pcre.URIs) != 1 || !strings.Contains(pcre.URIs[0].Key, "/blog/2026/11/some-post") {
		t.Errorf("pcre group URIs %v", pcre.URIs)
	}
	if pcre.Key != pcre.Report.Fingerprint || pcre.FirstSeen == "" || pcre.Count != 1 {
		t.Errorf("pcre group key %q (fingerprint %q), first seen %q, count %d", pcre.Key, pcre.Report.Fingerprint, pcre.FirstSeen, pcre.Count)
	}
	if len(overflow.Incidents) != 0 || overflow.Count != 1 || overflow.Diagnosis[0].Rule != "callback-recursion-stack-overflow" {
		t.Errorf("overflow group: %d incidents, count %d, diagnosis %v", len(overflow.Incidents), overflow.Count, rules(overflow.Diagnosis))
	}
	// Incidents without a core: the stack overflow of 4102 and the abort
	// of 4104 are groups of their own, diagnosed from the logs.
	byPID := map[int]*Group{}
	for _, g := range res.Groups {
		for _, inc := range g.Incidents {
			byPID[inc.PID] = g
		}
	}
	// What the logs say reaches the knowledge base: the worker's stderr
	// (4104), the kernel's line (4199), the signal (4103).
	for pid, rule := range map[int]string{4103: "killed-externally", 4104: "heap-corruption", 4199: "pcre-jit-fault", 4102: "unknown-crash"} {
		g := byPID[pid]
		if g == nil || g.Report != nil || len(g.Diagnosis) == 0 || g.Diagnosis[0].Rule != rule {
			t.Errorf("incident %d: want a group of its own diagnosed %s, got %+v", pid, rule, g)
		}
	}
	// Most frequent first.
	for i := 1; i < len(res.Groups); i++ {
		if res.Groups[i].Count > res.Groups[i-1].Count {
			t.Errorf("group %d has more crashes than group %d", i, i-1)
		}
	}
	for _, m := range res.Missing {
		if strings.Contains(m, "no logs") || strings.Contains(m, "not audited") {
			t.Errorf("missing evidence: %s", m)
		}
	}
	// The pools that crashed, as the audit sees them: www is audited,
	// api (the abort of 4104) is not in the audited tree.
	pools := map[string]*CrashedPool{}
	for _, cp := range res.Pools {
		pools[cp.Pool] = cp
	}
	if www := pools["www"]; www == nil || www.CoresWritten == nil || !strings.HasSuffix(www.Config, "www.conf") || www.Deaths == 0 {
		t.Errorf("crashed pool www: %+v", www)
	}
	if api := pools["api"]; api == nil || api.CoresWritten != nil || len(api.Notes) != 1 || !strings.Contains(api.Notes[0], "no pool of that name") {
		t.Errorf("crashed pool api: %+v", api)
	}

	// The renderers.
	var text, md, js bytes.Buffer
	if err := Text(&text, res); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, res); err != nil {
		t.Fatal(err)
	}
	if err := JSON(&js, res); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"WHAT IS CRASHING", "Fix:", "pcre.jit = 0: ", "(coroner fix --mitigate=no-pcre-jit --apply)", "/blog/2026/11/some-post", "fingerprint " + pcre.Key} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q", want)
		}
	}
	for _, want := range []string{"## What is crashing", "(`coroner fix --mitigate=no-pcre-jit --apply`)"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	var back Result
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back.Groups) != len(res.Groups) {
		t.Errorf("JSON: %v, %d groups", err, len(back.Groups))
	}
}

// TestRunWithoutEvidence: nothing to read at all still gives a result that
// says what is missing and how to get it.
func TestRunWithoutEvidence(t *testing.T) {
	opts, f := fixtureOptions(t)
	f.cores, f.noLogs, f.auditErr = nil, true, errors.New("permission denied")
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) != 0 || res.Audit != nil || res.Logs != nil {
		t.Errorf("groups %d, audit %v, logs %v", len(res.Groups), res.Audit, res.Logs)
	}
	missing := strings.Join(res.Missing, "\n")
	for _, want := range []string{"no logs were found", "the configuration was not audited"} {
		if !strings.Contains(missing, want) {
			t.Errorf("missing evidence lacks %q: %s", want, missing)
		}
	}
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "configuration audit: permission denied") {
		t.Errorf("warnings %v", res.Warnings)
	}
	if err := Text(io.Discard, res); err != nil {
		t.Fatal(err)
	}
}

// TestRunFromLogsAlone: with the cores left out, every crash is a group
// diagnosed from the logs and the configuration, and the result says that
// cores are missing and what blocks them on this host.
func TestRunFromLogsAlone(t *testing.T) {
	opts, f := fixtureOptions(t)
	opts.NoCores = true
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.analysed) != 0 || res.Analysed != 0 {
		t.Errorf("analysed %v with cores disabled", f.analysed)
	}
	explained := 0
	for _, g := range res.Groups {
		if g.Report != nil {
			t.Errorf("group %s has a core analysis", g.Key)
		}
		if len(g.Diagnosis) > 0 && g.Diagnosis[0].Rule != "unknown-crash" {
			explained++
		}
	}
	if len(res.Groups) < 3 || explained == 0 {
		t.Errorf("%d groups, %d explained", len(res.Groups), explained)
	}
	if !strings.Contains(strings.Join(res.Missing, "\n"), "but no core to analyse") {
		t.Errorf("missing: %v", res.Missing)
	}
}

// TestRunRulesError: a broken rules file stops the run before any work.
func TestRunRulesError(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(bad, []byte("version: 1\nrules:\n  - id: Bad ID\n"), 0o644)
	if _, err := Run(context.Background(), Options{Rules: []string{bad}, NoAudit: true, NoLogs: true, NoCores: true}); err == nil {
		t.Error("no error for a broken rules file")
	}
}

func TestPickCores(t *testing.T) {
	entries := []*coredumps.Entry{
		{Path: "/c/new", Analysable: coredumps.Yes},
		{Path: "/c/unreadable", Analysable: coredumps.No},
		{Path: "/c/older", Analysable: coredumps.Unknown},
		{Path: "/c/oldest", Analysable: coredumps.Yes},
	}
	incidents := []*logs.Incident{{PID: 1, Core: "/c/linked-old"}, {PID: 2}, {PID: 3, Core: "/c/linked-new"}}
	got := pickCores(entries, incidents, 4, false)
	want := []string{"/c/linked-new", "/c/linked-old", "/c/new", "/c/older"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("got %v, want %v", got, want)
	}
	// PHP programs' cores come before cores of unknown programs; cores of
	// other programs only with all processes.
	entries = []*coredumps.Entry{
		{Path: "/c/python", Exe: "/usr/bin/python3.11", Analysable: coredumps.Yes},
		{Path: "/c/unknown", Analysable: coredumps.Yes},
		{Path: "/c/fpm", Exe: "/usr/sbin/php-fpm8.2", Analysable: coredumps.Yes},
	}
	for all, want := range map[bool]string{false: "/c/fpm /c/unknown", true: "/c/fpm /c/unknown /c/python"} {
		if got := pickCores(entries, nil, 5, all); strings.Join(got, " ") != want {
			t.Errorf("all=%v: got %v, want %s", all, got, want)
		}
	}
}

func keys(gs []*Group) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.Key)
	}
	return out
}

func rules(ds []crash.Diagnosis) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Rule)
	}
	return out
}
