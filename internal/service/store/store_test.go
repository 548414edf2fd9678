package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/store/storetest"
)

func TestSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "coroner.db")
	exercise(t, "sqlite:"+path)
	// Reopening an existing database keeps its data (migrations are idempotent).
	s, err := store.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	gs, err := s.Groups(context.Background())
	if err != nil || len(gs) != 3 {
		t.Fatalf("after reopen: groups %d, err %v", len(gs), err)
	}
}

func TestPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	dsn := storetest.Postgres(t)
	exercise(t, dsn)
	s, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recordTwice(t, s)
}

func TestOpenErrors(t *testing.T) {
	for _, dsn := range []string{"", "mysql://x"} {
		if _, err := store.Open(context.Background(), dsn); err == nil {
			t.Errorf("Open(%q) succeeded", dsn)
		}
	}
}

func report(pid int, fp string) *crash.Report {
	return &crash.Report{
		Schema:  crash.SchemaVersion,
		Process: crash.Process{PID: pid, CorePath: "/cores/core." + fp},
		Signal:  crash.Signal{Number: 11, Name: "SIGSEGV"},
		Threads: []crash.Thread{{TID: pid, Crashed: true, Frames: []crash.Frame{{Function: "zend_call_function"}, {Function: "execute_ex"}}}},
		Diagnosis: []crash.Diagnosis{{Rule: "rule-" + fp, Title: "Title " + fp, Confidence: "high",
			Fix: []crash.Fix{{Description: "turn it off", Kind: "ini", Setting: "opcache.jit", Value: "off"}}}},
		Fingerprint: fp,
	}
}

func exercise(t *testing.T, dsn string) {
	ctx := context.Background()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 11, 26, 10, 15, 0, 0, time.UTC)
	rec := func(pid int, fp, uri string, at time.Time) (*store.Crash, bool) {
		c := &store.Crash{Host: "web1", Time: at, PID: pid, Signal: 11, SignalName: "SIGSEGV", Pool: "www",
			URI: uri, Fingerprint: fp, Rule: "rule-" + fp, Title: "Title " + fp,
			CorePath: "/cores/core." + uri, CoreSize: 100, CoreMTime: at, AnalysisMS: 12.5, Report: report(pid, fp)}
		isNew, err := s.RecordCrash(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if c.ID == 0 {
			t.Fatal("no id assigned")
		}
		return c, isNew
	}
	c1, n1 := rec(100, "aaaa", "/a", base)
	_, n2 := rec(101, "aaaa", "/b", base.Add(2*time.Hour))
	_, n3 := rec(102, "bbbb", "/a", base.Add(time.Hour))
	_, n4 := rec(103, "aaaa", "/a", base.Add(-time.Hour))
	if !n1 || n2 || !n3 || n4 {
		t.Errorf("new group flags = %v %v %v %v, want true false true false", n1, n2, n3, n4)
	}
	gs, err := s.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != 2 || gs[0].Fingerprint != "aaaa" || gs[0].Count != 3 || gs[1].Count != 1 {
		t.Fatalf("groups = %+v", gs)
	}
	if !gs[0].FirstSeen.Equal(base.Add(-time.Hour)) || !gs[0].LastSeen.Equal(base.Add(2*time.Hour)) {
		t.Errorf("first/last seen = %v %v", gs[0].FirstSeen, gs[0].LastSeen)
	}
	if gs[0].Diagnosis == nil || gs[0].Diagnosis.Fix[0].Setting != "opcache.jit" || gs[0].Frame != "zend_call_function < execute_ex" {
		t.Errorf("group diagnosis/frame = %+v %q", gs[0].Diagnosis, gs[0].Frame)
	}
	g, err := s.Group(ctx, "aaaa")
	if err != nil {
		t.Fatal(err)
	}
	if len(g.URIs) != 2 || g.URIs[0] != (store.Count{Value: "/a", N: 2}) || len(g.Hosts) != 1 {
		t.Errorf("group URIs/hosts = %+v %+v", g.URIs, g.Hosts)
	}
	if _, err := s.Group(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing group: %v", err)
	}
	cs, err := s.Crashes(ctx, "aaaa", 10)
	if err != nil || len(cs) != 3 || cs[0].PID != 101 || cs[0].Report != nil {
		t.Fatalf("crashes = %+v, %v", cs, err)
	}
	all, _ := s.Crashes(ctx, "", 2)
	if len(all) != 2 {
		t.Errorf("limit: %d crashes", len(all))
	}
	c, err := s.Crash(ctx, c1.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.Report == nil || c.Report.Process.PID != 100 || c.AnalysisMS != 12.5 || !c.Time.Equal(base) {
		t.Errorf("crash = %+v", c)
	}
	if _, err := s.Crash(ctx, 99999); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing crash: %v", err)
	}
	has, err := s.HasCore(ctx, "/cores/core./a", base)
	if err != nil || !has {
		t.Errorf("HasCore = %v %v", has, err)
	}
	if has, _ := s.HasCore(ctx, "/cores/core./a", base.Add(time.Second)); has {
		t.Error("HasCore with another mtime")
	}
	hs, err := s.Hourly(ctx, base.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(hs) != 4 || hs[0].Hour != base.Add(-time.Hour).Truncate(time.Hour) || hs[0].N != 1 {
		t.Errorf("hourly = %+v", hs)
	}
	mc, err := s.CrashCounts(ctx, "web1")
	want := store.MetricRow{Host: "web1", Fingerprint: "aaaa", Rule: "rule-aaaa", Title: "Title aaaa", Signal: "SIGSEGV",
		Pool: "www", N: 3, Last: base.Add(2 * time.Hour)}
	if err != nil || len(mc) != 2 || mc[0] != want {
		t.Errorf("crash counts = %+v %v, want first %+v", mc, err, want)
	}

	// A log incident for a crash recorded without a URI fills it in.
	bare := &store.Crash{Host: "web2", Time: base, PID: 555, Signal: 6, SignalName: "SIGABRT", Fingerprint: "cccc"}
	if _, err := s.RecordCrash(ctx, bare); err != nil {
		t.Fatal(err)
	}
	in := &store.Incident{Host: "web2", Time: base.Add(3 * time.Second), Kind: "crash", PID: 555, Pool: "www",
		Signal: 6, SignalName: "SIGABRT", Method: "GET", URI: "/from-log", Status: 502, JSON: `{"pid":555}`}
	if err := s.RecordIncident(ctx, in); err != nil {
		t.Fatal(err)
	}
	got, err := s.Crash(ctx, bare.ID)
	if err != nil || got.URI != "/from-log" || got.Method != "GET" || got.Pool != "www" || got.Report != nil {
		t.Errorf("linked crash = %+v %v", got, err)
	}
	fi, err := s.FindIncident(ctx, "web2", 555, base)
	if err != nil || fi.ID != in.ID || fi.Status != 502 || fi.JSON != `{"pid":555}` {
		t.Errorf("FindIncident = %+v %v", fi, err)
	}
	if _, err := s.FindIncident(ctx, "web2", 555, base.Add(time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("FindIncident out of window: %v", err)
	}
	// ... and a crash recorded after its incident takes the incident's request and pool.
	late := &store.Crash{Host: "web2", Time: base.Add(5 * time.Second), PID: 555, Signal: 6, SignalName: "SIGABRT", Fingerprint: "cccc"}
	if _, err := s.RecordCrash(ctx, late); err != nil {
		t.Fatal(err)
	}
	if late.URI != "/from-log" || late.Pool != "www" {
		t.Errorf("late crash not linked: %+v", late)
	}
	ins, err := s.Incidents(ctx, 10)
	if err != nil || len(ins) != 1 {
		t.Errorf("incidents = %+v %v", ins, err)
	}

	// Counts for /metrics: one host's, or every host's.
	in2 := &store.Incident{Host: "web1", Time: base.Add(time.Minute), Kind: "crash", PID: 556, Pool: "www",
		Signal: 11, SignalName: "SIGSEGV", Source: "kernel", JSON: `{"pid":556}`}
	if err := s.RecordIncident(ctx, in2); err != nil {
		t.Fatal(err)
	}
	if in2.Source != "kernel" {
		t.Errorf("source lost: %+v", in2)
	}
	ds, err := s.DeathCounts(ctx, "web1")
	wantD := store.DeathRow{Host: "web1", Pool: "www", Signal: "SIGSEGV", Source: "kernel", N: 1, Last: base.Add(time.Minute)}
	if err != nil || len(ds) != 1 || ds[0] != wantD {
		t.Errorf("death counts of web1 = %+v %v, want %+v", ds, err, wantD)
	}
	if ds, err := s.DeathCounts(ctx, ""); err != nil || len(ds) != 2 || ds[1].Host != "web2" || ds[1].Source != "" {
		t.Errorf("death counts of every host = %+v %v", ds, err)
	}
	if mc, err := s.CrashCounts(ctx, ""); err != nil || len(mc) != 3 || mc[2].Host != "web2" || mc[2].N != 2 {
		t.Errorf("crash counts of every host = %+v %v", mc, err)
	}
	if mc, err := s.CrashCounts(ctx, "nowhere"); err != nil || len(mc) != 0 {
		t.Errorf("crash counts of an unknown host = %+v %v", mc, err)
	}

	// Filters: groups count only the crashes selected.
	fps := func(f store.Filter) string {
		t.Helper()
		gs, err := s.FindGroups(ctx, f)
		if err != nil {
			t.Fatalf("FindGroups(%+v): %v", f, err)
		}
		var out []string
		for _, g := range gs {
			out = append(out, g.Fingerprint+":"+strconv.Itoa(g.Count))
		}
		return strings.Join(out, " ")
	}
	for _, c := range []struct {
		f    store.Filter
		want string
	}{
		{store.Filter{}, "aaaa:3 bbbb:1 cccc:2"},
		{store.Filter{URI: "/b"}, "aaaa:1"},
		{store.Filter{Host: "web2"}, "cccc:2"},
		{store.Filter{Pool: "www", Signal: "SIGSEGV"}, "aaaa:3 bbbb:1"},
		{store.Filter{Rule: "rule-bbbb"}, "bbbb:1"},
		{store.Filter{Text: "TITLE BBBB"}, "bbbb:1"},
		{store.Filter{Text: "from-LOG"}, "cccc:2"},
		{store.Filter{Since: base, Until: base.Add(90 * time.Minute)}, "bbbb:1 cccc:2 aaaa:1"},
		{store.Filter{Text: "'; DROP TABLE crashes; --"}, ""},
	} {
		if got := fps(c.f); got != c.want {
			t.Errorf("FindGroups(%+v) = %q, want %q", c.f, got, c.want)
		}
	}
	gs, _ = s.FindGroups(ctx, store.Filter{URI: "/b"})
	if len(gs) != 1 || !gs[0].FirstSeen.Equal(base.Add(2*time.Hour)) || !gs[0].LastSeen.Equal(base.Add(2*time.Hour)) || gs[0].Title != "Title aaaa" {
		t.Errorf("filtered group = %+v", gs)
	}
	fc, err := s.FindCrashes(ctx, store.Filter{Fingerprint: "aaaa", URI: "/a"}, 10)
	if err != nil || len(fc) != 2 || fc[0].PID != 100 || fc[1].PID != 103 || fc[0].Report != nil {
		t.Errorf("FindCrashes = %+v %v", fc, err)
	}
	if fc, _ := s.FindCrashes(ctx, store.Filter{}, 2); len(fc) != 2 {
		t.Errorf("FindCrashes limit: %d", len(fc))
	}
}

// recordTwice checks that recording the same crash and incident again (a
// spool replay, a restarted watcher) stores them once.
func recordTwice(t *testing.T, s store.Store) {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 8, 0, 0, 123456789, time.UTC)
	mk := func() *store.Crash {
		return &store.Crash{Host: "web9", Time: at, PID: 900, Signal: 11, SignalName: "SIGSEGV", Fingerprint: "dddd",
			CorePath: "/cores/core.900", CoreSize: 4096, CoreMTime: at, Report: report(900, "dddd")}
	}
	a, b := mk(), mk()
	newA, err := s.RecordCrash(ctx, a)
	if err != nil || !newA {
		t.Fatalf("first record: new %v, %v", newA, err)
	}
	newB, err := s.RecordCrash(ctx, b)
	if err != nil || newB || b.ID != a.ID || b.Key != a.Key || a.Key == "" {
		t.Fatalf("second record: new %v id %d (first %d) key %q, %v", newB, b.ID, a.ID, b.Key, err)
	}
	// The same path with another mtime is another crash (core_pattern "core").
	c := mk()
	c.CoreMTime = at.Add(time.Nanosecond)
	if _, err := s.RecordCrash(ctx, c); err != nil || c.ID == a.ID {
		t.Fatalf("other mtime: id %d, %v", c.ID, err)
	}
	g, err := s.Group(ctx, "dddd")
	if err != nil || g.Count != 2 {
		t.Fatalf("group count %+v, %v", g, err)
	}
	cs, _ := s.Crashes(ctx, "dddd", 10)
	if len(cs) != 2 {
		t.Errorf("%d crashes stored, want 2", len(cs))
	}
	in1 := &store.Incident{Host: "web9", Time: at, Kind: "crash", PID: 900, URI: "/x", JSON: `{"pid":900}`}
	in2 := *in1
	if err := s.RecordIncident(ctx, in1); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordIncident(ctx, &in2); err != nil || in2.ID != in1.ID {
		t.Fatalf("second incident: id %d (first %d), %v", in2.ID, in1.ID, err)
	}
	n := 0
	ins, _ := s.Incidents(ctx, 100)
	for _, in := range ins {
		if in.Host == "web9" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d incidents stored, want 1", n)
	}
}

func TestRecordTwiceSQLite(t *testing.T) {
	s, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "coroner.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recordTwice(t, s)
}

// states checks group states: resolving, ignoring, the regression of a
// resolved group by a later crash (not by an older one recorded late),
// the state filter, log-only groups and the daily counts.
func states(t *testing.T, dsn string) {
	ctx := context.Background()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	pid := 2000
	rec := func(fp string, at time.Time) *store.Crash {
		t.Helper()
		pid++
		c := &store.Crash{Host: "st1", Time: at, PID: pid, Signal: 11, SignalName: "SIGSEGV", Pool: "www", Fingerprint: fp,
			Rule: "rule-" + fp, CorePath: "/cores/core." + strconv.Itoa(pid), CoreMTime: at, Report: report(pid, fp)}
		if _, err := s.RecordCrash(ctx, c); err != nil {
			t.Fatal(err)
		}
		return c
	}
	rec("st-a", base)
	rec("st-b", base)
	rec("st-c", base)
	if g, _ := s.Group(ctx, "st-a"); g.State != store.StateNew || !g.StateAt.IsZero() || g.LogOnly {
		t.Errorf("fresh group: %+v", g)
	}
	resolvedAt := base.Add(time.Hour)
	g, err := s.SetGroupState(ctx, "st-a", store.StateResolved, "alice", resolvedAt)
	if err != nil || g.State != store.StateResolved || g.StateBy != "alice" || !g.ResolvedAt.Equal(resolvedAt) {
		t.Fatalf("resolve: %+v, %v", g, err)
	}
	if _, err := s.SetGroupState(ctx, "st-b", store.StateIgnored, "bob", resolvedAt); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetGroupState(ctx, "st-a", store.StateRegressed, "mallory", resolvedAt); err == nil {
		t.Error("set the state regressed by hand")
	}
	if _, err := s.SetGroupState(ctx, "nope", store.StateResolved, "", resolvedAt); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("state of a missing group: %v", err)
	}
	// A crash from before the resolution, recorded late: still resolved.
	if c := rec("st-a", base.Add(30*time.Minute)); c.Regressed {
		t.Error("an older crash regressed the group")
	}
	if c := rec("st-b", base.Add(2*time.Hour)); c.Regressed {
		t.Error("an ignored group regressed")
	}
	c := rec("st-a", base.Add(2*time.Hour))
	if !c.Regressed {
		t.Error("a new crash of a resolved group did not regress it")
	}
	g, _ = s.Group(ctx, "st-a")
	if g.State != store.StateRegressed || g.StateBy != "coroner" || g.Regressions != 1 || !g.ResolvedAt.Equal(resolvedAt) {
		t.Errorf("regressed group: %+v", g)
	}
	if c := rec("st-a", base.Add(3*time.Hour)); c.Regressed {
		t.Error("a regressed group regressed again")
	}
	fps := func(f store.Filter) string {
		t.Helper()
		gs, err := s.FindGroups(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, g := range gs {
			if strings.HasPrefix(g.Fingerprint, "st-") {
				out = append(out, g.Fingerprint+":"+g.State)
			}
		}
		return strings.Join(out, " ")
	}
	if got := fps(store.Filter{States: []string{store.StateNew, store.StateRegressed, store.StateResolved}}); got != "st-a:regressed st-c:new" {
		t.Errorf("groups not ignored = %q", got)
	}
	if got := fps(store.Filter{States: []string{store.StateIgnored}}); got != "st-b:ignored" {
		t.Errorf("ignored groups = %q", got)
	}
	if cs, err := s.FindCrashes(ctx, store.Filter{States: []string{store.StateIgnored}}, 10); err != nil || len(cs) != 2 || cs[0].Fingerprint != "st-b" {
		t.Errorf("crashes of ignored groups = %+v, %v", cs, err)
	}
	// Reopened by hand.
	if g, err := s.SetGroupState(ctx, "st-b", store.StateNew, "bob", base); err != nil || g.State != store.StateNew || !g.ResolvedAt.IsZero() {
		t.Errorf("reopen: %+v, %v", g, err)
	}

	// A log-only crash forms a group of its own, not counted as an analysed crash.
	lo := &store.Crash{Host: "st1", Time: base, PID: 3000, Signal: 11, SignalName: "SIGSEGV", Pool: "www", URI: "/x",
		Fingerprint: "st-log", LogOnly: true, Site: "libc.so.6!__strlen_evex+0x18"}
	if isNew, err := s.RecordCrash(ctx, lo); err != nil || !isNew {
		t.Fatalf("log-only crash: new %v, %v", isNew, err)
	}
	g, _ = s.Group(ctx, "st-log")
	if !g.LogOnly || g.Frame != "libc.so.6!__strlen_evex+0x18" || g.Count != 1 {
		t.Errorf("log-only group: %+v", g)
	}
	if cs, _ := s.Crashes(ctx, "st-log", 10); len(cs) != 1 || !cs[0].LogOnly {
		t.Errorf("log-only crashes: %+v", cs)
	}
	mc, _ := s.CrashCounts(ctx, "st1")
	for _, m := range mc {
		if m.Fingerprint == "st-log" {
			t.Errorf("a log-only crash counted as analysed: %+v", m)
		}
	}
	// ... until a core of the same group comes: it takes the core's diagnosis.
	rec("st-log", base.Add(time.Hour))
	if g, _ := s.Group(ctx, "st-log"); g.LogOnly || g.Rule != "rule-st-log" || g.Frame != "zend_call_function < execute_ex" || g.Count != 2 {
		t.Errorf("log-only group with a core: %+v", g)
	}

	// The same death with a core: the log-only crash goes (its group
	// with it when it had no other); after the core, none is recorded.
	lo2 := &store.Crash{Host: "st1", Time: base.Add(4 * time.Hour), PID: 3100, Signal: 11, SignalName: "SIGSEGV", URI: "/y",
		Fingerprint: "st-log2", LogOnly: true, Site: "libc.so.6!__strlen_evex+0x18"}
	if _, err := s.RecordCrash(ctx, lo2); err != nil {
		t.Fatal(err)
	}
	withCore := &store.Crash{Host: "st1", Time: base.Add(4*time.Hour + time.Second), PID: 3100, Signal: 11, SignalName: "SIGSEGV",
		Fingerprint: "st-core2", CorePath: "/cores/core.3100", CoreMTime: base, Report: report(3100, "st-core2")}
	if _, err := s.RecordCrash(ctx, withCore); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Group(ctx, "st-log2"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the log-only group of a death recorded with its core is still there: %v", err)
	}
	late := &store.Crash{Host: "st1", Time: base.Add(4*time.Hour + 2*time.Second), PID: 3100, Signal: 11, SignalName: "SIGSEGV", URI: "/y",
		Fingerprint: "st-log2", LogOnly: true}
	if isNew, err := s.RecordCrash(ctx, late); err != nil || isNew || !late.Superseded || late.ID != withCore.ID {
		t.Errorf("log-only crash after its core: new %v, %+v, %v", isNew, late, err)
	}
	if cs, _ := s.FindCrashes(ctx, store.Filter{Host: "st1"}, 100); len(cs) != 10 {
		t.Errorf("%d crashes of st1, want 10", len(cs))
	}
	// The log-only group that also has a core keeps its other crashes.
	rec("st-log", base.Add(5*time.Hour))
	lo3 := &store.Crash{Host: "st1", Time: base.Add(6 * time.Hour), PID: 3200, Signal: 11, SignalName: "SIGSEGV", Pool: "www", URI: "/x",
		Fingerprint: "st-log", LogOnly: true, Site: "libc.so.6!__strlen_evex+0x18"}
	if _, err := s.RecordCrash(ctx, lo3); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RecordCrash(ctx, &store.Crash{Host: "st1", Time: base.Add(6 * time.Hour), PID: 3200, Signal: 11, SignalName: "SIGSEGV",
		Fingerprint: "st-log", CorePath: "/cores/core.3200", CoreMTime: base, Report: report(3200, "st-log")}); err != nil {
		t.Fatal(err)
	}
	if g, err := s.Group(ctx, "st-log"); err != nil || g.Count != 4 || !g.LastSeen.Equal(base.Add(6*time.Hour)) {
		t.Errorf("group after a log-only crash was replaced by its core: %+v, %v", g, err)
	}

	ds, err := s.Daily(ctx, base.Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	days := map[string]int{}
	for _, d := range ds {
		if strings.HasPrefix(d.Fingerprint, "st-") {
			days[d.Fingerprint+" "+d.Day.Format("2006-01-02")] += d.N
		}
	}
	if days["st-a 2026-12-01"] != 4 || days["st-log 2026-12-01"] != 4 || len(days) != 5 {
		t.Errorf("daily counts = %v", days)
	}
}

// regressConcurrently records crashes of one resolved group from several
// stores (watchers) at once: exactly one of them regresses it.
func regressConcurrently(t *testing.T, dsn string) {
	ctx := context.Background()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	base := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	if _, err := s.RecordCrash(ctx, &store.Crash{Host: "w0", Time: base, PID: 1, Signal: 11, Fingerprint: "race"}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetGroupState(ctx, "race", store.StateResolved, "ops", base.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	const n = 6
	var wg sync.WaitGroup
	regressed := make(chan bool, n*3)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w, err := store.Open(ctx, dsn)
			if err != nil {
				t.Error(err)
				return
			}
			defer w.Close()
			for k := range 3 {
				c := &store.Crash{Host: "w" + strconv.Itoa(i), Time: base.Add(time.Hour), PID: 100 + i*10 + k, Signal: 11, Fingerprint: "race"}
				if _, err := w.RecordCrash(ctx, c); err != nil {
					t.Error(err)
					return
				}
				regressed <- c.Regressed
			}
		}()
	}
	wg.Wait()
	close(regressed)
	got := 0
	for r := range regressed {
		if r {
			got++
		}
	}
	g, err := s.Group(ctx, "race")
	if got != 1 || err != nil || g.State != store.StateRegressed || g.Regressions != 1 || g.Count != 1+n*3 {
		t.Errorf("%d writers saw the regression, want 1; group %+v, %v", got, g, err)
	}
}

func TestStatesSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coroner.db")
	states(t, path)
	regressConcurrently(t, path)
}

func TestStatesPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	dsn := storetest.Postgres(t)
	states(t, dsn)
	regressConcurrently(t, dsn)
}
