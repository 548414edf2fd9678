// Package phpini holds PHP's rules for INI values that several parts of
// coroner need to agree on: sizes ("64M"), booleans ("On"), and what
// opcache.jit means (modes and CRTO digits, decoded in words). The
// configuration audit reads them from files; the core analysis reads them
// from a crashed process's memory.
package phpini

import (
	"fmt"
	"strconv"
	"strings"
)

// Size parses a PHP size value ("128M", "64m", "1G", "512K", "-1", "0x10");
// ok is false for anything else or for values that overflow.
func Size(s string) (int64, bool) {
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

// Bool interprets a value as PHP's boolean INI handlers do ("On", "yes",
// "true", a non-zero number).
func Bool(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "1", "on", "yes", "true":
		return true
	}
	n, ok := Size(s)
	return ok && n != 0
}

// JITMode is opcache.jit decoded.
type JITMode struct {
	// Mode is "tracing", "function", "off", "disable", a CRTO number, or
	// the value itself when PHP would refuse it.
	Mode string
	// CRTO is the four-digit form ("1254"), "" when the JIT does not compile.
	CRTO string
	// Tracing is true for the tracing JIT (trigger digit 5).
	Tracing bool
	// Compiles is true when the mode compiles code at all (given a buffer).
	Compiles bool
	// Description says it in words.
	Description string
}

// DecodeJIT decodes an opcache.jit value as PHP 8.0-8.4 do
// (ext/opcache/jit/zend_jit.c, zend_jit_config): "" and "disable" disable
// the JIT for good (an unquoted `off` in an ini file reads as ""), "0",
// "off", "no", "false" switch it off but leave it switchable at run time,
// "1", "on", "yes", "true", "tracing" mean CRTO 1254, "function" 1205, and
// four digits are CRTO themselves.
func DecodeJIT(v string) JITMode {
	l := strings.ToLower(strings.TrimSpace(v))
	switch l {
	case "", "disable":
		return JITMode{Mode: "disable", Description: "JIT disabled (cannot be switched on at run time)"}
	case "0", "off", "no", "false":
		return JITMode{Mode: "off", Description: "JIT off (can be switched on at run time)"}
	case "1", "on", "yes", "true", "tracing":
		return crto("tracing", "1254")
	case "function":
		return crto("function", "1205")
	}
	if len(l) == 4 && strings.Trim(l, "0123456789") == "" {
		mode := "function"
		if l[2] == '5' {
			mode = "tracing"
		}
		j := crto(mode, l)
		if l[3] == '0' {
			j.Compiles, j.Tracing = false, false
			j.Description += "; optimisation level 0: the JIT is effectively off"
		}
		return j
	}
	return JITMode{Mode: l, Description: fmt.Sprintf("unrecognised opcache.jit value %q (PHP refuses it at startup)", v)}
}

func crto(mode, c string) JITMode {
	return JITMode{Mode: mode, CRTO: c, Tracing: c[2] == '5', Compiles: true,
		Description: fmt.Sprintf("%s JIT (CRTO %s: %s)", mode, c, CRTOWords(c))}
}

// CRTOWords explains the four CRTO digits of opcache.jit.
func CRTOWords(c string) string {
	if len(c) != 4 {
		return "not a CRTO value"
	}
	cpu := map[byte]string{'0': "no CPU-specific optimisation", '1': "use AVX if available"}
	reg := map[byte]string{'0': "no register allocation", '1': "local register allocation", '2': "global register allocation"}
	trig := map[byte]string{'0': "compile all functions at script load", '1': "compile functions on first execution",
		'2': "profile the first request, compile hot functions", '3': "compile hot functions (counters)",
		'4': "compile functions with @jit in doc comments", '5': "tracing JIT (hot traces)"}
	opt := map[byte]string{'0': "no JIT", '1': "minimal JIT (call VM handlers)", '2': "inline VM handlers",
		'3': "type inference", '4': "type inference and call graph", '5': "whole-script optimisation"}
	w := func(m map[byte]string, b byte) string {
		if s, ok := m[b]; ok {
			return s
		}
		return "unknown " + string(b)
	}
	return fmt.Sprintf("C=%c %s, R=%c %s, T=%c %s, O=%c %s", c[0], w(cpu, c[0]), c[1], w(reg, c[1]), c[2], w(trig, c[2]), c[3], w(opt, c[3]))
}
