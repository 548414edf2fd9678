package audit

import (
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

// parseSize parses a PHP size value ("128M", "64m", "1G", "512K", "-1",
// "0x10"); ok is false for anything else.
func parseSize(s string) (int64, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, false
	}
	mult := int64(1)
	switch s[len(s)-1] {
	case 'k', 'K':
		mult = 1 << 10
	case 'm', 'M':
		mult = 1 << 20
	case 'g', 'G':
		mult = 1 << 30
	}
	if mult != 1 {
		s = s[:len(s)-1]
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 0, 64)
	if err != nil {
		return 0, false
	}
	if n > (1<<62)/mult || n < -(1<<62)/mult {
		return 0, false
	}
	return n * mult, true
}

// JIT describes the opcache JIT mode in words.
type JIT struct {
	Mode        string `json:"mode"`        // "tracing", "function", "off", "disable" or the CRTO number
	Active      bool   `json:"active"`      // opcache loaded and enabled, JIT on, buffer > 0
	Description string `json:"description"` // the mode decoded in words
	Tracing     bool   `json:"tracing"`
}

// decodeJIT explains opcache.jit (value after ini unquoting; "" is what an
// unquoted `off` becomes) in words.
func decodeJIT(v string) JIT {
	l := strings.ToLower(strings.TrimSpace(v))
	switch l {
	case "", "disable":
		return JIT{Mode: "disable", Description: "JIT disabled (cannot be enabled at run time)"}
	case "0", "off", "no", "false":
		return JIT{Mode: "off", Description: "JIT off (can be switched on at run time)"}
	case "1", "on", "yes", "true", "tracing":
		return JIT{Mode: "tracing", Tracing: true, Description: "tracing JIT (CRTO 1254: AVX, global register allocation, compiles hot traces, optimisation level 4)"}
	case "function":
		return JIT{Mode: "function", Description: "function JIT (CRTO 1205: AVX, global register allocation, compiles whole functions at script load, optimisation level 5)"}
	}
	if len(l) == 4 && strings.Trim(l, "0123456789") == "" {
		c, r, t, o := l[0], l[1], l[2], l[3]
		var parts []string
		if c == '1' {
			parts = append(parts, "AVX")
		} else {
			parts = append(parts, "no AVX")
		}
		switch r {
		case '0':
			parts = append(parts, "no register allocation")
		case '1':
			parts = append(parts, "local register allocation")
		default:
			parts = append(parts, "global register allocation")
		}
		triggers := map[byte]string{
			'0': "compiles all functions at script load",
			'1': "compiles functions on first execution",
			'2': "profiles the first request, compiles hot functions",
			'3': "profiles on the fly, compiles hot functions",
			'4': "compiles functions with @jit doc comments",
			'5': "compiles hot traces (tracing JIT)",
		}
		if s, ok := triggers[t]; ok {
			parts = append(parts, s)
		} else {
			parts = append(parts, "unknown trigger "+string(t))
		}
		levels := map[byte]string{'0': "no JIT", '1': "minimal JIT", '2': "inline VM handlers", '3': "type inference", '4': "call-graph optimisation", '5': "inter-procedural optimisation"}
		if s, ok := levels[o]; ok {
			parts = append(parts, "optimisation level "+string(o)+" ("+s+")")
		}
		j := JIT{Mode: l, Tracing: t == '5', Description: "CRTO " + l + ": " + strings.Join(parts, ", ")}
		if o == '0' {
			j.Description = "CRTO " + l + ": optimisation level 0, JIT effectively off"
			j.Tracing = false
		}
		return j
	}
	return JIT{Mode: l, Description: fmt.Sprintf("unrecognised value %q (PHP refuses it at startup)", v)}
}

// jitOn reports whether the mode compiles code at all.
func (j JIT) on() bool {
	return j.Mode != "disable" && j.Mode != "off" && !strings.HasPrefix(j.Description, "unrecognised") &&
		!strings.HasSuffix(j.Description, "effectively off")
}

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
