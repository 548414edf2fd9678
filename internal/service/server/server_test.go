package server

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/service/store"
)

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:7070", "", true},
		{"[::1]:7070", "", true},
		{"localhost:7070", "", true},
		{"0.0.0.0:7070", "", false},
		{":7070", "", false},
		{"10.1.2.3:7070", "", false},
		{"0.0.0.0:7070", "s3cret", true},
		{"nonsense", "", false},
	} {
		if err := CheckListen(c.addr, c.token); (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, %q) = %v", c.addr, c.token, err)
		}
	}
}

func newTestServer(t *testing.T, opts Options) (*httptest.Server, *store.Crash) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	rep := &crash.Report{
		Schema:  crash.SchemaVersion,
		Process: crash.Process{PID: 4242},
		Signal:  crash.Signal{Number: 11, Name: "SIGSEGV"},
		Fault:   crash.Fault{Kind: crash.FaultNullDeref, Explanation: "NULL <b>pointer</b>"},
		Threads: []crash.Thread{{TID: 4242, Crashed: true, Frames: []crash.Frame{{Function: "zend_<script>", Module: "php-fpm"}, {Module: "php-fpm", PC: 0x5600003769ba, ModuleOffset: 0x3769ba, FunctionOffset: 0x4a, FunctionSource: "eh-frame"}}}},
		PHP: &crash.PHP{Version: "8.2.1", Frames: []crash.PHPFrame{{Function: "{main}", File: "/srv/index.php", Line: 3, Kind: "main"}},
			INI:     map[string]string{"opcache.jit": "tracing", "mysqli.default_pw": "hunter2"},
			Request: &crash.Request{Method: "GET", URI: "/x", Params: map[string]string{"HTTP_COOKIE": "sid=abc", "HTTP_HOST": "example.test"}}},
		Fingerprint: "fp\"1",
		Root: &crash.Root{Dir: "/var/lib/docker/overlay2/7a6b/merged", Runtime: "docker", Name: "shop-<fpm>",
			ID: "5e1f0a7c9b3d2e4f6a8b", Image: "php:8.4-fpm"},
	}
	c := &store.Crash{Host: "h", Time: time.Now(), PID: 4242, Signal: 11, SignalName: "SIGSEGV", Pool: "www\nx",
		Fingerprint: "fp\"1", Report: rep, URI: "/x"}
	if _, err := st.RecordCrash(ctx, c); err != nil {
		t.Fatal(err)
	}
	opts.Store = st
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts, c
}

func fetch(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestToken(t *testing.T) {
	ts, _ := newTestServer(t, Options{Token: "s3cret"})
	req, _ := http.NewRequest("GET", ts.URL+"/", nil)
	if code, _ := fetch(t, req); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	req.Header.Set("Authorization", "Bearer wrong")
	if code, _ := fetch(t, req); code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", code)
	}
	req.Header.Set("Authorization", "Bearer s3cret")
	if code, _ := fetch(t, req); code != http.StatusOK {
		t.Errorf("right token: %d", code)
	}
	req, _ = http.NewRequest("GET", ts.URL+"/metrics", nil)
	req.AddCookie(&http.Cookie{Name: "coroner_token", Value: "s3cret"})
	if code, _ := fetch(t, req); code != http.StatusOK {
		t.Errorf("cookie: %d", code)
	}
	resp, err := http.Get(ts.URL + "/?token=s3cret")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || len(resp.Cookies()) != 1 || !resp.Cookies()[0].HttpOnly {
		t.Errorf("?token=: %d %v", resp.StatusCode, resp.Cookies())
	}
}

func TestPagesAndRedaction(t *testing.T) {
	for _, show := range []bool{false, true} {
		ts, c := newTestServer(t, Options{ShowSecrets: show})
		get := func(path string) (int, string) {
			req, _ := http.NewRequest("GET", ts.URL+path, nil)
			return fetch(t, req)
		}
		code, page := get("/crash/" + itoa64(c.ID))
		if code != 200 {
			t.Fatalf("crash page: %d %s", code, page)
		}
		if strings.Contains(page, "<b>pointer") || strings.Contains(page, "zend_<script>") {
			t.Error("crash page does not escape report text")
		}
		secret := strings.Contains(page, "hunter2") || strings.Contains(page, "sid=abc")
		if secret != show {
			t.Errorf("ShowSecrets=%v: secrets shown = %v", show, secret)
		}
		if !strings.Contains(page, "sub_376970&#43;0x4a") {
			t.Error("crash page does not name the unnamed function by its start, as the text report does")
		}
		if !strings.Contains(page, "example.test") || !strings.Contains(page, "opcache.jit") {
			t.Error("crash page lacks non-secret parameters or INI")
		}
		if !strings.Contains(page, "shop-&lt;fpm&gt;") || !strings.Contains(page, "5e1f0a7c9b3d") || !strings.Contains(page, "php:8.4-fpm") {
			t.Error("crash page does not name the container the worker ran in")
		}
		if code, _ := get("/crash/999"); code != 404 {
			t.Errorf("missing crash: %d", code)
		}
		if code, _ := get("/crash/abc"); code != 400 {
			t.Errorf("bad crash id: %d", code)
		}
		if code, _ := get("/group/nope"); code != 404 {
			t.Errorf("missing group: %d", code)
		}
		if code, page := get("/group/fp%221"); code != 200 || !strings.Contains(page, "4242") {
			t.Errorf("group page: %d", code)
		}
		if code, css := get("/static/style.css"); code != 200 || !strings.Contains(css, "body") {
			t.Errorf("static css: %d", code)
		}
		_, m := get("/metrics")
		if !strings.Contains(m, `coroner_crashes_total{host="h",fingerprint="fp\"1",rule="",signal="SIGSEGV",pool="www\nx"} 1`) {
			t.Errorf("metrics escaping:\n%s", m)
		}
		_, home := get("/")
		if strings.Contains(home, "http://") || strings.Contains(home, "https://") {
			t.Error("dashboard references an external resource")
		}
	}
}

// TestMetricsHosts checks the series a Grafana user builds on: a watcher
// (MetricsHost set) exports its own host's crashes and deaths only, so that
// watchers sharing one database do not count each other's; serve exports
// every host with a host label.
func TestMetricsHosts(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "s.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	for i, host := range []string{"web1", "web1", "web2"} {
		c := &store.Crash{Host: host, Time: at.Add(time.Duration(i) * time.Minute), PID: 100 + i, Signal: 11, SignalName: "SIGSEGV",
			Pool: "www", Fingerprint: "ab12", Rule: "opcache-jit", Title: `JIT "tracing" crash`}
		if _, err := st.RecordCrash(ctx, c); err != nil {
			t.Fatal(err)
		}
		in := &store.Incident{Host: host, Time: c.Time, Kind: "crash", PID: c.PID, Pool: "www", Signal: 11, SignalName: "SIGSEGV",
			Source: "php-fpm", JSON: "{}"}
		if err := st.RecordIncident(ctx, in); err != nil {
			t.Fatal(err)
		}
	}
	// A death without a core: counted as a worker death, not as a crash.
	if err := st.RecordIncident(ctx, &store.Incident{Host: "web1", Time: at.Add(time.Hour), Kind: "killed", PID: 300, Pool: "api",
		Signal: 9, SignalName: "SIGKILL", Source: "kernel", JSON: "{}"}); err != nil {
		t.Fatal(err)
	}
	scrape := func(opts Options) string {
		opts.Store = st
		s, err := New(opts)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s)
		defer ts.Close()
		code, body := fetch(t, mustRequest(t, ts.URL+"/metrics"))
		if code != 200 {
			t.Fatalf("/metrics: %d %s", code, body)
		}
		return body
	}
	watcher := scrape(Options{MetricsHost: "web1", Version: "1.2.3"})
	for _, want := range []string{
		`coroner_build_info{version="1.2.3",goversion="go`,
		`coroner_crashes_total{host="web1",fingerprint="ab12",rule="opcache-jit",signal="SIGSEGV",pool="www"} 2` + "\n",
		`coroner_group_info{fingerprint="ab12",title="JIT \"tracing\" crash",rule="opcache-jit"} 1` + "\n",
		`coroner_last_crash_timestamp_seconds{host="web1"} ` + strconv.FormatInt(at.Add(time.Minute).Unix(), 10) + "\n",
		`coroner_worker_deaths_total{host="web1",pool="www",signal="SIGSEGV",source="php-fpm"} 2` + "\n",
		`coroner_worker_deaths_total{host="web1",pool="api",signal="SIGKILL",source="kernel"} 1` + "\n",
		`coroner_last_worker_death_timestamp_seconds{host="web1"} ` + strconv.FormatInt(at.Add(time.Hour).Unix(), 10) + "\n",
	} {
		if !strings.Contains(watcher, want) {
			t.Errorf("watcher's /metrics lacks %s:\n%s", want, watcher)
		}
	}
	if strings.Contains(watcher, "web2") {
		t.Errorf("a watcher exports another host's crashes:\n%s", watcher)
	}
	all := scrape(Options{})
	for _, want := range []string{
		`coroner_build_info{version="dev",`,
		`coroner_crashes_total{host="web2",fingerprint="ab12",rule="opcache-jit",signal="SIGSEGV",pool="www"} 1` + "\n",
		`coroner_crashes_total{host="web1",`,
		`coroner_worker_deaths_total{host="web2",`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("serve's /metrics lacks %s:\n%s", want, all)
		}
	}
	if n := strings.Count(all, "coroner_group_info{"); n != 1 {
		t.Errorf("%d coroner_group_info series, want 1 (one group on two hosts)", n)
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func itoa64(v int64) string { return strconv.FormatInt(v, 10) }
