package analyze

import (
	"fmt"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/fault"
	"github.com/coroner-dev/coroner/internal/engine/php"
	"github.com/coroner-dev/coroner/internal/engine/symbols"
	"github.com/coroner-dev/coroner/internal/engine/unwind"
)

// nameInternals names the non-exported functions of PHP and its extensions
// from their zend_function_entry tables (zif_*, zim_*), sizing each from
// the .eh_frame FDE that starts at its address, and main() from _start. It
// runs concurrently with the PHP stage, so it returns its warnings instead
// of adding them to the report.
func (a *analysis) nameInternals() []string {
	var warnings []string
	a.nameMain()
	for _, mod := range a.modulesWithFrames() {
		if !isPHPModule(mod) || !a.hasUnnamedFrames(mod) {
			continue // reading the tables costs ~15 ms on php-fpm: only when useful
		}
		key := mod.obj.CacheKey()
		if b, ok := a.cache.Get("php-names", key); ok {
			if extra, err := decodePHPNames(b); err == nil {
				mod.obj.AddSymbols(extra)
				continue
			}
		}
		entries, err := php.FunctionEntries(mod.hostPath)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("read PHP function tables of %s: %v", mod.path, err))
			continue
		}
		extra := make([]symbols.Symbol, 0, len(entries))
		for _, e := range entries {
			s := symbols.Symbol{Name: e.Name, Value: e.Addr, Source: "zend-function-entry"}
			if fde := a.fdeAt(mod, e.Addr); fde != nil && fde.Start == e.Addr {
				s.Size = fde.End - fde.Start
			}
			extra = append(extra, s)
		}
		mod.obj.AddSymbols(extra)
		if a.cache != nil {
			if err := a.cache.Put("php-names", key, encodePHPNames(extra)); err != nil {
				warnings = append(warnings, fmt.Sprintf("disk cache: %v", err))
			}
		}
	}
	return warnings
}

// hasUnnamedFrames reports whether some frame in mod has no symbol.
func (a *analysis) hasUnnamedFrames(mod *module) bool {
	for ti := range a.raw {
		for fi := range a.raw[ti] {
			pc := a.raw[ti][fi].PC
			if r := a.space.region(pc); r == nil || r.mod != mod {
				continue
			}
			if _, ok := mod.obj.Lookup(a.lookupAddr(ti, fi) - mod.bias); !ok {
				return true
			}
		}
	}
	return false
}

// modulesWithFrames returns the modules that hold a pc of some frame.
func (a *analysis) modulesWithFrames() []*module {
	seen := map[*module]bool{}
	var out []*module
	for _, frames := range a.raw {
		for _, f := range frames {
			if r := a.space.region(f.PC); r != nil && r.mod != nil && r.mod.obj != nil && !seen[r.mod] {
				seen[r.mod] = true
				out = append(out, r.mod)
			}
		}
	}
	return out
}

func (a *analysis) fdeAt(mod *module, link uint64) *unwind.FDE {
	if mod.unwind == nil {
		return nil
	}
	for _, t := range mod.unwind.CFI() {
		if fde, err := t.FDEFor(link); err == nil {
			return fde
		}
	}
	return nil
}

// phpModules are the modules in the form package php takes.
func (a *analysis) phpModules() []php.Module {
	var mods []php.Module
	for _, m := range a.modules {
		if m.obj != nil {
			mods = append(mods, php.Module{Path: m.hostPath, Start: m.start, End: m.end, Bias: m.bias})
		}
	}
	return mods
}

// preparePHP starts deriving the PHP structure layout from the PHP binary
// as soon as the modules are known, so that it runs while the threads are
// unwound instead of adding its time to the PHP stage.
func (a *analysis) preparePHP() {
	if a.opts.NoPHP || a.opts.PHPLayout == php.LayoutTable {
		return
	}
	mods := a.phpModules()
	a.phpLayout = make(chan time.Duration, 1)
	go func() { a.phpLayout <- php.Prepare(mods) }()
}

// runPHP reads the PHP runtime state and annotates native frames with the
// PHP function they execute.
func (a *analysis) runPHP() {
	defer a.labelJIT()
	if a.phpLayout != nil {
		if took := <-a.phpLayout; took > 0 {
			a.report.Timings = append(a.report.Timings, crash.Duration{Stage: "php-layout", MS: float64(took.Microseconds()) / 1000})
		}
	}
	if a.opts.NoPHP || len(a.report.Threads) == 0 {
		return
	}
	// Every thread with its registers (the report keeps only the crashed
	// thread's): a thread-safe PHP has globals per thread, found from its
	// fs_base.
	regs := a.report.Threads[0].Registers
	if a.faultRegs != nil {
		regs = *a.faultRegs
	}
	crashedTID := a.report.Threads[0].TID
	threads := []php.Thread{{TID: crashedTID, Crashed: true, Registers: regs}}
	for _, th := range a.core.Threads() {
		if th.TID != crashedTID {
			threads = append(threads, php.Thread{TID: th.TID, Registers: th.Regs.Registers()})
		}
	}
	res, err := php.Analyze(php.Input{Memory: a.core, Modules: a.phpModules(), Registers: regs, Threads: threads,
		ShowSecrets: a.opts.ShowSecrets, Layout: a.opts.PHPLayout})
	if err != nil {
		a.warn("PHP runtime: %v", err)
		return
	}
	if res == nil {
		return
	}
	res.Extensions = uniqueExtensions(res.Extensions)
	a.report.PHP = res
}

// uniqueExtensions lists each extension once: a Zend extension such as
// OPcache is in PHP's module registry and in its list of Zend extensions,
// and was shown twice ("Zend OPcache 8.2.36, Zend OPcache 8.2.36").
func uniqueExtensions(exts []crash.Extension) []crash.Extension {
	out := exts[:0]
	at := map[string]int{}
	for _, e := range exts {
		if i, ok := at[e.Name]; ok {
			out[i].Zend = out[i].Zend || e.Zend
			if out[i].Version == "" {
				out[i].Version = e.Version
			}
			continue
		}
		at[e.Name] = len(out)
		out = append(out, e)
	}
	return out
}

// annotatePHP links native frames of the crashed thread to PHP frames: a
// frame of the VM (execute_ex keeps execute_data in r14) or of JIT code is
// executing the PHP frame whose zend_execute_data its r14 holds; internal
// function handlers called by such a frame execute the frame above it.
func (a *analysis) annotatePHP() {
	ph := a.report.PHP
	if ph == nil || len(ph.Frames) == 0 || len(a.raw) == 0 {
		return
	}
	byEX := map[uint64]int{}
	for i, f := range ph.Frames {
		if f.ExecuteData != 0 {
			if _, dup := byEX[uint64(f.ExecuteData)]; !dup {
				byEX[uint64(f.ExecuteData)] = i
			}
		}
	}
	th := &a.report.Threads[0]
	raw := a.raw[0]
	for i := range th.Frames {
		if i >= len(raw) {
			break
		}
		r14, ok := raw[i].Regs.Get(crash.RegR14)
		if !ok {
			continue
		}
		reg := a.space.region(raw[i].PC)
		vm := reg != nil && (reg.label == crash.LabelPHPJIT || (reg.mod != nil && isVMFrameName(a.symbolName(reg.mod, raw[i].PC, i > 0))))
		if !vm {
			continue
		}
		if idx, ok := byEX[r14]; ok {
			k := idx
			th.Frames[i].PHPFrame = &k
			// The native callee of a VM frame that calls an internal
			// function is that function's handler.
			if i > 0 && idx > 0 && ph.Frames[idx-1].Kind == crash.PHPInternal && th.Frames[i-1].PHPFrame == nil {
				callee := idx - 1
				th.Frames[i-1].PHPFrame = &callee
			}
		}
	}
}

// symbolName names pc in mod (used before the symbolize stage).
func (a *analysis) symbolName(mod *module, pc uint64, caller bool) string {
	if mod.obj == nil {
		return ""
	}
	link := pc - mod.bias
	if caller {
		link--
	}
	if s, ok := mod.obj.Lookup(link); ok {
		return s.Name
	}
	return ""
}

func isVMFrameName(name string) bool {
	switch name {
	case "execute_ex":
		return true
	}
	return len(name) > 5 && name[:5] == "ZEND_"
}

// maxFunctionCode bounds how much of the crashing function is read to see
// whether an argument register was overwritten before the fault.
const maxFunctionCode = 8192

// explainFault classifies the fault (see package fault).
func (a *analysis) explainFault() {
	in := fault.Input{Signal: a.report.Signal, PID: a.report.Process.PID}
	if len(a.report.Threads) > 0 {
		th := &a.report.Threads[0]
		in.Registers = th.Registers
		in.Frames = th.Frames
		if a.faultRegs != nil && a.faultFrame < len(th.Frames) {
			// a handler re-raised the signal: explain the first one, at
			// the frame it interrupted
			in.Registers = *a.faultRegs
			in.Frames = th.Frames[a.faultFrame:]
		}
		if rip, ok := in.Registers.Get(crash.RegRIP); ok && len(in.Frames) > 0 {
			code := make([]byte, 16)
			if n, _ := a.core.ReadAt(code, int64(rip)); n > 0 {
				in.Code = code[:n]
			}
			f0 := in.Frames[0]
			if f0.Function != "" || f0.FunctionSource == "eh-frame" {
				if off := uint64(f0.FunctionOffset); off < maxFunctionCode {
					// The whole function (to its .eh_frame end) lets the
					// fault analysis see jumps back to the faulting code.
					size := off + 16
					if r := a.space.region(rip); r != nil && r.mod != nil {
						if fde := a.fdeAt(r.mod, rip-r.mod.bias); fde != nil && fde.End-fde.Start <= maxFunctionCode && fde.Start+off == rip-r.mod.bias {
							size = fde.End - fde.Start
						}
					}
					fc := make([]byte, size)
					if n, _ := a.core.ReadAt(fc, int64(rip-off)); uint64(n) >= off {
						in.FunctionCode = fc[:n]
					}
				}
			}
		}
	}
	for _, m := range a.core.Mappings() {
		in.Mappings = append(in.Mappings, fault.Mapping{Start: m.Start, End: m.End, Read: m.Read, Write: m.Write, Exec: m.Exec, Path: m.Path})
	}
	a.report.Fault = fault.Explain(in)
	if a.trap != nil && !a.report.Signal.Sent {
		if d := trapDetail(a.trap); d != "" {
			a.report.Fault.Details = append(a.report.Fault.Details, d)
		}
	}
}
