// Package analyze is the driver of a core post-mortem: it opens a core and
// runs the stages (modules and symbols, unwinding, fault explanation, the
// PHP runtime) into one crash.Report, the way pprof's driver joins its
// symbolizer and reports. It holds the glue, not the knowledge: each stage
// lives in its own package.
package analyze

import (
	"fmt"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/diskcache"
	"github.com/coroner-dev/coroner/internal/engine/unwind"
	"github.com/coroner-dev/coroner/internal/signals"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// Options control an analysis.
type Options struct {
	// Sysroot is where the crashed host's files are (for cores analysed
	// elsewhere); "" means this host.
	Sysroot string
	// Exe overrides the path of the main executable.
	Exe string
	// MaxFrames bounds the frames unwound per thread (default 1,000,000).
	MaxFrames int
	// ShowSecrets disables redaction of cookies and credentials.
	ShowSecrets bool
	// NoPHP skips the PHP runtime stage.
	NoPHP bool
	// DebugDirs are searched for separate debug files (by build-id, and by
	// .gnu_debuglink) before /usr/lib/debug.
	DebugDirs []string
	// Debuginfod are debuginfod servers asked for the debug files of the
	// modules that hold frames and have none here; none are contacted when
	// it is empty.
	Debuginfod []string
	// DebuginfodTimeout bounds each request (debuginfod.DefaultTimeout
	// when 0).
	DebuginfodTimeout time.Duration
	// CacheDir is the disk cache of what depends only on binaries (symbol
	// indexes, PHP's function tables, debug information at frame
	// addresses, debuginfod downloads); "" disables it.
	CacheDir string
	// CacheMaxBytes bounds the disk cache (diskcache.DefaultMaxBytes when 0).
	CacheMaxBytes int64
}

type analysis struct {
	opts    Options
	cache   *diskcache.Cache
	core    *elfcore.File
	modules []*module
	space   space
	report  *crash.Report
	// unwound frames per thread, kept for PHP annotation
	raw [][]unwind.Frame
}

func (a *analysis) warn(format string, args ...any) {
	a.report.Warnings = append(a.report.Warnings, fmt.Sprintf(format, args...))
}

// Core analyses the core file at path. An error means the file could not be
// read as a core at all; problems after that become warnings in the report.
func Core(path string, opts Options) (rep *crash.Report, err error) {
	// A core or library truncated while memory-mapped raises SIGBUS on
	// access; turn that into an error instead of a crash.
	old := debug.SetPanicOnFault(true)
	defer debug.SetPanicOnFault(old)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("analyse %s: memory fault while reading a mapped file (was it truncated during the analysis?): %v", path, r)
			rep = nil
		}
	}()
	start := time.Now()
	c, err := elfcore.OpenWithOptions(path, elfcore.Options{Sysroot: opts.Sysroot, Exe: opts.Exe})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	a := &analysis{opts: opts, core: c, report: &crash.Report{Schema: crash.SchemaVersion}}
	a.space.core = c
	a.report.Warnings = append(a.report.Warnings, c.Warnings()...)
	if opts.CacheDir != "" {
		if a.cache, err = diskcache.Open(opts.CacheDir, opts.CacheMaxBytes); err != nil {
			a.warn("disk cache not used: %v", err)
		}
	}
	a.fillProcess(path)
	a.stage("core", start)

	t := time.Now()
	a.loadModules()
	a.buildRegions()
	a.stage("modules", t)

	t = time.Now()
	a.unwindThreads()
	a.fetchDebugFiles()
	a.loadCacheRecords()
	// Decode the line tables of the modules on the stacks in the
	// background while PHP's function tables and runtime are read.
	a.startLines()
	a.stage("unwind", t)

	// Name PHP's internals (reading its function tables) while the PHP
	// runtime is read from memory: the two are independent.
	t = time.Now()
	names := make(chan []string, 1)
	go func() { names <- a.nameInternals() }()
	a.runPHP()
	a.stage("php", t)
	a.report.Warnings = append(a.report.Warnings, <-names...)
	a.annotatePHP()
	a.stage("internals", t)

	t = time.Now()
	a.symbolize()
	a.stage("symbolize", t)

	t = time.Now()
	a.explainFault()
	a.stage("fault", t)

	a.saveCacheRecords()
	for _, m := range a.modules {
		a.report.Modules = append(a.report.Modules, m.info)
		if m.obj != nil {
			m.obj.Close()
		}
	}
	for _, r := range a.space.regions {
		if r.mod == nil && r.label != "[vsyscall]" {
			a.report.Modules = append(a.report.Modules, crash.Module{Path: r.label, Start: crash.Addr(r.start), End: crash.Addr(r.end), Kind: kindOf(r.label)})
		}
	}
	a.stage("total", start)
	return a.report, nil
}

func kindOf(label string) crash.ModuleKind {
	switch label {
	case crash.LabelPHPJIT:
		return crash.ModulePHPJIT
	case crash.LabelVDSO:
		return crash.ModuleVDSO
	}
	return crash.ModuleAnonExec
}

func (a *analysis) stage(name string, t time.Time) {
	a.report.Timings = append(a.report.Timings, crash.Duration{Stage: name, MS: float64(time.Since(t).Microseconds()) / 1000})
}

func (a *analysis) fillProcess(path string) {
	ps := a.core.Process()
	abs, _ := filepath.Abs(path)
	a.report.Process = crash.Process{
		CorePath: abs, CoreSize: a.core.Size(), PID: ps.PID, PPID: ps.PPID, UID: ps.UID, GID: ps.GID,
		Comm: ps.Comm, Args: ps.Args, Executable: a.core.Executable(), Truncated: a.core.Truncated(),
	}
	si := a.core.Signal()
	sig := signals.Signal(si.Signo)
	name := sig.String()
	if name == "" {
		name = "signal 0" // a core dumped without a signal (gcore)
	}
	a.report.Signal = crash.Signal{
		Number: si.Signo, Name: name, Code: si.Code,
		CodeName: sig.CodeName(si.Code), Address: crash.Addr(si.Addr),
	}
	if si.Present && signals.SentByProcess(si.Code) {
		a.report.Signal.Sent = true
		a.report.Signal.SenderPID = si.PID
		a.report.Signal.SenderUID = si.UID
	}
}

func (a *analysis) unwindThreads() {
	crashed := a.core.Crashed()
	for i, th := range a.core.Threads() {
		regs := th.Regs.Registers()
		res := unwind.Unwind(regs, &a.space, a.core, unwind.Options{MaxFrames: a.opts.MaxFrames})
		t := crash.Thread{TID: th.TID, Crashed: crashed != nil && &a.core.Threads()[i] == crashed}
		if t.Crashed {
			t.Registers = regs
		}
		t.Frames = make([]crash.Frame, len(res.Frames))
		for k, f := range res.Frames {
			t.Frames[k] = crash.Frame{Index: k, PC: crash.Addr(f.PC), SP: crash.Addr(f.SP), Trust: f.Trust}
		}
		t.Warnings = res.Warnings
		if !res.Stop.Reason.Complete() {
			t.Warnings = append(t.Warnings, "unwinding stopped: "+res.Stop.String())
		}
		frames := res.Frames
		t.Cycles = crash.FoldCycles(len(frames), func(i, j int) bool { return frames[i].PC == frames[j].PC }, 3)
		if t.Cycles == nil {
			t.Cycles = []crash.Cycle{}
		}
		a.report.Threads = append(a.report.Threads, t)
		a.raw = append(a.raw, res.Frames)
	}
	// Crashed thread first.
	for i := range a.report.Threads {
		if a.report.Threads[i].Crashed && i != 0 {
			a.report.Threads[0], a.report.Threads[i] = a.report.Threads[i], a.report.Threads[0]
			a.raw[0], a.raw[i] = a.raw[i], a.raw[0]
		}
	}
}
