package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/service/store"
)

// BenchmarkDashboard measures the pages, the API and /metrics over real
// HTTP on a SQLite store of CORONER_BENCH_CRASHES crashes (default 5,000)
// in 60 groups, on 4 hosts and 3 pools, over 7 days.
func BenchmarkDashboard(b *testing.B) {
	n := 5000
	if v, err := strconv.Atoi(os.Getenv("CORONER_BENCH_CRASHES")); err == nil && v > 0 {
		n = v
	}
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	now := time.Now()
	for i := 0; i < n; i++ {
		fp := fmt.Sprintf("fp%02d", i%60)
		rep := &crash.Report{Schema: crash.SchemaVersion, Process: crash.Process{PID: 1000 + i}, Signal: crash.Signal{Number: 11, Name: "SIGSEGV"},
			Threads:     []crash.Thread{{TID: 1000 + i, Crashed: true, Frames: []crash.Frame{{Function: "zend_call_function", Module: "php-fpm"}, {Function: "execute_ex", Module: "php-fpm"}}}},
			Fingerprint: fp}
		c := &store.Crash{Host: fmt.Sprintf("web%d", i%4), Time: now.Add(-time.Duration(i) * 7 * 24 * time.Hour / time.Duration(n)),
			PID: 1000 + i, Signal: 11, SignalName: "SIGSEGV", Pool: []string{"www", "api", "admin"}[i%3],
			Method: "GET", URI: fmt.Sprintf("/shop/item/%d", i%500), Fingerprint: fp, Rule: "rule-" + fp, Title: "Title of " + fp, Report: rep}
		if _, err := st.RecordCrash(ctx, c); err != nil {
			b.Fatal(err)
		}
		if err := st.RecordIncident(ctx, &store.Incident{Host: c.Host, Time: c.Time, Kind: "crash", PID: c.PID, Pool: c.Pool,
			Signal: 11, SignalName: "SIGSEGV", Source: "php-fpm", JSON: "{}"}); err != nil {
			b.Fatal(err)
		}
	}
	s, err := New(Options{Store: st, MetricsHost: "web1"})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s)
	defer ts.Close()
	for _, path := range []string{"/", "/?host=web2&pool=api&since=24h", "/?q=item/42", "/api/v1/groups", "/api/v1/groups?since=1d&signal=SIGSEGV",
		"/api/v1/crashes?limit=100", "/group/fp07", "/crash/1", "/metrics"} {
		b.Run(path, func(b *testing.B) {
			var size int
			for b.Loop() {
				resp, err := http.Get(ts.URL + path)
				if err != nil {
					b.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("%s: %d %s", path, resp.StatusCode, body)
				}
				size = len(body)
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}
