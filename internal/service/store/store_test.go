package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
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
