package replay

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

func TestFromReport(t *testing.T) {
	rep := &crash.Report{PHP: &crash.PHP{Request: &crash.Request{
		Method: "POST", URI: "/checkout.php?step=2", Query: "step=2", Script: "/var/www/site/checkout.php",
		Host: "shop.example", ContentType: "application/x-www-form-urlencoded", ContentLength: 30, Source: "fastcgi",
		Params: map[string]string{
			"REQUEST_METHOD": "POST", "REQUEST_URI": "/checkout.php?step=2", "QUERY_STRING": "step=2",
			"SCRIPT_FILENAME": "/var/www/site/checkout.php", "SCRIPT_NAME": "/checkout.php", "DOCUMENT_ROOT": "/var/www/site",
			"HTTP_HOST": "shop.example", "HTTP_COOKIE": "session=abc", "HTTP_AUTHORIZATION": "Bearer xyz",
			"PHP_AUTH_USER": "admin", "PHP_AUTH_PW": "pw", "HTTP_X_LONG": strings.Repeat("v", 300),
			"CONTENT_LENGTH": "30", "HTTP_CONTENT_LENGTH": "30", "DB_URL": "mysql://u:p@db/x", "REQUEST_TIME": "1",
		},
	}}}
	req, err := FromReport(rep, Spec{DocRoot: "/srv/copy"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range req.Params {
		for _, secret := range []string{"abc", "xyz", "admin", "pw", "mysql://"} {
			if strings.Contains(p.Value, secret) {
				t.Errorf("secret %q sent in %s", secret, p.Name)
			}
		}
	}
	want := map[string]string{"REQUEST_METHOD": "POST", "REQUEST_URI": "/checkout.php?step=2", "QUERY_STRING": "step=2",
		"SCRIPT_FILENAME": "/srv/copy/checkout.php", "DOCUMENT_ROOT": "/srv/copy", "HTTP_HOST": "shop.example",
		"CONTENT_LENGTH": "0", "HTTP_CONTENT_LENGTH": "0", "HTTP_X_LONG": strings.Repeat("v", 300), "REQUEST_TIME": ""}
	for k, v := range want {
		if got := req.Param(k); got != v {
			t.Errorf("%s = %.40q, want %.40q", k, got, v)
		}
	}
	if got := strings.Join(req.Withheld, ","); got != "HTTP_AUTHORIZATION,HTTP_COOKIE,PHP_AUTH_PW,PHP_AUTH_USER" {
		t.Errorf("withheld %s", got)
	}
	if got := strings.Join(req.Skipped, ","); got != "DB_URL,REQUEST_TIME" {
		t.Errorf("skipped %s", got)
	}
	if req.Params[0].Name != "REQUEST_METHOD" {
		t.Errorf("first param %s", req.Params[0].Name)
	}
	if len(req.Notes) != 2 { // docroot replaced, body unknown
		t.Errorf("notes %q", req.Notes)
	}
	if _, err := FromReport(&crash.Report{}, Spec{}); err == nil {
		t.Error("a report without a PHP request gave a request")
	}
}

func TestFromSpec(t *testing.T) {
	req, err := FromSpec(Spec{Method: "get", URI: "/search.php?q=teacher", Script: "search.php", DocRoot: "/srv/www",
		Params: map[string]string{"HTTP_X_TRACE": "1", "HTTP_COOKIE": "c=1"}, Body: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"REQUEST_METHOD": "GET", "QUERY_STRING": "q=teacher", "SCRIPT_FILENAME": "/srv/www/search.php",
		"SCRIPT_NAME": "/search.php", "HTTP_X_TRACE": "1", "HTTP_COOKIE": "", "CONTENT_LENGTH": "1"} {
		if got := req.Param(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if _, err := FromSpec(Spec{URI: "/x.php", Script: "x.php"}); err == nil {
		t.Error("relative --script without --docroot accepted")
	}
	if _, err := FromSpec(Spec{URI: "/x.php"}); err == nil {
		t.Error("a request without SCRIPT_FILENAME accepted")
	}
}

func TestParseSocket(t *testing.T) {
	for _, c := range []struct {
		in, network, addr string
		remote, ok        bool
	}{
		{"unix:/run/php/fpm.sock", "unix", "/run/php/fpm.sock", false, true},
		{"/run/php/fpm.sock", "unix", "/run/php/fpm.sock", false, true},
		{"tcp:127.0.0.1:9000", "tcp", "127.0.0.1:9000", false, true},
		{"[::1]:9000", "tcp", "[::1]:9000", false, true},
		{"localhost:9000", "tcp", "localhost:9000", false, true},
		{"tcp:10.0.0.5:9000", "", "", false, false},
		{"tcp:10.0.0.5:9000", "tcp", "10.0.0.5:9000", true, true},
		{"tcp:fpm.internal:9000", "", "", false, false},
		{"tcp:127.0.0.1:99999", "", "", false, false},
		{"", "", "", false, false},
		{"unix:", "", "", false, false},
	} {
		n, a, err := ParseSocket(c.in, c.remote)
		if (err == nil) != c.ok || n != c.network || a != c.addr {
			t.Errorf("ParseSocket(%q, %v) = %q %q %v", c.in, c.remote, n, a, err)
		}
	}
}

func TestParseDeath(t *testing.T) {
	d, ok := ParseDeath("[26-Nov-2026 19:27:44] WARNING: [pool www] child 14502 exited on signal 11 (SIGSEGV - core dumped) after 0.942805 seconds from start")
	if !ok || d.PID != 14502 || d.Signal != 11 || d.SignalName != "SIGSEGV" || !d.CoreDumped {
		t.Errorf("%+v %v", d, ok)
	}
	d, ok = ParseDeath("[26-Nov-2026 19:27:44] WARNING: [pool www] child 7 exited on signal 6 (SIGABRT) after 1 seconds from start")
	if !ok || d.Signal != 6 || d.CoreDumped {
		t.Errorf("%+v %v", d, ok)
	}
	if _, ok := ParseDeath("NOTICE: [pool www] child 14565 started"); ok {
		t.Error("a start line taken for a death")
	}
}

func TestLogFollower(t *testing.T) {
	p := filepath.Join(t.TempDir(), "fpm.log")
	if err := os.WriteFile(p, []byte("old line\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := followLog(p)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fh.WriteString("new 1\nnew 2\npartial")
	lines, err := f.collect(context.Background(), false)
	if err != nil || strings.Join(lines, "|") != "new 1|new 2" {
		t.Fatalf("lines %q err %v", lines, err)
	}
	fh.WriteString(" end\n")
	lines, _ = f.collect(context.Background(), false)
	if strings.Join(lines, "|") != "partial end" {
		t.Fatalf("lines %q", lines)
	}
	// rotation: a new, shorter file is read from its start
	os.Remove(p)
	os.WriteFile(p, []byte("rotated\n"), 0o644)
	lines, _ = f.collect(context.Background(), false)
	if strings.Join(lines, "|") != "rotated" {
		t.Fatalf("after rotation: %q", lines)
	}
}

func TestRunConnectError(t *testing.T) {
	req, err := FromSpec(Spec{URI: "/x.php", Script: "/srv/x.php"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), req, Options{Socket: "unix:" + filepath.Join(t.TempDir(), "none.sock"), Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Attempts) != 1 || res.Attempts[0].Outcome != OutcomeError || res.Reproduced {
		t.Fatalf("%+v", res)
	}
	// Not a verdict on the crash: an error (exit status 1, not 3).
	if res.Err() == nil || !strings.HasPrefix(res.Summary(), "could not replay: ") || strings.Contains(res.Summary(), "did not reproduce") {
		t.Errorf("connection refused: err %v, summary %q", res.Err(), res.Summary())
	}
	if _, err := Run(context.Background(), req, Options{Socket: "tcp:192.0.2.1:9000"}); err == nil {
		t.Fatal("a non-loopback socket was used")
	}
}
