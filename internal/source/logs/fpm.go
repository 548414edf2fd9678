package logs

import (
	"bytes"
	"strconv"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// parseFPM parses a PHP-FPM master log line:
//
//	[26-Nov-2026 19:27:44] WARNING: [pool www] child 14502 exited on signal 11 (SIGSEGV - core dumped) after 0.942805 seconds from start
//
// The "[date] " prefix is optional (FPM logging to syslog omits it); t is
// used then.
func parseFPM(line []byte, loc *time.Location) (Event, bool) {
	if len(line) < 22 || line[0] != '[' {
		return Event{}, false
	}
	t, n, ok := parseFPMTime(line[1:], loc)
	if !ok || 1+n >= len(line) || line[1+n] != ']' {
		return Event{}, false
	}
	ev, ok := parseFPMMessage(bytes.TrimLeft(line[2+n:], " "))
	if !ok {
		return Event{}, false
	}
	ev.Time = t
	return ev, true
}

// fpmLevels are zlog's level names.
var fpmLevels = [][]byte{[]byte("DEBUG: "), []byte("NOTICE: "), []byte("WARNING: "), []byte("ERROR: "), []byte("ALERT: "), []byte("SYSTEM: ")}

// parseFPMMessage parses "LEVEL: [pool P] child N ..." (also without the level).
func parseFPMMessage(m []byte) (Event, bool) {
	for _, l := range fpmLevels {
		if bytes.HasPrefix(m, l) {
			m = m[len(l):]
			break
		}
	}
	ev := Event{Source: SrcFPM}
	if bytes.HasPrefix(m, []byte("[pool ")) {
		e := bytes.IndexByte(m, ']')
		if e < 0 {
			return Event{}, false
		}
		ev.Pool = string(bounded(m[6:e], 128))
		m = bytes.TrimLeft(m[e+1:], " ")
	}
	switch {
	case bytes.HasPrefix(m, []byte("child ")):
		return parseFPMChild(m[6:], ev)
	case bytes.Contains(m, []byte("pm.max_children")):
		ev.Kind = KindMaxChildren
	case bytes.HasPrefix(m, []byte("failed to ptrace")):
		ev.Kind = KindPtraceFailed
		if i := bytes.Index(m, []byte(") pid ")); i >= 0 {
			ev.PID = leadingInt(m[i+6:])
		} else if i := bytes.Index(m, []byte(") child ")); i >= 0 {
			ev.PID = leadingInt(m[i+8:])
		}
	case bytes.Contains(m, []byte("failed processes threshold")):
		ev.Kind = KindEmergency
	default:
		return Event{}, false
	}
	ev.Message = string(bounded(m, 1024))
	return ev, true
}

// parseFPMChild parses what follows "child ".
func parseFPMChild(m []byte, ev Event) (Event, bool) {
	pid := leadingInt(m)
	if pid <= 0 {
		return Event{}, false
	}
	ev.PID = pid
	rest := m[intLen(m):]
	switch {
	case bytes.HasPrefix(rest, []byte(" exited on signal ")):
		ev.Kind = KindChildSignal
		r := rest[18:]
		ev.Signal = leadingInt(r)
		if o := bytes.IndexByte(r, '('); o >= 0 {
			if c := bytes.IndexByte(r[o:], ')'); c > 0 {
				in := r[o+1 : o+c]
				ev.CoreDumped = bytes.Contains(in, []byte("core dumped"))
				if d := bytes.Index(in, []byte(" - ")); d >= 0 {
					in = in[:d]
				}
				ev.SignalName = string(bounded(in, 16))
			}
		}
		ev.Lifetime = afterSeconds(r)
		if ev.SignalName == "" {
			ev.SignalName = signals.Name(ev.Signal)
		}
	case bytes.HasPrefix(rest, []byte(" exited with code ")):
		ev.Kind = KindChildExit
		ev.ExitCode = leadingInt(rest[18:])
		ev.Lifetime = afterSeconds(rest)
	case bytes.HasPrefix(rest, []byte(" said into std")):
		ev.Kind = KindChildStderr
		r := rest[14:]
		if q := bytes.IndexByte(r, '"'); q >= 0 {
			r = r[q+1:]
			if e := bytes.LastIndexByte(r, '"'); e >= 0 {
				r = r[:e]
			}
		}
		ev.Message = string(bounded(r, 2048))
		return ev, true
	case bytes.HasPrefix(rest, []byte(", script '")):
		r := rest[10:]
		if e := bytes.Index(r, []byte("' (request: \"")); e >= 0 {
			ev.Script = string(bounded(r[:e], 1024))
			rq := r[e+13:]
			if q := quoteEnd(rq); q >= 0 {
				ev.Method, ev.URI = splitRequest(rq[:q])
				rq = rq[q+1:]
			}
			r = rq
		}
		switch {
		case bytes.Contains(r, []byte("execution timed out")):
			ev.Kind = KindExecTimeout
		case bytes.Contains(r, []byte("executing too slow")):
			ev.Kind = KindSlowRequest
		default:
			return Event{}, false
		}
		if o := bytes.Index(r, []byte(" (")); o >= 0 {
			if v, err := strconv.ParseFloat(string(bounded(firstWord(r[o+2:]), 32)), 64); err == nil {
				ev.RequestTime = v
			}
		}
	default:
		return Event{}, false
	}
	ev.Message = string(bounded(m, 1024))
	return ev, true
}

func firstWord(b []byte) []byte {
	if i := bytes.IndexAny(b, " )"); i >= 0 {
		return b[:i]
	}
	return b
}

// afterSeconds parses "after 0.942805 seconds".
func afterSeconds(b []byte) float64 {
	i := bytes.Index(b, []byte(" after "))
	if i < 0 {
		return 0
	}
	v, err := strconv.ParseFloat(string(bounded(firstWord(b[i+7:]), 32)), 64)
	if err != nil {
		return 0
	}
	return v
}

// leadingInt parses the decimal number at the start of b (0 if none, capped).
func leadingInt(b []byte) int {
	n := 0
	for i, c := range b {
		if c < '0' || c > '9' || i >= 12 {
			break
		}
		n = n*10 + int(c-'0')
	}
	return n
}

func intLen(b []byte) int {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}

// slowlogParser assembles FPM slowlog entries, which span several lines:
//
//	[26-Nov-2026 19:27:44]  [pool www] pid 14502
//	script_filename = /var/www/index.php
//	[0x00007f3a8c213f10] sleep() /var/www/index.php:3
//	[0x00007f3a8c213e80] {main}() /var/www/index.php:10
type slowlogParser struct {
	cur  *Event
	loc  *time.Location
	done []Event
}

// maxSlowFrames bounds the frames kept per slowlog entry.
const maxSlowFrames = 256

// line feeds one line; completed entries accumulate in done.
func (p *slowlogParser) line(b []byte, file string, lineNo int64) {
	if len(b) > 0 && b[0] == '[' {
		if t, n, ok := parseFPMTime(b[1:], p.loc); ok && 1+n < len(b) && b[1+n] == ']' {
			rest := bytes.TrimLeft(b[2+n:], " ")
			ev := Event{Source: SrcFPMSlowlog, Kind: KindSlowRequest, Time: t, File: file, Line: lineNo, Text: string(bounded(b, 512))}
			if bytes.HasPrefix(rest, []byte("[pool ")) {
				if e := bytes.IndexByte(rest, ']'); e > 0 {
					ev.Pool = string(bounded(rest[6:e], 128))
					rest = bytes.TrimLeft(rest[e+1:], " ")
				}
			}
			if bytes.HasPrefix(rest, []byte("pid ")) {
				ev.PID = leadingInt(rest[4:])
				p.flush()
				p.cur = &ev
				return
			}
		}
		if p.cur != nil && len(b) > 3 && b[1] == '0' && b[2] == 'x' && len(p.cur.Stack) < maxSlowFrames {
			p.cur.Stack = append(p.cur.Stack, parseSlowFrame(b))
		}
		return
	}
	if p.cur == nil {
		return
	}
	if bytes.HasPrefix(b, []byte("script_filename = ")) {
		p.cur.Script = string(bounded(b[18:], 1024))
	}
}

// parseSlowFrame parses "[0x00007f3a8c213f10] sleep() /var/www/index.php:3".
func parseSlowFrame(b []byte) SlowFrame {
	var f SlowFrame
	e := bytes.IndexByte(b, ']')
	if e < 0 {
		f.Function = string(bounded(b, 256))
		return f
	}
	f.Addr = hexField[crash.Addr](bytes.TrimPrefix(b[1:e], []byte("0x")))
	rest := bytes.TrimLeft(b[e+1:], " ")
	if p := bytes.Index(rest, []byte("() ")); p >= 0 {
		f.Function = string(bounded(rest[:p], 256))
		loc := rest[p+3:]
		if c := bytes.LastIndexByte(loc, ':'); c > 0 {
			if n, ok := digits(loc[c+1:]); ok {
				f.Line = n
				loc = loc[:c]
			}
		}
		f.File = string(bounded(loc, 1024))
	} else {
		f.Function = string(bounded(rest, 256))
	}
	return f
}

func (p *slowlogParser) flush() {
	if p.cur != nil {
		p.done = append(p.done, *p.cur)
		p.cur = nil
	}
}
