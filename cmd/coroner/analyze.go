package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/budget"
	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/source/compressed"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
	"github.com/coroner-dev/coroner/internal/units"
)

// coreFlags select a core: a path (plain or compressed), an Apport .crash
// file, a systemd-coredump store entry, an ABRT directory, or --pid/--latest.
type coreFlags struct {
	pid     int
	latest  bool
	dirs    []string
	journal string
	when    timeFlags
	budget  budgetFlags
}

// budgetFlags are the bounds of one analysis: --timeout, --max-memory and
// --max-core-size.
type budgetFlags struct {
	timeout             time.Duration
	maxMemory, coreSize string
}

func (b *budgetFlags) register(cmd *cobra.Command) {
	cmd.Flags().DurationVar(&b.timeout, "timeout", budget.DefaultTimeout, "stop an analysis after this long, with a partial report (0: no limit)")
	cmd.Flags().StringVar(&b.maxMemory, "max-memory", units.Format(budget.DefaultMaxMemory), "stop an analysis whose heap grows past this size, with a partial report (0: no limit)")
	cmd.Flags().StringVar(&b.coreSize, "max-core-size", units.Format(compressed.DefaultMaxBytes), "decompress at most this much of a compressed core (the rest reads as truncated)")
}

// apply sets the bounds in the analysis and engine options.
func (b *budgetFlags) apply(opts *analyze.Options, eng *engine.Options) error {
	opts.Timeout = b.timeout
	n, err := units.ParseBytes(b.maxMemory)
	if err != nil {
		return fmt.Errorf("--max-memory: %w", err)
	}
	opts.MaxMemory = n
	if eng != nil {
		if eng.MaxCoreSize, err = units.ParseBytes(b.coreSize); err != nil {
			return fmt.Errorf("--max-core-size: %w", err)
		}
		if eng.MaxCoreSize == 0 {
			eng.MaxCoreSize = -1
		}
	}
	return nil
}

func (c *coreFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&c.pid, "pid", 0, "analyse the newest core of this process id")
	cmd.Flags().BoolVar(&c.latest, "latest", false, "analyse the newest core on this host")
	exclusiveFlags(cmd, "pid", "latest")
	cmd.Flags().StringArrayVar(&c.dirs, "cores", nil, coresUsage+" (with --pid/--latest)")
	aliasFlag(cmd.Flags(), "dir", "cores")
	cmd.Flags().StringVar(&c.journal, "journal", "", journalUsage+" (default: the host's)")
	c.when.register(cmd, false)
	cmd.Flags().Lookup("since").Usage = "with --pid/--latest: only cores of crashes at or after this time (" + whenForms + ")"
	cmd.Flags().Lookup("until").Usage = "with --pid/--latest: only cores of crashes before this time"
	c.budget.register(cmd)
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
func (c *coreFlags) engineOptions(opts analyze.Options, rules []string, args []string) (engine.Options, error) {
	eo := engine.Options{
		Analyze: opts, Rules: rules, Progress: compressed.TerminalProgress(),
		Discover: coredumps.DiscoverOptions{Dirs: c.dirs, Journal: c.journal},
	}
	since, until, err := c.when.window(time.Local)
	if err != nil {
		return eo, err
	}
	if (!since.IsZero() || !until.IsZero()) && len(args) > 0 {
		return eo, usageErrorf("--since and --until choose among the host's cores (with --pid or --latest), not with a core named (%s)", args[0])
	}
	if (!since.IsZero() || !until.IsZero()) && c.pid == 0 && !c.latest {
		c.latest = true // a window alone names the newest core in it
	}
	eo.Discover.Since, eo.Discover.Until = since, until
	return eo, nil
}

// runEngine resolves, analyses and diagnoses the core the user named: the
// common part of analyze, report and php.
func runEngine(cmd *cobra.Command, sel *coreFlags, opts analyze.Options, rules []string, args []string, diagnose bool) (*crash.Report, error) {
	tuneGCForOneShot()
	// The process exits after this one analysis: its exit drops the
	// mappings of the core and its files at once.
	opts.LeaveMapped = true
	eopts, err := sel.engineOptions(opts, rules, args)
	if err != nil {
		return nil, err
	}
	if err := sel.budget.apply(&eopts.Analyze, &eopts); err != nil {
		return nil, err
	}
	eng := engine.New(eopts)
	return eng.Run(cmd.Context(), engine.Request{Core: sel.core(args), NoDiagnosis: !diagnose})
}

func init() {
	addCommand("analyze", func() {
		var opts analyze.Options
		var asJSON, regs, timings, allThreads, isolated, noDiagnosis bool
		var layout string
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
				mode, err := parseLayout(layout)
				if err != nil {
					return err
				}
				opts.PHPLayout = mode
				if isolated {
					if trimForStore == nil {
						return errors.New("analyze --isolated is run by coroner watch, in coroner-service: this coroner is built without the service")
					}
					mem, err := units.ParseBytes(sel.budget.maxMemory)
					if err != nil {
						return fmt.Errorf("--max-memory: %w", err)
					}
					if len(args) == 1 {
						if err := enterIsolation(args[0], mem); err != nil {
							return err
						}
					}
				}
				rep, err := runEngine(cmd, &sel, opts, rules, args, !noDiagnosis)
				if err != nil {
					return err
				}
				if isolated {
					trimForStore(rep)
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
		registerRootFlags(cmd, &opts)
		f.BoolVar(&opts.NoHostDebugFiles, "no-host-debug", false, "with --sysroot, use no debug file of this host: a report that depends only on the sysroot")
		f.BoolVar(&opts.ShowSecrets, "show-secrets", false, "do not redact cookies and credentials found in the core")
		f.BoolVar(&regs, "registers", true, "show the crashed thread's registers")
		f.BoolVar(&timings, "timings", false, "show how long each analysis stage took")
		f.BoolVar(&allThreads, "all-frames", false, "show every frame of every thread")
		f.IntVar(&opts.MaxFrames, "max-frames", 0, "stop unwinding a thread after this many frames (default 1,000,000)")
		registerLayout(cmd, &layout, false)
		f.BoolVar(&isolated, "isolated", false, "analyse on behalf of coroner watch: bounded address space, first to be killed, stacks trimmed as stored")
		f.BoolVar(&noDiagnosis, "no-diagnosis", false, "stop after the analysis (the caller diagnoses)")
		_ = f.MarkHidden("isolated")
		_ = f.MarkHidden("no-diagnosis")
		registerRules(cmd, &rules)
		sel.register(cmd)
		syms.register(cmd)
		rootCmd.AddCommand(cmd)
	})
}

// registerRules adds the --rules flag.
func registerRules(cmd *cobra.Command, rules *[]string) {
	cmd.Flags().StringArrayVar(rules, "rules", nil, "extra rules file (YAML, see docs/rules.md); repeatable")
}
