package audit

import (
	"fmt"
	"path"
	"strings"
)

// Limits on include expansion, against loops and huge globs.
const (
	maxIncludeDepth = 8
	maxFPMFiles     = 256
)

// fpmConfig is php-fpm.conf with its includes, split into the global
// section and the pools, in file order.
type fpmConfig struct {
	global   []INIEntry
	pools    []*fpmPool
	files    []string
	warnings []string
}

type fpmPool struct {
	name     string
	file     string
	line     int
	lastLine int
	entries  []INIEntry
}

// loadFPMConfig reads the FPM configuration at p (path in the audited
// system's view). prefix resolves relative include= patterns, as FPM does
// with its -p prefix (empty: the including file's directory, with a warning).
func loadFPMConfig(h *host, p, prefix string, env map[string]string) (*fpmConfig, error) {
	c := &fpmConfig{}
	data, err := h.readFile(p)
	if err != nil && data == nil {
		return nil, fmt.Errorf("FPM configuration: %w", err)
	}
	if err != nil {
		c.warnings = append(c.warnings, err.Error())
	}
	cur := &section{name: "global"}
	c.parse(h, p, data, prefix, env, []string{p}, cur)
	return c, nil
}

type section struct {
	name string
	pool *fpmPool
}

func (c *fpmConfig) parse(h *host, file string, data []byte, prefix string, env map[string]string, stack []string, cur *section) {
	c.files = append(c.files, file)
	ini := ParseINI(file, data, env)
	c.warnings = append(c.warnings, ini.Warnings...)
	secIdx := 0
	for _, e := range ini.Entries {
		// section changes that happened before this entry
		for secIdx < len(ini.Sections) && ini.Sections[secIdx].Line < e.Line {
			c.enter(ini.Sections[secIdx], file, cur)
			secIdx++
		}
		if strings.EqualFold(e.Key, "include") {
			c.include(h, file, e, prefix, env, stack, cur)
			continue
		}
		if cur.pool == nil {
			c.global = append(c.global, e)
			continue
		}
		// $pool expands to the pool name in every pool directive.
		e.Value = strings.ReplaceAll(e.Value, "$pool", cur.pool.name)
		cur.pool.entries = append(cur.pool.entries, e)
		if cur.pool.file == file && e.Line > cur.pool.lastLine {
			cur.pool.lastLine = e.Line
		}
	}
	for ; secIdx < len(ini.Sections); secIdx++ {
		c.enter(ini.Sections[secIdx], file, cur)
	}
}

func (c *fpmConfig) enter(s INISection, file string, cur *section) {
	if strings.EqualFold(s.Name, "global") {
		cur.name, cur.pool = "global", nil
		return
	}
	for _, p := range c.pools {
		if p.name == s.Name {
			c.warnings = append(c.warnings, fmt.Sprintf("%s:%d: pool [%s] is defined again (first in %s:%d); FPM merges the sections into one pool, the later values winning", file, s.Line, s.Name, p.file, p.line))
		}
	}
	p := &fpmPool{name: s.Name, file: file, line: s.Line, lastLine: s.Line}
	c.pools = append(c.pools, p)
	cur.name, cur.pool = s.Name, p
}

func (c *fpmConfig) include(h *host, file string, e INIEntry, prefix string, env map[string]string, stack []string, cur *section) {
	pat := e.Value
	if pat == "" {
		c.warnings = append(c.warnings, fmt.Sprintf("%s:%d: empty include", file, e.Line))
		return
	}
	if !strings.HasPrefix(pat, "/") {
		base := prefix
		if base == "" {
			base = path.Dir(file)
			c.warnings = append(c.warnings, fmt.Sprintf("%s:%d: relative include %q resolved against %s (FPM uses its -p prefix, default /usr)", file, e.Line, pat, base))
		}
		pat = path.Join(base, pat)
	}
	if len(stack) >= maxIncludeDepth {
		c.warnings = append(c.warnings, fmt.Sprintf("%s:%d: include nesting deeper than %d, %q ignored", file, e.Line, maxIncludeDepth, pat))
		return
	}
	matches := h.glob(pat)
	if len(matches) == 0 {
		c.warnings = append(c.warnings, fmt.Sprintf("%s:%d: include %q matches no file", file, e.Line, pat))
		return
	}
	for _, m := range matches {
		if contains(stack, m) {
			c.warnings = append(c.warnings, fmt.Sprintf("%s:%d: include loop: %s includes %s, which is already being read (%s); skipped", file, e.Line, file, m, strings.Join(append(stack, m), " -> ")))
			continue
		}
		if len(c.files) >= maxFPMFiles {
			c.warnings = append(c.warnings, fmt.Sprintf("%s:%d: more than %d FPM configuration files, the rest is ignored", file, e.Line, maxFPMFiles))
			return
		}
		data, err := h.readFile(m)
		if err != nil {
			c.warnings = append(c.warnings, fmt.Sprintf("%s:%d: include: %v", file, e.Line, err))
			if data == nil {
				continue
			}
		}
		// An included file continues in the section that was current
		// (FPM parses includes inline).
		c.parse(h, m, data, prefix, env, append(append([]string(nil), stack...), m), cur)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// lookup returns the last entry with key k (case-sensitive, as FPM).
func lookup(entries []INIEntry, k string) (INIEntry, bool) {
	var found INIEntry
	ok := false
	for _, e := range entries {
		if e.Key == k {
			found, ok = e, true
		}
	}
	return found, ok
}

func settingOf(entries []INIEntry, k, def string) Setting {
	if e, ok := lookup(entries, k); ok {
		return Setting{Value: e.Value, Evidence: &Evidence{File: e.File, Line: e.Line, Text: e.Key + " = " + e.Raw}}
	}
	return Setting{Value: def, Default: true}
}

// poolINI extracts php_value[...] / php_admin_value[...] / php_flag[...] /
// php_admin_flag[...] assignments of a pool, in file order.
func poolINI(p *fpmPool) []iniAssignment {
	var out []iniAssignment
	for _, e := range p.entries {
		k := e.Key
		var name string
		for _, pre := range []string{"php_admin_value[", "php_value[", "php_admin_flag[", "php_flag["} {
			if strings.HasPrefix(k, pre) && strings.HasSuffix(k, "]") {
				name = strings.ToLower(strings.TrimSpace(k[len(pre) : len(k)-1]))
				break
			}
		}
		if name == "" {
			continue
		}
		v := e.Value
		if strings.Contains(k, "_flag[") {
			if iniBool(v) {
				v = "1"
			} else {
				v = ""
			}
		}
		out = append(out, iniAssignment{key: name, value: v, raw: e.Raw, ev: Evidence{File: e.File, Line: e.Line, Text: e.Key + " = " + e.Raw}})
	}
	return out
}
