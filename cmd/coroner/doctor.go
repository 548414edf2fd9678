package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/doctor"
	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/redact"
)

func init() {
	addCommand("doctor", func() {
		var opts doctor.Options
		var asJSON, asMarkdown bool
		var when timeFlags
		var bootTime string
		var logFiles []string
		var bf budgetFlags
		cmd := &cobra.Command{
			Use:   "doctor [LOG...]",
			Short: "From \"502s\" to \"this is why, change this line\": logs + config + cores + diagnosis",
			Long: `doctor discovers the host's logs (nginx, PHP-FPM, kernel), audits the PHP-FPM configuration,
	finds the cores, analyses the newest core of each crash, and prints one diagnosis per crash group:
	what is crashing (requests, rate, since when), the best explanation, the evidence (frames, fault,
	request, INI), the fix, and what to do when evidence is missing. Log files given as arguments
	replace the discovered ones. Works with no cores (logs, kernel lines and configuration only) and
	with no logs (cores only).

	PHP first: the kernel logs every crashing program of the host; only PHP processes'
	deaths are counted, grouped and diagnosed, the others are summed up in one line
	(--all-processes treats them equally).`,
			RunE: func(cmd *cobra.Command, args []string) error {
				tuneGCForOneShot()
				opts.Logs = append(append([]string(nil), args...), logFiles...)
				var aopts analyze.Options
				var eopts engine.Options
				if err := bf.apply(&aopts, &eopts); err != nil {
					return err
				}
				opts.Timeout, opts.MaxMemory, opts.MaxCoreSize = aopts.Timeout, aopts.MaxMemory, eopts.MaxCoreSize
				loc, err := when.location()
				if err != nil {
					return err
				}
				opts.Location = loc
				if opts.Since, opts.Until, err = when.window(loc); err != nil {
					return err
				}
				if opts.BootTime, err = parseWhen(bootTime, loc); err != nil {
					return fmt.Errorf("--boot-time: %w", err)
				}
				st := busy("reading logs, configuration and cores")
				opts.Progress = func(n, total int, path string) { st.count("analysing", n, total, "cores", path) }
				res, err := doctor.Run(cmd.Context(), opts)
				st.done()
				if err != nil {
					return err
				}
				if !opts.ShowSecrets {
					res = redact.Value(res) // log lines and URLs (the cores' reports already are)
				}
				switch {
				case asJSON:
					return doctor.JSON(cmd.OutOrStdout(), res)
				case asMarkdown:
					return doctor.MarkdownIn(cmd.OutOrStdout(), res, loc)
				}
				return doctor.TextIn(cmd.OutOrStdout(), res, loc)
			},
		}
		f := cmd.Flags()
		f.StringArrayVar(&logFiles, "logs", nil, logsUsage+" (as the arguments), instead of the discovered ones")
		f.BoolVar(&asJSON, "json", false, "print the result as JSON")
		f.BoolVar(&asMarkdown, "markdown", false, "print the result as Markdown")
		exclusiveFlags(cmd, "json", "markdown")
		f.StringVar(&opts.Root, "root", "", "audit and search this tree instead of the live host")
		f.StringArrayVar(&opts.CoreDirs, "cores", nil, coresUsage+", besides the discovered stores")
		f.StringVar(&opts.Journal, "journal", "", journalUsage+" (default: the host's, or ROOT/var/log/journal with --root)")
		f.IntVar(&opts.MaxCores, "max-cores", 5, "analyse at most this many cores, newest first")
		f.StringArrayVar(&opts.Rules, "rules", nil, "extra rules file (YAML, see docs/rules.md); repeatable")
		f.StringVar(&opts.FPMConfig, "fpm-config", "", "audit this php-fpm.conf instead of the discovered installations")
		f.StringVar(&opts.ApacheConfig, "apache-config", "", "audit this Apache httpd configuration (mod_php) instead of the discovered installations")
		f.StringVar(&opts.PHPIniScanDir, "php-ini-scan-dir", "", "PHP_INI_SCAN_DIR the FPM pool runs with (with --fpm-config)")
		when.register(cmd, true)
		f.StringVar(&bootTime, "boot-time", "", bootTimeUsage)
		f.BoolVar(&opts.NoAudit, "no-audit", false, "do not audit the configuration")
		f.BoolVar(&opts.NoLogs, "no-logs", false, "do not read logs")
		f.BoolVar(&opts.NoCores, "no-cores", false, "do not look for cores")
		f.BoolVar(&opts.ShowSecrets, "show-secrets", false, "do not redact cookies and credentials found in cores")
		f.BoolVar(&opts.AllProcesses, "all-processes", false, "group and diagnose the crashes of every process, not only PHP processes (php-fpm, php, Apache with mod_php, FrankenPHP)")
		f.BoolVar(&opts.NoLive, "no-live", false, "do not look at the workers that are busy right now")
		f.DurationVar(&opts.BusyOver, "busy-over", 0, "snapshot the workers serving a request for longer than this (default: the pool's request_slowlog_timeout, else 10s)")
		bf.register(cmd)
		rootCmd.AddCommand(cmd)
	})
}
