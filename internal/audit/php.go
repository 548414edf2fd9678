package audit

import (
	"github.com/coroner-dev/coroner/internal/phpini"

	"fmt"
	"path"
	"strconv"
	"strings"
)

// Keys whose effective values the audit computes and reports.
var phpKeys = []string{
	"opcache.enable", "opcache.jit", "opcache.jit_buffer_size", "opcache.memory_consumption",
	"pcre.jit", "memory_limit", "zend.max_allowed_stack_size",
}

// phpVersion is a major.minor PHP version; zero when unknown.
type phpVersion struct{ major, minor int }

func parsePHPVersion(s string) phpVersion {
	parts := strings.SplitN(s, ".", 3)
	if len(parts) < 2 {
		return phpVersion{}
	}
	a, err1 := strconv.Atoi(parts[0])
	b, err2 := strconv.Atoi(strings.TrimLeft(parts[1], " "))
	if err1 != nil || err2 != nil || a < 5 || a > 20 || b < 0 || b > 99 {
		return phpVersion{}
	}
	return phpVersion{a, b}
}

func (v phpVersion) known() bool { return v.major != 0 }

func (v phpVersion) less(major, minor int) bool {
	return v.major < major || (v.major == major && v.minor < minor)
}

// phpDefaults are the built-in defaults of FPM's PHP for the given version.
// 8.0-8.3: opcache.jit=tracing with jit_buffer_size=0 (so no JIT unless a
// buffer is given); 8.4+: opcache.jit=disable with jit_buffer_size=64M.
func phpDefaults(v phpVersion) map[string]string {
	d := map[string]string{
		"opcache.enable":             "1",
		"opcache.memory_consumption": "128",
		"pcre.jit":                   "1",
		"memory_limit":               "128M",
	}
	switch {
	case !v.known():
		d["opcache.jit"] = "tracing"
		d["opcache.jit_buffer_size"] = "0"
	case v.less(8, 0):
		// no JIT before 8.0
	case v.less(8, 4):
		d["opcache.jit"] = "tracing"
		d["opcache.jit_buffer_size"] = "0"
	default:
		d["opcache.jit"] = "disable"
		d["opcache.jit_buffer_size"] = "64M"
	}
	if v.known() && !v.less(8, 3) {
		d["zend.max_allowed_stack_size"] = "0"
	}
	return d
}

// parseSize parses a PHP size value ("128M", "-1", "0x10"); ok is false for
// anything else.
func parseSize(s string) (int64, bool) { return phpini.Size(s) }

// JIT describes the opcache JIT mode in words.
type JIT struct {
	Mode        string `json:"mode"`        // "tracing", "function", "off", "disable" or the CRTO number
	Active      bool   `json:"active"`      // opcache loaded and enabled, JIT on, buffer > 0
	Description string `json:"description"` // the mode decoded in words
	Tracing     bool   `json:"tracing"`
	compiles    bool
}

// decodeJIT explains opcache.jit (value after ini unquoting; "" is what an
// unquoted `off` becomes) in words.
func decodeJIT(v string) JIT {
	m := phpini.DecodeJIT(v)
	mode := m.Mode
	if m.CRTO != "" && m.CRTO == strings.TrimSpace(v) {
		mode = m.CRTO // spelled as CRTO digits in the configuration
	}
	return JIT{Mode: mode, Tracing: m.Tracing, Description: m.Description, compiles: m.Compiles}
}

// on reports whether the mode compiles code at all.
func (j JIT) on() bool { return j.compiles }

// iniAssignment is one assignment to a PHP ini key in the order PHP sees it.
type iniAssignment struct {
	key, value, raw string
	ev              Evidence
}

// phpConfig is the master-level PHP configuration of an installation.
type phpConfig struct {
	assign     []iniAssignment
	extensions []string
	files      []string
	warnings   []string
}

// loadPHPConfig reads php.ini then every *.ini of the scan dirs in PHP's
// order (each directory in turn, files sorted by name).
func loadPHPConfig(h *host, phpIni string, scanDirs []string, env map[string]string) *phpConfig {
	pc := &phpConfig{}
	var files []string
	if phpIni != "" {
		if h.exists(phpIni) {
			files = append(files, phpIni)
		} else {
			pc.warnings = append(pc.warnings, fmt.Sprintf("php.ini %s does not exist: PHP runs with built-in defaults plus the scan directory", phpIni))
		}
	}
	for _, d := range scanDirs {
		list, err := h.listDir(d, ".ini")
		if err != nil {
			pc.warnings = append(pc.warnings, fmt.Sprintf("ini scan directory: %v", err))
			continue
		}
		files = append(files, list...)
	}
	for _, f := range files {
		data, err := h.readFile(f)
		if err != nil {
			pc.warnings = append(pc.warnings, err.Error())
			if data == nil {
				continue
			}
		}
		pc.files = append(pc.files, f)
		ini := ParseINI(f, data, env)
		pc.warnings = append(pc.warnings, ini.Warnings...)
		for _, e := range ini.Entries {
			if strings.HasPrefix(strings.ToUpper(e.Section), "PATH=") || strings.HasPrefix(strings.ToUpper(e.Section), "HOST=") {
				continue // per-directory / per-host sections apply to some requests only
			}
			k := strings.ToLower(e.Key)
			ev := Evidence{File: f, Line: e.Line, Text: e.Key + " = " + e.Raw}
			switch k {
			case "extension", "zend_extension":
				pc.extensions = append(pc.extensions, extName(e.Value))
				continue
			}
			pc.assign = append(pc.assign, iniAssignment{key: k, value: e.Value, raw: e.Raw, ev: ev})
		}
	}
	return pc
}

// extName reduces "/usr/lib/php/20220829/opcache.so" or "php_xdebug.dll" to "opcache"/"xdebug".
func extName(v string) string {
	n := path.Base(strings.TrimSpace(v))
	n = strings.TrimSuffix(strings.TrimSuffix(n, ".so"), ".dll")
	n = strings.TrimPrefix(n, "php_")
	return strings.ToLower(n)
}

// effective resolves the keys of interest: defaults overlaid with the
// assignments in order, then overrides (pool values) in order.
func effective(v phpVersion, assign []iniAssignment, overrides []iniAssignment) map[string]Setting {
	out := map[string]Setting{}
	for k, d := range phpDefaults(v) {
		out[k] = Setting{Value: d, Default: true}
	}
	for _, list := range [][]iniAssignment{assign, overrides} {
		for _, a := range list {
			if !wanted(a.key) {
				continue
			}
			ev := a.ev
			out[a.key] = Setting{Value: a.value, Evidence: &ev}
		}
	}
	return out
}

func wanted(k string) bool {
	for _, w := range phpKeys {
		if w == k {
			return true
		}
	}
	return false
}

// jitConflicts are extensions known to conflict with (or disable) the
// opcache JIT, with the reason.
var jitConflicts = map[string]string{
	"xdebug":         "Xdebug overrides zend_execute_ex; PHP disables the JIT with a warning",
	"ddtrace":        "dd-trace-php + JIT crashes (DataDog/dd-trace-php#3197; workaround opcache.jit_hot_func=0)",
	"newrelic":       "New Relic hooks the executor; observer + JIT crashes (php-src#22443/#22158)",
	"opentelemetry":  "observer-API extension; observer + tracing JIT crashes (php-src#22443/#22158, fixed by #22258)",
	"blackfire":      "profiler hooks the executor; JIT code bypasses or conflicts with it",
	"tideways":       "profiler hooks the executor; JIT code bypasses or conflicts with it",
	"pcov":           "coverage hooks conflict with the JIT",
	"ioncube":        "ionCube loader is incompatible with the JIT",
	"ioncube_loader": "ionCube loader is incompatible with the JIT",
	"sourceguardian": "SourceGuardian loader is incompatible with the JIT",
}

// matchConflict finds a conflict entry for an extension name such as
// "ioncube_loader_lin_8.2".
func matchConflict(ext string) (string, bool) {
	for k, why := range jitConflicts {
		if ext == k || strings.HasPrefix(ext, k+"_") || strings.HasPrefix(ext, k+"-") {
			return why, true
		}
	}
	return "", false
}
