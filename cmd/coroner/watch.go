//go:build !noservice

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/budget"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/service/server"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
	"github.com/coroner-dev/coroner/internal/source/logs"
	"github.com/coroner-dev/coroner/internal/units"
)

// defaultDB is where `coroner watch` and `coroner serve` keep their database.
const defaultDB = "sqlite:/var/lib/coroner/coroner.db"

// defaultDBWait is how long `coroner watch` and `coroner serve` wait for
// their database at start.
const defaultDBWait = 3 * time.Minute

// defaultStateDir is the state directory of `coroner watch`: systemd's
// StateDirectory= when set, else /var/lib/coroner.
func defaultStateDir() string {
	if d := os.Getenv("STATE_DIRECTORY"); d != "" {
		return filepath.SplitList(d)[0]
	}
	return "/var/lib/coroner"
}

func init() {
	addCommand("watch", func() {
		var (
			cfg                    watch.Config
			db, listen, token      string
			logFiles, hosts        []string
			maxBytes, spoolMax     string
			stateDir               string
			dbWait                 time.Duration
			noLogs, noDashboard    bool
			apacheConfig           string
			showSecrets, fromStart bool
			allProcesses           bool
			analysisTimeout        time.Duration
			analysisMemory         string
			logFormat              string
			since                  string
		)
		cmd := &cobra.Command{
			Use:   "watch",
			Short: watchShort,
			Long: `watch is the long-running service: it follows the nginx / PHP-FPM / kernel logs
	(surviving rotation), notices new cores in the core directories, analyses them in the
	background (bounded workers, low CPU priority), groups them by fingerprint and stores
	incidents, analyses and groups in a database: SQLite by default, or PostgreSQL with
	--db postgres://... so that many hosts report to one place.

	At start it waits up to --db-wait for a database that is not ready (starting,
	restarting, locked), retrying with backoff and saying why. While it runs, a database
	that goes away does not stop it: analyses continue, crashes and incidents are kept
	in a bounded spool under --state-dir (fsync'd) and written to the database, in order
	and each once, when it is back. /healthz answers 503 "degraded" meanwhile and
	/metrics shows the spool and the database errors.

	Cores in the --cores directories are managed: retention (--keep-cores, --max-core-bytes,
	--max-core-age) deletes the oldest there, and only there. Cores found elsewhere on the host
	(core_pattern, systemd-coredump, Apport, ABRT) are analysed but never deleted.

	The dashboard and /metrics are served on --listen (127.0.0.1:7070); binding another
	address requires --token (sent as "Authorization: Bearer TOKEN", or visit /?token=TOKEN).`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				if !noDashboard {
					if err := server.CheckListen(listen, token); err != nil {
						return err
					}
				}
				if cfg.Webhook != "" {
					if _, err := watch.ValidateWebhook(cfg.Webhook); err != nil {
						return err
					}
				}
				if maxBytes != "" {
					n, err := units.ParseBytes(maxBytes)
					if err != nil {
						return fmt.Errorf("--max-core-bytes: %w", err)
					}
					cfg.MaxCoreBytes = n
				}
				n, err := units.ParseBytes(spoolMax)
				if err != nil {
					return fmt.Errorf("--spool-max-bytes: %w", err)
				}
				cfg.SpoolMaxBytes = n
				cfg.SpoolDir = filepath.Join(stateDir, "spool")
				switch {
				case noLogs:
				case len(logFiles) > 0:
					for _, p := range logFiles {
						cfg.Logs = append(cfg.Logs, logs.Input{Path: p, Format: logs.FormatAuto, Why: "given"})
					}
				default:
					cfg.Logs = watch.LiveLogs()
				}
				cfg.LogsFromStart = fromStart
				if cfg.Since, err = parseWhen(since, time.Local); err != nil {
					return fmt.Errorf("--since: %w", err)
				}
				cfg.AllProcesses = allProcesses
				cfg.ModPHP = apacheModPHP("", apacheConfig)
				cfg.Analyze.ShowSecrets = showSecrets
				// Messages name cores and log lines: escaped, one line each.
				switch logFormat {
				case "text":
					cfg.Logger = stampedLogger(sanitize.LogWriter(cmd.ErrOrStderr()))
				case "json":
					// One JSON object a line; the encoder escapes control characters.
					h := slog.NewJSONHandler(cmd.ErrOrStderr(), nil)
					cfg.Logger = slog.NewLogLogger(h, slog.LevelInfo)
					cfg.Events = slog.New(h)
				default:
					return fmt.Errorf("--log-format %q: want text or json", logFormat)
				}
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("find the coroner executable for the analysis processes: %w", err)
				}
				mem, err := units.ParseBytes(analysisMemory)
				if err != nil {
					return fmt.Errorf("--analysis-memory: %w", err)
				}
				cfg.Isolate = &watch.Isolation{Executable: exe, Timeout: analysisTimeout, MaxMemory: mem,
					QuarantineFile: filepath.Join(stateDir, "quarantine.json")}
				if err := os.MkdirAll(stateDir, 0o700); err != nil {
					return fmt.Errorf("--state-dir: %w", err)
				}
				st, err := store.OpenWait(ctx, db, store.WaitOptions{Wait: dbWait, Logf: cfg.Logger.Printf})
				if err != nil {
					if ctx.Err() != nil {
						return nil // stopped while waiting
					}
					return err
				}
				defer st.Close()
				cfg.Store = st
				w, err := watch.New(cfg)
				if err != nil {
					return err
				}
				for _, in := range cfg.Logs {
					cfg.Logger.Printf("following %s", in.Path)
				}
				errc := make(chan error, 1)
				if !noDashboard {
					srv, err := server.New(server.Options{Store: st, Token: token, ShowSecrets: showSecrets, Hosts: hosts,
						MetricsHost: w.Host(), Version: version,
						Metrics: func(out io.Writer) { w.Metrics.WritePrometheus(out) },
						Health: func(ctx context.Context) (bool, []string) {
							h := w.Health(ctx)
							return h.Up, h.Problems()
						}})
					if err != nil {
						return err
					}
					go func() { errc <- srv.ListenAndServe(ctx, listen) }()
					cfg.Logger.Printf("dashboard on http://%s/", listen)
				}
				runc := make(chan error, 1)
				go func() { runc <- w.Run(ctx) }()
				select {
				case err := <-errc:
					stop()
					return err
				case err := <-runc:
					return err
				case <-ctx.Done():
					// Let the workers finish recording (to the database or the
					// spool) and the spool record its cursor.
					select {
					case err := <-runc:
						return err
					case <-time.After(10 * time.Second):
						return nil
					}
				}
			},
		}
		f := cmd.Flags()
		f.StringVar(&db, "db", defaultDB, "database: sqlite:PATH or postgres://user@host/db")
		f.DurationVar(&dbWait, "db-wait", defaultDBWait, "at start, wait this long for a database that is not ready, then exit 1 (0: do not wait)")
		f.StringVar(&stateDir, "state-dir", defaultStateDir(), "state directory: the spool lives in DIR/spool ($STATE_DIRECTORY when systemd sets it)")
		f.StringVar(&spoolMax, "spool-max-bytes", "256M", "bound of the spool that keeps crashes while the database is unavailable")
		f.StringVar(&listen, "listen", "127.0.0.1:7070", "dashboard and /metrics address")
		f.StringVar(&token, "token", os.Getenv("CORONER_TOKEN"), "bearer token required by the dashboard (default $CORONER_TOKEN)")
		f.StringArrayVar(&hosts, "allowed-host", nil, "host name the dashboard answers to, besides IP addresses and localhost (repeatable)")
		f.BoolVar(&noDashboard, "no-dashboard", false, "do not serve the dashboard")
		f.StringArrayVar(&cfg.CoreDirs, "cores", nil, coresUsage+": managed, analysed and kept within retention")
		f.BoolVar(&cfg.Discover, "discover", true, "also analyse cores found by discovery (never deleted)")
		f.StringVar(&cfg.Stores.Journal, "journal", "", journalUsage+" by discovery (default: the host's)")
		f.StringArrayVar(&logFiles, "logs", nil, logsUsage+" to follow (default: discovered live logs)")
		aliasFlag(f, "log", "logs")
		f.BoolVar(&noLogs, "no-logs", false, "do not follow logs")
		f.BoolVar(&fromStart, "from-start", false, "read the logs from their beginning instead of their end")
		aliasFlag(f, "logs-from-start", "from-start")
		f.StringVar(&since, "since", "", "start watching at this time ("+whenForms+"): older cores are not analysed, the logs are read from their beginning and their crashes before it left out")
		f.BoolVar(&allProcesses, "all-processes", false, "record the crashes of every process, not only PHP processes (php-fpm, php, Apache with mod_php, FrankenPHP)")
		f.StringVar(&apacheConfig, "apache-config", "", "Apache configuration that says whether Apache's children run PHP (LoadModule php_module); default /etc/apache2/apache2.conf or /etc/httpd/conf/httpd.conf")
		f.IntVar(&cfg.Workers, "workers", 1, "concurrent analyses")
		f.DurationVar(&analysisTimeout, "analysis-timeout", budget.DefaultTimeout, "time budget of one analysis (a partial report after it; the analysis process is killed 30s later)")
		f.StringVar(&analysisMemory, "analysis-memory", units.Format(budget.DefaultMaxMemory), "heap budget of one analysis (a partial report past it); each core is analysed in a process of its own")
		f.IntVar(&cfg.Queue, "queue", 64, "cores waiting for analysis at most (the rest wait on disk)")
		f.DurationVar(&cfg.Poll, "poll", time.Second, "how often core directories are listed")
		f.IntVar(&cfg.KeepCores, "keep-cores", 50, "keep at most N cores in the managed directories (0: no limit)")
		f.StringVar(&maxBytes, "max-core-bytes", "10G", "keep at most this many bytes of cores in the managed directories (0: no limit)")
		f.DurationVar(&cfg.MaxCoreAge, "max-core-age", 14*24*time.Hour, "delete managed cores older than this (0: no limit)")
		f.StringVar(&cfg.Webhook, "webhook", "", "http(s) URL to POST a JSON alert to for every new crash group (redirects are not followed)")
		f.StringVar(&cfg.OnNewGroup, "on-new-group", "", "command run (sh -c) for every new crash group, with CORONER_* variables and the JSON alert on stdin")
		f.StringVar(&cfg.OnRegression, "on-regression", "", "command run (sh -c) when a resolved crash group crashes again (regressed), as --on-new-group runs")
		f.StringVar(&cfg.HookUser, "hook-user", "nobody", "user --on-new-group and --on-regression run as when coroner runs as root (\"root\" keeps root)")
		f.StringVar(&cfg.Host, "host", "", "host name recorded with each crash (default: this host's)")
		f.StringArrayVar(&cfg.Rules, "rules", nil, "extra rules file (repeatable)")
		f.IntVar(&cfg.Nice, "nice", 10, "CPU priority (nice) to run at; -1 keeps the current one")
		f.BoolVar(&showSecrets, "show-secrets", false, "keep cookies, credentials and secret-looking values in analyses and on the dashboard")
		f.StringVar(&logFormat, "log-format", "text", "log lines: text (key=value events) or json (one object a line)")
		rootCmd.AddCommand(cmd)
	})
}
