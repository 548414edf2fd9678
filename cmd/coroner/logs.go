package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// logsFlags are the options of `coroner logs`.
type logsFlags struct {
	format, bootTime                     string
	when                                 timeFlags
	apacheConfig                         string
	cores, logFiles                      []string
	asJSON, follow, evidence, events     bool
	noDiscover, rotated, noSymbolize     bool
	fromStart, allProcesses, showSecrets bool
	top                                  int
}

func init() {
	addCommand("logs", func() {
		var lf logsFlags
		cmd := &cobra.Command{
			Use:   "logs [FILE|-]...",
			Short: "Turn nginx, PHP-FPM, kernel, journal and Apache logs into crash incidents",
			Long: `logs reads nginx error and access logs, the PHP-FPM master log and slowlogs, kernel
	lines (dmesg, kern.log, syslog, journalctl -o json / -o short-iso), systemd-coredump records
	and Apache error logs (children dead of a signal, AH00051/AH00052; mod_proxy_fcgi errors),
	and links the lines of each dead worker into one incident: the URL it was serving, its
	pid, pool and signal, the native crash site (kernel segfault lines are symbolized with
	the library on disk, no core needed) and its core file.

	PHP first: the kernel logs every crashing program of the host; only deaths of PHP
	processes (PHP-FPM workers, php, php-cgi, Apache children with mod_php, FrankenPHP) are
	counted and listed, the others are summed up in one line (--all-processes treats them
	equally). An Apache child runs PHP when its core maps PHP's library (libphp*.so), it
	crashed in one, or else when Apache's configuration loads mod_php (--apache-config). Cores are linked by the pid, threads, command and time their own notes record.

	Without FILE arguments the logs are discovered (Debian/Ubuntu and RHEL layouts, nginx and
	PHP-FPM configuration) and listed. Rotated files (error.log.1, error.log.2.gz) are read in
	time order; "-" reads standard input.`,
			RunE: lf.run,
		}
		fl := cmd.Flags()
		fl.StringArrayVar(&lf.logFiles, "logs", nil, logsUsage+" (as the arguments; - is standard input)")
		fl.StringVar(&lf.format, "format", "auto", "format of the given files: auto, nginx-error, access, php-fpm, php-fpm-slowlog, kernel, apache-error, apache-forensic")
		lf.when.register(cmd, true)
		fl.StringVar(&lf.bootTime, "boot-time", "", bootTimeUsage)
		fl.StringArrayVar(&lf.cores, "cores", nil, coresUsage+" to match against crashes (default: the host's cores when the logs are discovered)")
		fl.BoolVar(&lf.asJSON, "json", false, "print JSON")
		fl.BoolVar(&lf.follow, "follow", false, "watch the logs and print incidents as they happen")
		fl.BoolVar(&lf.fromStart, "from-start", false, "with --follow, read the files from the beginning")
		fl.BoolVar(&lf.evidence, "evidence", false, "print every linked log line with its confidence")
		fl.BoolVar(&lf.events, "events", false, "include all parsed events in the JSON output")
		fl.BoolVar(&lf.noDiscover, "no-discover", false, "do not discover logs")
		fl.BoolVar(&lf.rotated, "rotated", false, "also read the rotations of the given files (FILE.1, FILE.2.gz, ...)")
		fl.BoolVar(&lf.noSymbolize, "no-symbolize", false, "do not symbolize kernel fault lines")
		fl.BoolVar(&lf.showSecrets, "show-secrets", false, "do not redact credentials (password=, token=, cookies...) in log lines and URLs")
		fl.IntVar(&lf.top, "top", 10, "rows per summary breakdown")
		fl.StringVar(&lf.apacheConfig, "apache-config", "", "Apache configuration that says whether Apache's children run PHP (LoadModule php_module), when their cores do not; default /etc/apache2/apache2.conf or /etc/httpd/conf/httpd.conf")
		fl.BoolVar(&lf.allProcesses, "all-processes", false, "count and list the crashes of every process, not only PHP processes (php-fpm, php, Apache with mod_php, FrankenPHP)")
		rootCmd.AddCommand(cmd)
	})
}

// options turns the flags and arguments into what logs.Analyze and
// logs.Follow take, and where the cores to link are looked for (nil: no
// cores): the given directories, else the host's cores when the logs are
// discovered too.
func (lf *logsFlags) options(cmd *cobra.Command, args []string) (logs.Options, *coredumps.DiscoverOptions, error) {
	loc, err := lf.when.location()
	if err != nil {
		return logs.Options{}, nil, err
	}
	opts := logs.Options{Location: loc, Stdin: cmd.InOrStdin(), AllProcesses: lf.allProcesses, ModPHP: apacheModPHP("", lf.apacheConfig)}
	if opts.Since, opts.Until, err = lf.when.window(loc); err != nil {
		return opts, nil, err
	}
	if opts.BootTime, err = parseWhen(lf.bootTime, loc); err != nil {
		return opts, nil, fmt.Errorf("--boot-time: %w", err)
	}
	var cores *coredumps.DiscoverOptions
	if len(lf.cores) > 0 {
		cores = &coredumps.DiscoverOptions{Sources: []string{coredumps.SourceDir}, Dirs: lf.cores, NoJournal: true, Quick: true}
	}
	switch {
	case len(args) > 0:
		opts.Inputs = lf.given(args)
	case !lf.noDiscover:
		opts.Inputs = logs.Discover(logs.DiscoverOptions{})
		if cores == nil {
			cores = &coredumps.DiscoverOptions{NoJournal: true, Quick: true}
		}
	}
	if len(opts.Inputs) == 0 {
		return opts, nil, fmt.Errorf("no logs given and none found; pass files (or - for standard input)")
	}
	return opts, cores, nil
}

// given returns the inputs of the files named as arguments (with their
// rotations when asked), oldest first.
func (lf *logsFlags) given(args []string) []logs.Input {
	paths := args
	if lf.rotated {
		paths = nil
		for _, a := range args {
			if a == "-" {
				paths = append(paths, a)
			} else {
				paths = append(paths, logs.Rotations(a)...)
			}
		}
	}
	var inputs []logs.Input
	for _, p := range logs.SortRotated(paths) {
		inputs = append(inputs, logs.Input{Path: p, Format: logs.Format(lf.format), Why: "given"})
	}
	return inputs
}

func (lf *logsFlags) run(cmd *cobra.Command, args []string) error {
	args = append(append([]string(nil), args...), lf.logFiles...)
	opts, cores, err := lf.options(cmd, args)
	if err != nil {
		return err
	}
	if !lf.noSymbolize {
		s := logs.NewObjectSymbolizer()
		defer s.Close()
		opts.Symbolizer = s
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	out := cmd.OutOrStdout()
	if lf.follow {
		for _, in := range opts.Inputs {
			fmt.Fprintf(cmd.ErrOrStderr(), "following %s\n", in.Path)
		}
		enc := json.NewEncoder(out)
		fo := logs.FollowOptions{FromStart: lf.fromStart}
		if cores != nil {
			fo.Cores = func() []*coredumps.Entry { return discoverCores(cores) }
		}
		return logs.Follow(ctx, opts, fo, func(inc *logs.Incident) {
			if !lf.showSecrets {
				inc = redact.Value(inc)
			}
			if lf.asJSON {
				_ = enc.Encode(logs.IncidentDocument{Schema: logs.SchemaVersion, Incident: inc})
				return
			}
			_ = logs.WriteIncident(out, inc, opts.Location, lf.evidence)
		})
	}
	st := busy("reading logs")
	if cores != nil {
		opts.Cores = discoverCores(cores)
	}
	res, err := logs.Analyze(ctx, opts)
	st.done()
	if err != nil {
		return err
	}
	if !lf.events {
		res.Events = nil
	}
	if !lf.showSecrets {
		res = redact.Value(res)
	}
	if lf.asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(logs.Document{Schema: logs.SchemaVersion, Result: res})
	}
	return logs.WriteText(out, res, logs.TextOptions{Top: lf.top, Evidence: lf.evidence, Location: opts.Location})
}

// discoverCores lists the cores the options name (places that cannot be
// read are skipped: the cores only add links to the incidents).
func discoverCores(o *coredumps.DiscoverOptions) []*coredumps.Entry {
	entries, _ := coredumps.Discover(*o)
	return entries
}

// apacheModPHP reads whether the Apache configuration (config, else the
// host's) loads mod_php; nil when there is none to read.
func apacheModPHP(root, config string) *logs.ModPHP {
	m, err := audit.ApacheModPHP(root, config)
	if err != nil || !m.Known() {
		return nil
	}
	return &logs.ModPHP{Loaded: m.Loaded(), Why: m.Why()}
}
