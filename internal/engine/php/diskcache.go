package php

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sync"
)

// The derivation of a PHP binary is kept on disk, by build-id, so that the
// next coroner process analysing a core of the same build finds it instead
// of reading the binary's code again. An entry is only a shortcut: it is
// ignored when anything about it is off (another format, another coroner
// executable, another path, unreadable), and whatever it says is still
// checked on the core's data like a fresh derivation.

// diskFormat is the version of the entries' format; entries written by
// another coroner executable are not used either (see cacheStamp).
const diskFormat = 1

// maxDiskEntry bounds the size of an entry read back.
const maxDiskEntry = 1 << 20

// diskEntry is what an entry holds: the engine's symbols and derivation.
type diskEntry struct {
	Format  int    `json:"format"`
	Stamp   string `json:"stamp"`
	Path    string `json:"path"`
	BuildID string `json:"build_id"`

	Symbols struct {
		EG, SG, PG, EGSize, Registry, ZendExts, SAPIModule uint64
		ZTS                                                bool
		EGOffset, SGOffset                                 uint64
		Version                                            string
	} `json:"symbols"`
	Derived       map[string]diskField `json:"derived"`
	Conflicts     map[string]string    `json:"conflicts,omitempty"`
	AnchorErrs    map[string]string    `json:"anchor_errors,omitempty"`
	ModuleBuildID string               `json:"module_build_id,omitempty"`
	Version       string               `json:"version,omitempty"`
	OpArraySize   uint64               `json:"op_array_size,omitempty"`
	JIT           *diskJIT             `json:"jit,omitempty"`
	TSRM          *diskTSRM            `json:"tsrm,omitempty"`
}

type diskField struct {
	Value  uint64   `json:"value"`
	Anchor string   `json:"anchor"`
	PC     uint64   `json:"pc"`
	Instr  string   `json:"instr"`
	Rule   string   `json:"rule"`
	Agree  []string `json:"agree,omitempty"`
}

type diskJIT struct {
	Path                      string
	DasmBuf, DasmEnd, DasmPtr uint64
	Anchor, Instr             string
	PC                        uint64
}

type diskTSRM struct {
	TPOffset int64
	GOTSlot  uint64
	Anchor   string
}

// diskCacheDir is where entries are kept: $CORONER_CACHE_DIR/php-layouts,
// else the user's cache directory; "" disables the disk cache
// (CORONER_CACHE_DIR=off).
func diskCacheDir() string {
	if d := os.Getenv("CORONER_CACHE_DIR"); d != "" {
		if d == "off" {
			return ""
		}
		return filepath.Join(d, "php-layouts")
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return ""
	}
	return filepath.Join(d, "coroner", "php-layouts")
}

// isBuildID reports whether s is a build-id as a cache file name takes it:
// 8 to 128 lowercase hex digits. (A loop, not the regexp
// ^[0-9a-f]{8,128}$: compiling that one took about 1 ms of every start of
// coroner.)
func isBuildID(s string) bool {
	if len(s) < 8 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

var stampOnce = sync.OnceValue(func() string {
	exe, err := os.Executable()
	if err != nil {
		return ""
	}
	st, err := os.Stat(exe)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", st.Size(), st.ModTime().UnixNano())
})

// cacheStamp identifies the coroner executable: entries of another build
// of coroner (other rules) are not used.
func cacheStamp() string { return stampOnce() }

// entryPath is the file of a binary's entry, "" when there is none.
func entryPath(o *object) string { return entryPathKind(o, "") }

// entryPathKind is the file of a binary's entry of a kind ("": an engine
// binary's, "jit": an opcache.so's JIT bookkeeping).
func entryPathKind(o *object, kind string) string {
	dir := diskCacheDir()
	if dir == "" || !isBuildID(o.buildID) {
		return ""
	}
	h := fnv.New32a()
	h.Write([]byte(o.path))
	if kind != "" {
		kind = "." + kind
	}
	return filepath.Join(dir, fmt.Sprintf("%s-%08x%s.json", o.buildID, h.Sum32(), kind))
}

// diskJITEntry is an opcache.so's entry: what jitFromCode read from its
// code (JIT nil: nothing).
type diskJITEntry struct {
	Format  int      `json:"format"`
	Stamp   string   `json:"stamp"`
	Path    string   `json:"path"`
	BuildID string   `json:"build_id"`
	JIT     *diskJIT `json:"jit,omitempty"`
}

// loadJITDisk returns the JIT bookkeeping kept for opcache.so o; ok is
// false when there is no usable entry.
func loadJITDisk(o *object) (j *jitSymbols, ok bool) {
	p := entryPathKind(o, "jit")
	if p == "" || cacheStamp() == "" {
		return nil, false
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	var e diskJITEntry
	dec := json.NewDecoder(&limitedReader{f: f, left: maxDiskEntry})
	if dec.Decode(&e) != nil || e.Format != diskFormat || e.Stamp != cacheStamp() || e.Path != o.path || e.BuildID != o.buildID {
		return nil, false
	}
	if d := e.JIT; d != nil {
		j = &jitSymbols{path: d.Path, dasmBuf: d.DasmBuf, dasmEnd: d.DasmEnd, dasmPtr: d.DasmPtr, anchor: d.Anchor, instr: d.Instr, pc: d.PC}
	}
	return j, true
}

// storeJITDisk keeps what jitFromCode read from opcache.so o (best effort).
func storeJITDisk(o *object, j *jitSymbols) {
	p := entryPathKind(o, "jit")
	if p == "" || cacheStamp() == "" {
		return
	}
	e := diskJITEntry{Format: diskFormat, Stamp: cacheStamp(), Path: o.path, BuildID: o.buildID}
	if j != nil {
		e.JIT = &diskJIT{Path: j.path, DasmBuf: j.dasmBuf, DasmEnd: j.dasmEnd, DasmPtr: j.dasmPtr, Anchor: j.anchor, Instr: j.instr, PC: j.pc}
	}
	b, err := json.Marshal(&e)
	if err != nil {
		return
	}
	writeEntry(p, b)
}

// writeEntry writes an entry atomically (best effort).
func writeEntry(p string, b []byte) {
	if os.MkdirAll(filepath.Dir(p), 0o755) != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".entry-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if werr != nil || cerr != nil || os.Rename(tmp.Name(), p) != nil {
		os.Remove(tmp.Name())
	}
}

// loadDisk returns the entry of o, or nil.
func loadDisk(o *object) *engineInfo {
	p := entryPath(o)
	if p == "" || cacheStamp() == "" {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil
	}
	defer f.Close()
	var e diskEntry
	dec := json.NewDecoder(&limitedReader{f: f, left: maxDiskEntry})
	if dec.Decode(&e) != nil || e.Format != diskFormat || e.Stamp != cacheStamp() || e.Path != o.path || e.BuildID != o.buildID {
		return nil
	}
	s := e.Symbols
	info := &engineInfo{path: o.path, sym: engineSymbols{eg: s.EG, sg: s.SG, pg: s.PG, egSize: s.EGSize, registry: s.Registry,
		zendExts: s.ZendExts, sapiModule: s.SAPIModule, zts: s.ZTS, egOffset: s.EGOffset, sgOffset: s.SGOffset, version: s.Version}}
	if e.Derived == nil {
		return info
	}
	d := &derivation{path: e.Path, buildID: e.BuildID, fields: map[string]derived{}, conflicts: e.Conflicts, anchorErrs: e.AnchorErrs,
		moduleBuildID: e.ModuleBuildID, version: e.Version, opArraySize: e.OpArraySize}
	if d.conflicts == nil {
		d.conflicts = map[string]string{}
	}
	if d.anchorErrs == nil {
		d.anchorErrs = map[string]string{}
	}
	for id, f := range e.Derived {
		if _, ok := fieldAnchors[id]; !ok {
			continue
		}
		d.fields[id] = derived{value: f.Value, anchor: f.Anchor, pc: f.PC, instr: f.Instr, rule: f.Rule, agree: f.Agree}
	}
	if j := e.JIT; j != nil {
		d.jit = &jitSymbols{path: j.Path, dasmBuf: j.DasmBuf, dasmEnd: j.DasmEnd, dasmPtr: j.DasmPtr, anchor: j.Anchor, instr: j.Instr, pc: j.PC}
	}
	if t := e.TSRM; t != nil {
		d.tsrm = &tsrmAccess{tpOffset: t.TPOffset, gotSlot: t.GOTSlot, anchor: t.Anchor}
	}
	info.d = d
	return info
}

// storeDisk writes the entry of o (best effort: a cache that cannot be
// written costs the next process a derivation, nothing else).
func storeDisk(o *object, info *engineInfo) {
	p := entryPath(o)
	if p == "" || cacheStamp() == "" || info.d == nil {
		return
	}
	e := diskEntry{Format: diskFormat, Stamp: cacheStamp(), Path: o.path, BuildID: o.buildID, Derived: map[string]diskField{}}
	s := info.sym
	e.Symbols.EG, e.Symbols.SG, e.Symbols.PG, e.Symbols.EGSize = s.eg, s.sg, s.pg, s.egSize
	e.Symbols.Registry, e.Symbols.ZendExts, e.Symbols.SAPIModule = s.registry, s.zendExts, s.sapiModule
	e.Symbols.ZTS, e.Symbols.EGOffset, e.Symbols.SGOffset, e.Symbols.Version = s.zts, s.egOffset, s.sgOffset, s.version
	d := info.d
	for id, f := range d.fields {
		e.Derived[id] = diskField{Value: f.value, Anchor: f.anchor, PC: f.pc, Instr: f.instr, Rule: f.rule, Agree: f.agree}
	}
	e.Conflicts, e.AnchorErrs, e.ModuleBuildID, e.Version, e.OpArraySize = d.conflicts, d.anchorErrs, d.moduleBuildID, d.version, d.opArraySize
	if j := d.jit; j != nil {
		e.JIT = &diskJIT{Path: j.path, DasmBuf: j.dasmBuf, DasmEnd: j.dasmEnd, DasmPtr: j.dasmPtr, Anchor: j.anchor, Instr: j.instr, PC: j.pc}
	}
	if t := d.tsrm; t != nil {
		e.TSRM = &diskTSRM{TPOffset: t.tpOffset, GOTSlot: t.gotSlot, Anchor: t.anchor}
	}
	b, err := json.Marshal(&e)
	if err != nil {
		return
	}
	writeEntry(p, b)
}

// limitedReader stops reading after left bytes.
type limitedReader struct {
	f    *os.File
	left int64
}

func (r *limitedReader) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, fmt.Errorf("cache entry larger than %d bytes", maxDiskEntry)
	}
	if int64(len(p)) > r.left {
		p = p[:r.left]
	}
	n, err := r.f.Read(p)
	r.left -= int64(n)
	return n, err
}
