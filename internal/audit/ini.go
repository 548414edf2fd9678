package audit

import (
	"github.com/coroner-dev/coroner/internal/phpini"

	"fmt"
	"strings"
)

// INIEntry is one `key = value` line of a php.ini-style file (php.ini,
// conf.d/*.ini, php-fpm.conf and pool files all share the syntax).
type INIEntry struct {
	Section string `json:"section,omitempty"` // section the line is in ("" before any)
	Key     string `json:"key"`               // as written, e.g. "php_admin_value[memory_limit]"
	Value   string `json:"value"`             // after unquoting, boolean mapping and ${ENV} expansion
	Raw     string `json:"raw"`               // the value text as written
	File    string `json:"file"`
	Line    int    `json:"line"`
}

// INIFile is a parsed ini file. Parsing never fails: lines that cannot be
// understood become warnings, so a broken file still yields what it can.
type INIFile struct {
	Path     string
	Entries  []INIEntry
	Sections []INISection
	Warnings []string
}

// INISection records where a [section] header is and the last line that
// belongs to it, so that a fix can insert lines at the end of a pool.
type INISection struct {
	Name      string
	Line      int
	LastEntry int // line of the last entry in the section, or Line if none
}

// maxINILines bounds the number of lines looked at in one file.
const maxINILines = 200000

// ParseINI parses data as a PHP ini file named name. env supplies ${VAR}
// values; a reference to an unset variable expands to "" with a warning, as
// PHP does (without the warning).
func ParseINI(name string, data []byte, env map[string]string) *INIFile {
	f := &INIFile{Path: name}
	lines := strings.Split(string(data), "\n")
	if len(lines) > maxINILines {
		f.Warnings = append(f.Warnings, fmt.Sprintf("%s: more than %d lines, the rest is ignored", name, maxINILines))
		lines = lines[:maxINILines]
	}
	section := ""
	for i, line := range lines {
		ln := i + 1
		s := strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if s == "" || s[0] == ';' || s[0] == '#' {
			continue
		}
		if s[0] == '[' {
			end := strings.IndexByte(s, ']')
			if end < 0 {
				f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: section header without ']': %q", name, ln, clip(s)))
				continue
			}
			section = strings.TrimSpace(s[1:end])
			f.Sections = append(f.Sections, INISection{Name: section, Line: ln, LastEntry: ln})
			continue
		}
		eq := strings.IndexByte(s, '=')
		if eq < 0 {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: line without '=' ignored: %q", name, ln, clip(s)))
			continue
		}
		key := strings.TrimSpace(s[:eq])
		if key == "" {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: empty key ignored", name, ln))
			continue
		}
		raw := strings.TrimSpace(s[eq+1:])
		if c := stripComment(raw); strings.ContainsAny(c, "=") && !strings.ContainsAny(c, "\"'") {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: unquoted value with '=' (PHP stops with \"syntax error, unexpected '='\"): quote it", name, ln))
		}
		val, warn := iniValue(raw, env)
		if warn != "" {
			f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: %s", name, ln, warn))
		}
		f.Entries = append(f.Entries, INIEntry{Section: section, Key: key, Value: val, Raw: stripComment(raw), File: name, Line: ln})
		if n := len(f.Sections); n > 0 {
			f.Sections[n-1].LastEntry = ln
		}
	}
	return f
}

func clip(s string) string {
	if len(s) > 80 {
		return s[:80] + "..."
	}
	return s
}

// stripComment removes a trailing ; comment outside quotes.
func stripComment(raw string) string {
	inQ := byte(0)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case inQ != 0:
			if c == '\\' && inQ == '"' && i+1 < len(raw) {
				i++
			} else if c == inQ {
				inQ = 0
			}
		case c == '"' || c == '\'':
			inQ = c
		case c == ';':
			return strings.TrimSpace(raw[:i])
		}
	}
	return raw
}

// iniValue interprets a value the way PHP's ini scanner does, for the subset
// that matters here: quoted strings ("..." with ${VAR} and \" escapes,
// '...' raw), ${VAR} in unquoted text, trailing ; comments, and the boolean
// words (on/yes/true -> "1"; off/no/false/none/null -> "").
func iniValue(raw string, env map[string]string) (string, string) {
	raw = stripComment(raw)
	var b strings.Builder
	var warn string
	quoted := false
	expand := func(s string) string {
		var o strings.Builder
		for {
			i := strings.Index(s, "${")
			if i < 0 {
				o.WriteString(s)
				return o.String()
			}
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				o.WriteString(s)
				return o.String()
			}
			o.WriteString(s[:i])
			name := s[i+2 : i+j]
			v, ok := env[name]
			if !ok {
				warn = fmt.Sprintf("${%s} is not set in the environment known to coroner; treated as empty", name)
			}
			o.WriteString(v)
			s = s[i+j+1:]
		}
	}
	for i := 0; i < len(raw); {
		c := raw[i]
		switch c {
		case '"':
			quoted = true
			j := i + 1
			var q strings.Builder
			for j < len(raw) && raw[j] != '"' {
				if raw[j] == '\\' && j+1 < len(raw) && (raw[j+1] == '"' || raw[j+1] == '\\') {
					j++
				}
				q.WriteByte(raw[j])
				j++
			}
			if j >= len(raw) {
				warn = "unterminated double quote"
			}
			b.WriteString(expand(q.String()))
			i = j + 1
		case '\'':
			quoted = true
			j := strings.IndexByte(raw[i+1:], '\'')
			if j < 0 {
				warn = "unterminated single quote"
				b.WriteString(raw[i+1:])
				i = len(raw)
			} else {
				b.WriteString(raw[i+1 : i+1+j])
				i += j + 2
			}
		default:
			j := i
			for j < len(raw) && raw[j] != '"' && raw[j] != '\'' {
				j++
			}
			b.WriteString(expand(raw[i:j]))
			i = j
		}
	}
	v := b.String()
	if !quoted {
		v = strings.TrimSpace(v)
		switch strings.ToLower(v) {
		case "on", "yes", "true":
			v = "1"
		case "off", "no", "false", "none", "null":
			v = ""
		}
	}
	return v, warn
}

// iniBool interprets an ini value as PHP's boolean ini handlers do.
func iniBool(v string) bool { return phpini.Bool(v) }
