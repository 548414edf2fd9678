// Package php reads the state of the PHP runtime out of a crashed process's
// memory: version and build (NTS/ZTS), the PHP call stack with the current
// line of every frame, the request being served, the effective INI at
// crash time and the loaded extensions. It needs no debug symbols: the
// engine's globals are exported in .dynsym, and the offsets of the
// structures are derived from the machine code of the binary's exported
// functions (derive.go, rules_*.go), cross-checked with a per-version table
// (layout.go) and validated on the core's own data (validate.go).
//
// Every pointer read from the core is validated; a walk that goes wrong
// stops with a warning instead of failing the whole analysis.
package php

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
)

// Input is what Analyze needs of a dumped process.
type Input struct {
	// Memory is the virtual memory of the process (addresses as offsets).
	Memory io.ReaderAt
	// Modules are the mapped ELF objects.
	Modules []Module
	// Registers are the crashed thread's registers (r14 and r15 hold the
	// VM's execute_data and opline in execute_ex).
	Registers crash.Registers
	// ShowSecrets disables the redaction of cookies and credentials.
	ShowSecrets bool
	// Layout says how the structure layout is made (default LayoutAuto).
	Layout LayoutMode
	// Threads are the process's threads (ZTS builds keep the globals of
	// each thread in its own TSRM block, found from its fs_base); when
	// empty, Registers stand for the crashed thread.
	Threads []Thread
}

// Thread is one thread of the dumped process.
type Thread struct {
	TID       int
	Crashed   bool
	Registers crash.Registers
}

// Module is one mapped ELF object.
type Module struct {
	// Path is where the object can be opened on this host.
	Path string
	// Start and End delimit its mappings; Bias is its load bias (runtime
	// address = link-time address + Bias).
	Start, End, Bias uint64
}

// engine is the PHP engine found among the modules.
type engine struct {
	mod  Module
	info *engineInfo
}

// findEngine finds the module that exports executor_globals (or, for ZTS
// builds, executor_globals_offset), deriving its layout when derive is
// set. It returns nil when there is none; took is the time deriving the
// layout took in this call (0 when it came from the cache).
func findEngine(mods []Module, derive bool) (e *engine, warns []string, took time.Duration) {
	for _, mod := range mods {
		if !phpCandidate(mod.Path) {
			continue
		}
		info, took, err := engineAt(mod.Path, derive)
		if err != nil {
			warns = append(warns, fmt.Sprintf("%s: %v", mod.Path, err))
			continue
		}
		if info != nil {
			return &engine{mod: mod, info: info}, warns, took
		}
	}
	return nil, warns, 0
}

// Prepare gets the structure layout of the PHP binary among mods, if any,
// ahead of Analyze (which then finds it in memory): derived from the binary
// once per build, kept in memory and on disk (see diskcache.go). It returns
// the time that took (0 when the process is not PHP).
func Prepare(mods []Module) time.Duration {
	start := time.Now()
	e, _, _ := findEngine(mods, true)
	if e == nil {
		return 0
	}
	return max(time.Since(start), time.Microsecond)
}

// findGlobals returns the runtime addresses of the engine's globals (for
// tests and the function-table checks).
func findGlobals(mods []Module) (*globals, []string) {
	e, warns, _ := findEngine(mods, false)
	if e == nil {
		return nil, warns
	}
	return e.info.sym.at(e.mod), warns
}

// Analyze reads the PHP runtime state of a dumped process. It returns (nil,
// nil) when the process is not PHP.
func Analyze(in Input) (*crash.PHP, error) {
	if in.Memory == nil {
		return nil, fmt.Errorf("php: no memory reader")
	}
	mode := in.Layout
	if mode == "" {
		mode = LayoutAuto
	}
	e, warns, _ := findEngine(in.Modules, mode != LayoutTable)
	if e == nil {
		return nil, nil
	}
	if mode == LayoutTable && e.info.sym.zts {
		// A ZTS build needs its code read even with the table: how it
		// reaches the thread's globals is not a structure offset.
		if info, _, err := engineAt(e.mod.Path, true); err == nil && info != nil {
			e.info = info
		}
	}
	g := e.info.sym.at(e.mod)
	res := &crash.PHP{Version: g.version, ZTS: g.zts, Frames: []crash.PHPFrame{}, Cycles: []crash.Cycle{}, LayoutMode: string(mode)}
	res.Warnings = append(res.Warnings, warns...)
	d := e.info.d
	if mode != LayoutTable {
		if e.info.dErr != nil {
			res.Warnings = append(res.Warnings, e.info.dErr.Error())
		}
		if d != nil {
			res.LayoutBinary = d.path
			if res.Version == "" {
				res.Version = d.version
			}
		}
	}
	// sapi_module.name is the first field: no layout needed.
	raw := &mem{r: in.Memory, l: &Layout{}}
	if g.sapiModule != 0 {
		if p, err := raw.ptr(g.sapiModule, 1); err == nil && p != 0 {
			if s, err := raw.cstring(p, 64); err == nil {
				res.SAPI = s
			}
		}
	}
	p := makePlan(mode, d, res.Version)
	if mode == LayoutTable {
		p = makePlan(mode, nil, res.Version)
	}
	if res.Version == "" {
		// no version string in the binary: the Core module's version
		m := &mem{r: in.Memory, l: &p.l}
		p.registryPtrType(m, g)
		res.Version = extensions(m, g).coreVersion
		p = makePlan(mode, d, res.Version)
	}
	m := &mem{r: in.Memory, l: &p.l}
	var ev evidence
	threads := in.Threads
	if len(threads) == 0 {
		threads = []Thread{{Crashed: true, Registers: in.Registers}}
	}
	php, others, tsrm, err := phpThreads(m, g, d, threads)
	if err != nil {
		res.Warnings = append(res.Warnings, err.Error())
		res.Layout, res.LayoutFields = p.name(), p.fields()
		return res, nil
	}
	g.eg, g.sg = php.eg, php.sg
	if g.zts {
		res.Thread, res.TSRM = php.tid, tsrm
	}
	p.registryPtrType(m, g)
	if miss := p.missingFor([]string{groupModules, groupHash, groupNames}); len(miss) > 0 {
		res.Warnings = append(res.Warnings, "extensions not read: layout: "+strings.Join(miss, "; "))
	} else {
		reg := extensions(m, g)
		if reg.err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("module registry: %v", reg.err))
		}
		res.Extensions = reg.exts
		ev.reg, ev.coreAPI = &reg, reg.api
		if reg.api != 0 {
			if !p.byID["zend_api"].have {
				p.setCore("zend_api", reg.api, "the Core module's zend_api")
			} else if reg.api != p.l.ZendAPI {
				res.Warnings = append(res.Warnings, fmt.Sprintf("module API %d does not match the layout's ZEND_MODULE_API_NO %d (PHP %s): offsets may be wrong", reg.api, p.l.ZendAPI, p.l.Version))
			}
		}
	}
	p.resolve(in.Memory, g)

	stackOK := true
	if miss := p.missingFor([]string{groupFrames, groupNames}); len(miss) > 0 {
		res.Warnings = append(res.Warnings, "PHP stack not read: layout: "+strings.Join(miss, "; "))
		stackOK = false
	} else if g.egSize != 0 && g.egSize < p.l.EGCurrentExecuteData+8 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("executor_globals is %d bytes, too small for EG(current_execute_data) at %d", g.egSize, p.l.EGCurrentExecuteData))
		stackOK = false
	} else {
		w := newWalker(m, &p.l)
		res.Frames = w.walk(g.eg, &php.regs)
		if res.Frames == nil {
			res.Frames = []crash.PHPFrame{}
		}
		res.Cycles = foldFrames(res.Frames)
		res.Warnings = append(res.Warnings, w.warns...)
		ev.walk = &w.stats
	}

	if miss := p.missingFor([]string{groupINI, groupHash, groupNames}, "IS_PTR"); len(miss) > 0 {
		res.Warnings = append(res.Warnings, "INI not read: layout: "+strings.Join(miss, "; "))
	} else {
		ini := readINI(m, g)
		res.Warnings = append(res.Warnings, ini.warns...)
		if len(ini.values) > 0 {
			res.INI = ini.values
			res.JIT = DecodeJIT(ini.values, res.SAPI)
		}
		if ini.scanned {
			p.setScanned("eg.ini_directives", ini.offset)
		}
		ev.ini = &ini
	}
	if miss := p.missingFor([]string{groupRequest, groupNames}); len(miss) > 0 {
		res.Warnings = append(res.Warnings, "request not read: layout: "+strings.Join(miss, "; "))
	} else {
		req, rw, st := readRequest(m, g, res.SAPI, in.ShowSecrets)
		res.Request = req
		res.Warnings = append(res.Warnings, rw...)
		ev.req = &st
	}
	for _, t := range others {
		res.Threads = append(res.Threads, t.read(m, g, res.SAPI, in.ShowSecrets, stackOK))
	}
	if res.JIT != nil {
		readJITBuffer(in, e, res.JIT)
	}
	p.validate(ev)
	res.Layout = p.name()
	res.LayoutFields = p.fields()
	res.Warnings = append(res.Warnings, p.warns...)
	return res, nil
}

// registryPtrType takes IS_PTR from the core when the layout has none
// derived: every element of the module registry is IS_PTR. IS_INDIRECT,
// when missing too, is the type before it.
func (p *plan) registryPtrType(m *mem, g *globals) {
	c := p.byID["IS_PTR"]
	if c.have && c.source == crash.LayoutDerived {
		return
	}
	t, ok := registryType(m, g)
	if !ok {
		return
	}
	if c.have && c.value != t {
		p.warns = append(p.warns, fmt.Sprintf("layout: IS_PTR is %d (%s) but the module registry's elements are of type %d", c.value, c.source, t))
		return
	}
	if !c.have {
		p.setCore("IS_PTR", t, "the type of every element of module_registry")
	}
	if ci := p.byID["IS_INDIRECT"]; !ci.have {
		p.setCore("IS_INDIRECT", t-1, "IS_PTR - 1 (IS_INDIRECT precedes IS_PTR in PHP 7.4 to 8.5)")
	}
}

// setScanned records that a field's value was found by a validated scan
// of the core's data.
func (p *plan) setScanned(id string, v uint64) {
	c := p.byID[id]
	if c.have && c.value != 0 && c.value != v {
		p.warns = append(p.warns, fmt.Sprintf("layout: %s: %d (%s) does not hold the INI table; a scan of executor_globals finds it at %d", c.def.what, c.value, c.source, v))
	}
	c.value, c.have, c.source, c.d, c.missing = v, true, crash.LayoutCore, nil, ""
	c.validated = "found by scanning executor_globals for the table of INI entries"
	*c.def.ptr(&p.l) = v
}

// readJITBuffer reads the bounds of the OPcache JIT buffer (dasm_buf,
// dasm_end) from the core, through the module that holds the JIT.
func readJITBuffer(in Input, e *engine, j *crash.JIT) {
	var js *jitSymbols
	var bias uint64
	if e.info.d != nil && e.info.d.jit != nil {
		js, bias = e.info.d.jit, e.mod.Bias
	} else {
		for _, mod := range in.Modules {
			if s := jitAt(mod.Path); s != nil {
				js, bias = s, mod.Bias
				break
			}
		}
	}
	if js == nil {
		return
	}
	m := &mem{r: in.Memory, l: &Layout{}}
	buf, err1 := m.u64(js.dasmBuf + bias)
	end, err2 := m.u64(js.dasmEnd + bias)
	if err1 != nil || err2 != nil || buf == 0 || end <= buf || end-buf > 1<<36 || !validPtr(buf) {
		return
	}
	j.BufferStart, j.BufferEnd = crash.Addr(buf), crash.Addr(end)
}

// foldFrames folds repeated runs of PHP frames (recursion) into cycles.
func foldFrames(frames []crash.PHPFrame) []crash.Cycle {
	ids := make([]int, len(frames))
	type key struct {
		fn, class, file string
		line            int
	}
	seen := map[key]int{}
	for i, f := range frames {
		k := key{f.Function, f.Class, f.File, f.Line}
		id, ok := seen[k]
		if !ok {
			id = len(seen)
			seen[k] = id
		}
		ids[i] = id
	}
	c := crash.FoldCycles(len(ids), func(i, j int) bool { return ids[i] == ids[j] }, 3)
	if c == nil {
		c = []crash.Cycle{}
	}
	return c
}
