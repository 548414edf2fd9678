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
		Threads: []crash.Thread{{TID: 4242, Crashed: true, Frames: []crash.Frame{{Function: "zend_<script>", Module: "php-fpm"}}}},
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
		if !strings.Contains(m, `coroner_crashes_total{fingerprint="fp\"1",signal="SIGSEGV",pool="www\nx"} 1`) {
			t.Errorf("metrics escaping:\n%s", m)
		}
		_, home := get("/")
		if strings.Contains(home, "http://") || strings.Contains(home, "https://") {
			t.Error("dashboard references an external resource")
		}
	}
}

func itoa64(v int64) string { return strconv.FormatInt(v, 10) }
