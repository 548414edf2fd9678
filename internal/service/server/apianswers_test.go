package server

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/service/server/apicheck"
	"github.com/coroner-dev/coroner/internal/service/store"
)

// fixtureCrashes are the checked-in lab cores whose reports the API test
// records (the shortcode recursion's 41k frames are left to the crash
// page's tests).
var fixtureCrashes = []string{"php-ffi-null-code", "c-pcre-null", "c-thread-crash", "cpp-namespace", "go-panic"}

// recordFixture analyses a checked-in core, diagnoses and fingerprints it
// as the watcher does, and records it at t.
func recordFixture(t *testing.T, st store.Store, kb *diagnose.KnowledgeBase, name string, at time.Time, pid int) *store.Crash {
	t.Helper()
	f := labtest.GetFixture(t, name)
	rep, err := analyze.Core(f.PlainCore(t), analyze.Options{Sysroot: f.Sysroot, NoHostDebugFiles: true})
	if err != nil {
		t.Fatalf("analyse %s: %v", name, err)
	}
	rep.Diagnosis = kb.Diagnose(rep, diagnose.Evidence{})
	rep.Fingerprint = diagnose.Fingerprint(rep)
	c := crashOf(rep, at)
	if pid != 0 {
		c.PID = pid
	}
	c.CorePath = fmt.Sprintf("/var/lib/coroner/cores/core.%s.%d", name, c.PID)
	if _, err := st.RecordCrash(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	return c
}

// crashOf is the crash the watcher stores for a diagnosed report.
func crashOf(rep *crash.Report, at time.Time) *store.Crash {
	c := &store.Crash{Host: "web1", Time: at, PID: rep.Process.PID, Signal: rep.Signal.Number, SignalName: rep.Signal.Name,
		Pool: "www", Fingerprint: rep.Fingerprint, CoreSize: 1 << 20,
		AnalysisMS: 12.5, Report: rep}
	if len(rep.Diagnosis) > 0 {
		c.Rule, c.Title = rep.Diagnosis[0].Rule, rep.Diagnosis[0].Title
	}
	if rep.PHP != nil && rep.PHP.Request != nil {
		c.Method, c.URI = rep.PHP.Request.Method, rep.PHP.Request.URI
	}
	return c
}

// TestAPIAnswersMatchSchemas serves a store holding the reports of the
// checked-in lab cores (real analyses, diagnosed and fingerprinted as the
// watcher does), a crash known from the logs alone, a resolved group, a
// regressed one and an ignored one, and validates every answer of every
// endpoint against docs/schema/api-*.json, errors included; then each
// schema must reject mutated copies of the real answers. It needs neither
// root nor the lab (internal/service/watch's lab tests do the same on
// crashes a running watcher recorded).
func TestAPIAnswersMatchSchemas(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	kb, err := diagnose.Load()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var cs []*store.Crash
	for i, name := range fixtureCrashes {
		cs = append(cs, recordFixture(t, st, kb, name, now.Add(-time.Duration(len(fixtureCrashes)-i)*time.Hour), 0))
	}
	logOnly := &store.Crash{Host: "web2", Time: now.Add(-30 * time.Minute), PID: 4512, Signal: 11, SignalName: "SIGSEGV",
		Pool: "www", Method: "GET", URI: "/index.php?q=1", Fingerprint: "1c0ffee01c0ffee0", LogOnly: true, Site: "libc.so.6!__strlen_evex+0x18"}
	if _, err := st.RecordCrash(ctx, logOnly); err != nil {
		t.Fatal(err)
	}

	s, err := New(Options{Store: st, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	c, err := apicheck.New(schemaDir, ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	// Resolve the PHP crash's group, then it crashes again (regressed);
	// resolve the C one for good; ignore the log-only one.
	c.SetState(t, cs[0].Fingerprint, store.StateResolved, "alice")
	recordFixture(t, st, kb, fixtureCrashes[0], now, cs[0].PID+1)
	c.SetState(t, cs[1].Fingerprint, store.StateResolved, "")
	c.SetState(t, logOnly.Fingerprint, store.StateIgnored, "bob")
	groups, crashes := c.Walk(t)
	c.SetState(t, logOnly.Fingerprint, store.StateNew, "bob")
	c.Walk(t)
	if crashes != len(cs)+2 || groups < 4 {
		t.Errorf("walked %d groups, %d crashes; want %d crashes", groups, crashes, len(cs)+2)
	}
	for _, what := range []string{"group new", "group resolved", "group regressed", "group ignored", "group with regressions",
		"log-only group", "log-only crash", "crash with report", "filter with since and until"} {
		if c.Seen(what) == 0 {
			t.Errorf("no validated answer shows a %s", what)
		}
	}
	t.Logf("answers validated: %s", c.Counts())
	c.CheckMutations(t)
}
