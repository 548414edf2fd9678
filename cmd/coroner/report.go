package main

import (
	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/render"
)

func init() {
	addCommand("report", func() {
		var opts analyze.Options
		var asJSON bool
		var rules []string
		var sel coreFlags
		var syms symbolFlags
		cmd := &cobra.Command{
			Use:   "report [CORE]",
			Short: "A bug report for a crash, ready to paste into a php-src issue (Markdown)",
			Long: `report analyses a core and writes a bug report in Markdown: PHP version and SAPI,
	extensions, the INI directives that matter, native and PHP backtraces (repeats folded), the fault
	explained, the request (secrets redacted), the diagnosis with its fix, and reproduction hints.`,
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
				return render.Markdown(cmd.OutOrStdout(), rep)
			},
		}
		f := cmd.Flags()
		f.Bool("markdown", true, "write Markdown (the default)")
		f.BoolVar(&asJSON, "json", false, "write the JSON report instead")
		exclusiveFlags(cmd, "json", "markdown")
		f.StringVar(&opts.Sysroot, "sysroot", "", "directory holding the crashed host's files")
		f.StringVar(&opts.Exe, "exe", "", "path of the crashed executable, when it is not where the core says")
		registerRootFlags(cmd, &opts)
		f.BoolVar(&opts.NoHostDebugFiles, "no-host-debug", false, "with --sysroot, use no debug file of this host: a report that depends only on the sysroot")
		registerRules(cmd, &rules)
		sel.register(cmd)
		syms.register(cmd)
		rootCmd.AddCommand(cmd)
	})
}
