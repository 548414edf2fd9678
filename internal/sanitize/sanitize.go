// Package sanitize makes text that came from a core, a log or a FastCGI
// reply safe to show: on a terminal, in Markdown, in HTML. Every string
// coroner prints was written by someone else (a request URI, a command
// line, a file name, a log line); one of them holding ESC[2J, an OSC title
// sequence, a carriage return or a newline could clear the screen, retitle
// the terminal, or forge lines of a report. Control characters are shown
// escaped (\x1b, \n), never emitted.
//
// Text escapes one string; Copy returns a deep copy of a value (a report,
// a log result) with every string escaped, so that renderers can compose
// lines freely; Writer is the last guard on a command's output. Markdown
// output adds MarkdownText and CodeSpan; HTML output relies on html/template
// for markup and on Copy for control characters.
package sanitize

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// unsafe reports whether r must not reach a terminal as is: C0 controls
// (newline and tab included: a field is one line), DEL, C1 controls (U+0080
// to U+009F: 8-bit CSI and OSC), and the invisible characters that reorder
// or hide text (bidirectional overrides and isolates, zero-width marks,
// line and paragraph separators, the byte-order mark).
func unsafe(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r >= 0x200b && r <= 0x200f, r >= 0x2028 && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0xfeff:
		return true
	}
	return false
}

// Text returns s with every unsafe character and every byte that is not
// valid UTF-8 escaped the way Go writes them in a string literal: \n, \r,
// \t, \x1b, \u202e. A string with nothing to escape is returned as is.
func Text(s string) string {
	i := firstUnsafe(s)
	if i < 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unsafe(r):
			writeEscaped(&b, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func writeEscaped(b *strings.Builder, r rune) {
	switch r {
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	default:
		if r < 0x80 {
			fmt.Fprintf(b, `\x%02x`, r)
		} else {
			fmt.Fprintf(b, `\u%04x`, r)
		}
	}
}

// firstUnsafe returns the index of the first byte of s Text must escape,
// or -1.
func firstUnsafe(s string) int {
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		if c < 0x80 {
			return i
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size <= 1) || unsafe(r) {
			return i
		}
		i += size
	}
	return -1
}

// Lines returns s with unsafe characters escaped except the newlines
// that separate its lines (a multi-line message such as a FastCGI stderr
// block, shown as lines).
func Lines(s string) string {
	parts := strings.Split(s, "\n")
	for i, p := range parts {
		parts[i] = Text(p)
	}
	return strings.Join(parts, "\n")
}

// MarkdownText returns s escaped as inline Markdown text outside code:
// control characters escaped (Text), and the characters that start markup
// or HTML (<, >, &, *, _, `, [, ], |, \, #, !) backslash-escaped or written
// as entities, so that a log line cannot open a tag, a link or a table.
func MarkdownText(s string) string {
	s = Text(s)
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\\', '`', '*', '_', '[', ']', '|', '#', '!', '~':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// CodeSpan returns s as a Markdown code span: control characters escaped,
// delimited by more backticks than any run of backticks inside it (so the
// span cannot be closed early), padded with a space when s starts or ends
// with a backtick.
func CodeSpan(s string) string {
	s = Text(s)
	fence := strings.Repeat("`", longestRun(s, '`')+1)
	pad := ""
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") || s == "" {
		pad = " "
	}
	return fence + pad + s + pad + fence
}

// CodeFence returns the fence for a Markdown code block holding lines: a
// run of backticks longer than any in them (at least three).
func CodeFence(lines ...string) string {
	n := 2
	for _, l := range lines {
		n = max(n, longestRun(l, '`'))
	}
	return strings.Repeat("`", n+1)
}

func longestRun(s string, c byte) int {
	best, cur := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			cur++
			best = max(best, cur)
		} else {
			cur = 0
		}
	}
	return best
}

// Writer returns a writer that passes text through with every control
// character except newline and tab escaped (\u001b), as are DEL, C1
// controls, text-reordering characters and bytes that are not UTF-8: the
// last guard on a command's output, whatever a renderer forgot. The
// escapes it writes are valid inside JSON strings, and JSON never has
// such characters outside strings, so it also guards --json.
func Writer(w io.Writer) io.Writer { return &writer{w: w} }

type writer struct {
	w    io.Writer
	tail []byte // an incomplete UTF-8 sequence at the end of the last Write
	buf  bytes.Buffer
}

func (s *writer) Write(p []byte) (int, error) {
	data := p
	if len(s.tail) > 0 {
		data = append(append([]byte(nil), s.tail...), p...)
		s.tail = s.tail[:0]
	}
	if i := clean(data); i == len(data) {
		_, err := s.w.Write(data)
		return len(p), err
	}
	s.buf.Reset()
	for i := 0; i < len(data); {
		c := data[i]
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\t' {
			s.buf.WriteByte(c)
			i++
			continue
		}
		if c < 0x80 {
			fmt.Fprintf(&s.buf, `\u%04x`, c)
			i++
			continue
		}
		if !utf8.FullRune(data[i:]) && len(data)-i < utf8.UTFMax {
			s.tail = append(s.tail, data[i:]...) // completed by the next Write
			break
		}
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			fmt.Fprintf(&s.buf, `\u00%02x`, c)
		case unsafe(r):
			fmt.Fprintf(&s.buf, `\u%04x`, r)
		default:
			s.buf.Write(data[i : i+size])
		}
		i += size
	}
	_, err := s.w.Write(s.buf.Bytes())
	return len(p), err
}

// clean returns the length of the prefix of p that Writer passes as is.
func clean(p []byte) int {
	for i := 0; i < len(p); {
		c := p[i]
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\t' {
			i++
			continue
		}
		if c < 0x80 {
			return i
		}
		r, size := utf8.DecodeRune(p[i:])
		if (r == utf8.RuneError && size <= 1) || unsafe(r) {
			return i
		}
		i += size
	}
	return len(p)
}

// LogWriter returns a writer for a log.Logger: each Write is one message,
// whose control characters (newlines included) are escaped, except the
// newline that ends it.
func LogWriter(w io.Writer) io.Writer { return logWriter{w} }

type logWriter struct{ w io.Writer }

func (l logWriter) Write(p []byte) (int, error) {
	s := string(p)
	nl := strings.HasSuffix(s, "\n")
	s = Text(strings.TrimSuffix(s, "\n"))
	if nl {
		s += "\n"
	}
	_, err := io.WriteString(l.w, s)
	return len(p), err
}
