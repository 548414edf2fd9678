package main

import (
	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/source/compressed"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// coreFlags select a core: a path (plain or compressed), an Apport .crash
// file, a systemd-coredump store entry, an ABRT directory, or --pid/--latest.
type coreFlags struct {
	pid    int
	latest bool
	dirs   []string
}

func (c *coreFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&c.pid, "pid", 0, "analyse the newest core of this process id")
	cmd.Flags().BoolVar(&c.latest, "latest", false, "analyse the newest core on this host")
	cmd.Flags().StringArrayVar(&c.dirs, "dir", nil, "also look for cores in this directory (with --pid/--latest)")
}

// core returns the core the arguments and flags name.
func (c *coreFlags) core(args []string) engine.Core {
	core := engine.Core{PID: c.pid, Latest: c.latest}
	if len(args) > 0 {
		core.Path = args[0]
	}
	return core
}

// engineOptions are the pipeline options of a one-shot command.
func (c *coreFlags) engineOptions(opts analyze.Options, rules []string) engine.Options {
	return engine.Options{
		Analyze: opts, Rules: rules, Progress: compressed.TerminalProgress(),
		Discover: coredumps.DiscoverOptions{Dirs: c.dirs},
	}
}

// runEngine resolves, analyses and diagnoses the core the user named: the
// common part of analyze, report and php.
func runEngine(cmd *cobra.Command, sel *coreFlags, opts analyze.Options, rules []string, args []string, diagnose bool) (*crash.Report, error) {
	tuneGCForOneShot()
	eng := engine.New(sel.engineOptions(opts, rules))
	return eng.Run(cmd.Context(), engine.Request{Core: sel.core(args), NoDiagnosis: !diagnose})
}

func init() {
	var opts analyze.Options
	var asJSON, regs, timings, allThreads bool
	var rules []string
	var sel coreFlags
	var syms symbolFlags
	cmd := &cobra.Command{
		Use:   "analyze [CORE]",
		Short: "Post-mortem of a core file: fault, native and PHP stacks, request, INI, diagnosis",
		Long: `analyze reads a core file of any Linux x86-64 process (php-fpm, php, nginx, ...) and reports
the signal, the faulting instruction explained in words, every thread's stack (CFI, frame
pointers, stack scanning; trust per frame; repeats folded) and, for PHP, the PHP stack, the
request and the INI at crash time, then the known crash family it belongs to and the fix.
No gdb and no debug symbols are needed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := syms.apply(&opts); err != nil {
				return err
			}
			rep, err := runEngine(cmd, &sel, opts, rules, args, true)
			if err != nil {
				return err
			}
			if asJSON {
				return render.JSON(cmd.OutOrStdout(), rep)
			}
			to := render.TextOptions{Registers: regs, Timings: timings}
			if allThreads {
				to.OtherThreadFrames = -1
			}
			return render.Text(cmd.OutOrStdout(), rep, to)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the report as JSON (schema: docs/json-schema.md)")
	f.StringVar(&opts.Sysroot, "sysroot", "", "directory holding the crashed host's files (for cores analysed on another machine)")
	f.StringVar(&opts.Exe, "exe", "", "path of the crashed executable, when it is not where the core says")
	f.BoolVar(&opts.ShowSecrets, "show-secrets", false, "do not redact cookies and credentials found in the core")
	f.BoolVar(&regs, "registers", true, "show the crashed thread's registers")
	f.BoolVar(&timings, "timings", false, "show how long each analysis stage took")
	f.BoolVar(&allThreads, "all-frames", false, "show every frame of every thread")
	f.IntVar(&opts.MaxFrames, "max-frames", 0, "stop unwinding a thread after this many frames (default 1,000,000)")
	registerRules(cmd, &rules)
	sel.register(cmd)
	syms.register(cmd)
	rootCmd.AddCommand(cmd)
}

// registerRules adds the --rules flag.
func registerRules(cmd *cobra.Command, rules *[]string) {
	cmd.Flags().StringArrayVar(rules, "rules", nil, "extra rules file (YAML, see docs/rules.md); repeatable")
}
