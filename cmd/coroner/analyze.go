package main

import (
	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/analyze"
	"github.com/coroner-dev/coroner/report"
)

func init() {
	var opts analyze.Options
	var asJSON, regs, timings, allThreads bool
	cmd := &cobra.Command{
		Use:   "analyze CORE",
		Short: "Post-mortem of a core file: fault, native and PHP stacks, request, INI",
		Long: `analyze reads a core file of any Linux x86-64 process (php-fpm, php, nginx, ...) and reports
the signal, the faulting instruction explained in words, every thread's stack (CFI, frame
pointers, stack scanning; trust per frame; repeats folded) and, for PHP, the PHP stack, the
request and the INI at crash time. No gdb and no debug symbols are needed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := analyze.Core(args[0], opts)
			if err != nil {
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
	rootCmd.AddCommand(cmd)
}
