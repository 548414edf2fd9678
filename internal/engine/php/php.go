// Package php reads the state of the PHP runtime out of a crashed process's
// memory: version and build (NTS/ZTS), the PHP call stack with the current
// line of every frame, the request being served, the effective INI at
// crash time and the loaded extensions. It needs no debug symbols: the
// engine's globals are exported in .dynsym, and the offsets of the
// structures come from a per-version layout table (layout.go).
//
// Every pointer read from the core is validated; a walk that goes wrong
// stops with a warning instead of failing the whole analysis.
package php

import (
	"fmt"
	"io"

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
}

// Module is one mapped ELF object.
type Module struct {
	// Path is where the object can be opened on this host.
	Path string
	// Start and End delimit its mappings; Bias is its load bias (runtime
	// address = link-time address + Bias).
	Start, End, Bias uint64
}

// Analyze reads the PHP runtime state of a dumped process. It returns (nil,
// nil) when the process is not PHP.
func Analyze(in Input) (*crash.PHP, error) {
	if in.Memory == nil {
		return nil, fmt.Errorf("php: no memory reader")
	}
	g, warns := findGlobals(in.Modules)
	if g == nil {
		return nil, nil
	}
	res := &crash.PHP{Version: g.version, ZTS: g.zts, Frames: []crash.PHPFrame{}, Cycles: []crash.Cycle{}}
	res.Warnings = append(res.Warnings, warns...)
	m := &mem{r: in.Memory}
	if g.sapiModule != 0 {
		if p, err := m.ptr(g.sapiModule, 1); err == nil && p != 0 {
			if s, err := m.cstring(p, 64); err == nil {
				res.SAPI = s
			}
		}
	}
	if g.zts {
		res.Warnings = append(res.Warnings, "this PHP is a thread-safe (ZTS) build: its globals live in thread-local storage, which coroner does not read yet; PHP stack, request and INI are not available")
		return res, nil
	}
	exts, api, coreVersion, err := extensions(m, g)
	if err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("module registry: %v", err))
	}
	res.Extensions = exts
	if res.Version == "" {
		res.Version = coreVersion
	}
	l, err := LayoutFor(res.Version)
	if err != nil {
		if la, ok := layoutForAPI(api); ok && res.Version == "" {
			l, err = la, nil
		}
	}
	if err != nil {
		res.Warnings = append(res.Warnings, fmt.Sprintf("PHP stack not read: %v", err))
		return res, nil
	}
	if api != 0 && api != l.ZendAPI {
		res.Warnings = append(res.Warnings, fmt.Sprintf("module API %d does not match PHP %s (%d): offsets may be wrong", api, l.Version, l.ZendAPI))
	}
	res.Layout = "php-" + l.Version
	if g.egSize != 0 && g.egSize < l.EGCurrentExecuteData+8 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("executor_globals is %d bytes, too small for the PHP %s layout", g.egSize, l.Version))
		return res, nil
	}

	w := newWalker(m, l)
	res.Frames = w.walk(g.eg, &in.Registers)
	if res.Frames == nil {
		res.Frames = []crash.PHPFrame{}
	}
	res.Cycles = foldFrames(res.Frames)
	res.Warnings = append(res.Warnings, w.warns...)

	ini, iw := readINI(m, g, l)
	res.Warnings = append(res.Warnings, iw...)
	if len(ini) > 0 {
		res.INI = ini
		res.JIT = DecodeJIT(ini, res.SAPI)
	}
	req, rw := readRequest(m, g, l, res.SAPI, in.ShowSecrets)
	res.Request = req
	res.Warnings = append(res.Warnings, rw...)
	return res, nil
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
