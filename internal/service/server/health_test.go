package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/store/storetest"
)

func getURL(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestHealthPostgres serves a real PostgreSQL database, stops the server
// and starts it again: /healthz and coroner_database_up follow, /metrics
// and the pages keep answering.
func TestHealthPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	pg := storetest.NewServer(t)
	pg.Start()
	pg.WaitReady()
	st, err := store.Open(context.Background(), pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s, err := New(Options{Store: st, Metrics: func(w io.Writer) { io.WriteString(w, "coroner_spool_records 3\n") }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	if code, body := getURL(t, ts.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz up: %d %q", code, body)
	}
	if _, m := getURL(t, ts.URL+"/metrics"); !strings.Contains(m, "\ncoroner_database_up 1\n") {
		t.Errorf("metrics up:\n%s", m)
	}
	pg.Stop()
	code, body := getURL(t, ts.URL+"/healthz")
	if code != 503 || !strings.HasPrefix(body, "degraded\ndatabase: unavailable (") {
		t.Errorf("healthz down: %d %q", code, body)
	}
	t.Logf("healthz down: %q", body)
	code, m := getURL(t, ts.URL+"/metrics")
	if code != 200 || !strings.Contains(m, "\ncoroner_database_up 0\n") || !strings.Contains(m, "\ncoroner_spool_records 3\n") {
		t.Errorf("metrics down: %d\n%s", code, m)
	}
	if code, body := getURL(t, ts.URL+"/"); code != 503 || !strings.Contains(body, "database unavailable") {
		t.Errorf("dashboard down: %d %q", code, body)
	}
	pg.Start()
	pg.WaitReady()
	if code, body := getURL(t, ts.URL+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("healthz back: %d %q", code, body)
	}
}

// TestHealthDegraded: problems reported by the watcher make /healthz 503.
func TestHealthDegraded(t *testing.T) {
	ts, _ := newTestServer(t, Options{Health: func(context.Context) (bool, []string) {
		return true, []string{"spool: 2 records (1.0 KiB) being written to the database"}
	}})
	code, body := getURL(t, ts.URL+"/healthz")
	if code != 503 || body != "degraded\nspool: 2 records (1.0 KiB) being written to the database\n" {
		t.Errorf("healthz: %d %q", code, body)
	}
	if _, m := getURL(t, ts.URL+"/metrics"); !strings.Contains(m, "\ncoroner_database_up 1\n") || !strings.Contains(m, "coroner_crashes_total{") {
		t.Errorf("metrics:\n%s", m)
	}
}
