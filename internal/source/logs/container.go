package logs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// containerWrap is how a container runtime wraps the lines a container
// writes to its stdout and stderr.
type containerWrap int

const (
	wrapNone containerWrap = iota
	// wrapDocker: Docker's json-file driver, one JSON object a line:
	// {"log":"LINE\n","stream":"stderr","time":"2026-12-06T11:12:44.1Z"};
	// a line longer than 16 KiB is split over objects whose "log" does
	// not end in a newline.
	wrapDocker
	// wrapCRI: the Kubernetes CRI log format (/var/log/pods):
	// "2026-12-06T11:12:44.123456789Z stderr F LINE", tag P for a part of
	// a line continued on the next one.
	wrapCRI
)

// maxWrappedLine bounds one line of a container log (a longer one is cut).
const maxWrappedLine = 1 << 20

// sniffWrap recognises a container runtime's log format by its first line.
func sniffWrap(head []byte) containerWrap {
	line := head
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	if bytes.HasPrefix(line, []byte(`{"log":`)) {
		return wrapDocker
	}
	if _, _, ok := criLine(line); ok {
		return wrapCRI
	}
	return wrapNone
}

// criLine splits a CRI log line into its message and whether the message
// ends a line (tag F) rather than continuing (tag P).
func criLine(line []byte) (msg []byte, full bool, ok bool) {
	// TIME STREAM TAG MSG, TIME RFC 3339 starting with a 4-digit year.
	sp := bytes.IndexByte(line, ' ')
	if sp < 20 || line[4] != '-' || line[10] != 'T' {
		return nil, false, false
	}
	rest := line[sp+1:]
	switch {
	case bytes.HasPrefix(rest, []byte("stdout ")), bytes.HasPrefix(rest, []byte("stderr ")):
		rest = rest[7:]
	default:
		return nil, false, false
	}
	if len(rest) < 1 || (rest[0] != 'F' && rest[0] != 'P') || (len(rest) > 1 && rest[1] != ' ') {
		return nil, false, false
	}
	full = rest[0] == 'F'
	if len(rest) > 2 {
		msg = rest[2:]
	}
	return msg, full, true
}

// unwrapLine returns the line a container wrote from one line of its
// runtime's log, or ok false when it is not such a line.
func unwrapLine(line []byte) (out []byte, ok bool) {
	line = bytes.TrimRight(line, "\r\n")
	if bytes.HasPrefix(line, []byte(`{"log":`)) {
		var e struct {
			Log string `json:"log"`
		}
		if json.Unmarshal(line, &e) != nil {
			return nil, false
		}
		return []byte(e.Log), true
	}
	if msg, _, ok := criLine(line); ok {
		return msg, true
	}
	return nil, false
}

// unwrapper reads a container runtime's log as the plain lines the
// container wrote (nginx's and PHP-FPM's own lines, with their own
// timestamps).
type unwrapper struct {
	br   *bufio.Reader
	wrap containerWrap
	out  []byte // unwrapped bytes not yet returned
	err  error
}

func newUnwrapper(r io.Reader, wrap containerWrap) *unwrapper {
	return &unwrapper{br: bufio.NewReaderSize(r, 64<<10), wrap: wrap}
}

func (u *unwrapper) Read(p []byte) (int, error) {
	for len(u.out) == 0 {
		if u.err != nil {
			return 0, u.err
		}
		line, err := u.readLine()
		if err != nil {
			u.err = err
		}
		if line != nil {
			u.out = append(u.out[:0], u.unwrap(line)...)
		}
	}
	n := copy(p, u.out)
	u.out = u.out[n:]
	return n, nil
}

// readLine reads one line, cut at maxWrappedLine.
func (u *unwrapper) readLine() ([]byte, error) {
	var long []byte
	for {
		b, err := u.br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			if len(long) < maxWrappedLine {
				long = append(long, b...)
			}
			continue
		}
		if long != nil {
			if len(long) < maxWrappedLine {
				long = append(long, b...)
			}
			b = long
		}
		if len(b) == 0 {
			return nil, err
		}
		return b, err
	}
}

func (u *unwrapper) unwrap(line []byte) []byte {
	line = bytes.TrimRight(line, "\r\n")
	switch u.wrap {
	case wrapDocker:
		var e struct {
			Log string `json:"log"`
		}
		if json.Unmarshal(line, &e) == nil {
			return []byte(e.Log) // ends in "\n" unless continued
		}
	case wrapCRI:
		if msg, full, ok := criLine(line); ok {
			if full {
				return append(msg, '\n')
			}
			return msg
		}
	}
	return append(line, '\n') // not wrapped: passed as it is
}

// onlyFormat returns the format of the lines of head when they all have
// the same one, else "" (a container running nginx and PHP-FPM writes
// both into one log).
func onlyFormat(head []byte) Format {
	var only Format
	for n := 0; n < 256 && len(head) > 0; n++ {
		l := head
		if e := bytes.IndexByte(head, '\n'); e >= 0 {
			l, head = head[:e], head[e+1:]
		} else {
			head = nil
		}
		f := lineFormat(l)
		switch {
		case f == "":
		case only == "":
			only = f
		case f != only:
			return ""
		}
	}
	return only
}
