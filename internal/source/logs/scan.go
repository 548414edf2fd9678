package logs

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"
)

// Format is the kind of log a file holds; it selects the keywords the
// scanner pre-filters on.
type Format string

// Log formats.
const (
	FormatAuto        Format = "auto"
	FormatNginxError  Format = "nginx-error"
	FormatNginxAccess Format = "access" // nginx or Apache combined access log
	FormatFPM         Format = "php-fpm"
	FormatSlowlog     Format = "php-fpm-slowlog"
	FormatKernel      Format = "kernel" // dmesg, kern.log, syslog, journalctl text or JSON
	FormatApacheError Format = "apache-error"
	// FormatApacheForensic is mod_log_forensic's log: "+ID|request|headers"
	// when a request starts, "-ID" when it ends.
	FormatApacheForensic Format = "apache-forensic"
	// FormatMixed is used when a file's format is not recognised: every
	// keyword applies.
	FormatMixed Format = "mixed"
)

func kw(s ...string) [][]byte {
	out := make([][]byte, len(s))
	for i, x := range s {
		out[i] = []byte(x)
	}
	return out
}

var (
	// nginx: only upstream failures a dying worker (or a dead pool) causes.
	kwNginx  = kw("prematurely", "reset by peer", "connect() to", "upstream timed out")
	kwAccess = kw(`" 50`)
	// PHP-FPM logs everything of interest at WARNING or above; the NOTICE
	// lines (child started, exited with code 0, graceful SIGQUIT) are noise.
	kwFPM    = kw("WARNING: ", "ERROR: ", "ALERT: ")
	kwKernel = kw("segfault at", "traps:", "] trap ", "general protection", "dumped core")
	kwApache = kw("AH01075", "AH01067", "AH01068", "AH00957", " exit signal ")
	// syslog and the journal may carry any source.
	kwMixed = slices.Concat(kwKernel, kw("[pool ", "failed processes", "failed to ptrace"), kwNginx, kw("AH0", " exit signal "))
)

// finder searches for one keyword by its rarest byte: the byte of the
// keyword least frequent in a sample of the file is located with
// bytes.IndexByte (vectorised), and only there is the keyword compared.
// This keeps the cost per ordinary line near zero even when the keyword's
// first byte is common.
type finder struct {
	kw  []byte
	off int  // offset of the rare byte in kw
	b   byte // the rare byte
}

// newFinders picks each keyword's rarest byte according to sample.
func newFinders(kws [][]byte, sample []byte) []finder {
	var hist [256]int
	if len(sample) > 256<<10 {
		sample = sample[:256<<10]
	}
	for _, c := range sample {
		hist[c]++
	}
	out := make([]finder, len(kws))
	for i, k := range kws {
		best := 0
		for j := range k {
			if hist[k[j]] < hist[k[best]] {
				best = j
			}
		}
		out[i] = finder{kw: k, off: best, b: k[best]}
	}
	return out
}

// index returns the first position of f.kw in s, or -1.
func (f *finder) index(s []byte) int {
	n := len(f.kw)
	i := 0
	for i+n <= len(s) {
		j := bytes.IndexByte(s[i+f.off:len(s)-n+f.off+1], f.b)
		if j < 0 {
			return -1
		}
		p := i + j
		if bytes.Equal(s[p:p+n], f.kw) {
			return p
		}
		i = p + 1
	}
	return -1
}

// keywords returns the pre-filter keywords of a format; nil means every
// line is parsed.
func keywords(f Format) [][]byte {
	switch f {
	case FormatNginxError:
		return kwNginx
	case FormatNginxAccess:
		return kwAccess
	case FormatFPM:
		return kwFPM
	case FormatKernel, FormatMixed, FormatAuto:
		return kwMixed
	case FormatApacheError:
		return kwApache
	}
	return nil
}

// chunkSize is the scanner's read size. Hits are searched over a whole
// chunk with bytes.Index (vectorised), so ordinary lines are never looked at
// one by one and cost no allocation.
const chunkSize = 1 << 20

// lineScanner streams a reader in large chunks and calls fn for each line
// that contains one of the keywords (every line when keywords is nil), in
// file order, with its 1-based line number. Lines longer than a chunk are
// passed truncated.
type lineScanner struct {
	buf     []byte
	hits    []int
	finders []finder
	// Bytes and Lines count what was read.
	Bytes, Lines int64
}

func newLineScanner(size int) *lineScanner {
	if size <= 0 {
		size = chunkSize
	}
	return &lineScanner{buf: make([]byte, size)}
}

func (s *lineScanner) scan(r io.Reader, keywords [][]byte, fn func(line []byte, lineNo int64)) error {
	carry := 0
	skipping := false
	line := int64(1)
	for {
		n := 0
		var rerr error
		for carry+n < len(s.buf) {
			m, err := r.Read(s.buf[carry+n:])
			n += m
			if err != nil {
				rerr = err
				break
			}
		}
		s.Bytes += int64(n)
		// Any error ends the stream; what was read before it is still used
		// (a truncated .gz keeps its readable head).
		eof := rerr != nil
		var final error
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			final = fmt.Errorf("read: %w", rerr)
		}
		data := s.buf[:carry+n]
		if skipping {
			nl := bytes.IndexByte(data, '\n')
			if nl < 0 {
				carry = 0
				if eof {
					return final
				}
				continue
			}
			data = data[nl+1:]
			skipping = false
		}
		end := len(data)
		if !eof {
			if nl := bytes.LastIndexByte(data, '\n'); nl >= 0 {
				end = nl + 1
			} else if len(data) == len(s.buf) {
				skipping = true // a line longer than the buffer: keep its head only
			} else {
				end = 0 // a partial line after skipping: carry it over
			}
		}
		chunk := data[:end]
		if s.finders == nil && keywords != nil {
			s.finders = newFinders(keywords, data)
		}
		if len(chunk) > 0 {
			s.chunk(chunk, keywords, line, fn)
		}
		nls := int64(bytes.Count(chunk, []byte{'\n'}))
		line += nls
		s.Lines += nls
		if skipping {
			line++
			s.Lines++
		}
		rest := copy(s.buf, data[end:])
		carry = rest
		if eof {
			if carry > 0 {
				if s.finders == nil && keywords != nil {
					s.finders = newFinders(keywords, s.buf[:carry])
				}
				s.chunk(s.buf[:carry], keywords, line, fn)
				s.Lines++
			}
			return final
		}
	}
}

// chunk finds the keyword lines of one chunk (whole lines only, except a
// final unterminated line).
func (s *lineScanner) chunk(c []byte, keywords [][]byte, base int64, fn func([]byte, int64)) {
	if keywords == nil {
		ln := base
		for len(c) > 0 {
			e := bytes.IndexByte(c, '\n')
			if e < 0 {
				fn(c, ln)
				return
			}
			fn(c[:e], ln)
			c = c[e+1:]
			ln++
		}
		return
	}
	s.hits = s.hits[:0]
	for fi := range s.finders {
		f := &s.finders[fi]
		i := 0
		for i < len(c) {
			j := f.index(c[i:])
			if j < 0 {
				break
			}
			p := i + j
			ls := bytes.LastIndexByte(c[:p], '\n') + 1
			s.hits = append(s.hits, ls)
			le := bytes.IndexByte(c[p:], '\n')
			if le < 0 {
				break
			}
			i = p + le + 1
		}
	}
	if len(s.hits) == 0 {
		return
	}
	slices.Sort(s.hits)
	s.hits = slices.Compact(s.hits)
	prev, ln := 0, base
	for _, h := range s.hits {
		ln += int64(bytes.Count(c[prev:h], []byte{'\n'}))
		prev = h
		e := bytes.IndexByte(c[h:], '\n')
		if e < 0 {
			e = len(c) - h
		}
		fn(c[h:h+e], ln)
	}
}

// sniff guesses the format of a file from its first lines.
func sniff(head []byte) Format {
	counts := map[Format]int{}
	for n := 0; n < 64 && len(head) > 0; n++ {
		e := bytes.IndexByte(head, '\n')
		var l []byte
		if e < 0 {
			l, head = head, nil
		} else {
			l, head = head[:e], head[e+1:]
		}
		if f := lineFormat(l); f != "" {
			counts[f]++
		}
	}
	best, bn := FormatMixed, 0
	for f, n := range counts {
		if n > bn || (n == bn && f < best) {
			best, bn = f, n
		}
	}
	return best
}

// lineFormat classifies one line by its shape (not its content).
func lineFormat(l []byte) Format {
	l = bytes.TrimRight(l, "\r")
	if len(l) < 20 {
		return ""
	}
	if isForensicLine(l) {
		return FormatApacheForensic
	}
	switch {
	case l[0] == '{':
		return FormatKernel
	case l[0] == '[':
		if _, n, ok := parseFPMTime(l[1:], time.UTC); ok {
			rest := l[1+n:]
			if bytes.HasPrefix(rest, []byte("]  [pool ")) && bytes.Contains(rest, []byte("] pid ")) {
				return FormatSlowlog
			}
			return FormatFPM
		}
		if bytes.HasPrefix(l, []byte("[0x")) || bytes.HasPrefix(l, []byte("script_filename")) {
			return FormatSlowlog
		}
		if _, _, ok := parseUptime(l); ok {
			return FormatKernel
		}
		if _, n, ok := parseCtime(l[1:], time.UTC); ok {
			if 3+n < len(l) && l[2+n] == ' ' && l[3+n] == '[' {
				return FormatApacheError
			}
			return FormatKernel
		}
	case bytes.HasPrefix(l, []byte("script_filename = ")):
		return FormatSlowlog
	}
	if _, ok := parseNginxTime(l, time.UTC); ok {
		return FormatNginxError
	}
	if _, _, ok := parseISO(l, time.UTC); ok {
		return FormatKernel
	}
	if _, ok := month(l); ok && l[3] == ' ' {
		return FormatKernel
	}
	if lb := bytes.IndexByte(l, '['); lb > 0 && lb < 64 && lb+27 < len(l) && l[lb+27] == ']' {
		if _, ok := parseAccessTime(l[lb+1 : lb+27]); ok {
			return FormatNginxAccess
		}
	}
	return ""
}
