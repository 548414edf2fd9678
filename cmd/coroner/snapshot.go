package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os/signal"
	"sort"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/engine/snapshot"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/source/fpmworkers"
)

// snapshotFlags are the flags of coroner snapshot.
type snapshotFlags struct {
	pool        string
	busyOver    time.Duration
	idle        bool
	core        bool
	coreDir     string
	liveMemory  bool
	asJSON      bool
	list        bool
	showSecrets bool
	maxFrames   int
	rules       []string
	allThreads  bool
}

func init() {
	addCommand("snapshot", func() {
		var f snapshotFlags
		cmd := &cobra.Command{
			Use:   "snapshot [PID...] [--pool NAME] [--busy-over DURATION]",
			Short: "The native and PHP stacks and the request of LIVE workers (hung, slow), without stopping the site",
			Long: `snapshot reads running processes the way analyze reads a core: every thread's native
	stack, the PHP stack with current lines and arguments, the request being served (URI,
	method, host, client, how long it has been running), the INI, and the known hang family
	with its fix. Each process is stopped only for a few milliseconds (PTRACE_SEIZE +
	PTRACE_INTERRUPT: registers read, private memory copied, then detached; the pause is
	measured and shown) and goes on serving its request; no process is ever left stopped,
	also when coroner is interrupted.

	Which workers: PIDs; or --pool NAME (its busy workers; --idle for all); or --busy-over
	10s (every pool's workers serving one request for longer than that). FPM's status page
	(pm.status_path, read over the pool's socket) tells each worker's state, request and
	duration; without it, /proc tells which workers are busy but not for how long.
	--core writes a core file of each snapshot (read it later with coroner analyze or gdb).

	Needs root, or the workers' user with ptrace allowed (kernel.yama.ptrace_scope 0 and
	process.dumpable = yes in the pool): each refusal says why.`,
			RunE: func(cmd *cobra.Command, args []string) error { return runSnapshot(cmd, &f, args) },
		}
		fl := cmd.Flags()
		fl.StringVar(&f.pool, "pool", "", "snapshot the busy workers of this FPM pool")
		fl.DurationVar(&f.busyOver, "busy-over", 0, "snapshot the workers serving a request for longer than this (e.g. 10s)")
		fl.BoolVar(&f.idle, "idle", false, "with --pool: idle workers too")
		fl.BoolVar(&f.core, "core", false, "write a core file of each snapshot (to --core-dir)")
		fl.StringVar(&f.coreDir, "core-dir", ".", "where --core writes core.COMM.PID.TIME.live")
		fl.BoolVar(&f.liveMemory, "live-memory", false, "copy only the stacks while stopped (shorter pause; the PHP state is read while the worker runs on)")
		fl.BoolVar(&f.asJSON, "json", false, "print the reports (with \"live\") as one JSON document (docs/json-schema.md)")
		fl.BoolVar(&f.list, "list", false, "list the FPM workers (pool, state, request, duration) and stop no process")
		fl.BoolVar(&f.showSecrets, "show-secrets", false, "do not redact cookies and credentials")
		fl.IntVar(&f.maxFrames, "max-frames", 0, "bound the native frames unwound per thread")
		fl.StringArrayVar(&f.rules, "rules", nil, "extra rules file (repeatable)")
		fl.BoolVar(&f.allThreads, "all-threads", false, "show every frame of every thread")
		rootCmd.AddCommand(cmd)
	})
}

func runSnapshot(cmd *cobra.Command, f *snapshotFlags, args []string) error {
	// SIGINT and SIGTERM end coroner only between two processes: the one
	// being read is always released first.
	ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	out := cmd.OutOrStdout()
	sel := snapshot.Selection{Pool: f.pool, BusyOver: f.busyOver, Idle: f.idle}
	for _, a := range args {
		pid, err := strconv.Atoi(a)
		if err != nil || pid <= 0 {
			return usageErrorf("%q is not a pid", a)
		}
		sel.PIDs = append(sel.PIDs, pid)
	}
	if len(sel.PIDs) == 0 && sel.Pool == "" && sel.BusyOver == 0 && !f.list {
		return usageErrorf("name the processes: PID..., --pool NAME or --busy-over DURATION (--list shows the FPM workers)")
	}
	pools, warns := fpmworkers.List(ctx, fpmworkers.Options{})
	if f.list {
		writeWorkers(out, pools)
		for _, w := range warns {
			fmt.Fprintf(out, "warning: %s\n", w)
		}
		return nil
	}
	targets, swarns := snapshot.Select(ctx, sel, pools)
	warns = append(warns, swarns...)
	if len(targets) == 0 {
		for _, w := range warns {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
		}
		return &exitCodeError{code: exitNoTarget, err: fmt.Errorf("%w: %s", snapshot.ErrNothingSelected, describeSelection(sel))}
	}
	opts := snapshot.Options{LiveMemory: f.liveMemory}
	opts.Analyze.ShowSecrets = f.showSecrets
	opts.Analyze.MaxFrames = f.maxFrames
	if f.core {
		if err := snapshot.CheckCoreDir(f.coreDir); err != nil {
			return err
		}
		opts.CoreDir = f.coreDir
	}
	eng := engine.New(engine.Options{Rules: f.rules})
	start := time.Now()
	st := busy("reading processes")
	opts.Progress = func(n, total int, t snapshot.Target) {
		st.count("reading", n, total, "processes", "pid "+strconv.Itoa(t.PID))
	}
	results := snapshot.Run(ctx, targets, opts)
	st.done()
	total := time.Since(start)
	var reports []*crash.Report
	failed := 0
	for _, r := range results {
		if r.Err != nil {
			failed++
			fmt.Fprintf(cmd.ErrOrStderr(), "coroner: %v\n", r.Err)
			continue
		}
		if err := eng.Diagnose(r.Report, diagnose.Evidence{}); err != nil {
			return err
		}
		reports = append(reports, r.Report)
	}
	if f.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		doc := snapshot.Document{Schema: snapshot.SchemaVersion, Reports: reports, Warnings: append([]string{}, warns...)}
		if doc.Reports == nil {
			doc.Reports = []*crash.Report{}
		}
		if err := enc.Encode(doc); err != nil {
			return err
		}
	} else {
		to := render.TextOptions{}
		if f.allThreads {
			to.OtherThreadFrames = -1
		}
		for _, rep := range reports {
			if err := render.Text(out, rep, to); err != nil {
				return err
			}
			fmt.Fprintln(out)
		}
		writePauseSummary(out, reports, total)
	}
	for _, w := range warns {
		fmt.Fprintf(cmd.ErrOrStderr(), "warning: %s\n", w)
	}
	if ctx.Err() != nil {
		return &exitCodeError{code: 130, err: fmt.Errorf("interrupted after %d of %d processes (every process was released)", len(results), len(targets))}
	}
	if failed > 0 {
		return &exitCodeError{code: exitError, err: fmt.Errorf("%d of %d processes could not be read", failed, len(targets))}
	}
	return nil
}

func describeSelection(sel snapshot.Selection) string {
	s := ""
	if sel.Pool != "" {
		s = "busy workers of pool " + sel.Pool
	} else {
		s = "busy workers"
	}
	if sel.BusyOver > 0 {
		s += " serving a request for longer than " + sel.BusyOver.String()
	}
	return s
}

// writePauseSummary prints the pauses (median, max) and the total time.
func writePauseSummary(w io.Writer, reports []*crash.Report, total time.Duration) {
	if len(reports) < 2 {
		return
	}
	var p []float64
	for _, r := range reports {
		p = append(p, r.Live.PauseMS)
	}
	sort.Float64s(p)
	fmt.Fprintf(w, "%d processes in %s: pause median %s, max %s\n", len(reports), render.LiveDuration(float64(total.Microseconds())/1000),
		render.LiveDuration(p[len(p)/2]), render.LiveDuration(p[len(p)-1]))
}

// writeWorkers lists the FPM pools and their workers.
func writeWorkers(w io.Writer, pools []*fpmworkers.Pool) {
	if len(pools) == 0 {
		fmt.Fprintln(w, "no running PHP-FPM workers found")
		return
	}
	for _, pl := range pools {
		src := pl.Status
		if src != "fpm-status" {
			src = "/proc only: " + src
		}
		fmt.Fprintf(w, "pool %s (master %d, %s; %s)\n", pl.Name, pl.Master, pl.Config, src)
		for i := range pl.Workers {
			wk := &pl.Workers[i]
			fmt.Fprintf(w, "  %-8d %s\n", wk.PID, render.WorkerText(wk))
		}
	}
}

var _ = context.Background
