package redact

import (
	"strings"
	"testing"
)

func TestKey(t *testing.T) {
	for _, k := range []string{"password", "PASSWD", "pwd", "token", "access_token", "secret", "client_secret", "api_key",
		"apiKey", "key", "auth", "session", "sid", "PHPSESSID", "HTTP_COOKIE", "HTTP_AUTHORIZATION", "PHP_AUTH_PW",
		"X-Auth-Token", "dbPassword", "session.save_path", "mysql.default_password", "jwt", "pass"} {
		if !Key(k) {
			t.Errorf("Key(%q) = false", k)
		}
	}
	for _, k := range []string{"q", "page", "REQUEST_URI", "QUERY_STRING", "HTTP_HOST", "author", "keyword", "monkey",
		"opcache.jit", "SCRIPT_FILENAME", "HTTP_USER_AGENT", "passenger", "sidebar", "country_code"} {
		if Key(k) {
			t.Errorf("Key(%q) = true", k)
		}
	}
}

func TestText(t *testing.T) {
	for in, want := range map[string]string{
		"/login.php?user=bob&password=hunter2&x=1":            "/login.php?user=bob&password=[redacted]&x=1",
		"q=teacher&api_key=abc;sid=def":                       "q=teacher&api_key=[redacted];sid=[redacted]",
		"php-fpm: pool www --password=hunter2 --user=x":       "php-fpm: pool www --password=[redacted] --user=x",
		`request: "GET /x?token=t0k&p=1 HTTP/1.1", host: "a"`: `request: "GET /x?token=[redacted]&p=1 HTTP/1.1", host: "a"`,
		"Cookie: PHPSESSID=abc; lang=en":                      "Cookie: [redacted]",
		"Authorization: Bearer abcdefghijkl":                  "Authorization: [redacted]",
		"sent bearer abcdefghijklmnop to x":                   "sent bearer [redacted] to x",
		"redis://user:s3cret@cache:6379/0":                    "redis://user:[redacted]@cache:6379/0",
		`{"user":"bob","password":"hunter2"}`:                 `{"user":"bob","password":"[redacted]"}`,
		"/search.php?q=teacher":                               "/search.php?q=teacher",
		"opcache.jit=tracing pcre.jit=1":                      "opcache.jit=tracing pcre.jit=1",
		"/lib/x.so?pass%77ord=abc":                            "/lib/x.so?pass%77ord=[redacted]",
		"already password=[redacted]":                         "already password=[redacted]",
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q)\n = %q\nwant %q", in, got, want)
		}
	}
}

type request struct {
	URI    string
	Params map[string]string
	Key    string
	Args   []string
}

func TestValue(t *testing.T) {
	r := &request{URI: "/a?password=x", Params: map[string]string{"HTTP_COOKIE": "a=b", "PHP_AUTH_PW": "pw",
		"HTTP_HOST": "example.org", "QUERY_STRING": "token=t&q=1", "HTTP_X": "[redacted, 3 bytes]"}, Key: "site:abc", Args: []string{"--secret=s"}}
	v := Value(r)
	if v.URI != "/a?password=[redacted]" || v.Params["HTTP_COOKIE"] != Marker || v.Params["PHP_AUTH_PW"] != Marker ||
		v.Params["HTTP_HOST"] != "example.org" || v.Params["QUERY_STRING"] != "token=[redacted]&q=1" ||
		v.Params["HTTP_X"] != "[redacted, 3 bytes]" || v.Key != "site:abc" || v.Args[0] != "--secret=[redacted]" {
		t.Errorf("%+v", v)
	}
	if !strings.Contains(r.URI, "password=x") {
		t.Error("the original was changed")
	}
}

// FuzzText: Text never panics, is idempotent, and leaves no value of a
// password= pair it was given.
func FuzzText(f *testing.F) {
	for _, s := range []string{"/a?password=x&b=1", "--token=abc def", "Cookie: a=b", `{"secret":"v"}`, "redis://u:p@h", "bearer abcdefghijk", "=", "a=", "?=&=;"} {
		f.Add(s, "hunter2")
	}
	f.Fuzz(func(t *testing.T, s, secret string) {
		once := Text(s)
		if twice := Text(once); twice != once {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, once, twice)
		}
		if secret == "" || strings.ContainsAny(secret, "&;\\s\"'<>,)=?[](% \t\n\r\f\v") {
			return
		}
		in := s + "?password=" + secret
		if out := Text(in); strings.HasSuffix(out, "password="+secret) {
			t.Fatalf("Text(%q) = %q keeps the password", in, out)
		}
	})
}

// TestContainsFoldLikeEqualFoldScan compares containsFold with a scan of
// strings.EqualFold at every position.
func TestContainsFoldLikeEqualFoldScan(t *testing.T) {
	scan := func(s, word string) bool {
		for i := 0; i+len(word) <= len(s); i++ {
			if strings.EqualFold(s[i:i+len(word)], word) {
				return true
			}
		}
		return false
	}
	words := []string{"", "cookie", "Bearer ", "x-api-key", "AUTHORIZATION", "1x"}
	texts := []string{"", "c", "Set-Cookie: a=b", "COOKIE", "xcookiex", "authorization: Bearer abc", "X-Api-Key: k",
		"x-api-\u212aey", "\u212a", "no secrets here", "1X", "cookiecookie", "Authorizatio"}
	for _, w := range words {
		for _, s := range texts {
			if got, want := containsFold(s, w), scan(s, w); got != want {
				t.Errorf("containsFold(%q, %q) = %v, want %v", s, w, got, want)
			}
		}
	}
}
