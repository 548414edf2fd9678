package php

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"strings"

	"github.com/coroner-dev/coroner/crash"
)

// Request sources (crash.Request.Source).
const (
	SourceFastCGI = "fastcgi"      // the FastCGI parameters of the FPM/CGI request
	SourceSAPI    = "request_info" // SG(request_info)
	SourceServer  = "$_SERVER"     // the $_SERVER array in the global symbol table
)

// IsSecret reports whether a request parameter or $_SERVER key holds a
// credential whose value must be redacted.
func IsSecret(key string) bool {
	k := strings.ToUpper(key)
	switch k {
	case "HTTP_COOKIE", "HTTP_AUTHORIZATION", "HTTP_PROXY_AUTHORIZATION", "REDIRECT_HTTP_AUTHORIZATION",
		"PHP_AUTH_PW", "PHP_AUTH_DIGEST", "AUTH_PASSWORD":
		return true
	}
	for _, s := range []string{"PASSWORD", "PASSWD", "SECRET", "TOKEN", "API_KEY", "APIKEY", "_PW", "COOKIE", "AUTHORIZATION", "SESSION"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// maxFCGIBucket bounds the bytes of an fcgi_hash_bucket read (48 in PHP 7.0-8.5).
const maxFCGIBucket = 64

func redact(v string) string { return fmt.Sprintf("[redacted, %d bytes]", len(v)) }

// requestStats says what the request readers read, for the layout's
// validation.
type requestStats struct {
	fcgiParams int // FastCGI parameters read (all with text names)
	// sgFields are the SG(request_info) fields read, by the CGI variable
	// they stand for; sgAgree those equal to the FastCGI parameter.
	sgFields, sgAgree []string
	serverVars        int // $_SERVER entries read
}

// sgFieldVars names the CGI variable each SG(request_info) field holds.
var sgFieldVars = []struct{ id, cgi string }{
	{"sg.request_method", "REQUEST_METHOD"}, {"sg.query_string", "QUERY_STRING"},
	{"sg.path_translated", "SCRIPT_FILENAME"}, {"sg.request_uri", "SCRIPT_NAME"}, {"sg.content_type", "CONTENT_TYPE"},
	{"sg.content_length", "CONTENT_LENGTH"},
}

// readRequest reads the request the process was serving. Request.Params
// holds the request's CGI and HTTP variables, credentials redacted; other
// parameters (environment passed through FastCGI or $_SERVER) and the
// credentials' values only with showSecrets.
func readRequest(m *mem, g *globals, sapi string, showSecrets bool) (*crash.Request, []string, requestStats) {
	var warns []string
	var st requestStats
	var params map[string]string
	source := ""
	if g.sg != 0 && (sapi == "fpm-fcgi" || sapi == "cgi-fcgi") {
		ctx, err := m.ptr(g.sg+m.l.SGServerContext, 8)
		if err == nil && ctx != 0 {
			params, err = fcgiParams(m, ctx)
			if err != nil {
				warns = append(warns, fmt.Sprintf("FastCGI parameters: %v", err))
			}
			if len(params) > 0 {
				source = SourceFastCGI
				st.fcgiParams = len(params)
			}
		}
	}
	sg := sapiRequest(m, g)
	for _, f := range sgFieldVars {
		if v, ok := sg[f.cgi]; ok {
			st.sgFields = append(st.sgFields, f.id)
			if pv, ok := params[f.cgi]; ok && pv == v {
				st.sgAgree = append(st.sgAgree, f.id)
			}
		}
	}
	var sources []string
	if params != nil && g.eg != 0 {
		// $_SERVER is not needed, but reading it checks EG(symbol_table)
		if srv, err := serverArray(m, g); err == nil {
			st.serverVars = len(srv)
		}
	}
	if params == nil {
		params = map[string]string{}
		if len(sg) > 0 {
			sources = append(sources, SourceSAPI)
			for k, v := range sg {
				params[k] = v
			}
		}
		if srv, err := serverArray(m, g); err != nil {
			warns = append(warns, fmt.Sprintf("$_SERVER: %v", err))
		} else if len(srv) > 0 {
			sources = append(sources, SourceServer)
			st.serverVars = len(srv)
			for k, v := range srv {
				params[k] = v // $_SERVER has the pretty REQUEST_URI
			}
		}
		source = strings.Join(sources, "+")
	}
	if len(params) == 0 {
		return nil, warns, st
	}
	r := &crash.Request{
		Method:      params["REQUEST_METHOD"],
		URI:         params["REQUEST_URI"],
		Query:       params["QUERY_STRING"],
		Script:      params["SCRIPT_FILENAME"],
		Host:        params["HTTP_HOST"],
		RemoteAddr:  params["REMOTE_ADDR"],
		UserAgent:   params["HTTP_USER_AGENT"],
		ContentType: params["CONTENT_TYPE"],
		Source:      source,
		Params:      map[string]string{},
	}
	if r.Host == "" {
		r.Host = params["SERVER_NAME"]
	}
	if n, err := strconv.ParseInt(strings.TrimSpace(params["CONTENT_LENGTH"]), 10, 64); err == nil {
		r.ContentLength = n
	}
	for k, v := range params {
		if !showSecrets {
			if !isRequestParam(k) {
				continue // environment passed along (database URLs, keys...): only with ShowSecrets
			}
			if IsSecret(k) {
				v = redact(v)
			}
		}
		r.Params[k] = v
	}
	return r, warns, st
}

// isRequestParam reports whether key is a CGI/1.1 or HTTP request variable
// (as opposed to the environment, which FastCGI parameters and $_SERVER
// may also carry).
func isRequestParam(key string) bool {
	for _, p := range []string{"HTTP_", "REQUEST_", "SERVER_", "SCRIPT_", "CONTENT_", "REMOTE_", "DOCUMENT_", "REDIRECT_", "PATH_", "AUTH_", "PHP_AUTH_"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	switch key {
	case "QUERY_STRING", "GATEWAY_INTERFACE", "PHP_SELF", "HTTPS", "FCGI_ROLE", "ORIG_PATH_INFO":
		return true
	}
	return false
}

// fcgiParams reads the env hash of the fcgi_request at req (main/fastcgi.c):
// the list of fcgi_hash_bucket linked through list_next.
func fcgiParams(m *mem, req uint64) (map[string]string, error) {
	l := m.l
	b, err := m.ptr(req+l.FCGIEnv+l.FCGIHashList, 8)
	if err != nil {
		return nil, fmt.Errorf("fcgi_request %#x: %w", req, err)
	}
	out := map[string]string{}
	seen := map[uint64]bool{}
	var buf [maxFCGIBucket]byte
	n := max(l.FCGIVarLen+4, l.FCGIVar+8, l.FCGIValLen+4, l.FCGIVal+8, l.FCGINext+8)
	if n > maxFCGIBucket {
		return nil, fmt.Errorf("fcgi_hash_bucket layout out of the bounds coroner reads")
	}
	for b != 0 {
		if seen[b] {
			return out, fmt.Errorf("fcgi_hash list: cycle at %#x", b)
		}
		if len(out) >= maxFCGIParam {
			return out, fmt.Errorf("fcgi_hash list: stopped after %d parameters", maxFCGIParam)
		}
		seen[b] = true
		if b%8 != 0 {
			return out, fmt.Errorf("fcgi_hash bucket %#x: %w", b, errBadPointer)
		}
		if err := m.read(buf[:n], b); err != nil {
			return out, fmt.Errorf("fcgi_hash bucket: %w", err)
		}
		le := binary.LittleEndian
		varLen := le.Uint32(buf[l.FCGIVarLen:])
		valLen := le.Uint32(buf[l.FCGIValLen:])
		if varLen == 0 || varLen > maxName {
			return out, fmt.Errorf("fcgi_hash bucket %#x: name length %d", b, varLen)
		}
		name := make([]byte, varLen)
		if err := m.read(name, le.Uint64(buf[l.FCGIVar:])); err != nil {
			return out, fmt.Errorf("fcgi_hash bucket %#x name: %w", b, err)
		}
		if !printable(name) {
			return out, fmt.Errorf("fcgi_hash bucket %#x: name is not text", b)
		}
		k := valLen
		if k > maxValue {
			k = maxValue
		}
		val := make([]byte, k)
		if k > 0 {
			if err := m.read(val, le.Uint64(buf[l.FCGIVal:])); err != nil {
				return out, fmt.Errorf("fcgi_hash bucket %#x value: %w", b, err)
			}
		}
		if _, dup := out[string(name)]; !dup { // the list is newest first
			out[string(name)] = string(val)
		}
		b = le.Uint64(buf[l.FCGINext:])
		if b != 0 && !validPtr(b) {
			return out, fmt.Errorf("fcgi_hash bucket list_next %#x: %w", b, errBadPointer)
		}
	}
	return out, nil
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// sapiRequest reads SG(request_info) under the names of the CGI variables.
func sapiRequest(m *mem, g *globals) map[string]string {
	if g.sg == 0 {
		return nil
	}
	l := m.l
	out := map[string]string{}
	for _, f := range []struct {
		off  uint64
		name string
	}{
		{l.SGRequestMethod, "REQUEST_METHOD"}, {l.SGQueryString, "QUERY_STRING"},
		{l.SGPathTranslated, "SCRIPT_FILENAME"}, {l.SGRequestURI, "SCRIPT_NAME"}, {l.SGContentType, "CONTENT_TYPE"},
	} {
		p, err := m.ptr(g.sg+f.off, 1)
		if err != nil || p == 0 {
			continue
		}
		if s, err := m.cstring(p, maxValue); err == nil && s != "" {
			out[f.name] = s
		}
	}
	if n, err := m.u64(g.sg + l.SGContentLength); err == nil && n > 0 && n < 1<<50 {
		out["CONTENT_LENGTH"] = strconv.FormatUint(n, 10)
	}
	return out
}

// serverArray reads $_SERVER from EG(symbol_table), when the script (or
// auto_globals_jit=0) created it.
func serverArray(m *mem, g *globals) (map[string]string, error) {
	l := m.l
	var arr uint64
	err := m.hashEach(g.eg+l.EGSymbolTable, func(key uint64, v zval) bool {
		if key == 0 {
			return true
		}
		name, _, err := m.zstr(key, 16)
		if err != nil || name != "_SERVER" {
			return true
		}
		for i := 0; i < 3; i++ {
			switch uint64(v.typ) {
			case l.IsIndirect:
				v, err = m.readZval(v.value)
			case isReference:
				v, err = m.readZval(v.value + l.RefVal)
			}
			if err != nil {
				return false
			}
		}
		if v.typ == isArray {
			arr = v.value
		}
		return false
	})
	if err != nil || arr == 0 {
		return nil, err
	}
	out := map[string]string{}
	err = m.hashEach(arr, func(key uint64, v zval) bool {
		if key == 0 || v.typ != isString {
			return true
		}
		k, err := m.name(key, maxName)
		if err != nil {
			return true
		}
		s, _, err := m.zstr(v.value, maxValue)
		if err == nil {
			out[k] = s
		}
		return len(out) < maxFCGIParam
	})
	return out, err
}
