package audit

import (
	"fmt"
	"path"
	"strings"
)

// UnitEntry is one `Key=Value` assignment of a systemd unit or config file.
type UnitEntry struct {
	Section, Key, Value string
	File                string
	Line                int // first line (continuations are joined)
}

// ParseUnit parses a systemd unit or systemd config file (coredump.conf,
// system.conf): sections, Key=Value, # and ; comments, and lines continued
// with a trailing backslash. It never fails; problems become warnings.
func ParseUnit(name string, data []byte) ([]UnitEntry, []string) {
	var out []UnitEntry
	var warns []string
	lines := strings.Split(string(data), "\n")
	if len(lines) > maxINILines {
		lines = lines[:maxINILines]
		warns = append(warns, fmt.Sprintf("%s: more than %d lines, the rest is ignored", name, maxINILines))
	}
	section := ""
	for i := 0; i < len(lines); i++ {
		start := i + 1
		s := strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
		if s == "" || s[0] == '#' || s[0] == ';' {
			continue
		}
		for strings.HasSuffix(s, "\\") && i+1 < len(lines) {
			i++
			next := strings.TrimSpace(strings.TrimSuffix(lines[i], "\r"))
			if next != "" && (next[0] == '#' || next[0] == ';') {
				continue // comment lines inside a continuation are skipped
			}
			s = strings.TrimSuffix(s, "\\") + " " + next
		}
		s = strings.TrimSpace(strings.TrimSuffix(s, "\\"))
		if s == "" {
			continue
		}
		if s[0] == '[' {
			if !strings.HasSuffix(s, "]") {
				warns = append(warns, fmt.Sprintf("%s:%d: bad section header %q", name, start, clip(s)))
				continue
			}
			section = s[1 : len(s)-1]
			continue
		}
		eq := strings.IndexByte(s, '=')
		if eq <= 0 {
			warns = append(warns, fmt.Sprintf("%s:%d: line without '=' ignored: %q", name, start, clip(s)))
			continue
		}
		if section == "" {
			warns = append(warns, fmt.Sprintf("%s:%d: assignment outside a section ignored", name, start))
			continue
		}
		out = append(out, UnitEntry{Section: section, Key: strings.TrimSpace(s[:eq]), Value: strings.TrimSpace(s[eq+1:]), File: name, Line: start})
	}
	return out, warns
}

// Directories systemd loads units and drop-ins from, highest priority first.
var unitDirs = []string{"/etc/systemd/system", "/run/systemd/system", "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"}

// unitConfig is a unit file with its drop-ins applied.
type unitConfig struct {
	file     string
	dropIns  []string
	entries  []UnitEntry // unit then drop-ins in order
	warnings []string
}

// loadUnit finds the unit file and its drop-ins (<unit>.d/*.conf in every
// unit directory, applied in file-name order, a later directory's file with
// the same name hidden by an earlier one's).
func loadUnit(h *host, unit string) *unitConfig {
	u := &unitConfig{}
	for _, d := range unitDirs {
		p := path.Join(d, unit)
		if h.exists(p) {
			u.file = p
			break
		}
	}
	if u.file == "" {
		return nil
	}
	byName := map[string]string{}
	var names []string
	for _, d := range unitDirs {
		dir := path.Join(d, unit+".d")
		if !h.isDir(dir) {
			continue
		}
		list, err := h.listDir(dir, ".conf")
		if err != nil {
			u.warnings = append(u.warnings, err.Error())
			continue
		}
		for _, f := range list {
			n := path.Base(f)
			if _, seen := byName[n]; !seen {
				byName[n] = f
				names = append(names, n)
			}
		}
	}
	sortStrings(names)
	files := []string{u.file}
	for _, n := range names {
		u.dropIns = append(u.dropIns, byName[n])
		files = append(files, byName[n])
	}
	for _, f := range files {
		data, err := h.readFile(f)
		if err != nil {
			u.warnings = append(u.warnings, err.Error())
			if data == nil {
				continue
			}
		}
		e, w := ParseUnit(f, data)
		u.entries = append(u.entries, e...)
		u.warnings = append(u.warnings, w...)
	}
	return u
}

// last returns the last assignment of section.key, systemd's rule for
// single-valued settings.
func lastUnitEntry(entries []UnitEntry, section, key string) (UnitEntry, bool) {
	var out UnitEntry
	ok := false
	for _, e := range entries {
		if e.Section == section && e.Key == key {
			out, ok = e, true
		}
	}
	return out, ok
}

// loadSystemdConf reads /etc/systemd/NAME.conf plus NAME.conf.d drop-ins
// (in /etc, /run, /usr/lib), returning entries in application order.
func loadSystemdConf(h *host, name string) ([]UnitEntry, []string) {
	var entries []UnitEntry
	var warns []string
	files := []string{}
	if p := "/etc/systemd/" + name + ".conf"; h.exists(p) {
		files = append(files, p)
	}
	byName := map[string]string{}
	var names []string
	for _, d := range []string{"/etc/systemd/" + name + ".conf.d", "/run/systemd/" + name + ".conf.d", "/usr/lib/systemd/" + name + ".conf.d"} {
		if !h.isDir(d) {
			continue
		}
		list, err := h.listDir(d, ".conf")
		if err != nil {
			warns = append(warns, err.Error())
			continue
		}
		for _, f := range list {
			if _, ok := byName[path.Base(f)]; !ok {
				byName[path.Base(f)] = f
				names = append(names, path.Base(f))
			}
		}
	}
	sortStrings(names)
	for _, n := range names {
		files = append(files, byName[n])
	}
	for _, f := range files {
		data, err := h.readFile(f)
		if err != nil {
			warns = append(warns, err.Error())
			if data == nil {
				continue
			}
		}
		e, w := ParseUnit(f, data)
		entries = append(entries, e...)
		warns = append(warns, w...)
	}
	return entries, warns
}

// parseRlimit parses a systemd LimitCORE value ("infinity", "0", "1G",
// "soft:hard") and returns the soft and hard limits in bytes (-1 = infinity).
func parseRlimit(v string) (soft, hard int64, err error) {
	v = strings.TrimSpace(v)
	one := func(s string) (int64, error) {
		s = strings.TrimSpace(s)
		if strings.EqualFold(s, "infinity") || strings.EqualFold(s, "unlimited") {
			return -1, nil
		}
		// systemd uses 1024-based K/M/G/T suffixes for limits.
		if n, ok := parseSize(strings.TrimSuffix(s, "B")); ok && n >= 0 {
			return n, nil
		}
		if strings.HasSuffix(s, "T") {
			if n, ok := parseSize(strings.TrimSuffix(s, "T") + "G"); ok && n >= 0 {
				return n << 10, nil
			}
		}
		return 0, fmt.Errorf("bad limit %q", s)
	}
	if i := strings.IndexByte(v, ':'); i >= 0 {
		if soft, err = one(v[:i]); err != nil {
			return 0, 0, err
		}
		hard, err = one(v[i+1:])
		return soft, hard, err
	}
	soft, err = one(v)
	return soft, soft, err
}

// parseBytes parses a systemd size ("2G", "512M", "0", "infinity").
func parseBytes(v string) (int64, bool) {
	if strings.EqualFold(strings.TrimSpace(v), "infinity") {
		return -1, true
	}
	s, _, err := parseRlimit(v)
	return s, err == nil
}
