package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/audit"
)

// auditFlags are shared by `coroner audit` and `coroner fix`.
type auditFlags struct {
	opts audit.Options
}

func (f *auditFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.opts.Root, "root", "", "audit the tree under DIR instead of this machine (/proc values from DIR/proc)")
	fl.StringVar(&f.opts.FPMConfig, "fpm-config", "", "audit this php-fpm.conf only instead of discovering installations")
	fl.StringVar(&f.opts.PHPIni, "php-ini", "", "the php.ini FPM loads")
	fl.StringVar(&f.opts.PHPIniScanDir, "php-ini-scan-dir", "", "ini scan directories, PHP_INI_SCAN_DIR syntax (':'-separated, empty = the default one)")
	fl.StringVar(&f.opts.PHPVersion, "php-version", "", "PHP version (e.g. 8.2) when it cannot be detected")
	fl.StringVar(&f.opts.Binary, "php-fpm", "", "the php-fpm binary (for version detection)")
	fl.StringVar(&f.opts.Unit, "unit", "", "systemd unit of --fpm-config")
	fl.StringVar(&f.opts.ApacheConfig, "apache-config", "", "audit this Apache httpd configuration (PHP inside Apache with mod_php) only instead of discovering installations")
	fl.StringVar(&f.opts.ServerRoot, "server-root", "", "Apache's ServerRoot for --apache-config (default: the file's directory)")
	fl.StringVar(&f.opts.NginxConfig, "nginx-config", "", "nginx.conf whose document roots receive cores of a relative core_pattern (default: /etc/nginx, /etc/apache2, /etc/httpd)")
}

func init() {
	addCommand("audit", func() {
		var af auditFlags
		var asJSON, verbose bool
		cmd := &cobra.Command{
			Use:   "audit",
			Short: "Check whether a crashing PHP-FPM worker (or Apache mod_php child) leaves a core, and which PHP settings it runs with",
			Long: `audit checks every layer that decides whether a crashing PHP-FPM worker leaves a core
	(kernel core_pattern, suid_dumpable, the pipe handler, systemd LimitCORE, FPM rlimit_core and
	process.dumpable, the running processes' limits, disk space) and the PHP configuration FPM really
	runs with (php.ini, conf.d in its real order, pool values, version defaults), with the file and
	line behind each verdict. PHP inside Apache httpd (mod_php) is audited too: CoreDumpDirectory
	against fs.suid_dumpable, the service's LimitCORE or envvars' ulimit -c, mod_php's ini files.
	Exit status 2 when a layer blocks cores.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				r, err := audit.Run(af.opts)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				if asJSON {
					err = r.WriteJSON(out)
				} else {
					err = r.WriteText(out, verbose)
				}
				if err != nil {
					return err
				}
				if r.Count(audit.StatusBlocks) > 0 {
					return &exitCodeError{code: exitCoreBlocked, err: fmt.Errorf("audit: %d layer(s) block core dumps", r.Count(audit.StatusBlocks))}
				}
				return nil
			},
		}
		af.register(cmd)
		cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
		cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "show evidence of OK and info findings too")
		rootCmd.AddCommand(cmd)
	})
}
