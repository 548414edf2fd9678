package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/render"
)

func init() {
	addCommand("php", func() {
		var asJSON bool
		var layout string
		var opts analyze.Options
		var sel coreFlags
		var syms symbolFlags
		cmd := &cobra.Command{
			Use:   "php [CORE]",
			Short: "The PHP runtime in a core: PHP stack, request, INI, extensions",
			Long: `php reads the PHP runtime state out of a core of php-fpm, php (CLI) or Apache with
	libphp: the PHP version and build, the PHP call stack with the current line of every
	frame (deep recursion folded), the request being served (the real REQUEST_URI, method,
	host, client; cookies and credentials redacted unless --show-secrets), the effective
	INI at crash time (opcache.jit, pcre.jit, memory_limit, ...) and the loaded extensions.
	No gdb and no debug symbols are needed: the offsets of PHP's structures are derived from
	the machine code of the PHP binary's exported functions and checked on the core's data.
	--layout prints that layout instead: every offset, where it came from (derived from which
	function and instruction, coroner's table, or a constant since PHP 7.0) and what checked it.`,
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
				rep, err := runEngine(cmd, &sel, opts, nil, args, false)
				if err != nil {
					return err
				}
				res := rep.PHP
				if res == nil {
					return &exitCodeError{code: exitNotPHP, err: fmt.Errorf("%s: the process is not PHP (no executor_globals exported by a mapped php binary)", rep.Process.CorePath)}
				}
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				switch {
				case layoutGiven(cmd) && asJSON:
					return enc.Encode(render.PHPLayoutOf(res))
				case layoutGiven(cmd):
					return render.PHPLayoutText(cmd.OutOrStdout(), res)
				case asJSON:
					return enc.Encode(render.PHPDocument{Schema: render.PHPSchemaVersion, PHP: res})
				}
				return render.PHPText(cmd.OutOrStdout(), res)
			},
		}
		cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (the \"php\" object of docs/json-schema.md)")
		cmd.Flags().BoolVar(&opts.ShowSecrets, "show-secrets", false, "do not redact cookies and credentials found in the core")
		cmd.Flags().StringVar(&opts.Sysroot, "sysroot", "", "directory holding the crashed host's files (for cores analysed on another machine)")
		cmd.Flags().StringVar(&opts.Exe, "exe", "", "path of the crashed executable, when it is not where the core says")
		registerRootFlags(cmd, &opts)
		cmd.Flags().BoolVar(&opts.NoHostDebugFiles, "no-host-debug", false, "with --sysroot, use no debug file of this host: a report that depends only on the sysroot")
		registerLayout(cmd, &layout, true)
		sel.register(cmd)
		syms.register(cmd)
		rootCmd.AddCommand(cmd)
	})
}
