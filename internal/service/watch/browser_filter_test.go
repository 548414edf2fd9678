package watch_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/service/server"
	"github.com/coroner-dev/coroner/internal/service/store"
)

// TestDashboardBrowserFilterRefresh drives headless Chromium on the
// dashboard of a real SQLite store over HTTP on 127.0.0.1: a filter in the
// URL selects one host's groups, the page reloads itself when a crash
// arrives (polling its selection's JSON), and screenshots are taken at
// 1400 and 420 px wide (CORONER_ARTIFACTS keeps them).
func TestDashboardBrowserFilterRefresh(t *testing.T) {
	bin := chromium(t)
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	record := func(host, pool, uri, fp, title string, at time.Time) {
		t.Helper()
		if _, err := st.RecordCrash(ctx, &store.Crash{Host: host, Time: at, PID: int(at.Unix() % 100000), Signal: 11, SignalName: "SIGSEGV",
			Pool: pool, Method: "GET", URI: uri, Fingerprint: fp, Rule: "rule-" + fp, Title: title}); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	record("web1", "www", "/checkout/pay?step=2&session=long-value-to-test-wrapping", "aa11", "PCRE JIT stack overflow in preg_match", now.Add(-3*time.Hour))
	record("web1", "www", "/checkout/pay", "aa11", "PCRE JIT stack overflow in preg_match", now.Add(-2*time.Hour))
	record("web2", "api", "/v1/render", "bb22", "Infinite recursion in a template", now.Add(-time.Hour))
	srv, err := server.New(server.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	// The first load of the auto-refreshing page is answered, then a crash
	// arrives: only a reload can show it.
	var mu sync.Mutex
	var loads int
	var inserted bool
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		srv.ServeHTTP(w, r)
		if r.URL.Path == "/" && r.URL.Query().Get("refresh") != "" {
			mu.Lock()
			defer mu.Unlock()
			loads++
			if !inserted {
				inserted = true
				record("web3", "www", "/fresh", "cc33", "Fresh crash while the page was open", time.Now())
			}
		}
	}))
	defer ts.Close()

	dom := headless(t, bin, "--dump-dom", ts.URL+"/?host=web2")
	if !strings.Contains(dom, "Infinite recursion in a template") || strings.Contains(dom, "PCRE JIT stack overflow") ||
		!strings.Contains(dom, `name="host" value="web2"`) || !strings.Contains(dom, "selected by the filter") {
		t.Errorf("filtered page in the browser: want web2's group only, the filter in the form")
	}

	// Auto-refresh: the page polls its JSON every 2 s (virtual time runs
	// the timers) and reloads itself when the crash count changed.
	dom = headless(t, bin, "--virtual-time-budget=20000", "--dump-dom", ts.URL+"/?refresh=2")
	mu.Lock()
	n := loads
	mu.Unlock()
	if n < 2 || !strings.Contains(dom, "Fresh crash while the page was open") {
		t.Errorf("the open page did not reload to show the new crash (%d loads)", n)
	}

	dir := os.Getenv("CORONER_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ name, size, path string }{
		{"dashboard-filter-1400.png", "1400,1000", "/?pool=www&since=7d"},
		{"dashboard-groups-420.png", "420,1400", "/"},
		{"dashboard-filter-420.png", "420,1400", "/?host=web2"},
	} {
		shot := filepath.Join(dir, s.name)
		headless(t, bin, "--window-size="+s.size, "--screenshot="+shot, "--hide-scrollbars", ts.URL+s.path)
		fi, err := os.Stat(shot)
		if err != nil || fi.Size() < 10000 {
			t.Errorf("screenshot %s: %v", shot, err)
			continue
		}
		t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
	}
}
