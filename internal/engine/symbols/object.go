// Package symbols turns addresses inside ELF objects into names: symbol
// tables (.symtab, .dynsym), separate debug files found by build-id or
// .gnu_debuglink, DWARF file:line, and C++ demangling. It also gives access
// to the sections other packages need (CFI for unwinding).
//
// All addresses here are link-time virtual addresses of the object; callers
// subtract the load bias first.
package symbols

import (
	"bytes"
	"cmp"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ianlancetaylor/demangle"

	"github.com/coroner-dev/coroner/internal/regular"
)

// Symbol is a named function.
type Symbol struct {
	Name  string
	Value uint64
	Size  uint64
	// Source is where the name came from: "symtab", "dynsym", "debuginfo",
	// or a source added with AddSymbols (e.g. "zend-function-entry").
	Source string
}

// Options control where separate debug files are searched.
type Options struct {
	// DebugDirs are the roots searched for separate debug files
	// (default /usr/lib/debug).
	DebugDirs []string
	// Sysroot is prepended to DebugDirs.
	Sysroot string
	// NoHostDebug keeps the search below Sysroot: a debug file of this
	// host found by build-id is not used (the default uses it).
	NoHostDebug bool
	// LeaveMapped makes Close leave the object's files memory-mapped (see
	// elfcore.Options.LeaveMapped): for a process that exits after one
	// analysis.
	LeaveMapped bool
}

// Object is one opened ELF file with its symbols.
type Object struct {
	// Path is the path the object was opened from.
	Path string
	// BuildID is the hex GNU build-id, or "".
	BuildID string
	// Type is the ELF type (ET_EXEC, ET_DYN).
	Type elf.Type

	file *os.File
	// elf is the parsed file (section headers and all), read on first
	// need (elfFile): most mapped objects of a core only need the
	// program headers read at open. elfErr says why it could not be
	// parsed; elf is then a file without sections.
	elfOnce sync.Once
	elf     *elf.File
	elfErr  error
	// the separate debug file, looked for on first need (dbg)
	debugOnce sync.Once
	debugFile string
	debugElf  *elf.File
	debugF    *os.File
	symsOnce  sync.Once
	// syms holds the function symbols sorted by address. A list, once
	// published, is never changed: AddSymbols publishes a new one (writers
	// are serialised by addMu), so lookups need no lock while line tables
	// are decoded and PHP's internals are named in other goroutines.
	syms   atomic.Pointer[[]Symbol]
	addMu  sync.Mutex
	source string
	loads  []elf.ProgHeader

	dwarfOnce   sync.Once
	lines       *lineTable
	lineSrcOnce sync.Once
	lineSrc     []lineSource

	// secs and debugSecs read the sections of the object and of its
	// debug file.
	secs, debugSecs *sectionCache
	miniOnce        sync.Once
	mini            *elf.File
	miniSecs        *sectionCache
	altSecs         *sectionCache
	miniErr         error
	infoOnce        sync.Once
	info            *dwarfInfo
	altF            *os.File
	opts            Options
	// cache holds what is known about addresses, from a previous run (see
	// UseCacheRecord) and this one.
	cache *cacheRecord
	// baseSyms is the symbol table as read, before AddSymbols.
	baseSyms atomic.Pointer[[]Symbol]
	// used is set once symbols, lines or .debug_info are read (see
	// UseDebugFile).
	used atomic.Bool
}

// ErrNotELF is returned by Open for a file that is not ELF (locale
// archives, caches and other mapped data files).
var ErrNotELF = errors.New("not an ELF file")

// Open opens the ELF object at path and loads its symbol tables.
func Open(path string) (*Object, error) { return OpenWithOptions(path, Options{}) }

// OpenWithOptions opens the ELF object at path with options.
func OpenWithOptions(path string, opts Options) (*Object, error) {
	f, err := regular.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open object: %w", err)
	}
	return OpenFileWithOptions(f, path, opts)
}

// OpenFileWithOptions is OpenWithOptions for the file at path, already
// opened with regular.Open (by a caller that read its build-id first). The
// Object owns f: it closes it on error and in Close.
func OpenFileWithOptions(f *os.File, path string, opts Options) (*Object, error) {
	head := newHeadReader(f)
	var magic [4]byte
	if _, err := head.ReadAt(magic[:], 0); err != nil || string(magic[:]) != elf.ELFMAG {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, ErrNotELF)
	}
	o := &Object{Path: path, file: f, opts: opts, cache: newCacheRecord()}
	// The ELF type, the PT_LOAD segments and the build-id are all most
	// objects need: they come from the program headers, and the section
	// headers are parsed on first need (a php-fpm core maps ~50 objects,
	// its stacks run through ~6 of them).
	if h, ok := readProgHeaders(head); ok {
		if id, ok := h.buildID(head); ok {
			o.Type, o.loads, o.BuildID = h.typ, h.loads(), id
			o.secs = newLazySectionCache(f, o.elfFile)
			return o, nil
		}
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read ELF %s: %w", path, err)
	}
	o.elfOnce.Do(func() { o.elf = ef })
	o.Type = ef.Type
	o.secs = newSectionCache(f, ef)
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			o.loads = append(o.loads, p.ProgHeader)
		}
	}
	o.BuildID = ReadBuildID(ef)
	return o, nil
}

// elfFile parses the object's headers the first time; when they cannot be
// read it returns a file without sections (elfErr says why), so that the
// object has no symbols, CFI or line tables.
func (o *Object) elfFile() *elf.File {
	o.elfOnce.Do(func() {
		ef, err := elf.NewFile(o.file)
		if err != nil {
			o.elfErr = fmt.Errorf("read ELF %s: %w", o.Path, err)
			ef = &elf.File{FileHeader: elf.FileHeader{Class: elf.ELFCLASS64, Data: elf.ELFDATA2LSB, Version: elf.EV_CURRENT, ByteOrder: binary.LittleEndian, Type: o.Type}}
		}
		o.elf = ef
	})
	return o.elf
}

// Warnings returns what could not be read of the object's symbols: its
// section headers (read after Open, on first need), a damaged
// .gnu_debugdata.
func (o *Object) Warnings() []string {
	o.symsOnce.Do(o.loadSymbols)
	var out []string
	if o.elfFile(); o.elfErr != nil {
		out = append(out, fmt.Sprintf("cannot read %s: %v (its frames are named by address only)", o.Path, o.elfErr))
	}
	if o.miniErr != nil {
		out = append(out, o.miniErr.Error())
	}
	return out
}

// Close closes the object's files.
func (o *Object) Close() error {
	unmap := !o.opts.LeaveMapped
	o.secs.close(unmap)
	o.debugSecs.close(unmap)
	o.altSecs.close(unmap)
	if o.debugF != nil {
		o.debugF.Close()
	}
	if o.altF != nil {
		o.altF.Close()
	}
	return o.file.Close()
}

// ELF returns the underlying ELF file (parsing its section headers the
// first time), nil when they cannot be read (Warnings says why).
func (o *Object) ELF() *elf.File {
	if ef := o.elfFile(); o.elfErr == nil {
		return ef
	}
	return nil
}

// SymbolSource tells which table the names come from ("symtab", "dynsym",
// "debuginfo", "minidebuginfo" (with .dynsym), or "none").
// It does not read the tables when they have not been read yet.
func (o *Object) SymbolSource() string {
	if o.syms.Load() != nil {
		o.symsOnce.Do(func() {})
		return o.source
	}
	c := o.cache
	c.mu.Lock()
	cached, source := c.syms, c.source
	c.mu.Unlock()
	if cached != nil {
		return source
	}
	hasFuncs := func(sc *sectionCache, typ elf.SectionType) bool {
		if sc == nil {
			return false
		}
		for _, s := range sc.elfFile().Sections {
			if s.Type == typ && s.Size > s.Entsize {
				return true
			}
		}
		return false
	}
	switch {
	case hasFuncs(o.dbg(), elf.SHT_SYMTAB):
		return "debuginfo"
	case hasFuncs(o.secs, elf.SHT_SYMTAB):
		return "symtab"
	case o.elfFile().Section(".gnu_debugdata") != nil:
		return "minidebuginfo"
	case hasFuncs(o.secs, elf.SHT_DYNSYM):
		return "dynsym"
	}
	return "none"
}

// Loads returns the PT_LOAD program headers.
func (o *Object) Loads() []elf.ProgHeader { return o.loads }

// ReadBuildID returns the hex GNU build-id of an ELF file, or "".
func ReadBuildID(ef *elf.File) string {
	for _, s := range ef.Sections {
		if s.Type != elf.SHT_NOTE {
			continue
		}
		if id := buildIDFromNotes(sectionData(s, 1<<20)); id != "" {
			return id
		}
	}
	for _, p := range ef.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz > 1<<20 {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			continue
		}
		if id := buildIDFromNotes(b); id != "" {
			return id
		}
	}
	return ""
}

// BuildIDFromNotes finds NT_GNU_BUILD_ID in raw note data.
func buildIDFromNotes(b []byte) string {
	for len(b) >= 12 {
		namesz := int(le32(b[0:]))
		descsz := int(le32(b[4:]))
		typ := le32(b[8:])
		p := 12
		if namesz < 0 || namesz > len(b)-p {
			return ""
		}
		name := b[p : p+namesz]
		p += (namesz + 3) &^ 3
		if descsz < 0 || p > len(b) || descsz > len(b)-p {
			return ""
		}
		if typ == 3 && bytes.Equal(bytes.TrimRight(name, "\x00"), []byte("GNU")) {
			return hex.EncodeToString(b[p : p+descsz])
		}
		p += (descsz + 3) &^ 3
		if p > len(b) {
			return ""
		}
		b = b[p:]
	}
	return ""
}

// BuildIDFromNotes returns the GNU build-id found in raw ELF note data
// (for example a PT_NOTE segment read from a core's memory), or "".
func BuildIDFromNotes(b []byte) string { return buildIDFromNotes(b) }

func le32(b []byte) uint32 {
	return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 | uint32(b[3])<<24
}

func sectionData(s *elf.Section, max uint64) []byte {
	if s == nil || s.Type == elf.SHT_NOBITS || s.Size > max {
		return nil
	}
	b, err := s.Data()
	if err != nil {
		return nil
	}
	return b
}

// debugDirs returns the directories searched for debug files by build-id:
// each of Options.DebugDirs under the sysroot and, as a file found by
// build-id is the right one wherever it lives, on this host.
func (o *Object) debugDirs() []string {
	dirs := o.opts.DebugDirs
	if len(dirs) == 0 {
		dirs = []string{"/usr/lib/debug"}
	}
	roots := []string{o.opts.Sysroot}
	if o.opts.Sysroot != "" && !o.opts.NoHostDebug {
		// A debug file found by build-id is the right one wherever it
		// lives: also look on this host.
		roots = append(roots, "")
	}
	var out []string
	for _, root := range roots {
		for _, d := range dirs {
			out = append(out, filepath.Join(root, d))
		}
	}
	return out
}

// findDebugFile looks for a separate debug file by build-id, then by
// .gnu_debuglink, and keeps it only when its build-id matches.
func (o *Object) findDebugFile(opts Options) {
	dirs := opts.DebugDirs
	if len(dirs) == 0 {
		dirs = []string{"/usr/lib/debug"}
	}
	var cands []string
	for _, d := range o.debugDirs() {
		if len(o.BuildID) > 2 {
			cands = append(cands, filepath.Join(d, ".build-id", o.BuildID[:2], o.BuildID[2:]+".debug"))
		}
	}
	if s := o.elfFile().Section(".gnu_debuglink"); s != nil {
		if b := sectionData(s, 4096); b != nil {
			if i := bytes.IndexByte(b, 0); i > 0 {
				name := string(b[:i])
				dir := filepath.Dir(o.Path)
				cands = append(cands, filepath.Join(dir, ".debug", name))
				for _, d := range dirs {
					cands = append(cands, filepath.Join(opts.Sysroot, d, dir, name))
				}
				if name != filepath.Base(o.Path) {
					cands = append(cands, filepath.Join(dir, name))
				}
			}
		}
	}
	for _, c := range cands {
		f, err := regular.Open(c)
		if err != nil {
			continue
		}
		ef, err := elf.NewFile(f)
		if err != nil {
			f.Close()
			continue
		}
		if id := ReadBuildID(ef); o.BuildID != "" && id != o.BuildID {
			f.Close()
			continue
		}
		o.debugFile, o.debugElf, o.debugF = c, ef, f
		o.debugSecs = newSectionCache(f, ef)
		return
	}
}

// dbg looks for the separate debug file (once) and returns its sections,
// nil when there is none.
func (o *Object) dbg() *sectionCache {
	o.debugOnce.Do(func() { o.findDebugFile(o.opts) })
	return o.debugSecs
}

// DebugFile returns the separate debug file of the object (looking for it
// the first time), or "".
func (o *Object) DebugFile() string {
	o.dbg()
	return o.debugFile
}

// UseDebugFile makes path (a debug file fetched from elsewhere, such as a
// debuginfod server) the object's debug file. It must be called before
// any lookup; the file's build-id must be the object's.
func (o *Object) UseDebugFile(path string) error {
	if o.used.Load() {
		return fmt.Errorf("%s: debug file given after lookups began", o.Path)
	}
	f, err := regular.Open(path)
	if err != nil {
		return fmt.Errorf("open debug file: %w", err)
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("read debug file %s: %w", path, err)
	}
	if id := ReadBuildID(ef); id != o.BuildID {
		f.Close()
		return fmt.Errorf("debug file %s has build-id %s, %s has %s", path, id, o.Path, o.BuildID)
	}
	o.debugOnce.Do(func() {}) // no lookup after this
	if o.debugF != nil {
		o.debugSecs.close(true)
		o.debugF.Close()
	}
	o.debugFile, o.debugElf, o.debugF = path, ef, f
	o.debugSecs = newSectionCache(f, ef)
	o.cache = newCacheRecord() // the CacheKey changed
	return nil
}

func (o *Object) loadSymbols() {
	o.used.Store(true)
	c := o.cache
	c.mu.Lock()
	cached, source := c.syms, c.source
	c.mu.Unlock()
	if cached != nil {
		// Published lists are never changed (AddSymbols makes a new
		// one): the cached list is the table and its base alike.
		o.source = source
		o.baseSyms.Store(&cached)
		o.syms.Store(&cached)
		return
	}
	var syms []Symbol
	add := func(c *sectionCache, dyn bool, source string) bool {
		if c == nil {
			return false
		}
		typ := elf.SHT_SYMTAB
		if dyn {
			typ = elf.SHT_DYNSYM
		}
		// Room for every entry at once: growing the list by appending
		// copied it a dozen times (each copy a fresh, faulted-in block
		// while the collector is off), 8% of a cold analysis.
		entries := uint64(0)
		for _, sec := range c.elfFile().Sections {
			if sec.Type == typ && sec.Size <= 256<<20 {
				entries += sec.Size / 24
			}
		}
		syms = slices.Grow(syms, int(entries))
		n := 0
		for _, sec := range c.elfFile().Sections {
			if sec.Type != typ {
				continue
			}
			found := functionSymbols(c, sec, func(name string, value, size uint64) {
				syms = append(syms, Symbol{Name: name, Value: value, Size: size, Source: source})
			})
			n += found
		}
		return n > 0
	}
	switch {
	case add(o.dbg(), false, "debuginfo"):
		o.source = "debuginfo"
	case add(o.secs, false, "symtab"):
		o.source = "symtab"
	case o.miniDebugInfo() != nil && add(o.miniSecs, false, "minidebuginfo"):
		o.source = "minidebuginfo"
	}
	if add(o.secs, true, "dynsym") && o.source == "" {
		o.source = "dynsym"
	}
	if o.source == "" {
		o.source = "none"
	}
	syms = dedupe(syms)
	o.baseSyms.Store(&syms)
	o.syms.Store(&syms)
}

// symbols returns the current symbol list (read-only).
func (o *Object) symbols() []Symbol {
	o.symsOnce.Do(o.loadSymbols)
	return *o.syms.Load()
}

// dedupe sorts symbols by address and keeps one name per address, the one
// gdb shows: of the aliases at an address (raise and gsignal, close and
// __close, __libc_start_main and __libc_start_main_impl) gdb takes the
// last in strcmp order of the sized ones (its minimal symbol table is
// sorted by address, then name, and a lookup takes the last entry at an
// address), whatever their binding. Measured against gdb on the .dynsym of
// glibc 2.31, 2.41 and 2.42: 180 of 180 aliased addresses agree; "global
// over weak" would agree on 68.
func dedupe(syms []Symbol) []Symbol {
	// preferred says whether a is the name to keep over b at one address:
	// sized before unsized, then the greater name.
	preferred := func(a, b *Symbol) bool {
		if (a.Size > 0) != (b.Size > 0) {
			return a.Size > 0
		}
		return a.Name > b.Name
	}
	out := make([]Symbol, 0, len(syms))
	// The sort orders plain integers, address and index packed in one,
	// when they fit (always, for a table of a real object): a generic sort
	// of the 48-byte symbols with a comparison function took ~1 ms of each
	// glibc debug table.
	const idxBits = 24
	fits := len(syms) < 1<<idxBits
	for i := 0; fits && i < len(syms); i++ {
		fits = syms[i].Value < 1<<(64-idxBits)
	}
	if fits {
		const mask = 1<<idxBits - 1
		keys := make([]uint64, len(syms))
		for i, s := range syms {
			keys[i] = s.Value<<idxBits | uint64(i)
		}
		radixSort(keys)
		for i := 0; i < len(keys); {
			v, best := keys[i]>>idxBits, int(keys[i]&mask)
			j := i + 1
			for ; j < len(keys) && keys[j]>>idxBits == v; j++ {
				if k := int(keys[j] & mask); preferred(&syms[k], &syms[best]) {
					best = k
				}
			}
			out = append(out, syms[best])
			i = j
		}
		return out
	}
	slices.SortStableFunc(syms, func(a, b Symbol) int {
		if c := cmp.Compare(a.Value, b.Value); c != 0 {
			return c
		}
		if preferred(&a, &b) {
			return -1
		}
		if preferred(&b, &a) {
			return 1
		}
		return 0
	})
	for _, s := range syms {
		if n := len(out); n > 0 && out[n-1].Value == s.Value {
			continue // sorted best first
		}
		out = append(out, s)
	}
	return out
}

// radixSort sorts keys in place, a byte at a time from the lowest,
// skipping the bytes all keys share (the high bytes of addresses): dedupe
// of glibc's 6,818 debug symbols took 0.61 ms with slices.Sort, 0.31-0.42
// with this.
func radixSort(keys []uint64) {
	if len(keys) < 256 {
		slices.Sort(keys)
		return
	}
	tmp := make([]uint64, len(keys))
	src, dst := keys, tmp
	for shift := uint(0); shift < 64; shift += 8 {
		var count [256]int
		for _, k := range src {
			count[byte(k>>shift)]++
		}
		if count[byte(src[0]>>shift)] == len(src) {
			continue // every key has this byte
		}
		pos := 0
		for i, c := range count {
			count[i] = pos
			pos += c
		}
		for _, k := range src {
			b := byte(k >> shift)
			dst[count[b]] = k
			count[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &keys[0] {
		copy(keys, src)
	}
}

// AddSymbols adds named functions from another source (for example PHP's
// zend_function_entry tables). A name is only added where no symbol
// already starts at the same address. It is safe to call concurrently with
// Lookup, Symbols and Lines.
func (o *Object) AddSymbols(extra []Symbol) {
	if len(extra) == 0 {
		return
	}
	o.addMu.Lock()
	defer o.addMu.Unlock()
	old := o.symbols()
	have := make(map[uint64]bool, len(old))
	for _, s := range old {
		have[s.Value] = true
	}
	syms := make([]Symbol, len(old), len(old)+len(extra))
	copy(syms, old)
	for _, s := range extra {
		if !have[s.Value] {
			syms = append(syms, s)
			have[s.Value] = true
		}
	}
	if len(syms) == len(old) {
		return
	}
	slices.SortStableFunc(syms, func(a, b Symbol) int { return cmp.Compare(a.Value, b.Value) })
	o.syms.Store(&syms)
}

// maxUnsizedDistance bounds how far past a symbol without a size an address
// may be and still be attributed to it.
const maxUnsizedDistance = 16 << 10

// Lookup returns the function containing the link-time address addr.
func (o *Object) Lookup(addr uint64) (Symbol, bool) {
	syms := o.symbols()
	i := sort.Search(len(syms), func(i int) bool { return syms[i].Value > addr }) - 1
	for k := i; k >= 0 && k > i-8; k-- {
		s := syms[k]
		if s.Size > 0 && addr < s.Value+s.Size {
			return s, true
		}
		if s.Size == 0 && k == i && addr-s.Value < maxUnsizedDistance {
			return s, true
		}
	}
	return Symbol{}, false
}

// Symbols returns all function symbols sorted by address. The caller must
// not modify the list; later AddSymbols calls do not change it.
func (o *Object) Symbols() []Symbol { return o.symbols() }

// SymbolByName returns the first symbol (function or object, from .symtab,
// .dynsym or the debug file) with the given name.
func (o *Object) SymbolByName(name string) (elf.Symbol, bool) {
	want := []byte(name)
	for i, c := range []*sectionCache{o.dbg(), o.secs, nil} {
		if i == 2 && o.miniDebugInfo() != nil { // decompressed only when needed
			c = o.miniSecs
		}
		if c == nil || c.elfFile().Class != elf.ELFCLASS64 {
			continue
		}
		ef := c.elfFile()
		for _, typ := range []elf.SectionType{elf.SHT_SYMTAB, elf.SHT_DYNSYM} {
			for _, sec := range ef.Sections {
				if sec.Type != typ || sec.Link == 0 || int(sec.Link) >= len(ef.Sections) {
					continue
				}
				if s, ok := findSymbol(c, sec, ef.Sections[sec.Link], want); ok {
					return s, true
				}
			}
		}
	}
	return elf.Symbol{}, false
}

// findSymbol scans a raw symbol table for a defined symbol named want,
// comparing bytes in place (debug/elf's Symbols allocates every name).
func findSymbol(c *sectionCache, symtab, strtab *elf.Section, want []byte) (elf.Symbol, bool) {
	data := c.raw(symtab, 256<<20)
	strs := c.raw(strtab, 256<<20)
	const entSize = 24
	for off := entSize; off+entSize <= len(data); off += entSize {
		e := data[off : off+entSize]
		nameOff := int(le32(e[0:]))
		if nameOff+len(want) >= len(strs) || strs[nameOff+len(want)] != 0 || !bytes.Equal(strs[nameOff:nameOff+len(want)], want) {
			continue
		}
		shndx := elf.SectionIndex(uint16(e[6]) | uint16(e[7])<<8)
		if shndx == elf.SHN_UNDEF {
			continue
		}
		return elf.Symbol{Name: string(want), Info: e[4], Other: e[5], Section: shndx, Value: le64(e[8:]), Size: le64(e[16:])}, true
	}
	return elf.Symbol{}, false
}

// FileOffsetToAddr maps a file offset to a link-time address through the
// PT_LOAD segment that contains it.
func (o *Object) FileOffsetToAddr(off uint64) (uint64, bool) {
	for _, p := range o.loads {
		if off >= p.Off && off < p.Off+p.Filesz {
			return off - p.Off + p.Vaddr, true
		}
	}
	return 0, false
}

// Section returns the contents and link-time address of a section of the
// object or, when the object lacks it, of its debug file. Sections larger
// than 512 MiB are refused.
func (o *Object) Section(name string) ([]byte, uint64, bool) {
	for _, c := range []*sectionCache{o.secs, o.dbg()} {
		if c == nil {
			continue
		}
		s := c.elfFile().Section(name)
		if b := c.raw(s, 512<<20); b != nil {
			return b, s.Addr, true
		}
	}
	return nil, 0, false
}

// Demangle returns the demangled form of a C++ or Rust symbol name, or the
// name itself.
func Demangle(name string) string {
	if !strings.HasPrefix(name, "_Z") && !strings.HasPrefix(name, "_R") {
		return name
	}
	if d, err := demangle.ToString(name); err == nil {
		return d
	}
	return name
}

// demangleNoParams demangles a C++ name without its return type and
// parameters, as gdb prints functions ("std::__invoke_impl<void, main::$_0>").
func demangleNoParams(name string) (string, bool) {
	if !strings.HasPrefix(name, "_Z") {
		return "", false
	}
	d, err := demangle.ToString(name, demangle.NoParams)
	return d, err == nil
}

// errNoDWARF is returned by Line when the object has no line table.
var errNoDWARF = errors.New("no DWARF line information")

// parseLines decodes the line tables of the debug file, else of the
// object itself (see parseLineTable for want).
func (o *Object) parseLines(want []uint64) (*lineTable, error) {
	for _, src := range o.lineSources() {
		lt, err := parseLineTable(src.line, src.lineStr, src.str, want)
		if err == nil && (want != nil || len(lt.rows) > 0) {
			return lt, nil
		}
	}
	return nil, errNoDWARF
}

// lineSource holds the decompressed sections a line table needs.
type lineSource struct {
	line, lineStr []byte
	str           func() []byte // .debug_str, read only when needed
}

// lineSources returns the line sections of the debug file and of the
// object itself (decompressed once, shared with .debug_info lookups).
func (o *Object) lineSources() []lineSource {
	o.lineSrcOnce.Do(func() {
		o.used.Store(true)
		for _, c := range []*sectionCache{o.dbg(), o.secs} {
			if !c.has(".debug_line") {
				continue
			}
			o.lineSrc = append(o.lineSrc, lineSource{
				line: c.get(".debug_line"), lineStr: c.get(".debug_line_str"),
				str: func() []byte { return c.get(".debug_str") },
			})
		}
	})
	return o.lineSrc
}

// PrefetchLineSections starts decompressing the line sections in the
// background (decompression is most of the cost of a line lookup in a
// large library), before the addresses to look up are known.
func (o *Object) PrefetchLineSections() {
	if o.HasLineTable() {
		go o.lineSources()
	}
}

func (o *Object) lineData() *lineTable {
	o.dwarfOnce.Do(func() { o.lines, _ = o.parseLines(nil) })
	return o.lines
}

// Position is a source file and line.
type Position struct {
	File string
	Line int
}

// Lines returns the source positions of several link-time addresses in one
// pass over the line programs, keeping only the sequences that cover them
// (much cheaper than Line on a large library when only a few addresses
// matter). Addresses without line information are absent from the map.
func (o *Object) Lines(addrs []uint64) map[uint64]Position {
	out := map[uint64]Position{}
	if len(addrs) == 0 {
		return out
	}
	want := append([]uint64(nil), addrs...)
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	lt, err := o.parseLines(want)
	if err != nil {
		return out
	}
	for _, a := range want {
		if file, line, ok := lt.lookup(a); ok {
			out[a] = Position{file, line}
		}
	}
	return out
}

// PrefetchDWARF starts decoding the line tables in the background so that
// a later Line call does not wait for section decompression.
func (o *Object) PrefetchDWARF() {
	if !o.HasLineTable() {
		return
	}
	go o.lineData()
}

// HasLineTable reports whether the object or its debug file has a
// .debug_line section (without decoding it).
func (o *Object) HasLineTable() bool {
	return o.secs.has(".debug_line") || o.dbg().has(".debug_line")
}

// HasDWARF reports whether line information is available.
func (o *Object) HasDWARF() bool { return o.lineData() != nil }

// errNoLine is returned by Line when no line covers an address.
var errNoLine = errors.New("no line information for address")

// Line returns the source file and line of the link-time address addr.
func (o *Object) Line(addr uint64) (string, int, error) {
	lt := o.lineData()
	if lt == nil {
		return "", 0, errNoDWARF
	}
	file, line, ok := lt.lookup(addr)
	if !ok {
		return "", 0, errNoLine
	}
	return file, line, nil
}

// Aliases returns every function name (from the debug file, .symtab and
// .dynsym) whose value is the link-time address addr.
func (o *Object) Aliases(addr uint64) []string {
	var names []string
	seen := map[string]bool{}
	o.dbg()
	for _, ef := range []*elf.File{o.debugElf, o.elfFile(), o.miniDebugInfo()} {
		if ef == nil {
			continue
		}
		for _, get := range []func() ([]elf.Symbol, error){ef.Symbols, ef.DynamicSymbols} {
			list, err := get()
			if err != nil {
				continue
			}
			for _, s := range list {
				name := s.Name
				if i := strings.IndexByte(name, '@'); i > 0 {
					name = name[:i]
				}
				if s.Value == addr && s.Section != elf.SHN_UNDEF && !seen[name] {
					seen[name] = true
					names = append(names, name)
				}
			}
		}
	}
	return names
}

// functionSymbols reads the function symbols of a symbol table section
// directly (debug/elf's Symbols allocates every name of every symbol, which
// dominates the cost on large debug files) and calls fn for each. It
// returns how many it found.
func functionSymbols(c *sectionCache, symtab *elf.Section, fn func(name string, value, size uint64)) int {
	ef := c.elfFile()
	if ef.Class != elf.ELFCLASS64 || symtab.Link == 0 || int(symtab.Link) >= len(ef.Sections) {
		return 0
	}
	data := c.raw(symtab, 256<<20)
	strs := c.raw(ef.Sections[symtab.Link], 256<<20)
	if data == nil || strs == nil {
		return 0
	}
	const entSize = 24
	// The names are substrings of one copy of a string table of ordinary
	// size (one allocation instead of one per symbol: glibc's debug table
	// has ~7,000 functions); a larger one is copied name by name.
	var all string
	if len(strs) <= 16<<20 {
		all = string(strs)
	}
	n := 0
	for off := entSize; off+entSize <= len(data); off += entSize { // entry 0 is the null symbol
		e := data[off : off+entSize]
		info := e[4]
		t := elf.SymType(info & 0xf)
		if t != elf.STT_FUNC && t != elf.STT_GNU_IFUNC {
			continue
		}
		shndx := uint16(e[6]) | uint16(e[7])<<8
		value := le64(e[8:])
		if shndx == uint16(elf.SHN_UNDEF) || value == 0 {
			continue
		}
		nameOff := int(le32(e[0:]))
		if nameOff >= len(strs) {
			continue
		}
		end := bytes.IndexByte(strs[nameOff:], 0)
		if end < 0 {
			continue
		}
		name := strs[nameOff : nameOff+end]
		if i := bytes.IndexByte(name, '@'); i > 0 {
			name = name[:i]
		}
		// Go marks assembly functions with an ABI suffix that its DWARF
		// (and gdb) leave out: runtime.sigtramp.abi0 is runtime.sigtramp.
		name = bytes.TrimSuffix(name, []byte(".abi0"))
		if all != "" {
			fn(all[nameOff:nameOff+len(name)], value, le64(e[16:]))
		} else {
			fn(string(name), value, le64(e[16:]))
		}
		n++
	}
	return n
}

func le64(b []byte) uint64 { return uint64(le32(b)) | uint64(le32(b[4:]))<<32 }
