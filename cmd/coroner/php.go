package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/render"
)

func init() {
	var asJSON, showSecrets bool
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
No gdb and no debug symbols are needed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := analyze.Options{ShowSecrets: showSecrets}
			if err := syms.apply(&opts); err != nil {
				return err
			}
			rep, err := runEngine(cmd, &sel, opts, nil, args, false)
			if err != nil {
				return err
			}
			res := rep.PHP
			if res == nil {
				return &exitCodeError{code: 2, err: fmt.Errorf("%s: the process is not PHP (no executor_globals exported by a mapped php binary)", rep.Process.CorePath)}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return render.PHPText(cmd.OutOrStdout(), res)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (the \"php\" object of docs/json-schema.md)")
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "do not redact cookies and credentials found in the core")
	sel.register(cmd)
	syms.register(cmd)
	rootCmd.AddCommand(cmd)
}
