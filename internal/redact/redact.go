// Package redact is coroner's one policy for credentials found in what it
// reads: cookies and authorization headers, credential-like request
// parameters and query parameters (password, token, api_key, session...),
// command-line options (--password=...), passwords in URLs, and request
// bodies. Every output (text, Markdown, JSON, the dashboard, webhooks) and
// the crash database see values redacted unless --show-secrets; Value
// applies the policy to a whole report or result.
package redact

import (
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"

	"github.com/coroner-dev/coroner/internal/sanitize"
)

// Marker replaces a redacted value.
const Marker = "[redacted]"

// exactKeys are names that are secrets as a whole (CGI variables, headers).
var exactKeys = map[string]bool{
	"http_cookie": true, "cookie": true, "set_cookie": true, "http_authorization": true, "authorization": true,
	"http_proxy_authorization": true, "proxy_authorization": true, "redirect_http_authorization": true,
	"php_auth_pw": true, "php_auth_digest": true, "auth_password": true, "http_x_api_key": true,
	"http_x_auth_token": true, "http_x_csrf_token": true, "http_x_xsrf_token": true,
	"request_body": true, "body": true, "http_raw_post_data": true, "raw_post_data": true,
	"code": true, // an OAuth authorization code
}

// secretWords are the words of a name that make it a credential
// (password, api_key, authToken, PHPSESSID...).
var secretWords = map[string]bool{
	"password": true, "passwd": true, "pass": true, "pwd": true, "pw": true, "passphrase": true,
	"secret": true, "token": true, "key": true, "apikey": true, "auth": true, "authorization": true,
	"session": true, "sessid": true, "sid": true, "phpsessid": true, "jsessionid": true, "cookie": true,
	"credential": true, "credentials": true, "jwt": true, "bearer": true, "otp": true, "signature": true,
	"sig": true, "salt": true, "dsn": true, "private": true, "nonce": true, "ticket": true,
}

// secretParts are substrings that make a name a credential when words do
// not separate them ("accesstoken", "dbpassword", "x-amz-signature").
var secretParts = []string{"passw", "passwd", "secret", "token", "apikey", "api_key", "sessid", "session", "credential", "privatekey", "private_key", "auth"}

// Key reports whether a parameter, header, query or INI name holds a
// credential whose value is redacted.
func Key(name string) bool {
	if v, ok := keyCache.Load(name); ok {
		return v.(bool)
	}
	secret := key(name)
	if keyCacheSize.Add(1) < maxKeyCache {
		keyCache.Store(name, secret)
	}
	return secret
}

// keyCache remembers Key for the names seen (struct fields, parameters),
// a few thousand at most.
var (
	keyCache     sync.Map
	keyCacheSize atomic.Int64
)

const maxKeyCache = 4096

func key(name string) bool {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return false
	}
	if exactKeys[n] || exactKeys[strings.ReplaceAll(n, "-", "_")] {
		return true
	}
	for _, w := range words(name) {
		if secretWords[w] {
			return true
		}
	}
	flat := strings.Map(func(r rune) rune {
		if r == '-' || r == '.' || r == ' ' {
			return '_'
		}
		return r
	}, n)
	for _, p := range secretParts {
		if strings.Contains(flat, p) {
			return !strings.Contains(flat, "author") || strings.Contains(flat, "authorization")
		}
	}
	return false
}

// words splits a name into lower-case words at punctuation and at
// camelCase boundaries: "apiKey" -> api, key; "X-Auth-Token" -> x, auth,
// token.
func words(name string) []string {
	var out []string
	var cur []rune
	flush := func() {
		if len(cur) > 0 {
			out = append(out, strings.ToLower(string(cur)))
			cur = cur[:0]
		}
	}
	rs := []rune(name)
	for i, r := range rs {
		switch {
		case !unicode.IsLetter(r) && !unicode.IsDigit(r):
			flush()
		case unicode.IsUpper(r) && i > 0 && unicode.IsLower(rs[i-1]):
			flush()
			cur = append(cur, r)
		default:
			cur = append(cur, r)
		}
	}
	flush()
	return out
}

// pairRe finds name=value pairs in free text: query parameters (after ?,
// & or ;), command-line options (--password=x, after a space), and
// key=value words. The value ends at a separator, a quote, a space, a "?"
// or a "=" (so that "a=1?password=x" and "x=password=y" show their second
// pair; base64 padding after a redacted token stays).
var pairRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(^|[?&;\s,("'=])(-{0,2}[A-Za-z0-9_.%\-\[\]]{1,64})=([^&;\s"'<>,)?=]*)`)
})

// jsonRe finds "name": "value" pairs (JSON in a log line or a body).
var jsonRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`"([A-Za-z0-9_.\-]{1,64})"(\s*:\s*)"((?:[^"\\]|\\.)*)"`)
})

// headerRe finds credential headers written as text ("Cookie: a=b",
// "Authorization: Bearer x"): the rest of the line is redacted.
var headerRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`(?i)\b(cookie|set-cookie|authorization|proxy-authorization|x-api-key|x-auth-token)(\s*:\s*)[^\r\n"]*`)
})

// bearerRe finds bearer and basic credentials outside a header.
var bearerRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=\-]{8,}`) })

// userinfoRe finds the password of a URL (scheme://user:password@host).
var userinfoRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.\-]*://[^/\s:@]*:)([^@/\s]+)@`) })

// Text redacts the credentials found in free text: the values of
// credential-like name=value pairs (query strings, command lines), the
// rest of a credential header, bearer tokens and URL passwords. Text
// without any is returned as is.
func Text(s string) string {
	if strings.IndexByte(s, '=') >= 0 {
		s = pairRe().ReplaceAllStringFunc(s, func(m string) string {
			sub := pairRe().FindStringSubmatch(m)
			name := strings.TrimLeft(sub[2], "-")
			if unescaped, err := url.QueryUnescape(name); err == nil {
				name = unescaped
			}
			if sub[3] == "" || strings.HasPrefix(sub[3], "[redacted") || !Key(name) {
				return m
			}
			return sub[1] + sub[2] + "=" + Marker
		})
	}
	if strings.IndexByte(s, ':') < 0 {
		if containsFold(s, "bearer ") || containsFold(s, "basic ") {
			s = bearerRe().ReplaceAllString(s, "${1} "+Marker)
		}
		return s
	}
	if strings.IndexByte(s, '"') >= 0 {
		s = jsonRe().ReplaceAllStringFunc(s, func(m string) string {
			sub := jsonRe().FindStringSubmatch(m)
			if sub[3] == "" || !Key(sub[1]) {
				return m
			}
			return `"` + sub[1] + `"` + sub[2] + `"` + Marker + `"`
		})
	}
	if containsFold(s, "cookie") || containsFold(s, "authorization") || containsFold(s, "x-api-key") || containsFold(s, "x-auth-token") {
		s = headerRe().ReplaceAllString(s, "${1}${2}"+Marker)
	}
	if containsFold(s, "bearer ") || containsFold(s, "basic ") {
		s = bearerRe().ReplaceAllString(s, "${1} "+Marker)
	}
	if strings.Contains(s, "://") && strings.IndexByte(s, '@') >= 0 {
		s = userinfoRe().ReplaceAllString(s, "${1}"+Marker+"@")
	}
	return s
}

// containsFold reports whether s contains word, ignoring ASCII case,
// without allocating.
func containsFold(s, word string) bool {
	if word == "" {
		return true
	}
	// Only where the first letter matches (in either case) is the rest
	// compared: every string of a report goes through here, six words
	// each.
	lo, up := word[0], word[0]
	switch {
	case 'a' <= lo && lo <= 'z':
		up = lo - 'a' + 'A'
	case 'A' <= up && up <= 'Z':
		lo = up - 'A' + 'a'
	}
	for i := 0; i+len(word) <= len(s); i++ {
		if b := s[i]; (b == lo || b == up) && strings.EqualFold(s[i:i+len(word)], word) {
			return true
		}
	}
	return false
}

// String redacts s stored under key (a struct field or map key): the
// whole value when the key names a credential, else the credentials in
// it (Text). A value already redacted is left alone.
func String(key, s string) string {
	if s == "" || strings.HasPrefix(s, "[redacted") {
		return s
	}
	if key != "" && Key(key) && !nonSecretField[key] {
		return Marker
	}
	return Text(s)
}

// nonSecretField are struct fields whose names contain a secret word but
// whose values are not credentials.
var nonSecretField = map[string]bool{"Key": true, "Keys": true}

// InPlace applies the policy to every string reachable from ptr, in place
// (a report the caller owns and others already hold).
func InPlace(ptr any) { sanitize.Rewrite(ptr, memoized()) }

// Value returns a copy of v (a report, a log result, an incident, a replay
// request) with the policy applied to every string in it.
func Value[T any](v T) T { return sanitize.MapStrings(v, memoized()) }

// memoized returns String with the free-text policy remembered per
// string for one walk: a deep recursion repeats the same PHP arguments and
// function names thousands of times.
func memoized() func(key, s string) string {
	memo := map[string]string{}
	return func(key, s string) string {
		if s == "" || strings.HasPrefix(s, "[redacted") {
			return s
		}
		if key != "" && Key(key) && !nonSecretField[key] {
			return Marker
		}
		if r, ok := memo[s]; ok {
			return r
		}
		r := Text(s)
		if len(memo) < 1<<16 {
			memo[s] = r
		}
		return r
	}
}
