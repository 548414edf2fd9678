// Package snapshot is the engine of `coroner snapshot`: it picks the live
// PHP-FPM workers to look at (by pid, by pool, by how long their request
// has run), takes a snapshot of each (package liveproc: a pause of
// milliseconds), analyses it like a core (package analyze: native stacks,
// PHP stack, request, INI), says what it was doing (the system call it
// waits in, its CPU time, FPM's view of its request) and, on request,
// writes a core of it.
package snapshot

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/source/fpmworkers"
	"github.com/coroner-dev/coroner/internal/source/liveproc"
)

// Options tune a snapshot.
type Options struct {
	// Analyze are the analysis options (secrets, frame limit, PHP stage).
	Analyze analyze.Options
	// LiveMemory copies only the stacks while the process is stopped
	// (see liveproc.Options.LiveMemory).
	LiveMemory bool
	// CoreDir, when set, receives a core file of each snapshot
	// (core.COMM.PID.UNIXTIME.live).
	CoreDir string
	// Progress, when set, is told of each process Run is about to read:
	// the how-manieth of how many.
	Progress func(n, total int, t Target)
}

// Target is one process to snapshot, with what FPM says of it (nil when
// it is not a known FPM worker).
type Target struct {
	PID    int
	Worker *crash.Worker
	Pool   *fpmworkers.Pool
}

// Take snapshots one process and analyses it. The error is the reason the
// process could not be read at all (refused, gone); problems afterwards
// are warnings of the report.
func Take(t Target, opts Options) (*crash.Report, error) {
	p, err := liveproc.Attach(t.PID, liveproc.Options{LiveMemory: opts.LiveMemory})
	if err != nil {
		return nil, err
	}
	defer p.Close()
	live := describe(p, t)
	if opts.CoreDir != "" {
		name := fmt.Sprintf("core.%s.%d.%d.live", safeComm(p.Process().Comm), t.PID, p.Taken().Unix())
		path := filepath.Join(opts.CoreDir, name)
		if _, err := p.WriteCore(path); err != nil {
			return nil, err
		}
		live.CorePath, _ = filepath.Abs(path)
	}
	ao := opts.Analyze
	ao.Live = true
	rep := analyze.Process(p, fmt.Sprintf("pid %d (live)", t.PID), ao)
	rep.Live = live
	if live.Syscall == "restart_syscall" && len(rep.Threads) > 0 && len(rep.Threads[0].Frames) > 0 {
		// A call interrupted once before (by FPM's slowlog, a debugger)
		// goes on as restart_syscall: its libc wrapper names the call.
		if fn := libcName(rep.Threads[0].Frames[0].Function); fn != "" {
			live.Syscall = fn
		}
	}
	return rep, nil
}

// libcName strips glibc's internal prefixes from a system call wrapper's
// name ("__GI___poll" -> "poll").
func libcName(fn string) string {
	for _, p := range []string{"__GI___", "__libc_", "__"} {
		fn = strings.TrimPrefix(fn, p)
	}
	return fn
}

func describe(p *liveproc.Process, t Target) *crash.Live {
	pause := p.Pause()
	st := p.Stat()
	l := &crash.Live{
		Time:        p.Taken().Format(time.RFC3339Nano),
		PauseMS:     ms(pause.Stopped),
		RegistersMS: ms(pause.Registers),
		PauseCPUMS:  ms(pause.CPU),
		Threads:     pause.Threads,
		Memory:      "frozen",
		CopiedBytes: pause.Copied,
		State:       string(rune(st.State)),
		CPUSeconds:  float64(st.UserTicks+st.SystemTicks) / liveproc.TicksPerSecond,
		Worker:      t.Worker,
	}
	if !p.Frozen() {
		l.Memory = "live"
	}
	if st.State == 0 {
		l.State = ""
	}
	if th := p.Crashed(); th != nil {
		l.Syscall = liveproc.InSyscall(th.Regs)
	}
	return l
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func safeComm(c string) string {
	b := []byte(c)
	for i, x := range b {
		if x == '/' || x == ' ' || x < 0x20 {
			b[i] = '_'
		}
	}
	if len(b) == 0 {
		return "process"
	}
	return string(b)
}

// Selection says which processes to snapshot.
type Selection struct {
	// PIDs are processes named on the command line.
	PIDs []int
	// Pool selects the busy workers of the FPM pools of this name.
	Pool string
	// BusyOver selects the workers whose current request has run longer
	// than this (FPM's status page tells it).
	BusyOver time.Duration
	// Idle includes idle workers of Pool.
	Idle bool
}

// ErrNothingSelected is returned when a selection finds no worker.
var ErrNothingSelected = errors.New("no worker matches")

// Select resolves a selection into targets, with FPM's view of each
// worker. Warnings say what could not be known (a pool without a status
// page cannot tell how long a request has run).
func Select(ctx context.Context, sel Selection, pools []*fpmworkers.Pool) ([]Target, []string) {
	var out []Target
	var warns []string
	byPID := map[int]Target{}
	for _, pl := range pools {
		for i := range pl.Workers {
			w := &pl.Workers[i]
			byPID[w.PID] = Target{PID: w.PID, Worker: w, Pool: pl}
		}
	}
	for _, pid := range sel.PIDs {
		t, ok := byPID[pid]
		if !ok {
			t = Target{PID: pid}
		}
		out = append(out, t)
	}
	if sel.Pool == "" && sel.BusyOver == 0 {
		return out, warns
	}
	for _, pl := range pools {
		if sel.Pool != "" && pl.Name != sel.Pool {
			continue
		}
		unknown := 0
		for i := range pl.Workers {
			w := &pl.Workers[i]
			if containsPID(sel.PIDs, w.PID) {
				continue
			}
			busy := fpmworkers.Busy(*w)
			if !busy && !sel.Idle {
				continue
			}
			if sel.BusyOver > 0 {
				if w.RequestMS < 0 {
					unknown++
					continue
				}
				if !busy || time.Duration(w.RequestMS*float64(time.Millisecond)) < sel.BusyOver {
					continue
				}
			}
			out = append(out, Target{PID: w.PID, Worker: w, Pool: pl})
		}
		if unknown > 0 {
			warns = append(warns, fmt.Sprintf("pool %s (master %d): %d busy workers left out: without its status page (%s) coroner cannot tell how long their requests have run; name them by pid, or set pm.status_path", pl.Name, pl.Master, unknown, pl.Status))
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Worker, out[j].Worker
		if a == nil || b == nil {
			return false
		}
		return a.RequestMS > b.RequestMS // the longest-running first
	})
	return out, warns
}

func containsPID(pids []int, pid int) bool {
	for _, p := range pids {
		if p == pid {
			return true
		}
	}
	return false
}

// Result is the snapshot of one target.
type Result struct {
	Target Target
	Report *crash.Report
	Err    error
}

// Run snapshots every target in turn (one process stopped at a time),
// stopping early when ctx is cancelled (SIGINT): a snapshot under way is
// always finished, so no process is left stopped.
func Run(ctx context.Context, targets []Target, opts Options) []Result {
	var out []Result
	for i, t := range targets {
		if ctx.Err() != nil {
			break
		}
		if opts.Progress != nil {
			opts.Progress(i+1, len(targets), t)
		}
		rep, err := Take(t, opts)
		out = append(out, Result{Target: t, Report: rep, Err: err})
	}
	return out
}

// CheckCoreDir makes sure dir exists and is writable before any process
// is stopped.
func CheckCoreDir(dir string) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("core directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".coroner-check-")
	if err != nil {
		return fmt.Errorf("core directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
