package store_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/store/storetest"
)

// lines collects log lines and signals each one.
type lines struct {
	mu  sync.Mutex
	all []string
	c   chan string
}

func newLines() *lines { return &lines{c: make(chan string, 100)} }

func (l *lines) logf(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	l.mu.Lock()
	l.all = append(l.all, s)
	l.mu.Unlock()
	select {
	case l.c <- s:
	default:
	}
}

func (l *lines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// TestOpenWaitPostgres starts a real server that refuses connections with
// 57P03 (a standby, as a server starting up does): OpenWait must say so
// and retry until the server is promoted, give up with a clear error when
// its wait is over, and return other errors at once.
func TestOpenWaitPostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	srv := storetest.NewServer(t)
	ctx := context.Background()

	// Nothing listens yet: connection refused, then the wait is over.
	l := newLines()
	_, err := store.OpenWait(ctx, srv.DSN, store.WaitOptions{Wait: 1500 * time.Millisecond, Logf: l.logf})
	if err == nil || !strings.Contains(err.Error(), "database not ready after 1.5s (connection refused)") {
		t.Fatalf("no server: %v", err)
	}
	if !strings.Contains(l.String(), "database not ready (connection refused), retrying in") {
		t.Errorf("no retry message:\n%s", l)
	}

	srv.StartStandby()
	l = newLines()
	type result struct {
		s   store.Store
		err error
	}
	res := make(chan result, 1)
	go func() {
		s, err := store.OpenWait(ctx, srv.DSN, store.WaitOptions{Wait: 5 * time.Minute, Logf: l.logf})
		res <- result{s, err}
	}()
	// Wait (bounded by OpenWait's own limit) for the 57P03 message.
	for line := range l.c {
		if strings.HasPrefix(line, "database not ready (57P03), retrying in ") {
			break
		}
	}
	srv.Promote()
	r := <-res
	if r.err != nil {
		t.Fatalf("after promotion: %v\n%s", r.err, l)
	}
	defer r.s.Close()
	if err := r.s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(l.String(), "database ready after ") {
		t.Errorf("no ready message:\n%s", l)
	}
	t.Logf("log:\n%s", l)

	// A database that does not exist is not waited for.
	l = newLines()
	bad := strings.Replace(srv.DSN, "/postgres?", "/nosuchdb?", 1)
	if _, err := store.OpenWait(ctx, bad, store.WaitOptions{Wait: time.Minute, Logf: l.logf}); err == nil || store.Unavailable(err) || l.String() != "" {
		t.Fatalf("missing database: %v (unavailable %v), log %q", err, store.Unavailable(err), l)
	}
}

// TestPostgresRestart records while the server is stopped (the error must
// say the database is unavailable) and after it is back (the store
// reconnects by itself).
func TestPostgresRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	srv := storetest.NewServer(t)
	srv.Start()
	srv.WaitReady()
	ctx := context.Background()
	s, err := store.Open(ctx, srv.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	rec := func(pid int) error {
		_, err := s.RecordCrash(ctx, &store.Crash{Host: "h", Time: at, PID: pid, Signal: 11, SignalName: "SIGSEGV", Fingerprint: "ffff"})
		return err
	}
	if err := rec(1); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	err = rec(2)
	if !store.Unavailable(err) {
		t.Fatalf("server stopped: %v (reason %q)", err, store.Reason(err))
	}
	t.Logf("server stopped: reason %q: %v", store.Reason(err), err)
	if err := s.Ping(ctx); !store.Unavailable(err) {
		t.Errorf("ping of a stopped server: %v", err)
	}
	srv.Start()
	srv.WaitReady()
	if err := rec(2); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	cs, err := s.Crashes(ctx, "", 10)
	if err != nil || len(cs) != 2 {
		t.Fatalf("%d crashes, %v", len(cs), err)
	}
}

// TestSQLiteLocked holds the write lock of a SQLite database from another
// connection: a write that cannot get it is an unavailable database.
func TestSQLiteLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coroner.db")
	ctx := context.Background()
	s, err := store.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	tx, err := other.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`DELETE FROM crash_groups`); err != nil { // takes the write lock
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err = s.RecordCrash(wctx, &store.Crash{Host: "h", PID: 1, Signal: 11, Fingerprint: "f"})
	cancel()
	if !store.Unavailable(err) {
		t.Fatalf("locked: %v (reason %q)", err, store.Reason(err))
	}
	t.Logf("locked: reason %q: %v", store.Reason(err), err)
	tx.Rollback()
	if _, err := s.RecordCrash(ctx, &store.Crash{Host: "h", PID: 1, Signal: 11, Fingerprint: "f"}); err != nil {
		t.Fatal(err)
	}
}

func TestReason(t *testing.T) {
	for _, err := range []error{context.Canceled, errors.New("syntax error"), store.ErrNotFound, nil} {
		if store.Unavailable(err) {
			t.Errorf("Unavailable(%v)", err)
		}
	}
	if r := store.Reason(fmt.Errorf("x: %w", context.DeadlineExceeded)); r != "timeout" {
		t.Errorf("deadline: %q", r)
	}
}

// downgrade turns a database of the current schema back into version 14
// (before group states, log-only crashes and the metric counts), or 9
// (also before crash and incident identities and incident sources), as
// an older coroner left it.
func downgrade(t *testing.T, driver, dsn string, version int) {
	db, err := sql.Open(driver, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	qs := []string{`DROP TABLE crash_counts`, `DROP TABLE death_counts`,
		`ALTER TABLE crash_groups DROP COLUMN state`, `ALTER TABLE crash_groups DROP COLUMN state_at`,
		`ALTER TABLE crash_groups DROP COLUMN state_by`, `ALTER TABLE crash_groups DROP COLUMN resolved_at`,
		`ALTER TABLE crash_groups DROP COLUMN regressions`, `ALTER TABLE crash_groups DROP COLUMN cores`,
		`ALTER TABLE crashes DROP COLUMN log_only`}
	if version == 9 {
		qs = append(qs, `DROP INDEX crashes_key`, `DROP INDEX incidents_key`,
			`ALTER TABLE crashes DROP COLUMN crash_key`, `ALTER TABLE incidents DROP COLUMN incident_key`,
			`ALTER TABLE incidents DROP COLUMN source`)
	}
	qs = append(qs, `UPDATE schema_version SET version = `+strconv.Itoa(version))
	for _, q := range qs {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
}

// migrate checks upgrades from schema versions 14 and 9: rows are kept,
// groups are new and not log-only, the metric counts are those of the
// rows, and new rows are recorded once.
func migrate(t *testing.T, dsn, driver, rawDSN string) {
	ctx := context.Background()
	s, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)
	for i, pool := range []string{"www", "www", "api"} {
		if _, err := s.RecordCrash(ctx, &store.Crash{Host: "old", Time: at.Add(time.Duration(i) * time.Minute), PID: 7 + i, Signal: 11,
			SignalName: "SIGSEGV", Pool: pool, Fingerprint: "eeee"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RecordIncident(ctx, &store.Incident{Host: "old", Time: at, Kind: "crash", PID: 7, Pool: "www",
		SignalName: "SIGSEGV", Source: "php-fpm", JSON: "{}"}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	for _, version := range []int{14, 9} {
		downgrade(t, driver, rawDSN, version)
		s, err = store.Open(ctx, dsn)
		if err != nil {
			t.Fatalf("migrate from version %d: %v", version, err)
		}
		cs, err := s.Crashes(ctx, "", 10)
		if err != nil || len(cs) != 3 || cs[0].Host != "old" {
			t.Fatalf("after migration from %d: %+v, %v", version, cs, err)
		}
		g, err := s.Group(ctx, "eeee")
		if err != nil || g.State != store.StateNew || g.LogOnly || g.Count != 3 {
			t.Fatalf("group after migration from %d: %+v, %v", version, g, err)
		}
		mc, err := s.CrashCounts(ctx, "old")
		if err != nil || len(mc) != 2 || mc[0].Pool != "api" || mc[0].N != 1 || mc[1].N != 2 || !mc[1].Last.Equal(at.Add(time.Minute)) {
			t.Fatalf("crash counts after migration from %d: %+v, %v", version, mc, err)
		}
		ds, err := s.DeathCounts(ctx, "old")
		if err != nil || len(ds) != 1 || ds[0].N != 1 {
			t.Fatalf("death counts after migration from %d: %+v, %v", version, ds, err)
		}
		s.Close()
	}
	s, err = store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recordTwice(t, s)
}

func TestMigrateSQLite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coroner.db")
	migrate(t, path, "sqlite", "file:"+path)
}

func TestMigratePostgres(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	dsn := storetest.Postgres(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE DATABASE migrate`); err != nil {
		t.Fatal(err)
	}
	mdsn := strings.Replace(dsn, "/postgres?", "/migrate?", 1)
	migrate(t, mdsn, "pgx", mdsn)
}

// TestMigrateConcurrently opens one PostgreSQL database from several
// watchers at once: the schema is created once, none fails.
func TestMigrateConcurrently(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	dsn := storetest.Postgres(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := store.Open(context.Background(), dsn)
			if err == nil {
				s.Close()
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}
