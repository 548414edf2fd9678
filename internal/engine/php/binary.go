package php

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/coroner-dev/coroner/internal/engine/x86sym"
	"github.com/coroner-dev/coroner/internal/regular"
)

// Bounds on what is read from an ELF object on disk.
const (
	maxFunctionBytes = 16 << 10  // code of one anchor function
	maxRodataString  = 256       // a string constant an anchor compares with
	maxVersionScan   = 256 << 20 // a section searched for the version string
	maxDynSymbols    = 1 << 20   // .dynsym entries
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
	// egOffset, sgOffset are the run-time addresses of
	// executor_globals_offset and sapi_globals_offset (ZTS).
	egOffset, sgOffset uint64
	version            string // from the binary's rodata, when found
}

// phpCandidate reports whether a mapped object may hold the PHP engine.
func phpCandidate(path string) bool {
	base := filepath.Base(path)
	return strings.HasPrefix(base, "php") || strings.HasPrefix(base, "libphp") || strings.HasPrefix(base, "mod_php") ||
		strings.HasPrefix(base, "frankenphp")
}

// object is an ELF object opened for reading its dynamic symbols, data and
// code: the PHP engine (php-fpm, php, libphp) or opcache.so.
type object struct {
	path    string
	buildID string
	f       *elf.File
	file    io.Closer // the opened file behind f
	syms    []elf.Symbol
	byName  map[string]elf.Symbol // defined symbols (loadSymbols)
	symErr  error                 // why the symbols could not be read
	links   *x86sym.Links         // read on first use
}

func openObject(path string) (*object, error) {
	rf, err := regular.OpenELF(path)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	o := &object{path: path, f: rf.File, file: rf}
	o.buildID = buildID(rf.File)
	return o, nil
}

// loadSymbols reads the dynamic symbols once.
func (o *object) loadSymbols() error {
	if o.byName != nil || o.f == nil {
		return o.symErr
	}
	o.byName = map[string]elf.Symbol{}
	if ds := o.f.Section(".dynsym"); ds != nil && ds.Entsize > 0 && ds.Size/ds.Entsize > maxDynSymbols {
		o.symErr = fmt.Errorf(".dynsym: %d entries is more than coroner reads", ds.Size/ds.Entsize)
		return o.symErr
	}
	syms, err := o.f.DynamicSymbols()
	if err != nil && err != elf.ErrNoSymbols {
		o.symErr = fmt.Errorf("read .dynsym: %w", err)
		return o.symErr
	}
	o.syms = syms
	// Sized at once: growing it rehashed the thousands of symbols a
	// php-fpm binary exports several times (3% of a cold analysis).
	o.byName = make(map[string]elf.Symbol, len(syms))
	for _, s := range syms {
		if s.Section != elf.SHN_UNDEF && s.Value != 0 {
			o.byName[s.Name] = s
		}
	}
	return nil
}

func (o *object) close() { o.file.Close() }

// buildID returns the GNU build-id of an ELF file in hex, or "".
func buildID(f *elf.File) string {
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz > 1<<16 {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			continue
		}
		for len(b) >= 12 {
			nsz, dsz, typ := binary.LittleEndian.Uint32(b), binary.LittleEndian.Uint32(b[4:]), binary.LittleEndian.Uint32(b[8:])
			name, desc := (uint64(nsz)+3)&^3, (uint64(dsz)+3)&^3
			if 12+name+desc > uint64(len(b)) {
				break
			}
			if typ == 3 && nsz == 4 && string(b[12:15]) == "GNU" {
				return hex.EncodeToString(b[12+name : 12+name+uint64(dsz)])
			}
			b = b[12+name+desc:]
		}
	}
	return ""
}

// fileKey identifies an object for the derivation cache: its build-id and
// path, or (without a build-id) its path, size and modification time.
func fileKey(o *object) string {
	if o.buildID != "" {
		return o.buildID + "\x00" + o.path
	}
	st, err := os.Stat(o.path)
	if err != nil {
		return o.path
	}
	return fmt.Sprintf("%s\x00%d\x00%d", o.path, st.Size(), st.ModTime().UnixNano())
}

// calleeNames are the functions the derivation rules recognise in calls.
var calleeNames = map[string]bool{
	"zend_hash_find": true, "zend_hash_add": true, "zend_hash_str_find": true, "zend_hash_str_exists": true,
	"strcmp": true, "strlen": true, "_ecalloc": true, "zend_active_function_ex": true, "add_assoc_long_ex": true,
	"add_assoc_bool_ex": true, "tsrm_get_ls_cache": true, "__tls_get_addr": true,
}

// linksOf reads the object's GOT slots and call target names once.
func (o *object) linksOf() (*x86sym.Links, error) {
	if o.links != nil {
		return o.links, nil
	}
	if err := o.loadSymbols(); err != nil {
		return nil, err
	}
	if o.f == nil {
		return nil, fmt.Errorf("%s: no file to read relocations from", o.path)
	}
	l, err := x86sym.ReadLinks(o.f, o.syms, func(name string) bool { return calleeNames[name] })
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.path, err)
	}
	o.links = l
	return l, nil
}

// function reads the code of an exported function for the evaluator.
func (o *object) function(name string) (x86sym.Func, error) {
	if err := o.loadSymbols(); err != nil {
		return x86sym.Func{}, err
	}
	s, ok := o.byName[name]
	if !ok || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
		return x86sym.Func{}, fmt.Errorf("%s is not exported", name)
	}
	if s.Size == 0 {
		return x86sym.Func{}, fmt.Errorf("%s has no size in .dynsym", name)
	}
	size := s.Size
	if size > maxFunctionBytes {
		size = maxFunctionBytes
	}
	code, err := o.read(s.Value, size)
	if err != nil {
		return x86sym.Func{}, fmt.Errorf("%s: %w", name, err)
	}
	l, err := o.linksOf()
	if err != nil {
		return x86sym.Func{}, err
	}
	return x86sym.Func{Code: code, Addr: s.Value, Pointers: l.Pointers, Callees: l.Callees}, nil
}

// read reads size bytes at link-time address addr from the file.
func (o *object) read(addr, size uint64) ([]byte, error) {
	if o.f == nil {
		return nil, fmt.Errorf("address %#x: no file", addr)
	}
	for _, p := range o.f.Progs {
		if p.Type != elf.PT_LOAD || addr < p.Vaddr || addr-p.Vaddr >= p.Filesz {
			continue
		}
		if addr-p.Vaddr+size > p.Filesz {
			size = p.Filesz - (addr - p.Vaddr)
		}
		b := make([]byte, size)
		if _, err := p.ReadAt(b, int64(addr-p.Vaddr)); err != nil {
			return nil, fmt.Errorf("read %d bytes at %#x: %w", size, addr, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("address %#x is not in the file", addr)
}

// cstring reads a NUL-terminated string constant at link-time address addr.
func (o *object) cstring(addr uint64) string {
	b, err := o.read(addr, maxRodataString)
	if err != nil {
		return ""
	}
	if i := bytes.IndexByte(b, 0); i >= 0 {
		return string(b[:i])
	}
	return ""
}

// symbol returns the address and size of a defined dynamic symbol.
func (o *object) symbol(name string) (addr, size uint64, ok bool) {
	if o.loadSymbols() != nil {
		return 0, 0, false
	}
	s, ok := o.byName[name]
	return s.Value, s.Size, ok
}

// engineSymbols are the link-time addresses of the engine's exported
// globals, read once per binary.
type engineSymbols struct {
	eg, sg, pg, egSize, registry, zendExts, sapiModule uint64
	zts                                                bool
	// egOffset and sgOffset are the addresses of executor_globals_offset
	// and sapi_globals_offset (ZTS): variables holding where the globals
	// are in each thread's TSRM block.
	egOffset, sgOffset uint64
	version            string
}

// readEngineSymbols reads the globals an engine binary exports; ok is false
// when it exports neither executor_globals nor executor_globals_offset.
func readEngineSymbols(o *object) (engineSymbols, bool) {
	var e engineSymbols
	if o.loadSymbols() != nil {
		return e, false
	}
	found := false
	for name, s := range o.byName {
		switch name {
		case "executor_globals":
			e.eg, e.egSize, found = s.Value, s.Size, true
		case "executor_globals_offset":
			e.zts, e.egOffset, found = true, s.Value, true
		case "sapi_globals_offset":
			e.sgOffset = s.Value
		case "sapi_globals":
			e.sg = s.Value
		case "core_globals":
			e.pg = s.Value
		case "module_registry":
			e.registry = s.Value
		case "zend_extensions":
			e.zendExts = s.Value
		case "sapi_module":
			e.sapiModule = s.Value
		}
	}
	if found {
		e.version = binaryVersion(o.f)
	}
	return e, found
}

// at returns the globals at run time for a module loaded with bias.
func (e engineSymbols) at(mod Module) *globals {
	rel := func(a uint64) uint64 {
		if a == 0 {
			return 0
		}
		return a + mod.Bias
	}
	return &globals{module: mod, eg: rel(e.eg), sg: rel(e.sg), pg: rel(e.pg), egSize: e.egSize, registry: rel(e.registry),
		zendExts: rel(e.zendExts), sapiModule: rel(e.sapiModule), zts: e.zts, egOffset: rel(e.egOffset), sgOffset: rel(e.sgOffset),
		version: e.version}
}

// binaryVersion finds "X-Powered-By: PHP/x.y.z" in the read-only data.
func binaryVersion(f *elf.File) string {
	for _, name := range []string{".rodata", ".data.rel.ro", ".data"} {
		sec := f.Section(name)
		if sec == nil || sec.Type == elf.SHT_NOBITS || sec.Size > maxVersionScan {
			continue
		}
		if v := scanVersion(sec.Open(), []byte("X-Powered-By: PHP/")); v != "" {
			return v
		}
	}
	return ""
}

// scanVersion searches a section for marker in chunks (a php binary's
// .rodata is megabytes: reading it whole costs more than the search) and
// returns the version number that follows it.
func scanVersion(r io.Reader, marker []byte) string {
	const chunk = 256 << 10
	tail := len(marker) + 32 // the marker and the longest version kept across chunks
	buf := make([]byte, chunk+tail)
	carry := 0
	for {
		n, err := io.ReadFull(r, buf[carry:])
		data := buf[:carry+n]
		if i := bytes.Index(data, marker); i >= 0 && (i+tail <= len(data) || err != nil) {
			return versionAfter(data[i:], marker)
		}
		if err != nil {
			return ""
		}
		carry = copy(buf, data[max(0, len(data)-tail):])
	}
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
