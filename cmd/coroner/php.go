package main

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/core"
	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/php"
)

func init() {
	var asJSON, showSecrets bool
	cmd := &cobra.Command{
		Use:   "php CORE",
		Short: "The PHP runtime in a core: PHP stack, request, INI, extensions",
		Long: `php reads the PHP runtime state out of a core of php-fpm, php (CLI) or Apache with
libphp: the PHP version and build, the PHP call stack with the current line of every
frame (deep recursion folded), the request being served (the real REQUEST_URI, method,
host, client; cookies and credentials redacted unless --show-secrets), the effective
INI at crash time (opcache.jit, pcre.jit, memory_limit, ...) and the loaded extensions.
No gdb and no debug symbols are needed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := core.Open(args[0])
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
				return &exitCodeError{code: 2, err: fmt.Errorf("%s: the process is not PHP (no executor_globals exported by a mapped php binary)", args[0])}
			}
			if asJSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return writePHP(cmd.OutOrStdout(), res)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON (the \"php\" object of docs/json-schema.md)")
	cmd.Flags().BoolVar(&showSecrets, "show-secrets", false, "do not redact cookies and credentials found in the core")
	rootCmd.AddCommand(cmd)
}

// writePHP renders the PHP state as text.
func writePHP(w io.Writer, ph *crash.PHP) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	build := "NTS"
	if ph.ZTS {
		build = "ZTS"
	}
	p("PHP %s (%s, %s)", ph.Version, ph.SAPI, build)
	if q := ph.Request; q != nil {
		p("request (from %s):", q.Source)
		for _, kv := range [][2]string{{"method", q.Method}, {"uri", q.URI}, {"query", q.Query}, {"script", q.Script},
			{"host", q.Host}, {"client", q.RemoteAddr}, {"agent", q.UserAgent}, {"type", q.ContentType}} {
			if kv[1] != "" {
				p("  %-7s %s", kv[0]+":", kv[1])
			}
		}
	}
	if ph.JIT != nil {
		p("jit: %s", ph.JIT.Description)
	}
	if len(ph.INI) > 0 {
		keys := make([]string, 0, len(ph.INI))
		for k := range ph.INI {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		p("ini:")
		for _, k := range keys {
			p("  %s = %s", k, ph.INI[k])
		}
	}
	p("PHP stack (%d frames, innermost first):", len(ph.Frames))
	ci := 0
	for i := 0; i < len(ph.Frames); i++ {
		if ci < len(ph.Cycles) && ph.Cycles[ci].Start == i {
			c := ph.Cycles[ci]
			for j := c.Start; j < c.Start+c.Length; j++ {
				p("  %s", phpFrame(j, &ph.Frames[j]))
			}
			p("  ... frames #%d-#%d repeat %d times in all (cycle of %d) ...", c.Start, c.End, c.Repeats, c.Length)
			i, ci = c.End, ci+1
			continue
		}
		p("  %s", phpFrame(i, &ph.Frames[i]))
	}
	if len(ph.Extensions) > 0 {
		var names []string
		for _, e := range ph.Extensions {
			names = append(names, strings.TrimSpace(e.Name+" "+e.Version))
		}
		p("extensions: %s", strings.Join(names, ", "))
	}
	for _, wn := range ph.Warnings {
		p("warning: %s", wn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func phpFrame(i int, f *crash.PHPFrame) string {
	name := f.Function
	if f.Class != "" {
		name = f.Class + f.CallType + f.Function
	}
	s := fmt.Sprintf("#%-5d %s(%s)", i, name, strings.Join(f.Args, ", "))
	if f.File != "" {
		s += fmt.Sprintf(" at %s:%d", f.File, f.Line)
	}
	return s
}
