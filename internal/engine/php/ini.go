package php

import (
	"fmt"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/phpini"
)

// INIKeys are the directives Analyze reports in crash.PHP.INI.
var INIKeys = []string{
	"opcache.enable", "opcache.enable_cli", "opcache.jit", "opcache.jit_buffer_size",
	"pcre.jit", "pcre.backtrack_limit", "pcre.recursion_limit", "memory_limit",
	"zend.max_allowed_stack_size", "ffi.enable", "max_execution_time",
}

// registry is what the module registry held.
type registry struct {
	exts        []crash.Extension
	api         uint64 // zend_api of the Core (or standard) module entry
	coreVersion string // version of the Core module
	modules     int    // module entries read
	err         error
}

// registryType returns the zval type of the module registry's elements
// (every element is a pointer to a zend_module_entry, IS_PTR), when the
// first few agree.
func registryType(m *mem, g *globals) (uint64, bool) {
	if g.registry == 0 {
		return 0, false
	}
	var typ byte
	n, same := 0, true
	_ = m.hashEach(g.registry, func(_ uint64, v zval) bool {
		if n > 0 && v.typ != typ {
			same = false
		}
		typ = v.typ
		n++
		return n < 8
	})
	return uint64(typ), same && n > 0 && typ > isReference
}

// extensions reads the module registry: the loaded extensions with their
// versions, the module API number and the "Core" module's version.
func extensions(m *mem, g *globals) registry {
	l := m.l
	var r registry
	if g.registry != 0 {
		r.err = m.hashEach(g.registry, func(_ uint64, v zval) bool {
			if uint64(v.typ) != l.IsPtr || v.value%8 != 0 {
				return true
			}
			np, err := m.ptr(v.value+l.ModName, 1)
			if err != nil || np == 0 {
				return true
			}
			name, err := m.cstring(np, maxName)
			if err != nil || name == "" {
				return true
			}
			e := crash.Extension{Name: name}
			if vp, err := m.ptr(v.value+l.ModVersion, 1); err == nil && vp != 0 {
				e.Version, _ = m.cstring(vp, 64)
			}
			if name == "Core" || name == "standard" {
				if a, err := m.u32(v.value + l.ModZendAPI); err == nil && r.api == 0 {
					r.api = uint64(a)
				}
				if r.coreVersion == "" {
					r.coreVersion = e.Version
				}
			}
			r.exts = append(r.exts, e)
			r.modules++
			return len(r.exts) < 1024
		})
	}
	if g.zendExts != 0 {
		// zend_llist: head at 0; element: next at 0, data (a zend_extension, name first) embedded.
		el, err := m.ptr(g.zendExts, 8)
		seen := map[uint64]bool{}
		for i := 0; err == nil && el != 0 && i < 64 && !seen[el]; i++ {
			seen[el] = true
			np, e1 := m.ptr(el+l.LListData, 1)
			vp, e2 := m.ptr(el+l.LListData+l.ZextVersion, 1)
			if e1 == nil && np != 0 {
				name, _ := m.cstring(np, maxName)
				ver := ""
				if e2 == nil && vp != 0 {
					ver, _ = m.cstring(vp, 64)
				}
				if name != "" {
					r.exts = append(r.exts, crash.Extension{Name: name, Version: ver, Zend: true})
				}
			}
			el, err = m.ptr(el, 8)
		}
	}
	return r
}

// iniResult is what EG(ini_directives) gave.
type iniResult struct {
	values map[string]string
	// offset is where EG(ini_directives) was found; scanned says it was
	// found by scanning executor_globals rather than at the layout's offset.
	offset  uint64
	scanned bool
	warns   []string
}

// readINI reads the effective value of INIKeys from EG(ini_directives).
func readINI(m *mem, g *globals) iniResult {
	l := m.l
	var res iniResult
	ht, off, scanned, err := iniDirectives(m, g)
	if err != nil {
		res.warns = []string{fmt.Sprintf("INI not read: %v", err)}
		return res
	}
	res.offset, res.scanned = off, scanned
	want := map[string]bool{}
	for _, k := range INIKeys {
		want[k] = true
	}
	out := map[string]string{}
	err = m.hashEach(ht, func(key uint64, v zval) bool {
		name, err := m.name(key, maxName)
		if err != nil || !want[name] || uint64(v.typ) != l.IsPtr {
			return true
		}
		vp, err := m.ptr(v.value+l.IniValue, 8)
		if err != nil {
			return true
		}
		val, _, err := m.zstr(vp, maxValue)
		if err == nil {
			out[name] = val
		}
		return true
	})
	if err != nil {
		res.warns = append(res.warns, fmt.Sprintf("INI: %v", err))
	}
	res.values = out
	return res
}

// iniDirectives finds EG(ini_directives): at the layout's offset when it
// is known and checks out, else by scanning executor_globals for a
// HashTable pointer whose entries are zend_ini_entry structures named like
// their keys. It returns the table, its offset in executor_globals and
// whether it was found by the scan.
func iniDirectives(m *mem, g *globals) (uint64, uint64, bool, error) {
	l := m.l
	try := func(off uint64) (uint64, bool) {
		ht, err := m.ptr(g.eg+off, 8)
		if err != nil || ht == 0 {
			return 0, false
		}
		return ht, isINITable(m, ht)
	}
	if l.EGIniDirectives != 0 {
		if ht, ok := try(l.EGIniDirectives); ok {
			return ht, l.EGIniDirectives, false, nil
		}
	}
	size := g.egSize
	if size == 0 || size > 4096 {
		size = 2048
	}
	for off := l.EGCurrentExecuteData + 8; off+8 <= size; off += 8 {
		if ht, ok := try(off); ok {
			return ht, off, true, nil
		}
	}
	return 0, 0, false, fmt.Errorf("EG(ini_directives) not found")
}

// isINITable checks the first few entries of a candidate HashTable.
func isINITable(m *mem, ht uint64) bool {
	l := m.l
	checked, good := 0, true
	err := m.hashEach(ht, func(key uint64, v zval) bool {
		checked++
		if key == 0 || uint64(v.typ) != l.IsPtr || v.value%8 != 0 {
			good = false
			return false
		}
		np, err := m.ptr(v.value+l.IniName, 8)
		if err != nil || np != key {
			good = false
			return false
		}
		return checked < 4
	})
	return err == nil && good && checked > 0
}

// DecodeJIT explains the OPcache JIT settings of ini (opcache.jit,
// opcache.jit_buffer_size, opcache.enable[_cli]) in words. sapi is the SAPI
// name ("cli" uses opcache.enable_cli). It returns nil when opcache.jit is
// not set.
func DecodeJIT(ini map[string]string, sapi string) *crash.JIT {
	raw, ok := ini["opcache.jit"]
	if !ok {
		return nil
	}
	m := phpini.DecodeJIT(raw)
	j := &crash.JIT{Mode: m.Mode, CRTO: m.CRTO, BufferSize: ParseSize(ini["opcache.jit_buffer_size"])}
	enabled := phpini.Bool(ini["opcache.enable"])
	if sapi == "cli" || sapi == "phpdbg" {
		enabled = enabled && phpini.Bool(ini["opcache.enable_cli"])
	}
	j.Active = m.Compiles && j.BufferSize > 0 && enabled
	parts := []string{fmt.Sprintf("%s (opcache.jit=%s)", m.Description, raw)}
	switch {
	case j.Active:
		parts = append(parts, fmt.Sprintf("active with a %s buffer", sizeWords(j.BufferSize)))
	case !m.Compiles:
		parts = append(parts, "not active")
	case j.BufferSize <= 0:
		parts = append(parts, "not active: opcache.jit_buffer_size is 0")
	default:
		parts = append(parts, "not active: OPcache is disabled for this SAPI")
	}
	j.Description = strings.Join(parts, "; ")
	return j
}

// ParseSize parses a PHP INI size ("64M", "1G", "128k", "0", "-1"); 0 when
// it is not one.
func ParseSize(s string) int64 {
	n, _ := phpini.Size(s)
	return n
}

func sizeWords(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%dG", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%dM", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%dK", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
