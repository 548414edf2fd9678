package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/budget"
	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/replay"
	"github.com/coroner-dev/coroner/internal/sanitize"
)

// maxBodyFile bounds --body-file (PHP's post_max_size is 8M by default).
const maxBodyFile = 64 << 20

func init() {
	addCommand("replay", func() {
		var (
			opts           replay.Options
			spec           replay.Spec
			params         []string
			bodyFile       string
			dryRun, asJSON bool
			showSecrets    bool
			sysroot, exe   string
			noHostDebug    bool
			fpmConfig      string
			fpmRoot        string
		)
		cmd := &cobra.Command{
			Use:   "replay [CORE] [--socket unix:/path/php-fpm.sock|tcp:127.0.0.1:9000]",
			Short: "Re-send the request that killed a worker straight to an FPM socket, to see whether it kills again",
			Long: `replay takes the request a crashed php-fpm worker was serving (recovered from its core,
	or spelled out with --uri/--script/--param for a URL seen only in logs), and sends it
	over FastCGI to an FPM socket, --count times, one after the other. Without --socket,
	the socket is the listen of the crashed worker's pool (its process title says which:
	"php-fpm: pool www") in the PHP-FPM configuration, read as coroner audit reads it
	(--fpm-config, --root); stderr says which socket was chosen and why. Each
	attempt is reported as completed (with its HTTP status), worker died (the connection
	ended before FCGI_END_REQUEST) or timeout; with --fpm-log, the master's "child N
	exited on signal S" lines confirm the deaths.

	Cookies, Authorization and PHP_AUTH_* are never sent. TCP addresses other than
	loopback are refused without --allow-remote. --dry-run prints what would be sent.

	Exit status: 0 reproduced (a worker died), 3 not reproduced, 1 error.`,
			Args: cobra.MaximumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				out := cmd.OutOrStdout()
				spec.Params = map[string]string{}
				for _, kv := range params {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return usageErrorf("--param %q: want NAME=VALUE", kv)
					}
					spec.Params[k] = v
				}
				if bodyFile != "" {
					b, err := regular.ReadFile(bodyFile, maxBodyFile)
					if err != nil {
						return fmt.Errorf("--body-file: %w", err)
					}
					spec.Body = b
				}
				var req *replay.Request
				var rep *crash.Report
				var err error
				if len(args) == 0 && (sysroot != "" || exe != "" || noHostDebug) {
					return usageErrorf("--sysroot, --exe and --no-host-debug say how to read a core: name one")
				}
				if fpmConfig != "" || fpmRoot != "" {
					switch {
					case opts.Socket != "":
						return usageErrorf("--fpm-config and --root say where to look for the pool's socket: not with --socket")
					case len(args) == 0:
						return usageErrorf("--fpm-config and --root find the socket of the pool a core names: name a core, or give --socket")
					}
				}
				if len(args) == 1 {
					tuneGCForOneShot()
					eng := engine.New(engine.Options{Analyze: analyze.Options{ShowSecrets: true,
						Sysroot: sysroot, Exe: exe, NoHostDebugFiles: noHostDebug,
						Timeout: budget.DefaultTimeout, MaxMemory: budget.DefaultMaxMemory}})
					var aerr error
					rep, aerr = eng.Run(cmd.Context(), engine.Request{Core: engine.Core{Path: args[0]}, NoDiagnosis: true})
					if aerr != nil {
						return fmt.Errorf("analyse %s: %w", args[0], aerr)
					}
					req, err = replay.FromReport(rep, spec)
				} else {
					req, err = replay.FromSpec(spec)
				}
				if err != nil {
					return err
				}
				if opts.Socket == "" {
					found, ferr := findSocket(rep, replay.SocketSearch{Root: fpmRoot, FPMConfig: fpmConfig})
					switch {
					case ferr == nil:
						fmt.Fprintf(cmd.ErrOrStderr(), "socket %s: %s\n", sanitize.Text(found.Socket), sanitize.Text(found.Why))
						opts.Socket = found.Socket
					case !dryRun:
						return usageErrorf("no --socket, and %v: give --socket unix:/path/php-fpm.sock or tcp:127.0.0.1:9000", ferr)
					default:
						fmt.Fprintf(cmd.ErrOrStderr(), "no socket: %s (give --socket to replay)\n", sanitize.Text(ferr.Error()))
					}
				}
				socket := ""
				if opts.Socket != "" {
					network, address, err := replay.ParseSocket(opts.Socket, opts.AllowRemote)
					if err != nil {
						return err
					}
					socket = network + ":" + address
				}
				shown := req
				if !showSecrets {
					shown = req.Redacted()
				}
				if dryRun {
					if asJSON {
						return replayJSON(out, replay.Plan{Schema: replay.SchemaVersion, Socket: socket, Request: shown})
					}
					replay.WritePlan(out, socket, shown)
					return nil
				}
				res, err := replay.Run(cmd.Context(), req, opts)
				if err != nil {
					return err
				}
				if !showSecrets {
					res = res.Redacted()
				}
				if asJSON {
					if err := replayJSON(out, res); err != nil {
						return err
					}
				} else {
					replay.WriteText(out, res)
				}
				if err := res.Err(); err != nil {
					return fmt.Errorf("replay to %s: %w", opts.Socket, err) // exit status 1
				}
				if !res.Reproduced {
					return &exitCodeError{code: exitNotReproduced, err: fmt.Errorf("replay: %s", res.Summary())}
				}
				return nil
			},
		}
		f := cmd.Flags()
		f.StringVar(&opts.Socket, "socket", "", "FPM socket: unix:/path or tcp:127.0.0.1:9000 (default: the listen of the core's pool in the PHP-FPM configuration)")
		f.StringVar(&fpmConfig, "fpm-config", "", "without --socket: read this php-fpm.conf (and its includes) for the pool's listen instead of discovering installations")
		f.StringVar(&fpmRoot, "root", "", "without --socket: read the PHP-FPM configuration of the tree under DIR (a unix socket is then DIR/PATH)")
		f.IntVar(&opts.Count, "count", 1, "attempts, one after the other (at most 100)")
		f.DurationVar(&opts.Timeout, "timeout", 10*time.Second, "time limit of each attempt")
		f.StringVar(&opts.FPMLog, "fpm-log", "", "php-fpm error log, to confirm deaths by the master's lines")
		f.BoolVar(&opts.AllowRemote, "allow-remote", false, "allow a TCP address that is not loopback")
		f.StringVar(&spec.DocRoot, "docroot", "", "document root on this host (replaces the recovered one in SCRIPT_FILENAME)")
		f.StringVar(&spec.Method, "method", "", "HTTP method (overrides the recovered one)")
		f.StringVar(&spec.URI, "uri", "", "request URI with query, e.g. /index.php?q=1 (overrides the recovered one)")
		f.StringVar(&spec.Script, "script", "", "SCRIPT_FILENAME (absolute, or relative to --docroot)")
		f.StringVar(&spec.Host, "host", "", "Host header")
		f.StringArrayVar(&params, "param", nil, "extra FastCGI parameter NAME=VALUE (repeatable; HTTP headers as HTTP_NAME)")
		f.StringVar(&sysroot, "sysroot", "", "directory holding the crashed host's files (for a core analysed on another machine)")
		f.StringVar(&exe, "exe", "", "path of the crashed executable, when it is not where the core says")
		f.BoolVar(&noHostDebug, "no-host-debug", false, "with --sysroot, use no debug file of this host")
		f.StringVar(&bodyFile, "body-file", "", "request body to send (a core does not keep it)")
		f.BoolVar(&dryRun, "dry-run", false, "print the parameters that would be sent, send nothing")
		f.BoolVar(&asJSON, "json", false, "JSON output")
		f.BoolVar(&showSecrets, "show-secrets", false, "show credential-like parameters (password=, token=...) in what is printed (they are sent either way; cookies and Authorization never are)")
		rootCmd.AddCommand(cmd)
	})
}

// findSocket finds the socket of the pool of rep's worker (rep nil: no
// core, so no pool to look for).
func findSocket(rep *crash.Report, s replay.SocketSearch) (*replay.FoundSocket, error) {
	if rep == nil {
		return nil, errors.New("without a core there is no pool to look for")
	}
	return replay.FindSocket(rep, s)
}

func replayJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
