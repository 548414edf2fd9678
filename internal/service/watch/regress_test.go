package watch

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/service/store"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestRegressionHook records a crash of a resolved group through the
// watcher: it logs event=regressed, counts it and runs --on-regression
// (not --on-new-group) with CORONER_EVENT=regressed.
func TestRegressionHook(t *testing.T) {
	st := openTestStore(t)
	dir := t.TempDir()
	newOut, regOut := filepath.Join(dir, "new.out"), filepath.Join(dir, "regressed.out")
	var events syncBuffer
	w, err := New(Config{Store: st, Host: "web1", HookUser: "root",
		OnNewGroup:   `echo "$CORONER_EVENT $CORONER_FINGERPRINT" >> ` + newOut,
		OnRegression: `echo "$CORONER_EVENT $CORONER_FINGERPRINT $CORONER_CRASH_ID" >> ` + regOut,
		Events:       slog.New(slog.NewTextHandler(&events, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.alerter(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	rep := func(pid int) *crash.Report {
		return &crash.Report{Schema: crash.SchemaVersion, Process: crash.Process{PID: pid}, Signal: crash.Signal{Number: 11, Name: "SIGSEGV"},
			Threads:     []crash.Thread{{TID: pid, Crashed: true, Frames: []crash.Frame{{Function: "zend_call_function", Module: "php-fpm"}}}},
			Fingerprint: "feed0001"}
	}
	at := time.Now().Add(-time.Hour)
	first, err := w.Record(ctx, rep(10), RecordInfo{CorePath: "/cores/core.10", CoreMTime: at, CoreSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	fp := first.Fingerprint
	if _, err := st.SetGroupState(ctx, fp, store.StateResolved, "test", at.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	c, err := w.Record(ctx, rep(11), RecordInfo{CorePath: "/cores/core.11", CoreMTime: at.Add(time.Hour), CoreSize: 1})
	if err != nil || !c.Regressed {
		t.Fatalf("second crash: %+v, %v", c, err)
	}
	read := func(p string) string {
		deadline := time.Now().Add(30 * time.Second) // a hang guard
		for {
			b, _ := os.ReadFile(p)
			if len(b) > 0 || time.Now().After(deadline) {
				return string(b)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	if got, want := read(regOut), "regressed "+fp+" "+strconv.FormatInt(c.ID, 10)+"\n"; got != want {
		t.Errorf("--on-regression wrote %q, want %q", got, want)
	}
	if got := read(newOut); got != "new-group "+fp+"\n" {
		t.Errorf("--on-new-group wrote %q", got)
	}
	if ev := events.String(); !strings.Contains(ev, "event=regressed") || strings.Count(ev, "event=new-group") != 1 {
		t.Errorf("events:\n%s", ev)
	}
	var m bytes.Buffer
	w.Metrics.WritePrometheus(&m)
	if !strings.Contains(m.String(), "coroner_regressed_groups_total 1\n") {
		t.Errorf("metrics:\n%s", m.String())
	}
}
