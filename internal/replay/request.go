// Package replay re-sends the request that killed a PHP-FPM worker (as
// recovered from its core, or spelled out by hand) straight to an FPM
// socket over FastCGI, a given number of times, and tells for each attempt
// whether it completed, killed the worker, or timed out; with the FPM log,
// it confirms each death by the master's "child N exited on signal S" line.
package replay

import (
	"errors"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/php"
	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/replay/fastcgi"
)

// Request is what a replay sends: the FastCGI parameters in order and the body.
type Request struct {
	// Params are the FastCGI parameters sent, in order.
	Params []fastcgi.Param `json:"params"`
	// Body is the request body sent on FCGI_STDIN.
	Body []byte `json:"-"`
	// BodyBytes is len(Body).
	BodyBytes int `json:"body_bytes"`
	// Withheld names the parameters of the original request left out
	// because they carry credentials (their values are never sent).
	Withheld []string `json:"withheld,omitempty"`
	// Skipped names recovered variables that are not request variables
	// (environment passed along, values PHP derives itself).
	Skipped []string `json:"skipped,omitempty"`
	// Notes are things the user should know about the request (a body
	// that could not be recovered, a document root rewritten...).
	Notes []string `json:"notes,omitempty"`
}

// Redacted returns a copy of r to show: the values of parameters that
// carry credentials, and credentials inside the others (a password in
// QUERY_STRING), redacted by the one policy of package redact.
func (r *Request) Redacted() *Request {
	if r == nil {
		return nil
	}
	c := redact.Value(r)
	for i, p := range c.Params {
		if redact.Key(p.Name) || Secret(p.Name) {
			c.Params[i].Value = redact.Marker
		}
	}
	return c
}

// Redacted returns a copy of r whose request is redacted (Request.Redacted)
// and whose messages have credentials redacted.
func (r *Result) Redacted() *Result {
	if r == nil {
		return nil
	}
	c := redact.Value(r)
	c.Request = r.Request.Redacted()
	return c
}

// Spec is a request spelled out by hand (or overrides to a recovered one).
type Spec struct {
	// Method is the HTTP method ("GET" when empty).
	Method string
	// URI is the request URI, path and query ("/index.php?q=1").
	URI string
	// Script is SCRIPT_FILENAME; relative paths are taken under DocRoot.
	Script string
	// DocRoot is DOCUMENT_ROOT. For a recovered request, the old document
	// root is replaced by this one in SCRIPT_FILENAME and PATH_TRANSLATED.
	DocRoot string
	// Host is the Host header.
	Host string
	// Params are extra parameters (NAME=VALUE), set last.
	Params map[string]string
	// Body is the request body; nil when unknown.
	Body []byte
}

// Secret reports whether a parameter must never be replayed: cookies,
// authorization headers, HTTP authentication credentials and names that
// look like credentials.
func Secret(name string) bool {
	n := strings.ToUpper(name)
	return strings.HasPrefix(n, "PHP_AUTH_") || php.IsSecret(n)
}

// requestVar reports whether name is a CGI/1.1 or HTTP request variable a
// web server passes (as opposed to the environment, or values PHP computes
// itself such as REQUEST_TIME and PHP_SELF).
func requestVar(name string) bool {
	switch name {
	case "REQUEST_TIME", "REQUEST_TIME_FLOAT", "PHP_SELF", "argv", "argc", "FCGI_ROLE", "ORIG_PATH_INFO":
		return false
	case "QUERY_STRING", "GATEWAY_INTERFACE", "HTTPS", "REDIRECT_STATUS":
		return true
	}
	for _, p := range []string{"HTTP_", "REQUEST_", "SERVER_", "SCRIPT_", "CONTENT_", "REMOTE_", "DOCUMENT_", "PATH_", "REDIRECT_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// FromReport builds the request to replay from a crash report's PHP request
// (analyze with secrets shown, so that nothing arrives redacted; secrets are
// withheld here). Fields of over that are set replace the recovered ones.
func FromReport(rep *crash.Report, over Spec) (*Request, error) {
	if rep == nil || rep.PHP == nil || rep.PHP.Request == nil {
		return nil, errors.New("the core holds no PHP request (not a php-fpm worker serving one, or the request was not found): spell it out with --uri and --script")
	}
	r := rep.PHP.Request
	vars := map[string]string{}
	for k, v := range r.Params {
		vars[k] = v
	}
	set := func(k, v string) {
		if v != "" && vars[k] == "" {
			vars[k] = v
		}
	}
	set("REQUEST_METHOD", r.Method)
	set("REQUEST_URI", r.URI)
	set("QUERY_STRING", r.Query)
	set("SCRIPT_FILENAME", r.Script)
	set("HTTP_HOST", r.Host)
	set("REMOTE_ADDR", r.RemoteAddr)
	set("HTTP_USER_AGENT", r.UserAgent)
	set("CONTENT_TYPE", r.ContentType)
	if r.ContentLength > 0 {
		set("CONTENT_LENGTH", strconv.FormatInt(r.ContentLength, 10))
	}
	out := &Request{}
	if r.Source != "" && r.Source != php.SourceFastCGI {
		out.Notes = append(out.Notes, fmt.Sprintf("the request was recovered from %s, not from the FastCGI parameters: variables the server sent but PHP did not keep are missing", r.Source))
	}
	for k, v := range vars {
		if strings.HasPrefix(v, "[redacted") {
			delete(vars, k)
			out.Withheld = append(out.Withheld, k)
		}
	}
	if over.DocRoot != "" {
		old := strings.TrimRight(vars["DOCUMENT_ROOT"], "/")
		nw := strings.TrimRight(over.DocRoot, "/")
		for _, k := range []string{"SCRIPT_FILENAME", "PATH_TRANSLATED"} {
			if old != "" && strings.HasPrefix(vars[k], old+"/") {
				vars[k] = nw + strings.TrimPrefix(vars[k], old)
			}
		}
		if old == "" && vars["SCRIPT_NAME"] != "" && over.Script == "" {
			vars["SCRIPT_FILENAME"] = nw + vars["SCRIPT_NAME"]
		}
		if old != nw {
			out.Notes = append(out.Notes, fmt.Sprintf("document root %q replaced by %q", old, nw))
		}
		vars["DOCUMENT_ROOT"] = over.DocRoot
	}
	return finish(out, vars, over)
}

// FromSpec builds a request spelled out by hand (a URL seen only in logs).
func FromSpec(s Spec) (*Request, error) {
	if s.URI == "" && s.Script == "" {
		return nil, errors.New("a request needs at least --uri or --script")
	}
	vars := map[string]string{}
	if s.DocRoot != "" {
		vars["DOCUMENT_ROOT"] = s.DocRoot
	}
	return finish(&Request{}, vars, s)
}

// finish applies the overrides of s, fills the variables every CGI request
// carries, drops secrets and non-request variables, and orders the result.
func finish(out *Request, vars map[string]string, s Spec) (*Request, error) {
	if s.Method != "" {
		vars["REQUEST_METHOD"] = strings.ToUpper(s.Method)
	}
	if s.URI != "" {
		vars["REQUEST_URI"] = s.URI
		u, err := url.ParseRequestURI(s.URI)
		if err != nil {
			return nil, fmt.Errorf("--uri %q: %w", s.URI, err)
		}
		vars["QUERY_STRING"] = u.RawQuery
		vars["DOCUMENT_URI"] = u.Path
	}
	if s.Script != "" {
		script := s.Script
		if !path.IsAbs(script) {
			if vars["DOCUMENT_ROOT"] == "" {
				return nil, fmt.Errorf("--script %q is relative: give --docroot too", script)
			}
			script = path.Join(vars["DOCUMENT_ROOT"], script)
		}
		vars["SCRIPT_FILENAME"] = script
		if root := vars["DOCUMENT_ROOT"]; root != "" && strings.HasPrefix(script, strings.TrimRight(root, "/")+"/") {
			vars["SCRIPT_NAME"] = strings.TrimPrefix(script, strings.TrimRight(root, "/"))
		}
	}
	if s.Host != "" {
		vars["HTTP_HOST"] = s.Host
	}
	for k, v := range s.Params {
		vars[k] = v
	}
	if vars["SCRIPT_FILENAME"] == "" {
		return nil, errors.New("no SCRIPT_FILENAME: php-fpm needs the script path (give --script, or --docroot with a recovered SCRIPT_NAME)")
	}
	def := func(k, v string) {
		if vars[k] == "" {
			vars[k] = v
		}
	}
	def("REQUEST_METHOD", "GET")
	def("GATEWAY_INTERFACE", "CGI/1.1")
	def("SERVER_PROTOCOL", "HTTP/1.1")
	def("REMOTE_ADDR", "127.0.0.1")
	if vars["REQUEST_URI"] == "" {
		vars["REQUEST_URI"] = vars["SCRIPT_NAME"]
		if vars["QUERY_STRING"] != "" {
			vars["REQUEST_URI"] += "?" + vars["QUERY_STRING"]
		}
	}
	if vars["SCRIPT_NAME"] == "" {
		vars["SCRIPT_NAME"] = "/" + path.Base(vars["SCRIPT_FILENAME"])
	}
	if _, ok := vars["QUERY_STRING"]; !ok {
		vars["QUERY_STRING"] = ""
	}
	out.Body, out.BodyBytes = s.Body, len(s.Body)
	if n, err := strconv.ParseInt(vars["CONTENT_LENGTH"], 10, 64); err == nil && n > 0 && int64(len(out.Body)) != n {
		if out.Body == nil {
			out.Notes = append(out.Notes, fmt.Sprintf("the body (%d bytes) is not in the core: sent empty, CONTENT_LENGTH set to 0 (give --body-file to send it)", n))
		} else {
			out.Notes = append(out.Notes, fmt.Sprintf("CONTENT_LENGTH %d replaced by the length of the given body (%d)", n, len(out.Body)))
		}
	}
	if out.Body != nil || vars["CONTENT_LENGTH"] != "" {
		vars["CONTENT_LENGTH"] = strconv.Itoa(len(out.Body))
	}
	if _, ok := vars["HTTP_CONTENT_LENGTH"]; ok { // the header as the server passed it along
		vars["HTTP_CONTENT_LENGTH"] = strconv.Itoa(len(out.Body))
	}
	names := make([]string, 0, len(vars))
	for k := range vars {
		switch {
		case Secret(k):
			out.Withheld = append(out.Withheld, k)
		case !requestVar(k) && s.Params[k] == "":
			out.Skipped = append(out.Skipped, k)
		default:
			names = append(names, k)
		}
	}
	sort.Slice(names, func(i, j int) bool {
		return rank(names[i]) < rank(names[j]) || rank(names[i]) == rank(names[j]) && names[i] < names[j]
	})
	for _, k := range names {
		out.Params = append(out.Params, fastcgi.Param{Name: k, Value: vars[k]})
	}
	sort.Strings(out.Withheld)
	out.Withheld = dedup(out.Withheld)
	sort.Strings(out.Skipped)
	return out, nil
}

// rank orders parameters: the request line first, then the script, the
// other CGI variables, and the HTTP headers last.
func rank(k string) int {
	switch k {
	case "REQUEST_METHOD":
		return 0
	case "REQUEST_URI":
		return 1
	case "QUERY_STRING":
		return 2
	case "SCRIPT_FILENAME":
		return 3
	case "SCRIPT_NAME":
		return 4
	case "DOCUMENT_ROOT":
		return 5
	}
	if strings.HasPrefix(k, "HTTP_") {
		return 7
	}
	return 6
}

func dedup(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// Param returns the value of a parameter of the request ("" when absent).
func (r *Request) Param(name string) string {
	for _, p := range r.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}
