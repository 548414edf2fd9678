package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

func init() {
	addCommand("cores", func() {
		var opts coredumps.DiscoverOptions
		var asJSON, verbose bool
		var pid, limit int
		var when timeFlags
		cmd := &cobra.Command{
			Use:   "cores [DIR|FILE...]",
			Short: "List the core dumps on this host, newest first, and whether each can be analysed",
			Long: `cores finds core dumps wherever this host keeps them: where kernel.core_pattern writes them
	(a relative pattern is looked for in PHP-FPM and web-server working directories and document
	roots), systemd-coredump's store (with its xattrs and journal records), Apport's .crash reports and
	core directory, ABRT problem directories, and the directories or files given as arguments.

	Each core is listed with pid, executable, signal, time, size, compression, whether it is truncated,
	and whether coroner can analyse it (the executable is still on disk with the build-id the core
	recorded). Any PATH or ID column value can be passed to ` + "`coroner analyze`" + `.`,
			RunE: func(cmd *cobra.Command, args []string) error {
				opts.Dirs = append(opts.Dirs, args...)
				loc, err := when.location()
				if err != nil {
					return err
				}
				if opts.Since, opts.Until, err = when.window(loc); err != nil {
					return err
				}
				st := busy("looking for cores")
				opts.Progress = func(n, total int, path string) { st.count("inspecting", n, total, "cores", path) }
				entries, warnings := coredumps.Discover(opts)
				st.done()
				if pid != 0 {
					kept := entries[:0]
					for _, e := range entries {
						if e.PID == pid {
							kept = append(kept, e)
						}
					}
					entries = kept
				}
				if limit > 0 && len(entries) > limit {
					entries = entries[:limit]
				}
				entries = redact.Value(entries) // command lines from the stores
				if asJSON {
					return coredumps.WriteJSON(cmd.OutOrStdout(), entries, warnings)
				}
				for _, w := range warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), "warning:", sanitize.Text(redact.Text(w.Error())))
				}
				return coredumps.WriteTableIn(cmd.OutOrStdout(), entries, verbose, loc)
			},
		}
		f := cmd.Flags()
		f.StringArrayVar(&opts.Dirs, "cores", nil, coresUsage+" (as the arguments)")
		f.BoolVar(&asJSON, "json", false, "print the list as JSON")
		f.BoolVarP(&verbose, "verbose", "v", false, "show each core's store metadata and build-id")
		f.IntVar(&pid, "pid", 0, "only cores of this process id")
		f.IntVarP(&limit, "limit", "n", 0, "show at most this many cores")
		when.register(cmd, true)
		f.BoolVar(&opts.Quick, "quick", false, "do not decompress the start of compressed cores (faster; truncation and build-id stay unknown)")
		f.BoolVar(&opts.NoJournal, "no-journal", false, "do not ask journalctl for systemd-coredump records")
		f.StringVar(&opts.Journal, "journal", "", journalUsage+" (default: the host's)")
		f.StringSliceVar(&opts.WorkDirs, "work-dir", nil, "extra working directory for a relative core_pattern (searched with its subdirectories)")
		f.StringVar(&opts.CorePattern, "core-pattern", "", "use this core_pattern instead of the kernel's")
		f.StringVar(&opts.SystemdDir, "systemd-dir", "", "systemd-coredump store (default "+coredumps.DefaultSystemdDir+")")
		f.StringVar(&opts.ApportCrashDir, "apport-dir", "", "Apport report directory (default "+coredumps.DefaultApportCrashDir+")")
		f.StringSliceVar(&opts.ABRTDirs, "abrt-dir", nil, "ABRT dump location (default /var/spool/abrt, /var/tmp/abrt)")
		rootCmd.AddCommand(cmd)
	})
}
