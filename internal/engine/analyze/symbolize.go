package analyze

import (
	"path/filepath"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/symbols"
)

type symKey struct {
	pc     uint64
	caller bool
}

// symbolize names every frame: module, function (symbol tables, PHP
// function tables, else the .eh_frame function start), file:line.
// lookupAddr is the address whose function and line describe frame fi: a
// caller frame's pc is a return address, so the call is at pc-1.
func (a *analysis) lookupAddr(ti, fi int) uint64 {
	raw := a.raw[ti][fi]
	if fi > 0 && !raw.Signal && !raw.Trampoline {
		return raw.PC - 1
	}
	return raw.PC
}

// startLines looks up, in the background, the source lines of every frame
// address, one goroutine per module with a line table.
func (a *analysis) startLines() {
	want := map[*module]map[uint64]bool{}
	for ti := range a.raw {
		for fi := range a.raw[ti] {
			pc := a.raw[ti][fi].PC
			r := a.space.region(pc)
			if r == nil || r.mod == nil || r.mod.obj == nil || !r.mod.obj.HasLineTable() {
				continue
			}
			if want[r.mod] == nil {
				want[r.mod] = map[uint64]bool{}
			}
			want[r.mod][a.lookupAddr(ti, fi)-r.mod.bias] = true
		}
	}
	for m, set := range want {
		addrs := make([]uint64, 0, len(set))
		for x := range set {
			addrs = append(addrs, x)
		}
		m.lines = make(chan map[uint64]symbols.Position, 1)
		go func(m *module) { m.lines <- m.obj.Lines(addrs) }(m)
	}
}

func (a *analysis) symbolize() {
	for _, m := range a.modules {
		if m.lines != nil {
			m.lineMap = <-m.lines
		}
	}
	for _, m := range a.modulesWithFrames() {
		m.info.Symbols = m.obj.SymbolSource()
	}
	cache := map[symKey]crash.Frame{}
	for ti := range a.report.Threads {
		th := &a.report.Threads[ti]
		for fi := range th.Frames {
			f := &th.Frames[fi]
			raw := a.raw[ti][fi]
			caller := fi > 0 && !raw.Signal && !raw.Trampoline
			k := symKey{uint64(f.PC), caller}
			s, ok := cache[k]
			if !ok {
				s = a.symbolizePC(uint64(f.PC), caller)
				cache[k] = s
			}
			if raw.Trampoline && s.Function == "" {
				s.Function, s.FunctionSource = "<signal handler called>", "eh-frame"
			}
			f.Module, f.ModuleOffset, f.Function, f.FunctionOffset = s.Module, s.ModuleOffset, s.Function, s.FunctionOffset
			f.FunctionSource, f.File, f.Line = s.FunctionSource, s.File, s.Line
		}
	}
}

func (a *analysis) symbolizePC(pc uint64, caller bool) crash.Frame {
	var f crash.Frame
	r := a.space.region(pc)
	if r == nil {
		if m := a.core.Mapping(pc); m != nil && m.Path != "" {
			f.Module = filepath.Base(m.Path)
			f.ModuleOffset = crash.Addr(pc - m.Start + m.Offset)
		}
		return f
	}
	if r.mod == nil {
		f.Module = r.label
		f.ModuleOffset = crash.Addr(pc - r.start)
		if r.label == crash.LabelPHPJIT || r.label == crash.LabelAnonExec {
			f.FunctionSource = "jit"
		}
		return f
	}
	mod := r.mod
	f.Module = filepath.Base(mod.path)
	link := pc - mod.bias
	f.ModuleOffset = crash.Addr(link)
	if mod.obj == nil {
		return f
	}
	lookup := link
	if caller {
		lookup--
	}
	if s, ok := mod.obj.Lookup(lookup); ok {
		f.Function = symbols.Demangle(s.Name)
		f.FunctionOffset = crash.Addr(link - s.Value)
		f.FunctionSource = s.Source
	} else if start, ok := a.fdeStart(mod, lookup); ok {
		f.FunctionOffset = crash.Addr(link - start)
		f.FunctionSource = "eh-frame"
	}
	if p, ok := mod.lineMap[lookup]; ok && p.Line > 0 {
		f.File, f.Line = p.File, p.Line
	}
	return f
}

// fdeStart returns the start of the function containing the link-time
// address from the module's CFI.
func (a *analysis) fdeStart(mod *module, link uint64) (uint64, bool) {
	if mod.unwind == nil {
		return 0, false
	}
	for _, t := range mod.unwind.Tables {
		if fde, err := t.FDEFor(link); err == nil {
			return fde.Start, true
		}
	}
	return 0, false
}

// isPHPModule reports whether a module is PHP itself or a PHP extension.
func isPHPModule(mod *module) bool {
	if mod.obj == nil {
		return false
	}
	base := filepath.Base(mod.path)
	if strings.HasPrefix(base, "php") || strings.HasPrefix(base, "libphp") {
		if _, ok := mod.obj.SymbolByName("executor_globals"); ok {
			return true
		}
	}
	if strings.Contains(mod.path, "/php/") && strings.HasSuffix(base, ".so") {
		if _, ok := mod.obj.SymbolByName("get_module"); ok {
			return true
		}
	}
	return false
}
