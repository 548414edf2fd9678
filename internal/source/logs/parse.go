package logs

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"

	"github.com/coroner-dev/coroner/internal/signals"
)

// lineParser parses lines of one file. It keeps the little state that
// parsing needs: the time zone of zone-less timestamps, the year of
// year-less syslog timestamps, and the slowlog entry being assembled.
type lineParser struct {
	loc  *time.Location
	ys   *yearState
	slow *slowlogParser
}

func newLineParser(loc *time.Location, ref time.Time) *lineParser {
	return &lineParser{loc: loc, ys: newYearState(ref.In(loc)), slow: &slowlogParser{loc: loc}}
}

// maxTextLen bounds the raw line kept in an Event.
const maxTextLen = 1024

// parse parses one line (without its newline). It returns false for lines
// that are not of interest or not understood; it never panics.
func (p *lineParser) parse(line []byte) (Event, bool) {
	line = bytes.TrimRight(line, "\r")
	if len(line) < 8 {
		return Event{}, false
	}
	ev, ok := p.parseInner(line)
	if ok {
		ev.Text = string(bounded(line, maxTextLen))
	}
	return ev, ok
}

func (p *lineParser) parseInner(line []byte) (Event, bool) {
	c := line[0]
	switch {
	case c == '{':
		return parseJournalJSON(line)
	case c == '[':
		if len(line) > 3 && line[1] >= '0' && line[1] <= '9' && line[3] == '-' {
			if ev, ok := parseFPM(line, p.loc); ok {
				return ev, true
			}
		}
		if up, n, ok := parseUptime(line); ok {
			ev, ok := parseMessage(line[n:], p.loc)
			if ok && ev.Time.IsZero() {
				ev.Uptime = up
				ev.TimeApprox = true
			}
			return ev, ok
		}
		if t, n, ok := parseCtime(line[1:], p.loc); ok && 1+n < len(line) && line[1+n] == ']' {
			rest := bytes.TrimLeft(line[2+n:], " ")
			var ev Event
			if len(rest) > 0 && rest[0] == '[' {
				ev, ok = parseApacheRest(rest)
			} else {
				ev, ok = parseMessage(rest, p.loc)
			}
			if ok {
				ev.Time = t
			}
			return ev, ok
		}
	case c >= '0' && c <= '9':
		if line[4] == '/' {
			if ev, ok := parseNginxError(line, p.loc); ok {
				return ev, true
			}
		}
		if line[4] == '-' {
			if t, n, ok := parseISO(line, p.loc); ok && n < len(line) && line[n] == ' ' {
				return p.afterStamp(line[n+1:], t)
			}
		}
	default:
		if _, ok := month(line); ok && len(line) > 16 && line[3] == ' ' {
			if t, ok := parseSyslogTime(line, p.loc, p.ys); ok && line[15] == ' ' {
				return p.afterStamp(line[16:], t)
			}
		}
	}
	if ev, ok := parseAccess(line); ok {
		return ev, true
	}
	// A message without a timestamp (dmesg -t, journalctl -o cat).
	return parseMessage(line, p.loc)
}

// afterStamp handles what follows a leading wall-clock timestamp: either a
// syslog "host tag[pid]: message" or, for dmesg --time-format=iso, the
// kernel message itself.
func (p *lineParser) afterStamp(rest []byte, t time.Time) (Event, bool) {
	sp := bytes.IndexByte(rest, ' ')
	if sp <= 0 {
		return Event{}, false
	}
	msg := rest
	if rest[sp-1] != ':' {
		// syslog: host, then tag
		r := rest[sp+1:]
		te := bytes.Index(r, []byte(": "))
		if te < 0 {
			return Event{}, false
		}
		msg = r[te+2:]
	}
	var up float64
	hasUp := false
	if u, n, ok := parseUptime(msg); ok {
		up, hasUp, msg = u, true, msg[n:]
	}
	ev, ok := parseMessage(msg, p.loc)
	if !ok {
		return Event{}, false
	}
	if ev.Time.IsZero() {
		ev.Time = t
	}
	if hasUp {
		ev.Uptime = up
	}
	return ev, true
}

// parseMessage parses a message stripped of syslog framing; it recognises
// kernel, systemd-coredump, PHP-FPM, nginx and Apache messages.
func parseMessage(m []byte, loc *time.Location) (Event, bool) {
	switch {
	case bytes.Contains(m, []byte("segfault at ")), bytes.Contains(m, []byte("] general protection")),
		bytes.Contains(m, []byte("] trap ")):
		return parseKernelMessage(m)
	case bytes.Contains(m, []byte("dumped core")):
		return parseCoredumpMessage(m)
	case bytes.Contains(m, []byte("[pool ")), bytes.Contains(m, []byte("failed processes threshold")),
		bytes.Contains(m, []byte("failed to ptrace")):
		if len(m) > 0 && m[0] == '[' {
			if ev, ok := parseFPM(m, loc); ok {
				return ev, true
			}
		}
		return parseFPMMessage(m)
	case len(m) > 20 && m[4] == '/' && m[7] == '/':
		return parseNginxError(m, loc)
	case bytes.HasPrefix(m, []byte("[error] ")), bytes.HasPrefix(m, []byte("[crit] ")), bytes.HasPrefix(m, []byte("[warn] ")):
		e := bytes.IndexByte(m, ']')
		return parseNginxMessage(m[e+1:])
	case bytes.Contains(m, []byte("AH0")), bytes.Contains(m, []byte(" exit signal ")) && bytes.Contains(m, []byte("child pid ")):
		return parseApacheRest(m)
	}
	return Event{}, false
}

// journalEntry holds the fields of `journalctl -o json` used here. MESSAGE
// may be a string or an array of bytes.
type journalEntry struct {
	Message     json.RawMessage `json:"MESSAGE"`
	Realtime    string          `json:"__REALTIME_TIMESTAMP"`
	Monotonic   string          `json:"_SOURCE_MONOTONIC_TIMESTAMP"`
	Transport   string          `json:"_TRANSPORT"`
	PID         string          `json:"_PID"`
	CorePID     string          `json:"COREDUMP_PID"`
	CoreSignal  string          `json:"COREDUMP_SIGNAL"`
	CoreComm    string          `json:"COREDUMP_COMM"`
	CoreFile    string          `json:"COREDUMP_FILENAME"`
	CoreTime    string          `json:"COREDUMP_TIMESTAMP"`
	CoreExe     string          `json:"COREDUMP_EXE"`
	SyslogIdent string          `json:"SYSLOG_IDENTIFIER"`
}

// maxJournalLine bounds the JSON lines decoded.
const maxJournalLine = 4 << 20

// parseJournalJSON parses one line of `journalctl -o json`.
func parseJournalJSON(line []byte) (Event, bool) {
	if len(line) > maxJournalLine {
		return Event{}, false
	}
	var je journalEntry
	if err := json.Unmarshal(line, &je); err != nil {
		return Event{}, false
	}
	var msg []byte
	if len(je.Message) > 0 && je.Message[0] == '"' {
		var s string
		if json.Unmarshal(je.Message, &s) != nil {
			return Event{}, false
		}
		msg = []byte(s)
	} else if len(je.Message) > 0 && je.Message[0] == '[' {
		var bs []byte
		var arr []int
		if json.Unmarshal(je.Message, &arr) != nil {
			return Event{}, false
		}
		for _, v := range arr {
			bs = append(bs, byte(v))
		}
		msg = bs
	}
	var t time.Time
	if us, err := strconv.ParseInt(je.Realtime, 10, 64); err == nil {
		t = time.UnixMicro(us)
	}
	var ev Event
	var ok bool
	if je.CorePID != "" {
		ev = Event{Source: SrcCoredump, Kind: KindCoredump, CoreDumped: true}
		ev.PID, _ = strconv.Atoi(je.CorePID)
		ev.Signal, _ = strconv.Atoi(je.CoreSignal)
		ev.SignalName = signals.Name(ev.Signal)
		ev.Comm = je.CoreComm
		ev.Exe = string(bounded([]byte(je.CoreExe), 1024))
		ev.CoreFile = je.CoreFile
		if m, ok2 := parseCoredumpMessage(msg); ok2 {
			ev.Message, ev.BuildIDs = m.Message, m.BuildIDs
		}
		if us, err := strconv.ParseInt(je.CoreTime, 10, 64); err == nil {
			t = time.UnixMicro(us)
		}
		ok = ev.PID > 0
	} else {
		if _, n, ok2 := parseUptime(msg); ok2 {
			msg = msg[n:]
		}
		ev, ok = parseMessage(msg, time.Local)
		if ok && je.Transport == "kernel" {
			if us, err := strconv.ParseInt(je.Monotonic, 10, 64); err == nil {
				ev.Uptime = float64(us) / 1e6
			}
		}
	}
	if !ok {
		return Event{}, false
	}
	if ev.Time.IsZero() {
		ev.Time = t
	}
	return ev, true
}
