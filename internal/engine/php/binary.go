package php

import (
	"bytes"
	"debug/elf"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/coroner-dev/coroner/internal/regular"
)

// globals are the runtime addresses of the PHP engine's exported globals.
type globals struct {
	module     Module
	eg, sg, pg uint64 // executor_globals, sapi_globals, core_globals
	egSize     uint64
	registry   uint64 // module_registry (HashTable)
	zendExts   uint64 // zend_extensions (zend_llist)
	sapiModule uint64 // sapi_module (sapi_module_struct; name first)
	zts        bool   // executor_globals_offset exported instead (ZTS build)
	version    string // from the binary's rodata, when found
}

// phpCandidate reports whether a mapped object may hold the PHP engine.
func phpCandidate(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "php") || strings.HasPrefix(base, "libphp") || strings.HasPrefix(base, "mod_php")
}

// findGlobals finds the module that exports executor_globals (or, for ZTS
// builds, executor_globals_offset). It returns nil when there is none.
func findGlobals(mods []Module) (*globals, []string) {
	var warns []string
	for _, mod := range mods {
		if !phpCandidate(mod.Path) {
			continue
		}
		g, err := readGlobals(mod)
		if err != nil {
			warns = append(warns, fmt.Sprintf("%s: %v", mod.Path, err))
			continue
		}
		if g != nil {
			return g, warns
		}
	}
	return nil, warns
}

func readGlobals(mod Module) (*globals, error) {
	f, err := regular.OpenELF(mod.Path)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	defer f.Close()
	syms, err := f.DynamicSymbols()
	if err != nil {
		return nil, fmt.Errorf("read .dynsym: %w", err)
	}
	g := &globals{module: mod}
	found := false
	for _, s := range syms {
		if s.Section == elf.SHN_UNDEF || s.Value == 0 {
			continue
		}
		addr := s.Value + mod.Bias
		switch s.Name {
		case "executor_globals":
			g.eg, g.egSize, found = addr, s.Size, true
		case "executor_globals_offset":
			g.zts, found = true, true
		case "sapi_globals":
			g.sg = addr
		case "core_globals":
			g.pg = addr
		case "module_registry":
			g.registry = addr
		case "zend_extensions":
			g.zendExts = addr
		case "sapi_module":
			g.sapiModule = addr
		}
	}
	if !found {
		return nil, nil
	}
	g.version = binaryVersion(f.File)
	return g, nil
}

// binaryVersion finds "X-Powered-By: PHP/x.y.z" in the read-only data.
func binaryVersion(f *elf.File) string {
	for _, name := range []string{".rodata", ".data.rel.ro", ".data"} {
		sec := f.Section(name)
		if sec == nil || sec.Type == elf.SHT_NOBITS || sec.Size > 256<<20 {
			continue
		}
		data, err := sec.Data()
		if err != nil {
			continue
		}
		if v := versionAfter(data, []byte("X-Powered-By: PHP/")); v != "" {
			return v
		}
	}
	return ""
}

// versionAfter returns the version number that follows marker in data.
func versionAfter(data, marker []byte) string {
	i := bytes.Index(data, marker)
	if i < 0 {
		return ""
	}
	rest := data[i+len(marker):]
	n := 0
	for n < len(rest) && n < 32 && (rest[n] >= '0' && rest[n] <= '9' || rest[n] == '.' || rest[n] == '-' ||
		rest[n] >= 'a' && rest[n] <= 'z' || rest[n] >= 'A' && rest[n] <= 'Z' || rest[n] == '+' || rest[n] == '~') {
		n++
	}
	return string(rest[:n])
}
