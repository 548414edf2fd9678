package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine/php"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

func init() {
	var asJSON, showSecrets bool
	var files elfcore.Options
	var sel coreFlags
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
			path, origin, cleanup, err := sel.open(args)
			if err != nil {
				return err
			}
			defer cleanup()
			c, err := elfcore.OpenWithOptions(path, files)
			if err != nil {
				return err
			}
			defer c.Close()
			var maps []php.Mapping
			for _, f := range c.Files() {
				maps = append(maps, php.Mapping{Start: f.Start, End: f.End, Offset: f.Offset, Path: f.Path})
			}
			in := php.Input{Memory: c, Modules: php.ModulesFromMappings(maps, c.HostPath), ShowSecrets: showSecrets}
			if th := c.Crashed(); th != nil {
				in.Registers = th.Regs.Map()
			}
			res, err := php.Analyze(in)
			if err != nil {
				return err
			}
			if res == nil {
				return &exitCodeError{code: 2, err: fmt.Errorf("%s: the process is not PHP (no executor_globals exported by a mapped php binary)", origin)}
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
	cmd.Flags().StringVar(&files.Sysroot, "sysroot", "", "directory holding the crashed host's files (for cores analysed on another machine)")
	cmd.Flags().StringVar(&files.Exe, "exe", "", "path of the crashed executable, when it is not where the core says")
	sel.register(cmd)
	rootCmd.AddCommand(cmd)
}
