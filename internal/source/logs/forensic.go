package logs

import (
	"bytes"
	"strconv"
	"time"
)

// Apache's mod_log_forensic (ForensicLog) writes two lines per request:
//
//	+21592:6b1556f1:0|GET /search/teacher HTTP/1.1|Host:127.0.0.1%3a18081|Accept:*/*
//	-21592:6b1556f1:0
//
// the first before the request is handled, the second once it is done. A
// "+" without its "-" is a request that never finished: the child serving
// it died (or the log ends while it runs). Without mod_unique_id the ID is
// "PID:HEXTIME:COUNTER" (the child's pid, the Unix time the request
// started, a counter); with it, the ID is the request's UNIQUE_ID, which
// names neither the pid nor the time: such requests are reported but
// cannot be linked to a death.

// maxForensicPending bounds the unfinished requests remembered while a
// forensic log is read: a request is forgotten when its "-" line comes,
// and the oldest ones go first when more are open at once (a log cut in
// the middle of a busy server).
const maxForensicPending = 4096

// forensicParser pairs the "+" and "-" lines of a forensic log and keeps
// only the requests still open.
type forensicParser struct {
	pending map[string]*Event
	order   []string // ids in pending, oldest first (may hold finished ones)
	// Dropped counts the open requests forgotten to keep the bound.
	Dropped int
}

func newForensicParser() *forensicParser {
	return &forensicParser{pending: map[string]*Event{}}
}

// maxForensicID bounds an ID (a UNIQUE_ID is 24 to 27 characters, a
// PID:TIME:COUNTER ID less than 32).
const maxForensicID = 64

// line feeds one line of the log.
func (p *forensicParser) line(b []byte, file string, lineNo int64) {
	b = bytes.TrimRight(b, "\r")
	if len(b) < 2 {
		return
	}
	switch b[0] {
	case '-':
		id := b[1:]
		if len(id) > maxForensicID {
			return
		}
		delete(p.pending, string(id))
	case '+':
		ev, id, ok := parseForensicStart(b)
		if !ok {
			return
		}
		ev.File, ev.Line = file, lineNo
		if _, dup := p.pending[id]; !dup {
			p.order = append(p.order, id)
		}
		p.pending[id] = &ev
		p.trim()
	}
}

// trim keeps at most maxForensicPending open requests and an order slice
// of bounded length.
func (p *forensicParser) trim() {
	if len(p.order) <= 2*maxForensicPending {
		for len(p.pending) > maxForensicPending && len(p.order) > 0 {
			p.forgetOldest()
		}
		return
	}
	// compact: drop the ids of finished requests
	live := p.order[:0]
	for _, id := range p.order {
		if _, ok := p.pending[id]; ok {
			live = append(live, id)
		}
	}
	p.order = live
	for len(p.pending) > maxForensicPending && len(p.order) > 0 {
		p.forgetOldest()
	}
}

func (p *forensicParser) forgetOldest() {
	id := p.order[0]
	p.order = p.order[1:]
	if _, ok := p.pending[id]; ok {
		delete(p.pending, id)
		p.Dropped++
	}
}

// unfinished returns the requests that never finished, in file order.
func (p *forensicParser) unfinished() []Event {
	out := make([]Event, 0, len(p.pending))
	seen := map[string]bool{}
	for _, id := range p.order {
		if e, ok := p.pending[id]; ok && !seen[id] {
			seen[id] = true
			out = append(out, *e)
		}
	}
	return out
}

// parseForensicStart parses a "+ID|METHOD URI PROTO|Header:value|..."
// line. The event keeps the request line and the Host header only (the
// other headers carry cookies and credentials, and are not needed).
func parseForensicStart(b []byte) (Event, string, bool) {
	if len(b) < 2 || b[0] != '+' {
		return Event{}, "", false
	}
	bar := bytes.IndexByte(b, '|')
	if bar < 2 || bar-1 > maxForensicID {
		return Event{}, "", false
	}
	id := b[1:bar]
	if bytes.IndexByte(id, ' ') >= 0 {
		return Event{}, "", false
	}
	ev := Event{Source: SrcApacheForensic, Kind: KindUnfinishedRequest}
	ev.PID, ev.Time = forensicID(id)
	rest := b[bar+1:]
	reqLine := rest
	if e := bytes.IndexByte(rest, '|'); e >= 0 {
		reqLine, rest = rest[:e], rest[e+1:]
	} else {
		rest = nil
	}
	if sp := bytes.IndexByte(reqLine, ' '); sp > 0 {
		ev.Method = string(bounded(reqLine[:sp], 32))
		uri := reqLine[sp+1:]
		if e := bytes.LastIndexByte(uri, ' '); e > 0 && bytes.HasPrefix(uri[e+1:], []byte("HTTP/")) {
			uri = uri[:e]
		}
		ev.URI = string(bounded(forensicUnescape(uri), 2048))
	} else {
		return Event{}, "", false
	}
	for len(rest) > 0 {
		h := rest
		if e := bytes.IndexByte(rest, '|'); e >= 0 {
			h, rest = rest[:e], rest[e+1:]
		} else {
			rest = nil
		}
		if len(h) > 5 && bytes.EqualFold(h[:5], []byte("host:")) {
			ev.Host = string(bounded(forensicUnescape(h[5:]), 256))
			break
		}
	}
	text := "+" + string(id) + "|" + string(bounded(reqLine, maxTextLen-256))
	if ev.Host != "" {
		text += "|Host:" + ev.Host
	}
	ev.Text = text
	return ev, string(id), true
}

// forensicID reads the pid and start time of a "PID:HEXTIME:COUNTER" ID
// (mod_log_forensic without mod_unique_id); a UNIQUE_ID gives neither.
func forensicID(id []byte) (int, time.Time) {
	c1 := bytes.IndexByte(id, ':')
	if c1 <= 0 {
		return 0, time.Time{}
	}
	pid, ok := digits(id[:c1])
	if !ok || pid <= 0 || pid > 1<<22 {
		return 0, time.Time{}
	}
	rest := id[c1+1:]
	c2 := bytes.IndexByte(rest, ':')
	if c2 <= 0 || c2 > 16 {
		return pid, time.Time{}
	}
	sec, err := strconv.ParseUint(string(rest[:c2]), 16, 63)
	if err != nil || sec > 1<<40 {
		return pid, time.Time{}
	}
	return pid, time.Unix(int64(sec), 0)
}

// forensicUnescape decodes the %XX escapes mod_log_forensic writes
// (for '|', ':', '%', control and non-ASCII bytes); anything else is kept.
func forensicUnescape(b []byte) []byte {
	if bytes.IndexByte(b, '%') < 0 {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '%' && i+2 < len(b) {
			if v, err := strconv.ParseUint(string(b[i+1:i+3]), 16, 8); err == nil {
				out = append(out, byte(v))
				i += 2
				continue
			}
		}
		out = append(out, b[i])
	}
	return out
}

// isForensicLine reports whether l has the shape of a forensic log's
// request-start line.
func isForensicLine(l []byte) bool {
	if len(l) < 8 || l[0] != '+' {
		return false
	}
	bar := bytes.IndexByte(l, '|')
	if bar < 2 || bar-1 > maxForensicID || bytes.IndexByte(l[:bar], ' ') >= 0 {
		return false
	}
	sp := bytes.IndexByte(l[bar+1:], ' ')
	return sp > 0 && sp < 32
}
