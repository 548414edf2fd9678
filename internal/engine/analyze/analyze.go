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
	// NoHostDebugFiles, with Sysroot, uses no separate debug file of this
	// host (by default one found by build-id is used): the analysis then
	// depends only on the files below Sysroot.
	NoHostDebugFiles bool
}

type analysis struct {
	opts    Options
	core    *elfcore.File
	modules []*module
	space   space
	report  *crash.Report
	// unwound frames per thread, kept for PHP annotation
	raw [][]unwind.Frame
	// faultRegs are the registers at the fault and faultFrame the index of
	// the faulting frame in the crashed thread, when a signal handler
	// re-raised the signal (see findReraise); trap is its signal frame.
	faultRegs  *crash.Registers
	faultFrame int
	trap       *sigframe
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
	if len(c.Threads()) == 0 {
		// Nothing says who died of what: a report would print pid 0 and
		// signal 0 with a diagnosis.
		why := "not a dump of a process"
		if c.Truncated() {
			why = fmt.Sprintf("cut before its notes: %d of %d bytes", c.Size(), c.ExpectedSize())
		}
		return nil, fmt.Errorf("analyse %s: the core has no NT_PRSTATUS note (%s): no thread, register or signal to analyse", path, why)
	}
	a := &analysis{opts: opts, core: c, report: &crash.Report{Schema: crash.SchemaVersion}}
	a.space.core = c
	a.report.Warnings = append(a.report.Warnings, c.Warnings()...)
	a.fillProcess(path)
	a.stage("core", start)

	t := time.Now()
	a.loadModules()
	a.buildRegions()
	a.stage("modules", t)

	t = time.Now()
	a.unwindThreads()
	// Decode the line tables of the modules on the stacks in the
	// background while PHP's function tables and runtime are read.
	a.startLines()
	a.findReraise()
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
	a.noteTruncation()

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
	a.report.Signal = crash.Signal{Number: si.Signo, Name: sig.String(), Code: si.Code, Address: crash.Addr(si.Addr)}
	if si.Signo != 0 {
		a.report.Signal.CodeName = sig.CodeName(si.Code)
	} else {
		// No NT_SIGINFO and no current signal (gcore, damaged notes): the
		// signal is unknown, not "signal 0 (SI_USER)".
		a.warn("the core records no signal (no NT_SIGINFO note; the thread's current signal is 0)")
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
