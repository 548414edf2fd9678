package logs

import (
	"bytes"
	"strconv"
	"strings"
	"time"
)

// KindFastCGIStderr is an nginx "FastCGI sent in stderr" line (PHP messages
// relayed by nginx).
const KindFastCGIStderr Kind = "fastcgi-stderr"

// parseNginxError parses an nginx error.log line:
//
//	2026/11/26 19:27:44 [error] 14500#14500: *7 recv() failed (104: Connection reset by peer) while reading response header from upstream, client: 127.0.0.1, server: lab.local, request: "GET / HTTP/1.1", upstream: "fastcgi://unix:/run/php.sock:", host: "example.com"
//
// Only upstream-related lines are returned.
func parseNginxError(line []byte, loc *time.Location) (Event, bool) {
	t, ok := parseNginxTime(line, loc)
	if !ok {
		return Event{}, false
	}
	rest := line[19:]
	if len(rest) < 3 || rest[0] != ' ' || rest[1] != '[' {
		return Event{}, false
	}
	end := bytes.IndexByte(rest, ']')
	if end < 0 {
		return Event{}, false
	}
	rest = rest[end+1:]
	ev, ok := parseNginxMessage(rest)
	if !ok {
		return Event{}, false
	}
	ev.Time = t
	return ev, true
}

// parseNginxMessage parses what follows the level: " PID#TID: *CID msg, k: v, ...".
func parseNginxMessage(rest []byte) (Event, bool) {
	rest = bytes.TrimLeft(rest, " ")
	ev := Event{Source: SrcNginxError}
	if h := bytes.IndexByte(rest, '#'); h > 0 && h < 12 {
		if pid, ok := digits(rest[:h]); ok {
			ev.PID = pid
		}
		if c := bytes.Index(rest, []byte(": ")); c > h {
			rest = rest[c+2:]
		}
	}
	if len(rest) > 0 && rest[0] == '*' {
		if sp := bytes.IndexByte(rest, ' '); sp > 0 {
			rest = rest[sp+1:]
		}
	}
	msg := rest
	if c := bytes.Index(rest, []byte(", client: ")); c >= 0 {
		msg = rest[:c]
		parseNginxFields(rest[c+2:], &ev)
	}
	if !bytes.Contains(msg, []byte("upstream")) {
		return Event{}, false
	}
	switch {
	case bytes.Contains(msg, []byte("FastCGI sent in stderr")):
		ev.Kind = KindFastCGIStderr
	case bytes.Contains(msg, []byte("Connection reset by peer")):
		ev.Kind = KindUpstreamReset
	case bytes.Contains(msg, []byte("prematurely closed")):
		ev.Kind = KindUpstreamClosed
	case bytes.Contains(msg, []byte("connect() to")) || bytes.Contains(msg, []byte("connect() failed")):
		ev.Kind = KindConnectFailed
	case bytes.Contains(msg, []byte("timed out")):
		ev.Kind = KindUpstreamTimeout
	case bytes.Contains(msg, []byte("upstream")):
		ev.Kind = KindUpstreamOther
	default:
		return Event{}, false
	}
	if i := bytes.Index(msg, []byte("failed (")); i >= 0 {
		num := msg[i+8:]
		if c := bytes.IndexByte(num, ':'); c > 0 {
			if n, ok := digits(num[:c]); ok {
				ev.Errno = n
			}
		}
	} else if i := bytes.Index(msg, []byte("timed out (")); i >= 0 {
		num := msg[i+11:]
		if c := bytes.IndexByte(num, ':'); c > 0 {
			if n, ok := digits(num[:c]); ok {
				ev.Errno = n
			}
		}
	}
	ev.Message = string(bounded(msg, 1024))
	return ev, true
}

// parseNginxFields parses `client: 1.2.3.4, server: x, request: "GET / HTTP/1.1", upstream: "...", host: "..."`.
func parseNginxFields(b []byte, ev *Event) {
	for len(b) > 0 {
		c := bytes.Index(b, []byte(": "))
		if c <= 0 || c > 32 {
			return
		}
		key := b[:c]
		b = b[c+2:]
		var val []byte
		if len(b) > 0 && b[0] == '"' {
			end := quoteEnd(b[1:])
			if end < 0 {
				val, b = b[1:], nil
			} else {
				val = b[1 : 1+end]
				b = b[2+end:]
			}
		} else {
			end := bytes.Index(b, []byte(", "))
			if end < 0 {
				val, b = b, nil
			} else {
				val, b = b[:end], b[end:]
			}
		}
		b = bytes.TrimPrefix(b, []byte(", "))
		switch string(key) {
		case "client":
			ev.Client = string(bounded(val, 64))
		case "server":
			ev.Server = string(bounded(val, 256))
		case "request":
			ev.Method, ev.URI = splitRequest(val)
		case "upstream":
			ev.Upstream = string(bounded(val, 512))
		case "host":
			ev.Host = string(bounded(val, 256))
		}
	}
}

// quoteEnd returns the index of the closing quote in b (which starts after
// the opening quote), honouring backslash escapes, or -1.
func quoteEnd(b []byte) int {
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i
		}
	}
	return -1
}

// splitRequest splits "GET /path?q HTTP/1.1" into method and URI.
func splitRequest(r []byte) (method, uri string) {
	sp := bytes.IndexByte(r, ' ')
	if sp < 0 {
		return "", string(bounded(r, 2048))
	}
	m := r[:sp]
	u := r[sp+1:]
	if e := bytes.LastIndex(u, []byte(" HTTP/")); e >= 0 {
		u = u[:e]
	}
	return string(bounded(m, 16)), string(bounded(u, 2048))
}

// bounded returns at most n bytes of b.
func bounded(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// parseAccess parses an access-log line in the "combined" format, with
// optional trailing fields ($request_time, $upstream_status, or key=value
// pairs such as rt= us= upstream_status= request_time=):
//
//	127.0.0.1 - - [26/Nov/2026:19:27:44 +0000] "GET / HTTP/1.1" 502 157 "-" "curl/7.88.1"
//
// Only lines with a status of 500-504 are returned.
func parseAccess(line []byte) (Event, bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 || sp > 64 {
		return Event{}, false
	}
	client := line[:sp]
	lb := bytes.IndexByte(line, '[')
	if lb < 0 || lb > 512 || lb+27 >= len(line) || line[lb+27] != ']' {
		return Event{}, false
	}
	t, ok := parseAccessTime(line[lb+1 : lb+27])
	if !ok {
		return Event{}, false
	}
	rest := line[lb+28:]
	if len(rest) < 2 || rest[0] != ' ' || rest[1] != '"' {
		return Event{}, false
	}
	qe := quoteEnd(rest[2:])
	if qe < 0 {
		return Event{}, false
	}
	req := rest[2 : 2+qe]
	rest = rest[3+qe:]
	if len(rest) < 4 || rest[0] != ' ' {
		return Event{}, false
	}
	status, ok := digits(rest[1:4])
	if !ok || status < 500 || status > 504 || (len(rest) > 4 && rest[4] != ' ') {
		return Event{}, false
	}
	ev := Event{Source: SrcNginxAccess, Kind: KindHTTPError, Time: t, Status: status, Client: string(client)}
	ev.Method, ev.URI = splitRequest(req)
	// Skip bytes, referer and user agent, then read optional extra fields.
	rest = rest[4:]
	quotes := 0
	for quotes < 2 {
		q := bytes.IndexByte(rest, '"')
		if q < 0 {
			return ev, true
		}
		qe := quoteEnd(rest[q+1:])
		if qe < 0 {
			return ev, true
		}
		rest = rest[q+qe+2:]
		quotes++
	}
	parseAccessExtra(rest, &ev)
	return ev, true
}

// parseAccessExtra reads $request_time / $upstream_status style fields that
// follow the combined format.
func parseAccessExtra(rest []byte, ev *Event) {
	for _, f := range strings.Fields(string(bounded(rest, 512))) {
		key, val, hasKey := strings.Cut(f, "=")
		if !hasKey {
			val = f
		}
		val = strings.Trim(val, `"`)
		switch {
		case hasKey && (key == "rt" || key == "request_time"):
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				ev.RequestTime = v
			}
		case hasKey && (key == "us" || key == "ups" || key == "upstream_status"):
			ev.UpstreamStat = val
		case hasKey:
		case strings.Contains(val, ".") && ev.RequestTime == 0:
			if v, err := strconv.ParseFloat(val, 64); err == nil {
				ev.RequestTime = v
			}
		case len(val) == 3 && val[0] >= '1' && val[0] <= '5' && ev.UpstreamStat == "":
			if _, err := strconv.Atoi(val); err == nil {
				ev.UpstreamStat = val
			}
		}
	}
}
