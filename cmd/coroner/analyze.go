package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/analyze"
	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/diagnose"
	"github.com/coroner-dev/coroner/report"
)

// diagnoseFlags are the knowledge-base options shared by commands that
// diagnose a core.
type diagnoseFlags struct {
	rules []string
}

func (d *diagnoseFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&d.rules, "rules", nil, "extra rules file (YAML, see docs/rules.md); repeatable")
}

// apply matches the report against the knowledge base and fingerprints it.
func (d *diagnoseFlags) apply(rep *crash.Report, ev diagnose.Evidence) error {
	kb, err := diagnose.Load(d.rules...)
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	rep.Diagnosis = kb.Diagnose(rep, ev)
	rep.Fingerprint = diagnose.Fingerprint(rep)
	return nil
}

func init() {
	var opts analyze.Options
	var asJSON, regs, timings, allThreads bool
	var diag diagnoseFlags
	cmd := &cobra.Command{
		Use:   "analyze CORE",
		Short: "Post-mortem of a core file: fault, native and PHP stacks, request, INI, diagnosis",
		Long: `analyze reads a core file of any Linux x86-64 process (php-fpm, php, nginx, ...) and reports
the signal, the faulting instruction explained in words, every thread's stack (CFI, frame
pointers, stack scanning; trust per frame; repeats folded) and, for PHP, the PHP stack, the
request and the INI at crash time, then the known crash family it belongs to and the fix.
No gdb and no debug symbols are needed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := analyze.Core(args[0], opts)
			if err != nil {
				return err
			}
			if err := diag.apply(rep, diagnose.Evidence{}); err != nil {
				return err
			}
			if asJSON {
				return report.JSON(cmd.OutOrStdout(), rep)
			}
			to := report.TextOptions{Registers: regs, Timings: timings}
			if allThreads {
				to.OtherThreadFrames = -1
			}
			return report.Text(cmd.OutOrStdout(), rep, to)
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
	diag.register(cmd)
	rootCmd.AddCommand(cmd)
}
