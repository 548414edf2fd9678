package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/source/coredumps"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

func init() {
	var (
		format, since, until, tz, bootTime string
		cores                              []string
		asJSON, follow, evidence, events   bool
		noDiscover, rotated, noSymbolize   bool
		fromStart                          bool
		top                                int
	)
	cmd := &cobra.Command{
		Use:   "logs [FILE|-]...",
		Short: "Turn nginx, PHP-FPM, kernel, journal and Apache logs into crash incidents",
		Long: `logs reads nginx error and access logs, the PHP-FPM master log and slowlogs, kernel
lines (dmesg, kern.log, syslog, journalctl -o json / -o short-iso), systemd-coredump records
and Apache mod_proxy_fcgi errors, and links the lines of each dead worker into one incident:
the URL it was serving, its pid, pool and signal, the native crash site (kernel segfault
lines are symbolized with the library on disk, no core needed) and its core file.

Without FILE arguments the logs are discovered (Debian/Ubuntu and RHEL layouts, nginx and
PHP-FPM configuration) and listed. Rotated files (error.log.1, error.log.2.gz) are read in
time order; "-" reads standard input.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			loc := time.Local
			if tz != "" {
				l, err := time.LoadLocation(tz)
				if err != nil {
					return fmt.Errorf("--tz: %w", err)
				}
				loc = l
			}
			opts := logs.Options{Location: loc, Stdin: cmd.InOrStdin()}
			// Cores to link crashes with: the given directories, else (when
			// the logs are discovered too) the host's cores.
			var coreOpts *coredumps.DiscoverOptions
			if len(cores) > 0 {
				coreOpts = &coredumps.DiscoverOptions{Sources: []string{coredumps.SourceDir}, Dirs: cores, NoJournal: true, Quick: true}
			}
			var err error
			if opts.Since, err = parseWhen(since, loc); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if opts.Until, err = parseWhen(until, loc); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			if opts.BootTime, err = parseWhen(bootTime, loc); err != nil {
				return fmt.Errorf("--boot-time: %w", err)
			}
			f := logs.Format(format)
			if len(args) > 0 {
				paths := args
				if rotated {
					var all []string
					for _, a := range args {
						if a == "-" {
							all = append(all, a)
						} else {
							all = append(all, logs.Rotations(a)...)
						}
					}
					paths = all
				}
				for _, p := range logs.SortRotated(paths) {
					opts.Inputs = append(opts.Inputs, logs.Input{Path: p, Format: f, Why: "given"})
				}
			} else if !noDiscover {
				opts.Inputs = logs.Discover(logs.DiscoverOptions{})
				if coreOpts == nil {
					coreOpts = &coredumps.DiscoverOptions{NoJournal: true, Quick: true}
				}
			}
			if len(opts.Inputs) == 0 {
				return fmt.Errorf("no logs given and none found; pass files (or - for standard input)")
			}
			if !noSymbolize {
				s := logs.NewObjectSymbolizer()
				defer s.Close()
				opts.Symbolizer = s
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			out := cmd.OutOrStdout()
			if follow {
				for _, in := range opts.Inputs {
					fmt.Fprintf(cmd.ErrOrStderr(), "following %s\n", in.Path)
				}
				enc := json.NewEncoder(out)
				fo := logs.FollowOptions{FromStart: fromStart}
				if coreOpts != nil {
					fo.Cores = func() []*coredumps.Entry { return discoverCores(coreOpts) }
				}
				return logs.Follow(ctx, opts, fo, func(inc *logs.Incident) {
					if asJSON {
						_ = enc.Encode(inc)
						return
					}
					_ = logs.WriteIncident(out, inc, loc, evidence)
				})
			}
			if coreOpts != nil {
				opts.Cores = discoverCores(coreOpts)
			}
			res, err := logs.Analyze(ctx, opts)
			if err != nil {
				return err
			}
			if !events {
				res.Events = nil
			}
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(res)
			}
			return logs.WriteText(out, res, logs.TextOptions{Top: top, Evidence: evidence, Location: loc})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&format, "format", "auto", "format of the given files: auto, nginx-error, access, php-fpm, php-fpm-slowlog, kernel, apache-error")
	fl.StringVar(&since, "since", "", "only events at or after this time (RFC 3339, \"2006-01-02 15:04:05\", a date, or a duration ago like 2h)")
	fl.StringVar(&until, "until", "", "only events before this time (same forms as --since)")
	fl.StringVar(&tz, "tz", "", "time zone of logs written without one (nginx, PHP-FPM, syslog); default local")
	fl.StringVar(&bootTime, "boot-time", "", "boot time of the host the kernel lines come from (to convert uptime stamps); default inferred")
	fl.StringArrayVar(&cores, "cores", nil, "core directory or file to match against crashes (repeatable; default: the host's cores when the logs are discovered)")
	fl.BoolVar(&asJSON, "json", false, "print JSON")
	fl.BoolVar(&follow, "follow", false, "watch the logs and print incidents as they happen")
	fl.BoolVar(&fromStart, "from-start", false, "with --follow, read the files from the beginning")
	fl.BoolVar(&evidence, "evidence", false, "print every linked log line with its confidence")
	fl.BoolVar(&events, "events", false, "include all parsed events in the JSON output")
	fl.BoolVar(&noDiscover, "no-discover", false, "do not discover logs")
	fl.BoolVar(&rotated, "rotated", false, "also read the rotations of the given files (FILE.1, FILE.2.gz, ...)")
	fl.BoolVar(&noSymbolize, "no-symbolize", false, "do not symbolize kernel fault lines")
	fl.IntVar(&top, "top", 10, "rows per summary breakdown")
	rootCmd.AddCommand(cmd)
}

// discoverCores lists the cores the options name (places that cannot be
// read are skipped: the cores only add links to the incidents).
func discoverCores(o *coredumps.DiscoverOptions) []*coredumps.Entry {
	entries, _ := coredumps.Discover(*o)
	return entries
}

// parseWhen parses an absolute time or a duration ago ("2h", "30m").
func parseWhen(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	if strings.HasPrefix(s, "@") {
		var n int64
		if _, err := fmt.Sscanf(s[1:], "%d", &n); err == nil {
			return time.Unix(n, 0), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("cannot parse time %q", s)
}
