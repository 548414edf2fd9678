package analyze

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"path/filepath"
	"sort"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/symbols"
	"github.com/coroner-dev/coroner/internal/engine/unwind"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

const pageSize = 4096

// module is one mapped ELF object of the process.
type module struct {
	path     string // path in the dumped process
	hostPath string
	start    uint64
	end      uint64
	bias     uint64
	obj      *symbols.Object
	unwind   *unwind.Module
	info     crash.Module
	// debug receives what the debug information says about the module's
	// frame addresses (see startLines); nil when it has none.
	debug chan moduleDebug
	moduleDebug
}

// moduleDebug is what a module's debug information says about the frame
// addresses in it.
type moduleDebug struct {
	// locs are the source positions and functions of lookup addresses.
	locs map[uint64]symbols.Location
	// calls are the functions called by the calls returning to return
	// addresses (from DW_TAG_call_site).
	calls map[uint64]callTarget
}

// callTarget is the function a call site calls.
type callTarget struct {
	entry uint64 // link-time, in the caller's module; 0 when not defined there
	name  string
}

// region is an executable mapping, with the module that owns it (nil for
// anonymous code such as JIT buffers).
type region struct {
	start, end uint64
	mod        *module
	label      string // "[php-jit]", "[anon-exec]", "[vdso]" for anonymous code
}

// space implements unwind.AddressSpace over a core.
type space struct {
	core    Target
	regions []region // executable mappings, sorted
}

func (s *space) region(pc uint64) *region {
	i := sort.Search(len(s.regions), func(i int) bool { return s.regions[i].end > pc })
	if i < len(s.regions) && s.regions[i].start <= pc {
		return &s.regions[i]
	}
	return nil
}

func (s *space) ModuleAt(pc uint64) *unwind.Module {
	if r := s.region(pc); r != nil && r.mod != nil {
		return r.mod.unwind
	}
	return nil
}

func (s *space) Executable(addr uint64) bool { return s.region(addr) != nil }

// stackGap is how far below a stack mapping a stack pointer may be (after
// running into the guard gap) and still belong to that stack.
const stackGap = 1 << 20

func (s *space) Stack(sp uint64) (uint64, uint64, bool) {
	m := s.core.Mapping(sp)
	if m == nil {
		// A stack overflow leaves sp in the guard gap below the stack:
		// use the stack mapping just above it.
		maps := s.core.Mappings()
		i := sort.Search(len(maps), func(i int) bool { return maps[i].Start > sp })
		if i < len(maps) && maps[i].Write && maps[i].Start-sp <= stackGap {
			return sp &^ 7, maps[i].End, true
		}
		return 0, 0, false
	}
	if !m.Write {
		return 0, 0, false
	}
	return m.Start, m.End, true
}

// isObjectPath reports whether a mapped path can be an ELF object.
func isObjectPath(p string) bool {
	if p == "" || strings.HasPrefix(p, "[") || strings.HasPrefix(p, "/dev/") ||
		strings.HasPrefix(p, "/SYSV") || strings.HasPrefix(p, "/memfd:") || strings.HasPrefix(p, "/anon_hugepage") {
		return false
	}
	return true
}

// loadModules opens every mapped ELF object and computes load biases.
func (a *analysis) loadModules() {
	byPath := map[string]*module{}
	var order []*module
	a.byPath = map[string][]*elfcore.Mapping{}
	skipped := 0
	maps := a.core.Mappings()
	for i := range maps {
		m := &maps[i]
		if !isObjectPath(m.Path) {
			continue
		}
		mod := byPath[m.Path]
		if mod == nil && len(order) >= elfcore.MaxObjects {
			if _, seen := a.byPath[m.Path]; !seen {
				a.byPath[m.Path] = nil
				skipped++
			}
			continue
		}
		a.byPath[m.Path] = append(a.byPath[m.Path], m)
		if mod == nil {
			mod = &module{path: m.Path, hostPath: a.core.HostPath(m.Path), start: m.Start, end: m.End}
			mod.info = crash.Module{Path: m.Path, Start: crash.Addr(m.Start), Deleted: m.Deleted, Kind: crash.ModuleLib}
			byPath[m.Path] = mod
			order = append(order, mod)
		}
		if m.Start < mod.start {
			mod.start = m.Start
		}
		if m.End > mod.end {
			mod.end = m.End
		}
		if m.Deleted {
			mod.info.Deleted = true
		}
	}
	if skipped > 0 {
		a.warn("the core maps %d more files than the %d read; their frames are named by address only", skipped, elfcore.MaxObjects)
	}
	exe := a.core.Executable()
	for _, mod := range order {
		mod.info.Start, mod.info.End = crash.Addr(mod.start), crash.Addr(mod.end)
		if mod.path == exe {
			mod.info.Kind = crash.ModuleExe
		}
		mod.info.BuildID = a.coreBuildIDAt(mod.start)
		if id := a.res.fileIDs[mod.path]; id != "" {
			mod.info.FileBuildID = id
		}
		if mod.hostPath == "" && a.res.files != nil {
			// No file of this host has the build-id the process ran
			// (resolveFiles said so once for all of them).
			mod.info.Mismatch = a.res.upgrade && mod.info.FileBuildID != ""
			if d := a.res.debugOnly[mod.path]; d != "" && a.openDebugOnly(mod, d) {
				continue
			}
			mod.info.Missing = true
			mod.bias = a.coreBias(mod.start)
			mod.info.Bias = crash.Addr(mod.bias)
			continue
		}
		dirs := append(append([]string(nil), a.opts.DebugDirs...), "/usr/lib/debug")
		symOpts := symbols.Options{Sysroot: a.debugRoot(), DebugDirs: dirs, NoHostDebug: a.opts.NoHostDebugFiles, LeaveMapped: a.opts.LeaveMapped}
		var obj *symbols.Object
		var err error
		if f := a.takeOpen(mod.hostPath); f != nil {
			obj, err = symbols.OpenFileWithOptions(f, mod.hostPath, symOpts)
		} else {
			obj, err = symbols.OpenWithOptions(mod.hostPath, symOpts)
		}
		if errors.Is(err, symbols.ErrNotELF) {
			continue // locale archives, caches and other mapped data files
		}
		if err != nil {
			mod.info.Missing = true
			a.warn("cannot read %s: %v (its frames are named by address only)", mod.path, err)
			continue
		}
		if obj.Type != elf.ET_EXEC && obj.Type != elf.ET_DYN {
			obj.Close()
			continue
		}
		mod.obj = obj
		mod.info.FileBuildID = obj.BuildID
		mod.bias = a.computeBias(mod, obj)
		mod.info.Bias = crash.Addr(mod.bias)
		if mod.info.BuildID != "" && obj.BuildID != "" && mod.info.BuildID != obj.BuildID {
			mod.info.Mismatch = true
			a.warn("%s on disk has build-id %s but the crashed process had %s: the file was replaced after the crash (upgrade?); symbols and unwinding for it may be wrong", mod.path, obj.BuildID, mod.info.BuildID)
		} else if mod.info.Deleted {
			a.warn("%s was deleted or replaced while the process ran (mapped \"(deleted)\"): the process ran old code, typically a library upgraded without restarting php-fpm", mod.path)
		}
		mod.unwind = &unwind.Module{Name: filepath.Base(mod.path), Bias: mod.bias, Load: func() []*unwind.Table { return cfiTables(obj) }}
	}
	a.closeOpened()
	kept := order[:0]
	for _, m := range order {
		if m.obj != nil || m.info.Missing {
			kept = append(kept, m)
		}
	}
	a.modules = kept
	a.loadVDSO()
}

// computeBias finds the load bias from a mapping whose file offset matches
// a PT_LOAD segment.
func (a *analysis) computeBias(mod *module, obj *symbols.Object) uint64 {
	for _, m := range a.byPath[mod.path] {
		for _, p := range obj.Loads() {
			if p.Off&^(pageSize-1) == m.Offset {
				return m.Start - (p.Vaddr &^ (pageSize - 1))
			}
		}
	}
	if obj.Type == elf.ET_EXEC {
		return 0
	}
	return mod.start
}

// openDebugOnly reads the symbols of a module whose file is found nowhere
// from its separate debug file (it keeps the program headers, so the load
// bias is computed as usual); its code and unwind tables stay unknown.
func (a *analysis) openDebugOnly(mod *module, debugFile string) bool {
	obj, err := symbols.OpenWithOptions(debugFile, symbols.Options{NoHostDebug: true})
	if err != nil {
		return false
	}
	if len(obj.Loads()) == 0 {
		obj.Close()
		return false
	}
	mod.obj = obj
	mod.info.DebugFile = debugFile
	mod.bias = a.computeBias(mod, obj)
	mod.info.Bias = crash.Addr(mod.bias)
	mod.unwind = &unwind.Module{Name: filepath.Base(mod.path), Bias: mod.bias}
	return true
}

// debugRoot is the root below which separate debug files are searched
// first: the root the process's files were found in.
func (a *analysis) debugRoot() string {
	if r := a.res.root; r.Runtime != "" && r.Runtime != "host" {
		return r.Dir
	}
	return a.opts.Sysroot
}

// coreBias is the load bias of the ELF object mapped at start, from its
// ELF header as dumped in the core: 0 for an executable linked at a fixed
// address, else start less the address of its first segment (start when
// the header is not dumped, as for nearly every shared object).
func (a *analysis) coreBias(start uint64) uint64 {
	var hdr [64]byte
	if _, err := a.core.ReadDumped(hdr[:], start); err != nil || string(hdr[:4]) != "\x7fELF" {
		return start
	}
	if elf.Type(binary.LittleEndian.Uint16(hdr[16:])) == elf.ET_EXEC {
		return 0
	}
	return start
}

// coreBuildIDAt reads the build-id of the ELF object mapped at start from
// the memory dumped in the core (the first page of an ELF mapping is
// normally dumped).
func (a *analysis) coreBuildIDAt(start uint64) string {
	var hdr [64]byte
	if _, err := a.core.ReadDumped(hdr[:], start); err != nil {
		return ""
	}
	if string(hdr[:4]) != "\x7fELF" || hdr[4] != 2 {
		return ""
	}
	le := binary.LittleEndian
	phoff := le.Uint64(hdr[32:])
	phnum := int(le.Uint16(hdr[56:]))
	if phnum > 64 || phoff > pageSize {
		return ""
	}
	ph := make([]byte, 56*phnum)
	if _, err := a.core.ReadDumped(ph, start+phoff); err != nil {
		return ""
	}
	// The first PT_LOAD (offset 0) is mapped at mod.start.
	var firstVaddr uint64
	found := false
	for i := 0; i < phnum; i++ {
		p := ph[i*56:]
		if elf.ProgType(le.Uint32(p)) == elf.PT_LOAD && !found {
			firstVaddr = le.Uint64(p[16:]) &^ (pageSize - 1)
			found = true
		}
	}
	for i := 0; i < phnum; i++ {
		p := ph[i*56:]
		if elf.ProgType(le.Uint32(p)) != elf.PT_NOTE {
			continue
		}
		vaddr, size := le.Uint64(p[16:]), le.Uint64(p[32:])
		if size > pageSize || vaddr < firstVaddr {
			continue
		}
		buf := make([]byte, size)
		if _, err := a.core.ReadDumped(buf, start+vaddr-firstVaddr); err != nil {
			continue
		}
		if id := symbols.BuildIDFromNotes(buf); id != "" {
			return id
		}
	}
	return ""
}

func cfiTables(obj *symbols.Object) []*unwind.Table {
	var ts []*unwind.Table
	if eh, ehAddr, ok := obj.Section(".eh_frame"); ok {
		hdr, hdrAddr, _ := obj.Section(".eh_frame_hdr")
		ts = append(ts, unwind.NewTable(eh, ehAddr, hdr, hdrAddr))
	}
	if df, _, ok := obj.Section(".debug_frame"); ok {
		ts = append(ts, unwind.NewDebugFrameTable(df))
	}
	return ts
}

// buildRegions lists the executable mappings and labels anonymous code.
func (a *analysis) buildRegions() {
	byPath := map[string]*module{}
	for _, m := range a.modules {
		byPath[m.path] = m
	}
	vdso := a.core.Auxv()[elfcore.AT_SYSINFO_EHDR]
	for _, m := range a.core.Mappings() {
		if !m.Exec {
			continue
		}
		r := region{start: m.Start, end: m.End}
		switch {
		case byPath[m.Path] != nil:
			r.mod = byPath[m.Path]
		case vdso != 0 && m.Start <= vdso && vdso < m.End:
			r.label = crash.LabelVDSO
			if a.vdso != nil && a.vdso.start == m.Start {
				r.mod = a.vdso
			}
		case m.Start >= 0xffffffffff600000:
			r.label = "[vsyscall]"
		default:
			r.label = crash.LabelAnonExec
		}
		a.space.regions = append(a.space.regions, r)
	}
}

// labelJIT marks the OPcache JIT buffer among the anonymous executable
// regions once PHP is known to be present. Where the PHP stage located the
// buffer (dasm_buf and dasm_end, found through zend_jit_status), exactly
// the regions inside it are the JIT; otherwise the buffer is recognised as
// one large region (opcache.jit_buffer_size, at least 1 MiB in practice)
// carved out of the OPcache shared memory, while PCRE2's JIT allocates
// 64 KiB chunks.
func (a *analysis) labelJIT() {
	if ph := a.report.PHP; ph != nil && ph.JIT != nil && ph.JIT.BufferEnd > ph.JIT.BufferStart {
		start, end := uint64(ph.JIT.BufferStart), uint64(ph.JIT.BufferEnd)
		found := false
		for i := range a.space.regions {
			r := &a.space.regions[i]
			if r.label == crash.LabelAnonExec && r.start < end && start < r.end {
				r.label, found = crash.LabelPHPJIT, true
			}
		}
		if found {
			return
		}
	}
	for i := range a.space.regions {
		r := &a.space.regions[i]
		if r.label != crash.LabelAnonExec {
			continue
		}
		size := r.end - r.start
		m := a.core.Mapping(r.start)
		shm := m != nil && (strings.HasPrefix(m.Path, "/dev/zero") || strings.HasPrefix(m.Path, "/SYSV"))
		if shm || size >= 1<<20 {
			r.label = crash.LabelPHPJIT
		}
	}
}
