package server

import (
	"bytes"
	"context"
	"encoding/json"
	"html"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// crashPageStore records one crash of a PHP worker (a diagnosis whose fix
// has a `coroner fix` profile, PHP arguments, a secret INI value and
// cookie) and the incident the logs recorded of its death.
func crashPageStore(t *testing.T) (store.Store, *store.Crash) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	zero := 0
	rep := &crash.Report{
		Schema:  crash.SchemaVersion,
		Process: crash.Process{PID: 14502, Executable: "/usr/sbin/php-fpm8.2", CorePath: "/var/lib/coroner/cores/core.14502", Args: "php-fpm: pool www"},
		Signal:  crash.Signal{Number: 11, Name: "SIGSEGV", CodeName: "SEGV_MAPERR", Address: 0x20},
		Fault: crash.Fault{Kind: crash.FaultNullDeref, Instruction: "mov rcx, qword ptr [rdi+0x20]", PC: 0x7f955df21fe1, Address: 0x20,
			Explanation: "NULL pointer dereference in pcre2_jit_match_8"},
		Threads: []crash.Thread{{TID: 14502, Crashed: true, Frames: []crash.Frame{
			{Index: 0, PC: 0x7f955df21fe1, Module: "libpcre2-8.so.0.11.2", ModuleOffset: 0x51fe1, Function: "pcre2_jit_match_8", FunctionOffset: 0x41, Trust: crash.TrustContext},
			{Index: 1, PC: 0x5600003769ba, Module: "php-fpm8.2", ModuleOffset: 0x3769ba, FunctionOffset: 0x4a, FunctionSource: "eh-frame", Trust: crash.TrustCFI, PHPFrame: &zero},
		}}},
		PHP: &crash.PHP{Version: "8.2.36", SAPI: "fpm-fcgi",
			Frames: []crash.PHPFrame{{Function: "preg_match", Args: []string{`"/(a+)+$/"`, `"aaaa"`}, Kind: "internal"},
				{Function: "{main}", File: "/srv/www/search.php", Line: 20, Kind: "main"}},
			INI:     map[string]string{"pcre.jit": "1", "mysqli.default_pw": "hunter2"},
			Request: &crash.Request{Method: "GET", URI: "/search.php?q=teacher", Params: map[string]string{"HTTP_COOKIE": "sid=abc"}}},
		Diagnosis: []crash.Diagnosis{{Rule: "pcre-jit-fault", Title: "Crash in PCRE's JIT", Confidence: "high",
			Fix: []crash.Fix{{Kind: crash.FixINI, Setting: "pcre.jit", Value: "0", Description: "Turn PCRE's JIT off.", Mitigation: "no-pcre-jit"}}}},
		Fingerprint: "ac70bff70a2a57bf",
	}
	at := time.Date(2026, 11, 26, 19, 27, 44, 0, time.UTC)
	c := &store.Crash{Host: "web1", Time: at, PID: 14502, Signal: 11, SignalName: "SIGSEGV", Pool: "www",
		Fingerprint: rep.Fingerprint, Rule: "pcre-jit-fault", Title: "Crash in PCRE's JIT", CorePath: "/var/lib/coroner/cores/core.14502", Report: rep}
	if _, err := st.RecordCrash(ctx, c); err != nil {
		t.Fatal(err)
	}
	inc := logs.Incident{Time: at, Kind: "crash", PID: 14502, Pool: "www", Signal: 11, SignalName: "SIGSEGV", Links: []logs.Link{
		{Source: "php-fpm", Time: at, File: "/var/log/php8.2-fpm.log", Line: 12, Confidence: "certain", Reason: "the record of the death",
			Text: "[26-Nov-2026 19:27:44] WARNING: [pool www] child 14502 exited on signal 11 (SIGSEGV - core dumped) after 0.942805 seconds from start"},
		{Source: "nginx-error", Time: at, File: "/var/log/nginx/error.log", Line: 3, Confidence: "likely", Reason: "same second, same upstream",
			Text: `2026/11/26 19:27:44 [error] 14500#14500: *7 recv() failed (104: Connection reset by peer) while reading response header from upstream, request: "GET /search.php?q=teacher&password=s3cret HTTP/1.1"`},
	}}
	body, _ := json.Marshal(inc)
	if err := st.RecordIncident(ctx, &store.Incident{Host: "web1", Time: at.Add(2 * time.Second), Kind: "crash", PID: 14502, Pool: "www",
		Signal: 11, SignalName: "SIGSEGV", Source: "php-fpm", JSON: string(body)}); err != nil {
		t.Fatal(err)
	}
	// Another host's worker of the same pid: not this crash's.
	if err := st.RecordIncident(ctx, &store.Incident{Host: "web2", Time: at, Kind: "crash", PID: 14502, Source: "php-fpm",
		JSON: `{"links":[{"text":"OTHER HOST LINE"}]}`}); err != nil {
		t.Fatal(err)
	}
	return st, c
}

// TestCrashPage: the page shows the report's View (the fix's command as
// the CLI prints it, the PHP arguments, the annotated native frames), the
// log lines of the same host and pid, the replay commands; the Markdown
// bug report is served and embedded for the copy button, and the JSON
// downloads as an attachment; secrets are redacted in all of them unless
// ShowSecrets.
func TestCrashPage(t *testing.T) {
	for _, show := range []bool{false, true} {
		st, c := crashPageStore(t)
		s, err := New(Options{Store: st, ShowSecrets: show, Token: "tok"})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(s)
		defer ts.Close()
		get := func(path string, token bool) (*http.Response, string) {
			req, _ := http.NewRequest("GET", ts.URL+path, nil)
			if token {
				req.Header.Set("Authorization", "Bearer tok")
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			return resp, b.String()
		}
		resp, body := get("/crash/1", true)
		if resp.StatusCode != 200 {
			t.Fatalf("crash page: %s %s", resp.Status, body)
		}
		page := html.UnescapeString(body)
		var cli bytes.Buffer
		if err := render.Text(&cli, c.Report, render.TextOptions{}); err != nil {
			t.Fatal(err)
		}
		cmd := "coroner fix --mitigate=no-pcre-jit --apply"
		for _, want := range []string{
			cmd, `preg_match(<span class="args">"/(a+)+$/", "aaaa"</span>)`, "sub_376970+0x4a", "← php: <code>preg_match()</code>",
			"child 14502 exited on signal 11", "recv() failed", "php-fpm", "nginx-error",
			"<code>coroner replay /var/lib/coroner/cores/core.14502 --dry-run</code>", "<code>coroner replay /var/lib/coroner/cores/core.14502</code>",
			`id="copy-report"`, `<textarea id="bug-report"`, `href="/api/v1/crashes/1?download=1"`, `href="/crash/1.md"`,
		} {
			if !strings.Contains(page, want) {
				t.Errorf("ShowSecrets=%v: the crash page lacks %q", show, want)
			}
		}
		if !strings.Contains(cli.String(), "("+cmd+")") {
			t.Errorf("the CLI does not print the command the page shows:\n%s", cli.String())
		}
		// One implementation of the replay commands: the View's, which the CLI prints too.
		for _, want := range []string{"see the request:  coroner replay /var/lib/coroner/cores/core.14502 --dry-run\n",
			"re-send it:       coroner replay /var/lib/coroner/cores/core.14502\n"} {
			if !strings.Contains(cli.String(), want) {
				t.Errorf("the CLI does not print the replay command the page shows, %q:\n%s", want, cli.String())
			}
		}
		if strings.Contains(page, "FPM_SOCKET") {
			t.Error("the page still shows a socket placeholder")
		}
		if strings.Contains(page, "OTHER HOST LINE") {
			t.Error("the page shows the log lines of another host's worker")
		}
		_, md := get("/crash/1.md", true)
		var want bytes.Buffer
		if err := render.Markdown(&want, c.Report); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(md, "### Crash: SIGSEGV (null-dereference) in `pcre2_jit_match_8`") || !strings.Contains(page, md) {
			t.Errorf("/crash/1.md is not the Markdown report embedded in the page:\n%.300q\npage: %.300q", md, page[strings.Index(page, "<textarea"):])
		}
		secret := func(s string) bool {
			return strings.Contains(s, "hunter2") || strings.Contains(s, "sid=abc") || strings.Contains(s, "s3cret")
		}
		if secret(page) != show {
			t.Errorf("ShowSecrets=%v: secrets on the page: %v", show, secret(page))
		}
		if !show && secret(md) {
			t.Errorf("secrets in the Markdown report:\n%s", md)
		}
		resp, js := get("/api/v1/crashes/1?download=1", true)
		if cd := resp.Header.Get("Content-Disposition"); resp.StatusCode != 200 || cd != `attachment; filename="coroner-crash-1.json"` {
			t.Errorf("download: %s, Content-Disposition %q", resp.Status, cd)
		}
		var got struct {
			Crash APICrash `json:"crash"`
		}
		if err := json.Unmarshal([]byte(js), &got); err != nil || got.Crash.Report == nil || got.Crash.Report.Fingerprint != c.Fingerprint {
			t.Errorf("downloaded JSON: %v", err)
		}
		if !show && secret(js) {
			t.Error("secrets in the downloaded JSON")
		}
		if resp, _ := get("/api/v1/crashes/1?download=1", false); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("download without the token: %s", resp.Status)
		}
		if resp, _ := get("/crash/1.md", false); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("Markdown without the token: %s", resp.Status)
		}
		if resp, _ := get("/crash/x.md", true); resp.StatusCode != http.StatusBadRequest {
			t.Errorf("/crash/x.md: %s", resp.Status)
		}
	}
}

// TestLogOnlyCrashPage: the page of a crash known only from the logs (no
// core, no report) says so and shows the symbolized site; its Markdown and
// JSON still answer.
func TestLogOnlyCrashPage(t *testing.T) {
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	c := &store.Crash{Host: "web1", Time: time.Date(2026, 11, 26, 19, 27, 44, 0, time.UTC), PID: 4512, Signal: 11, SignalName: "SIGSEGV",
		Pool: "www", URI: "/index.php", Fingerprint: "1c0ffee01c0ffee0", LogOnly: true, Site: "libc.so.6!__strlen_evex+0x18"}
	if _, err := st.RecordCrash(ctx, c); err != nil {
		t.Fatal(err)
	}
	id := c.ID
	srv, err := New(Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	get := func(path string) (int, string) {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", path, nil)
		req.Host = "127.0.0.1:7070"
		srv.ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}
	code, body := get("/crash/" + strconv.FormatInt(id, 10))
	if code != http.StatusOK || !strings.Contains(body, "log only") || !strings.Contains(html.UnescapeString(body), "__strlen_evex+0x18") || strings.Contains(body, "<code></code> (0 B)") {
		t.Errorf("log-only crash page: %d\n%s", code, body)
	}
	if code, _ := get("/api/v1/crashes/" + strconv.FormatInt(id, 10)); code != http.StatusOK {
		t.Errorf("JSON of a log-only crash: %d", code)
	}
}
