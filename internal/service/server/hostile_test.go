package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/service/store"
)

// TestHostHeader: a request whose Host names another site (a page of
// evil.example whose name now resolves to 127.0.0.1: DNS rebinding) is
// refused; IP literals, localhost and the configured names are served.
func TestHostHeader(t *testing.T) {
	ts, _ := newTestServer(t, Options{Hosts: []string{"coroner.internal"}})
	for host, want := range map[string]int{
		"evil.example:7070":      http.StatusMisdirectedRequest,
		"evil.example":           http.StatusMisdirectedRequest,
		"127.0.0.1.nip.io:7070":  http.StatusMisdirectedRequest,
		"127.0.0.1:7070":         http.StatusOK,
		"[::1]:7070":             http.StatusOK,
		"localhost:7070":         http.StatusOK,
		"LOCALHOST.":             http.StatusOK,
		"10.0.0.5":               http.StatusOK,
		"coroner.internal:7070":  http.StatusOK,
		"coroner.internal.:7070": http.StatusOK,
	} {
		req, _ := http.NewRequest("GET", ts.URL+"/", nil)
		req.Host = host
		if code, _ := fetch(t, req); code != want {
			t.Errorf("Host %q: %d, want %d", host, code, want)
		}
	}
}

// TestHostileStrings: strings with escape sequences and secrets in the
// database (written by an older watcher, or one with --show-secrets) are
// shown escaped and redacted on every page.
func TestHostileStrings(t *testing.T) {
	ts, _ := newTestServer(t, Options{})
	st := ts.Config.Handler.(*Server).opts.Store
	evil := "/login?password=hunter2Xq9&x=\x1b[2J\x1b]0;t\x07<script>"
	rep := &crash.Report{Schema: crash.SchemaVersion, Process: crash.Process{PID: 7, Args: "php --token=hunter2Xq9 \x1b[31m"},
		Signal: crash.Signal{Number: 11, Name: "SIGSEGV"},
		PHP:    &crash.PHP{Version: "8.2.1", Request: &crash.Request{Method: "GET", URI: evil, Query: "password=hunter2Xq9"}}}
	c := &store.Crash{Host: "h", Time: time.Now(), PID: 7, Signal: 11, SignalName: "SIGSEGV", Pool: "www\x1b[2J",
		Fingerprint: "evil", Report: rep, URI: evil}
	if _, err := st.RecordCrash(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordIncident(context.Background(), &store.Incident{Host: "h", Time: time.Now(), Kind: "crash", PID: 7, URI: evil}); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/group/evil", "/crash/" + itoa64(c.ID)} {
		req, _ := http.NewRequest("GET", ts.URL+path, nil)
		code, page := fetch(t, req)
		if code != 200 {
			t.Fatalf("%s: %d", path, code)
		}
		if strings.Contains(page, "hunter2Xq9") {
			t.Errorf("%s shows the secret", path)
		}
		if strings.ContainsAny(page, "\x1b\x07") || strings.Contains(page, "<script>") {
			t.Errorf("%s shows a control character or markup", path)
		}
	}
}
