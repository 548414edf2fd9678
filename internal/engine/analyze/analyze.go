// Package analyze is the driver of a core post-mortem: it opens a core and
// runs the stages (modules and symbols, unwinding, fault explanation, the
// PHP runtime) into one crash.Report, the way pprof's driver joins its
// symbolizer and reports. It holds the glue, not the knowledge: each stage
// lives in its own package.
package analyze

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/budget"
	"github.com/coroner-dev/coroner/internal/engine/diskcache"
	"github.com/coroner-dev/coroner/internal/engine/php"
	"github.com/coroner-dev/coroner/internal/engine/unwind"
	"github.com/coroner-dev/coroner/internal/signals"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// Options control an analysis.
type Options struct {
	// LeaveMapped leaves the core and the files read for it memory-mapped
	// after the analysis, for a process that exits after one analysis
	// (see elfcore.Options.LeaveMapped).
	LeaveMapped bool
	// Sysroot is where the crashed host's files are (for cores analysed
	// elsewhere); "" means this host.
	Sysroot string
	// Exe overrides the path of the main executable.
	Exe string
	// Roots are more directories that may be the root the process ran in
	// (chroots, unpacked container images): each is tried, after Sysroot
	// or this host, when the executable there lacks the build-id the core
	// records.
	Roots []string
	// Container names the container (name, id or id prefix) or machine
	// whose root holds the process's files; "" finds it by build-id.
	Container string
	// NoAutoRoot keeps the search for the process's root to Sysroot (or
	// this host) and Roots: the container runtimes' state, the roots of
	// running processes and the directories above the core are not
	// searched.
	NoAutoRoot bool
	// MaxFrames bounds the frames unwound per thread (default 1,000,000).
	MaxFrames int
	// ShowSecrets disables redaction of cookies and credentials.
	ShowSecrets bool
	// NoPHP skips the PHP runtime stage.
	NoPHP bool
	// DebugDirs are searched for separate debug files (by build-id, and by
	// .gnu_debuglink) before /usr/lib/debug; the debug file of an object
	// whose own file is found nowhere gives its symbols (not its code nor
	// its unwind tables).
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
	// NoHostDebugFiles, with Sysroot, uses no separate debug file of this
	// host (by default one found by build-id is used): the analysis then
	// depends only on the files below Sysroot.
	NoHostDebugFiles bool
	// Live says the target is a running process (a snapshot): there is no
	// fault to explain, and its first thread is the main thread.
	Live bool
	// PHPLayout says how the PHP structure layout is made (see
	// php.LayoutMode; "" is auto: derived from the binary, the table as the
	// cross-check).
	PHPLayout php.LayoutMode
	// Timeout and MaxMemory are the analysis budget: its wall-clock time
	// and Go heap (0: unbounded). The engine starts a Budget from them
	// for each run; when it is used up, the analysis ends with a partial
	// report that says so.
	Timeout   time.Duration
	MaxMemory int64
	// Budget is the running budget of this analysis (nil: unbounded).
	Budget *budget.Budget
	// Name is how errors and the report name the core when path is a
	// temporary copy (a decompressed core); "" means path.
	Name string
}

// Target is the process an analysis reads: a core file (*elfcore.File) or
// a live process (*liveproc.Process), through the same methods, so that
// every stage runs unchanged on both.
type Target interface {
	io.ReaderAt
	// ReadUint64 reads a little-endian word of the process's memory.
	ReadUint64(addr uint64) (uint64, error)
	// ReadDumped reads only memory the process really had (for a core:
	// not the files on disk).
	ReadDumped(p []byte, addr uint64) (int, error)
	Mappings() []elfcore.Mapping
	Mapping(addr uint64) *elfcore.Mapping
	// Threads are the threads with their registers; Crashed the one the
	// analysis starts from (the PHP runtime is read with its registers).
	Threads() []elfcore.Thread
	Crashed() *elfcore.Thread
	Signal() elfcore.Siginfo
	Process() elfcore.Psinfo
	Auxv() map[uint64]uint64
	Executable() string
	// HostPath maps a path of the process to where this host opens it.
	HostPath(p string) string
	Size() int64
	// ExpectedSize is the size a core's program headers claim (0 for a
	// live process); Truncated says the file is shorter.
	ExpectedSize() int64
	Truncated() bool
	Warnings() []string
}

type analysis struct {
	opts Options
	// background counts the goroutines reading symbol tables ahead of
	// their use (startSymbols): run waits for them before closing files.
	background sync.WaitGroup
	// opened are the files of mapped objects resolveFiles opened and
	// loadModules takes (keepOpen).
	opened  map[string]*os.File
	cache   *diskcache.Cache
	core    Target
	modules []*module
	// vdso is the vDSO read from the core's memory (nil: none).
	vdso *module
	// byPath lists the mappings of each mapped object read.
	byPath map[string][]*elfcore.Mapping
	space  space
	report *crash.Report
	// unwound frames per thread, kept for PHP annotation
	raw [][]unwind.Frame
	// faultRegs are the registers at the fault and faultFrame the index of
	// the faulting frame in the crashed thread, when a signal handler
	// re-raised the signal (see findReraise); trap is its signal frame.
	faultRegs  *crash.Registers
	faultFrame int
	trap       *sigframe
	// phpLayout is told the time deriving the PHP layout took (0: not
	// derived now); it runs concurrently with unwinding (preparePHP).
	phpLayout chan time.Duration
	// stopped is set once the budget was found used up.
	stopped bool
	// corePath is the core file analysed ("" for a live process).
	corePath string
	// res is which file of this host stands for each mapped object.
	res resolution
}

// over reports whether the budget is used up, and says once, before the
// named stage, that the report is partial.
func (a *analysis) over(stage string) bool {
	err := a.opts.Budget.Err()
	if err == nil {
		return false
	}
	if !a.stopped {
		a.stopped = true
		a.warn("%v before the %s stage: the report is partial", err, stage)
	}
	return true
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
	copts := elfcore.Options{Sysroot: opts.Sysroot, Exe: opts.Exe, Name: opts.Name, LeaveMapped: opts.LeaveMapped}
	if opts.Budget != nil {
		copts.Stop = opts.Budget.Err
	}
	c, err := elfcore.OpenWithOptions(path, copts)
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
		shown := path
		if opts.Name != "" {
			shown = opts.Name
		}
		return nil, fmt.Errorf("analyse %s: the core has no NT_PRSTATUS note (%s): no thread, register or signal to analyse", shown, why)
	}
	abs, _ := filepath.Abs(path)
	return run(c, abs, opts, start), nil
}

// Process analyses a target that is already open (a live process); name
// is what the report calls it (Process.CorePath). Its memory is read
// through t, so an error of t's reads becomes a warning, never a failure.
func Process(t Target, name string, opts Options) *crash.Report {
	return run(t, name, opts, time.Now())
}

func run(c Target, name string, opts Options, start time.Time) *crash.Report {
	a := &analysis{opts: opts, core: c, report: &crash.Report{Schema: crash.SchemaVersion, Warnings: []string{}}}
	if _, ok := c.(*elfcore.File); ok {
		// The file the user named (a compressed core is analysed from
		// a temporary copy): its directories may be the process's root.
		a.corePath = name
		if opts.Name != "" && filepath.IsAbs(opts.Name) {
			a.corePath = opts.Name
		}
	}
	a.space.core = c
	a.report.Warnings = append(a.report.Warnings, c.Warnings()...)
	if opts.CacheDir != "" {
		var err error
		if a.cache, err = diskcache.Open(opts.CacheDir, opts.CacheMaxBytes); err != nil {
			a.warn("disk cache not used: %v", err)
		}
	}
	if opts.Name != "" {
		a.fillProcess(opts.Name)
	} else {
		a.fillProcess(name)
	}
	a.stage("core", start)

	t := time.Now()
	a.resolveFiles()
	a.loadModules()
	a.buildRegions()
	a.stage("modules", t)
	a.preparePHP()

	t = time.Now()
	a.unwindThreads()
	if a.opts.Budget.Exceeded() {
		a.trimOtherThreads()
	}
	a.fetchDebugFiles()
	a.loadCacheRecords()
	// Decode the line tables of the modules on the stacks in the
	// background while PHP's function tables and runtime are read.
	a.startLines()
	a.startSymbols()
	a.findReraise()
	a.stage("unwind", t)

	// Name PHP's internals (reading its function tables) while the PHP
	// runtime is read from memory: the two are independent.
	if !a.over("PHP") {
		t = time.Now()
		names := make(chan []string, 1)
		go func() { names <- a.nameInternals() }()
		a.runPHP()
		a.stage("php", t)
		a.report.Warnings = append(a.report.Warnings, <-names...)
		a.annotatePHP()
		a.stage("internals", t)
	}

	t = time.Now()
	a.symbolize()
	a.stage("symbolize", t)

	if !opts.Live && !a.over("fault") {
		t = time.Now()
		a.explainFault()
		a.stage("fault", t)
	}
	a.noteTruncation()
	if err := opts.Budget.Err(); err != nil && !a.stopped {
		a.warn("%v: the report is partial", err)
	}

	a.background.Wait() // before the modules' files are closed
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
	a.report.Warnings = capWarnings(a.report.Warnings)
	a.stage("total", start)
	return a.report
}

// keptWhenOver is how many frames each thread that did not crash keeps
// when the budget was used up during unwinding: what was unwound of them
// should not take the rest of the analysis (and the report) with it.
const keptWhenOver = 64

// trimOtherThreads cuts the stacks of the threads that did not crash to
// keptWhenOver frames.
func (a *analysis) trimOtherThreads() {
	cut := 0
	for i := range a.report.Threads {
		t := &a.report.Threads[i]
		if t.Crashed || len(t.Frames) <= keptWhenOver {
			continue
		}
		t.Frames = t.Frames[:keptWhenOver:keptWhenOver]
		t.Cycles = crash.FoldCycles(len(t.Frames), func(x, y int) bool { return t.Frames[x].PC == t.Frames[y].PC }, 3)
		if t.Cycles == nil {
			t.Cycles = []crash.Cycle{}
		}
		a.raw[i] = a.raw[i][:keptWhenOver:keptWhenOver]
		cut++
	}
	if cut > 0 {
		a.warn("the analysis budget was used up while unwinding: %d threads that did not crash keep their first %d frames", cut, keptWhenOver)
	}
}

// maxWarnings bounds the warnings of a report: a crafted core can make
// one per mapped file or segment.
const maxWarnings = 100

// capWarnings drops repeated warnings and keeps the first maxWarnings.
func capWarnings(ws []string) []string {
	seen := make(map[string]bool, len(ws))
	out := ws[:0]
	dropped := 0
	for _, w := range ws {
		if seen[w] {
			continue
		}
		seen[w] = true
		if len(out) == maxWarnings {
			dropped++
			continue
		}
		out = append(out, w)
	}
	if dropped > 0 {
		out = append(out, fmt.Sprintf("... and %d more warnings", dropped))
	}
	return out
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

func (a *analysis) fillProcess(corePath string) {
	ps := a.core.Process()
	a.report.Process = crash.Process{
		CorePath: corePath, CoreSize: a.core.Size(), PID: ps.PID, PPID: ps.PPID, UID: ps.UID, GID: ps.GID,
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
