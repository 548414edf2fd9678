package analyze

import (
	"path/filepath"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/symbols"
	"github.com/coroner-dev/coroner/internal/engine/unwind"
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

// startLines looks up, in the background, what the debug information says
// about every frame address (source line, inlined functions, the targets
// of the calls that return there), one goroutine per module that has
// debug information.
func (a *analysis) startLines() {
	type want struct{ lookups, rets map[uint64]bool }
	wants := map[*module]*want{}
	for ti := range a.raw {
		for fi := range a.raw[ti] {
			raw := a.raw[ti][fi]
			r := a.space.region(raw.PC)
			if r == nil || r.mod == nil || r.mod.obj == nil {
				continue
			}
			obj := r.mod.obj
			if !obj.HasLineTable() && !obj.HasDebugInfo() {
				continue
			}
			w := wants[r.mod]
			if w == nil {
				w = &want{map[uint64]bool{}, map[uint64]bool{}}
				wants[r.mod] = w
			}
			w.lookups[a.lookupAddr(ti, fi)-r.mod.bias] = true
			if isReturn(raw) {
				w.rets[raw.PC-r.mod.bias] = true
			}
		}
	}
	for m, w := range wants {
		addrs := make([]uint64, 0, len(w.lookups))
		for x := range w.lookups {
			addrs = append(addrs, x)
		}
		m.debug = make(chan moduleDebug, 1)
		go func(m *module, addrs []uint64, rets map[uint64]bool) {
			md := moduleDebug{locs: m.obj.Locations(addrs), calls: map[uint64]callTarget{}}
			if m.obj.HasDebugInfo() {
				for ret := range rets {
					if e, name, ok := m.obj.CallTarget(ret); ok {
						md.calls[ret] = callTarget{e, name}
					}
				}
			}
			m.debug <- md
		}(m, addrs, w.rets)
	}
}

// startSymbols reads the symbol tables of the modules on the stacks in the
// background, as startLines does their line tables: PHP's runtime is read
// meanwhile, and annotatePHP and symbolize then look names up in them (a
// cold run reads tens of thousands of symbols, ~2 ms, for glibc alone).
func (a *analysis) startSymbols() {
	seen := map[*module]bool{}
	for ti := range a.raw {
		for _, raw := range a.raw[ti] {
			r := a.space.region(raw.PC)
			if r == nil || r.mod == nil || r.mod.obj == nil || seen[r.mod] {
				continue
			}
			seen[r.mod] = true
			a.background.Add(1)
			go func(obj *symbols.Object, addr uint64) {
				defer a.background.Done()
				obj.Lookup(addr)
			}(r.mod.obj, raw.PC-r.mod.bias)
		}
	}
}

// isReturn reports whether a frame's pc is a return address (the frame
// is a caller, not interrupted by a signal, not a signal trampoline).
func isReturn(f unwind.Frame) bool { return !f.Signal && !f.Trampoline }

func (a *analysis) symbolize() {
	for _, m := range a.modules {
		if m.debug != nil {
			m.moduleDebug = <-m.debug
		}
	}
	for _, m := range a.modulesWithFrames() {
		m.info.Symbols = m.obj.SymbolSource()
		m.info.DebugFile = m.obj.DebugFile()
		for _, w := range m.obj.Warnings() {
			a.warn("%s", w)
		}
	}
	cache := map[symKey]crash.Frame{}
	tails := map[tailKey][]crash.VirtualFrame{}
	for ti := range a.report.Threads {
		th := &a.report.Threads[ti]
		for fi := range th.Frames {
			f := &th.Frames[fi]
			raw := a.raw[ti][fi]
			caller := fi > 0 && isReturn(raw)
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
			f.FunctionSource, f.File, f.Line, f.Inlined = s.FunctionSource, s.File, s.Line, s.Inlined
		}
		for fi := 0; fi+1 < len(th.Frames); fi++ {
			th.Frames[fi].TailCalls = a.tailCalls(ti, fi, tails)
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
	loc := mod.locs[lookup]
	if len(loc.Scopes) > 0 {
		// named from the debug information below: the symbol table of a
		// library named so is not read at all
	} else if s, ok := mod.obj.Lookup(lookup); ok {
		f.Function = symbols.Demangle(s.Name)
		f.FunctionOffset = crash.Addr(link - s.Value)
		f.FunctionSource = s.Source
	} else if start, ok := a.fdeStart(mod, lookup); ok {
		f.FunctionOffset = crash.Addr(link - start)
		f.FunctionSource = "eh-frame"
	}
	if loc.Line > 0 {
		f.File, f.Line = loc.File, loc.Line
	}
	if sc := loc.Scopes; len(sc) > 0 {
		// The debug information names the function as gdb does (the
		// DWARF name over a symbol alias) and knows what was inlined.
		fn := sc[len(sc)-1]
		f.Function, f.FunctionSource = fn.Name, "dwarf"
		f.FunctionOffset = 0
		if link >= fn.Entry {
			f.FunctionOffset = crash.Addr(link - fn.Entry)
		}
		if len(sc) > 1 {
			f.Inlined = make([]crash.VirtualFrame, len(sc)-1)
			file, line := f.File, f.Line
			for i, s := range sc[:len(sc)-1] {
				f.Inlined[i] = crash.VirtualFrame{Function: s.Name, File: file, Line: line}
				file, line = s.CallFile, s.CallLine
			}
			f.File, f.Line = file, line
		}
	}
	return f
}

// tailKey identifies a caller/callee pair for tail-call reconstruction.
type tailKey struct{ ret, calleePC uint64 }

// tailCalls reconstructs the tail calls between frame fi of thread ti
// and its caller, as gdb does: the caller's DW_TAG_call_site at the return
// address names the function it called; when that is not the function
// frame fi is in, a unique chain of DW_AT_call_tail_call sites from one to
// the other gives the functions that jumped on.
func (a *analysis) tailCalls(ti, fi int, cache map[tailKey][]crash.VirtualFrame) []crash.VirtualFrame {
	callee, caller := a.raw[ti][fi], a.raw[ti][fi+1]
	if callee.Trampoline || !isReturn(caller) {
		return nil
	}
	rc, rr := a.space.region(callee.PC), a.space.region(caller.PC)
	if rc == nil || rr == nil || rc.mod == nil || rr.mod == nil || rc.mod.obj == nil || rr.mod.obj == nil {
		return nil
	}
	ret := caller.PC - rr.mod.bias
	target, ok := rr.mod.calls[ret]
	if !ok {
		return nil
	}
	lookup := a.lookupAddr(ti, fi) - rc.mod.bias
	k := tailKey{caller.PC, callee.PC}
	if v, ok := cache[k]; ok {
		return v
	}
	var out []crash.VirtualFrame
	defer func() { cache[k] = out }()
	// The entry of the function frame fi is in.
	var calleeEntry uint64
	if sc := rc.mod.locs[lookup].Scopes; len(sc) > 0 {
		calleeEntry = sc[len(sc)-1].Entry
	} else if s, ok := rc.mod.obj.Lookup(lookup); ok {
		calleeEntry = s.Value
	} else {
		return nil
	}
	from := target.entry
	if rc.mod != rr.mod || from == 0 {
		if target.name == "" {
			return nil
		}
		if from, ok = rc.mod.obj.FunctionEntry(target.name); !ok {
			return nil
		}
	}
	obj := rc.mod.obj
	for _, pc := range obj.TailCallChain(from, calleeEntry) {
		v := crash.VirtualFrame{PC: crash.Addr(pc + rc.mod.bias), ModuleOffset: crash.Addr(pc)}
		loc := obj.Locations([]uint64{pc - 1})[pc-1]
		if len(loc.Scopes) > 0 {
			// gdb names a tail-call frame by the innermost function at
			// the jump, without frames for what it is inlined into.
			v.Function = loc.Scopes[0].Name
		} else if s, ok := obj.Lookup(pc - 1); ok {
			v.Function = symbols.Demangle(s.Name)
		}
		v.File, v.Line = loc.File, loc.Line
		out = append(out, v)
	}
	return out
}

// fdeStart returns the start of the function containing the link-time
// address from the module's CFI.
func (a *analysis) fdeStart(mod *module, link uint64) (uint64, bool) {
	if mod.unwind == nil {
		return 0, false
	}
	for _, t := range mod.unwind.CFI() {
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
