//go:build !noservice

package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/service/server"
	"github.com/coroner-dev/coroner/internal/service/store"
)

func init() {
	addCommand("serve", func() {
		var db, listen, token string
		var hosts []string
		var showSecrets bool
		var dbWait time.Duration
		cmd := &cobra.Command{
			Use:   "serve",
			Short: serveShort,
			Long: `serve shows the database that one or more "coroner watch" services fill: for example
	one PostgreSQL database that many hosts report to. Binding an address other than loopback
	requires --token. At start it waits up to --db-wait for a database that is not ready;
	/healthz answers 503 "degraded" while the database does not answer.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				if err := server.CheckListen(listen, token); err != nil {
					return err
				}
				// serve only reads what watchers record: a SQLite file that
				// does not exist is a mistyped --db, not a database to create.
				if path, ok := store.SQLitePath(db); ok {
					if _, err := os.Stat(path); err != nil {
						return fmt.Errorf("no database at %s (%v): serve shows the database that coroner watch fills; check --db", path, err)
					}
				}
				logger := stampedLogger(cmd.ErrOrStderr())
				st, err := store.OpenWait(ctx, db, store.WaitOptions{Wait: dbWait, Logf: logger.Printf})
				if err != nil {
					if ctx.Err() != nil {
						return nil // stopped while waiting
					}
					return err
				}
				defer st.Close()
				srv, err := server.New(server.Options{Store: st, Token: token, ShowSecrets: showSecrets, Hosts: hosts, Version: version})
				if err != nil {
					return err
				}
				cmd.PrintErrf("dashboard on http://%s/\n", listen)
				return srv.ListenAndServe(ctx, listen)
			},
		}
		f := cmd.Flags()
		f.StringVar(&db, "db", defaultDB, "database: sqlite:PATH or postgres://user@host/db")
		f.DurationVar(&dbWait, "db-wait", defaultDBWait, "at start, wait this long for a database that is not ready, then exit 1 (0: do not wait)")
		f.StringVar(&listen, "listen", "127.0.0.1:7070", "dashboard and /metrics address")
		f.StringVar(&token, "token", os.Getenv("CORONER_TOKEN"), "bearer token required by the dashboard (default $CORONER_TOKEN)")
		f.BoolVar(&showSecrets, "show-secrets", false, "show secret-looking request parameters and INI values")
		f.StringArrayVar(&hosts, "allowed-host", nil, "host name the dashboard answers to, besides IP addresses and localhost (repeatable)")
		rootCmd.AddCommand(cmd)
	})
}
