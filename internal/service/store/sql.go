package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
	_ "modernc.org/sqlite"             // SQLite driver "sqlite" (pure Go)

	"github.com/coroner-dev/coroner/crash"
)

type dialect int

const (
	dialectSQLite dialect = iota
	dialectPostgres
)

// incidentWindow is how far apart a log incident and a core of the same pid
// may be to belong together.
const incidentWindow = 10 * time.Minute

type sqlStore struct {
	db      *sql.DB
	dialect dialect
	wmu     sync.Mutex // serialises writes (SQLite has one writer)
}

func openSQL(ctx context.Context, d dialect, dsn string) (*sqlStore, error) {
	var db *sql.DB
	var err error
	switch d {
	case dialectSQLite:
		if dir := filepath.Dir(dsn); dir != "" {
			if err := os.MkdirAll(dir, 0o750); err != nil {
				return nil, fmt.Errorf("create database directory: %w", err)
			}
		}
		if err := privateFiles(dsn); err != nil {
			return nil, err
		}
		q := url.Values{}
		for _, p := range []string{"journal_mode(WAL)", "busy_timeout(10000)", "synchronous(NORMAL)", "foreign_keys(ON)"} {
			q.Add("_pragma", p)
		}
		// Transactions take the write lock when they begin: one that reads
		// and then writes cannot fail to upgrade its lock half-way.
		q.Set("_txlock", "immediate")
		db, err = sql.Open("sqlite", "file:"+dsn+"?"+q.Encode())
		if err == nil {
			db.SetMaxOpenConns(4)
		}
	case dialectPostgres:
		db, err = sql.Open("pgx", dsn)
		if err == nil {
			db.SetMaxOpenConns(8)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	s := &sqlStore{db: db, dialect: d}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// privateFiles creates the SQLite database readable by its owner only
// (it holds request URIs, command lines and stacks), and takes group and
// other permissions away from one (and its -wal and -shm files) made
// before. SQLite gives the journal files the database's permissions.
func privateFiles(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err == nil {
		return f.Close()
	}
	if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create database %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode().Perm()&0o077 == 0 {
			continue
		}
		if err := os.Chmod(p, st.Mode().Perm()&0o700); err != nil {
			return fmt.Errorf("make database %s private: %w", p, err)
		}
	}
	return nil
}

// schema is applied in order; schema_version records how far.
var schema = []string{
	`CREATE TABLE IF NOT EXISTS crash_groups (
		fingerprint TEXT PRIMARY KEY,
		rule TEXT NOT NULL DEFAULT '',
		title TEXT NOT NULL DEFAULT '',
		signal_name TEXT NOT NULL DEFAULT '',
		frame TEXT NOT NULL DEFAULT '',
		diagnosis TEXT NOT NULL DEFAULT '',
		n BIGINT NOT NULL DEFAULT 0,
		first_seen BIGINT NOT NULL,
		last_seen BIGINT NOT NULL
	)`,
	`CREATE TABLE IF NOT EXISTS crashes (
		id {{serial}},
		host TEXT NOT NULL,
		t BIGINT NOT NULL,
		pid BIGINT NOT NULL,
		signal BIGINT NOT NULL,
		signal_name TEXT NOT NULL,
		pool TEXT NOT NULL DEFAULT '',
		method TEXT NOT NULL DEFAULT '',
		uri TEXT NOT NULL DEFAULT '',
		fingerprint TEXT NOT NULL,
		rule TEXT NOT NULL DEFAULT '',
		title TEXT NOT NULL DEFAULT '',
		core_path TEXT NOT NULL DEFAULT '',
		core_size BIGINT NOT NULL DEFAULT 0,
		core_mtime BIGINT NOT NULL DEFAULT 0,
		analysis_ms DOUBLE PRECISION NOT NULL DEFAULT 0,
		report TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE INDEX IF NOT EXISTS crashes_fp_t ON crashes(fingerprint, t)`,
	`CREATE INDEX IF NOT EXISTS crashes_t ON crashes(t)`,
	`CREATE INDEX IF NOT EXISTS crashes_host_pid ON crashes(host, pid)`,
	`CREATE INDEX IF NOT EXISTS crashes_core ON crashes(core_path)`,
	`CREATE TABLE IF NOT EXISTS incidents (
		id {{serial}},
		host TEXT NOT NULL,
		t BIGINT NOT NULL,
		kind TEXT NOT NULL DEFAULT '',
		pid BIGINT NOT NULL,
		pool TEXT NOT NULL DEFAULT '',
		signal BIGINT NOT NULL DEFAULT 0,
		signal_name TEXT NOT NULL DEFAULT '',
		method TEXT NOT NULL DEFAULT '',
		uri TEXT NOT NULL DEFAULT '',
		status BIGINT NOT NULL DEFAULT 0,
		site TEXT NOT NULL DEFAULT '',
		core TEXT NOT NULL DEFAULT '',
		body TEXT NOT NULL DEFAULT ''
	)`,
	`CREATE INDEX IF NOT EXISTS incidents_host_pid ON incidents(host, pid)`,
	`CREATE INDEX IF NOT EXISTS incidents_t ON incidents(t)`,
	// Identities (CrashKey, IncidentKey): a crash or incident recorded
	// twice (replayed from a spool, by a restarted watcher) is stored once.
	// Rows from before this version have none (NULLs do not collide).
	`ALTER TABLE crashes ADD COLUMN crash_key TEXT`,
	`CREATE UNIQUE INDEX IF NOT EXISTS crashes_key ON crashes(crash_key)`,
	`ALTER TABLE incidents ADD COLUMN incident_key TEXT`,
	`CREATE UNIQUE INDEX IF NOT EXISTS incidents_key ON incidents(incident_key)`,
	// The log that recorded a death, a label of coroner_worker_deaths_total.
	`ALTER TABLE incidents ADD COLUMN source TEXT NOT NULL DEFAULT ''`,
	// Group states (new, resolved, ignored, regressed), who set them and
	// when; resolved_at is when the group was last resolved; regressions
	// counts the crashes that reopened it.
	`ALTER TABLE crash_groups ADD COLUMN state TEXT NOT NULL DEFAULT 'new'`,
	`ALTER TABLE crash_groups ADD COLUMN state_at BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE crash_groups ADD COLUMN state_by TEXT NOT NULL DEFAULT ''`,
	`ALTER TABLE crash_groups ADD COLUMN resolved_at BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE crash_groups ADD COLUMN regressions BIGINT NOT NULL DEFAULT 0`,
	// Crashes known only from the logs (no core); a group's cores counts
	// its crashes with a core (0: a log-only group).
	`ALTER TABLE crashes ADD COLUMN log_only BIGINT NOT NULL DEFAULT 0`,
	`ALTER TABLE crash_groups ADD COLUMN cores BIGINT NOT NULL DEFAULT 0`,
	`UPDATE crash_groups SET cores = n`,
	// The counts /metrics exports, kept in the transaction that records a
	// crash or an incident: a scrape reads one row per series instead of
	// scanning the crashes and incidents.
	`CREATE TABLE IF NOT EXISTS crash_counts (
		host TEXT NOT NULL,
		fingerprint TEXT NOT NULL,
		rule TEXT NOT NULL,
		signal_name TEXT NOT NULL,
		pool TEXT NOT NULL,
		title TEXT NOT NULL DEFAULT '',
		n BIGINT NOT NULL DEFAULT 0,
		last BIGINT NOT NULL DEFAULT 0,
		PRIMARY KEY (host, fingerprint, rule, signal_name, pool)
	)`,
	`INSERT INTO crash_counts (host, fingerprint, rule, signal_name, pool, title, n, last)
		SELECT host, fingerprint, rule, signal_name, pool, max(title), count(*), max(t) FROM crashes
		GROUP BY host, fingerprint, rule, signal_name, pool`,
	`CREATE TABLE IF NOT EXISTS death_counts (
		host TEXT NOT NULL,
		pool TEXT NOT NULL,
		signal_name TEXT NOT NULL,
		source TEXT NOT NULL,
		n BIGINT NOT NULL DEFAULT 0,
		last BIGINT NOT NULL DEFAULT 0,
		PRIMARY KEY (host, pool, signal_name, source)
	)`,
	`INSERT INTO death_counts (host, pool, signal_name, source, n, last)
		SELECT host, pool, signal_name, source, count(*), max(t) FROM incidents
		GROUP BY host, pool, signal_name, source`,
}

// migrateLock is the PostgreSQL advisory lock key that serialises the
// migrations of watchers starting together on one database.
const migrateLock = 0x636f726f6e6572 // "coroner"

// migrate brings the schema to len(schema). The common case (already
// there) only reads. Otherwise every step runs in one transaction that
// holds the write lock (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
// lock, DDL being transactional), so that an interrupted migration leaves
// the previous version and watchers starting together migrate once.
func (s *sqlStore) migrate(ctx context.Context) error {
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v); err == nil && v == len(schema) {
		return nil
	} else if err != nil && Unavailable(err) {
		return fmt.Errorf("migrate: read schema_version: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer tx.Rollback()
	if s.dialect == dialectPostgres {
		if _, err := tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(`+strconv.Itoa(migrateLock)+`)`); err != nil {
			return fmt.Errorf("migrate: lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: create schema_version: %w", err)
	}
	v = 0
	err = tx.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version(version) VALUES (0)`); err != nil {
			return fmt.Errorf("migrate: init schema_version: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("migrate: read schema_version: %w", err)
	}
	if v > len(schema) {
		return fmt.Errorf("migrate: database schema version %d is newer than this coroner (%d)", v, len(schema))
	}
	serial := "INTEGER PRIMARY KEY"
	if s.dialect == dialectPostgres {
		serial = "BIGSERIAL PRIMARY KEY"
	}
	for i := v; i < len(schema); i++ {
		stmt := strings.ReplaceAll(schema[i], "{{serial}}", serial)
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("migrate to version %d: %w", i+1, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `UPDATE schema_version SET version = `+strconv.Itoa(len(schema))); err != nil {
		return fmt.Errorf("migrate: record version %d: %w", len(schema), err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}

// q rewrites ? placeholders to $n for PostgreSQL.
func (s *sqlStore) q(query string) string {
	if s.dialect != dialectPostgres {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func fromUnix(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.Unix(v, 0).UTC()
}

// Close implements Store.
func (s *sqlStore) Close() error { return s.db.Close() }

// Ping implements Store.
func (s *sqlStore) Ping(ctx context.Context) error {
	if err := s.db.PingContext(ctx); err != nil {
		return fmt.Errorf("ping database: %w", err)
	}
	return nil
}

// RecordCrash implements Store.
func (s *sqlStore) RecordCrash(ctx context.Context, c *Crash) (bool, error) {
	var body []byte
	var diag []byte
	frame := ""
	if c.Report != nil {
		var err error
		if body, err = json.Marshal(c.Report); err != nil {
			return false, fmt.Errorf("encode report: %w", err)
		}
		if len(c.Report.Diagnosis) > 0 {
			diag, _ = json.Marshal(c.Report.Diagnosis[0])
		}
		frame = siteOf(c.Report)
	}
	if frame == "" {
		frame = c.Site
	}
	c.Regressed, c.Superseded = false, false
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	if c.Key == "" {
		c.Key = CrashKey(c)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("record crash: begin: %w", err)
	}
	defer tx.Rollback()
	// Take the pool (and a missing request) from the log incident of the
	// same worker; inside the write lock, so that an incident recorded at
	// the same time is either seen here or links this crash itself.
	w := int64(incidentWindow / time.Second)
	var pool, method, uri string
	err = tx.QueryRowContext(ctx, s.q(`SELECT pool, method, uri FROM incidents
		WHERE host = ? AND pid = ? AND t BETWEEN ? AND ? ORDER BY t DESC LIMIT 1`),
		c.Host, c.PID, unix(c.Time)-w, unix(c.Time)+w).Scan(&pool, &method, &uri)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("record crash: find incident: %w", err)
	}
	if c.Pool == "" {
		c.Pool = pool
	}
	if c.URI == "" && uri != "" {
		c.Method, c.URI = method, uri
	}
	logOnly, cores := 0, 1
	if c.LogOnly {
		logOnly, cores = 1, 0
		// The same death with a core is recorded: the log-only crash adds
		// nothing.
		var id int64
		err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM crashes WHERE host = ? AND pid = ? AND t BETWEEN ? AND ? AND log_only = 0
			ORDER BY t DESC LIMIT 1`), c.Host, c.PID, unix(c.Time)-w, unix(c.Time)+w).Scan(&id)
		if err == nil {
			c.ID, c.Superseded = id, true
			return false, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return false, fmt.Errorf("record crash: find the crash with a core: %w", err)
		}
	} else if err := s.dropLogOnly(ctx, tx, c.Host, c.PID, unix(c.Time)-w, unix(c.Time)+w); err != nil {
		return false, fmt.Errorf("record crash: %w", err)
	}
	err = tx.QueryRowContext(ctx, s.q(`INSERT INTO crashes
		(host, t, pid, signal, signal_name, pool, method, uri, fingerprint, rule, title, core_path, core_size, core_mtime, analysis_ms, report, crash_key, log_only)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (crash_key) DO NOTHING RETURNING id`),
		c.Host, unix(c.Time), c.PID, c.Signal, c.SignalName, c.Pool, c.Method, c.URI, c.Fingerprint, c.Rule, c.Title,
		c.CorePath, c.CoreSize, unix(c.CoreMTime), c.AnalysisMS, string(body), c.Key, logOnly).Scan(&c.ID)
	if errors.Is(err, sql.ErrNoRows) {
		// Already recorded (a replay): nothing changes.
		if err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM crashes WHERE crash_key = ?`), c.Key).Scan(&c.ID); err != nil {
			return false, fmt.Errorf("record crash: find recorded crash: %w", err)
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("record crash: insert: %w", err)
	}
	if !c.LogOnly {
		if err := s.countCrash(ctx, tx, c.Host, c.Fingerprint, c.Rule, c.SignalName, c.Pool, c.Title, unix(c.Time), 1); err != nil {
			return false, fmt.Errorf("record crash: %w", err)
		}
	}
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO crash_groups
		(fingerprint, rule, title, signal_name, frame, diagnosis, n, first_seen, last_seen, state, cores)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?, 'new', ?) ON CONFLICT (fingerprint) DO NOTHING`),
		c.Fingerprint, c.Rule, c.Title, c.SignalName, frame, string(diag), unix(c.Time), unix(c.Time), cores)
	if err != nil {
		return false, fmt.Errorf("record crash: insert group: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record crash: insert group: %w", err)
	}
	newGroup := n == 1
	if !newGroup {
		// A log-only group that gets a core takes the core's diagnosis
		// and site.
		_, err = tx.ExecContext(ctx, s.q(`UPDATE crash_groups SET n = n + 1,
			last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END,
			first_seen = CASE WHEN first_seen > ? THEN ? ELSE first_seen END,
			rule = CASE WHEN cores = 0 AND ? = 1 THEN ? ELSE rule END,
			title = CASE WHEN cores = 0 AND ? = 1 THEN ? ELSE title END,
			frame = CASE WHEN cores = 0 AND ? = 1 THEN ? ELSE frame END,
			diagnosis = CASE WHEN cores = 0 AND ? = 1 THEN ? ELSE diagnosis END,
			cores = cores + ?
			WHERE fingerprint = ?`),
			unix(c.Time), unix(c.Time), unix(c.Time), unix(c.Time),
			cores, c.Rule, cores, c.Title, cores, frame, cores, string(diag), cores, c.Fingerprint)
		if err != nil {
			return false, fmt.Errorf("record crash: update group: %w", err)
		}
		// Reopen a resolved group. The condition is in the WHERE clause:
		// PostgreSQL re-evaluates it on the row a concurrent transaction
		// committed (SQLite has one writer), so of watchers recording
		// crashes of the group at once exactly one sees the regression.
		res, err := tx.ExecContext(ctx, s.q(`UPDATE crash_groups SET state = 'regressed', state_at = ?, state_by = 'coroner',
			regressions = regressions + 1 WHERE fingerprint = ? AND state = 'resolved' AND resolved_at <= ?`),
			time.Now().Unix(), c.Fingerprint, unix(c.Time))
		if err != nil {
			return false, fmt.Errorf("record crash: mark group regressed: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return false, fmt.Errorf("record crash: mark group regressed: %w", err)
		}
		c.Regressed = n == 1
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("record crash: commit: %w", err)
	}
	return newGroup, nil
}

// dropLogOnly deletes the log-only crashes of host and pid between from
// and to (a core of the same death is being recorded): their groups lose
// them, and a group left without crashes is deleted.
func (s *sqlStore) dropLogOnly(ctx context.Context, tx *sql.Tx, host string, pid int, from, to int64) error {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, fingerprint FROM crashes WHERE host = ? AND pid = ? AND t BETWEEN ? AND ? AND log_only = 1`),
		host, pid, from, to)
	if err != nil {
		return fmt.Errorf("find log-only crashes: %w", err)
	}
	type dropped struct {
		id int64
		fp string
	}
	var ds []dropped
	for rows.Next() {
		var d dropped
		if err := rows.Scan(&d.id, &d.fp); err != nil {
			rows.Close()
			return fmt.Errorf("find log-only crashes: %w", err)
		}
		ds = append(ds, d)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find log-only crashes: %w", err)
	}
	for _, d := range ds {
		if _, err := tx.ExecContext(ctx, s.q(`DELETE FROM crashes WHERE id = ?`), d.id); err != nil {
			return fmt.Errorf("drop log-only crash: %w", err)
		}
		_, err := tx.ExecContext(ctx, s.q(`UPDATE crash_groups SET n = n - 1,
			first_seen = COALESCE((SELECT min(t) FROM crashes WHERE fingerprint = ?), first_seen),
			last_seen = COALESCE((SELECT max(t) FROM crashes WHERE fingerprint = ?), last_seen)
			WHERE fingerprint = ?`), d.fp, d.fp, d.fp)
		if err == nil {
			_, err = tx.ExecContext(ctx, s.q(`DELETE FROM crash_groups WHERE fingerprint = ? AND n <= 0`), d.fp)
		}
		if err != nil {
			return fmt.Errorf("drop log-only crash from its group: %w", err)
		}
	}
	return nil
}

// countCrash adds d (1 or -1) crashes at time t to a series of
// crash_counts; a series left with none is deleted.
func (s *sqlStore) countCrash(ctx context.Context, tx *sql.Tx, host, fp, rule, sig, pool, title string, t int64, d int) error {
	if d > 0 {
		_, err := tx.ExecContext(ctx, s.q(`INSERT INTO crash_counts (host, fingerprint, rule, signal_name, pool, title, n, last)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (host, fingerprint, rule, signal_name, pool) DO UPDATE SET
			n = crash_counts.n + excluded.n,
			title = CASE WHEN crash_counts.title < excluded.title THEN excluded.title ELSE crash_counts.title END,
			last = CASE WHEN crash_counts.last < excluded.last THEN excluded.last ELSE crash_counts.last END`),
			host, fp, rule, sig, pool, title, d, t)
		if err != nil {
			return fmt.Errorf("count crash: %w", err)
		}
		return nil
	}
	_, err := tx.ExecContext(ctx, s.q(`UPDATE crash_counts SET n = n + ? WHERE host = ? AND fingerprint = ? AND rule = ? AND signal_name = ? AND pool = ?`),
		d, host, fp, rule, sig, pool)
	if err == nil {
		_, err = tx.ExecContext(ctx, s.q(`DELETE FROM crash_counts WHERE n <= 0 AND host = ? AND fingerprint = ? AND rule = ? AND signal_name = ? AND pool = ?`),
			host, fp, rule, sig, pool)
	}
	if err != nil {
		return fmt.Errorf("uncount crash: %w", err)
	}
	return nil
}

// movePool moves, in crash_counts, the crashes of host and pid between
// from and to that have no pool yet to pool: the incident that names their
// pool is about to give it to them. The series left keeps the time of its
// last crash.
func (s *sqlStore) movePool(ctx context.Context, tx *sql.Tx, host string, pid int, from, to int64, pool string) error {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT fingerprint, rule, signal_name, title, t FROM crashes
		WHERE host = ? AND pid = ? AND t BETWEEN ? AND ? AND pool = '' AND log_only = 0`), host, pid, from, to)
	if err != nil {
		return fmt.Errorf("find crashes without a pool: %w", err)
	}
	type moved struct {
		fp, rule, sig, title string
		t                    int64
	}
	var ms []moved
	for rows.Next() {
		var m moved
		if err := rows.Scan(&m.fp, &m.rule, &m.sig, &m.title, &m.t); err != nil {
			rows.Close()
			return fmt.Errorf("find crashes without a pool: %w", err)
		}
		ms = append(ms, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("find crashes without a pool: %w", err)
	}
	for _, m := range ms {
		if err := s.countCrash(ctx, tx, host, m.fp, m.rule, m.sig, "", m.title, m.t, -1); err != nil {
			return err
		}
		if err := s.countCrash(ctx, tx, host, m.fp, m.rule, m.sig, pool, m.title, m.t, 1); err != nil {
			return err
		}
		// The old series' last crash may have been this one.
		_, err := tx.ExecContext(ctx, s.q(`UPDATE crash_counts SET last = COALESCE((SELECT max(c.t) FROM crashes c
			WHERE c.fingerprint = ? AND c.host = ? AND c.rule = ? AND c.signal_name = ? AND c.pool = '' AND c.log_only = 0
			AND NOT (c.pid = ? AND c.t BETWEEN ? AND ?)), last)
			WHERE host = ? AND fingerprint = ? AND rule = ? AND signal_name = ? AND pool = ''`),
			m.fp, host, m.rule, m.sig, pid, from, to, host, m.fp, m.rule, m.sig)
		if err != nil {
			return fmt.Errorf("recount crashes without a pool: %w", err)
		}
	}
	return nil
}

// siteOf names the crash site: the first named frames of the crashed thread.
func siteOf(r *crash.Report) string {
	t := r.CrashedThread()
	if t == nil {
		return ""
	}
	var parts []string
	for _, f := range t.Frames {
		if f.Function == "" {
			continue
		}
		parts = append(parts, f.Function)
		if len(parts) == 3 {
			break
		}
	}
	return strings.Join(parts, " < ")
}

// RecordIncident implements Store.
func (s *sqlStore) RecordIncident(ctx context.Context, in *Incident) error {
	if in.Key == "" {
		in.Key = IncidentKey(in)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("record incident: begin: %w", err)
	}
	defer tx.Rollback()
	err = tx.QueryRowContext(ctx, s.q(`INSERT INTO incidents
		(host, t, kind, pid, pool, signal, signal_name, method, uri, status, site, core, body, incident_key, source)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident_key) DO NOTHING RETURNING id`),
		in.Host, unix(in.Time), in.Kind, in.PID, in.Pool, in.Signal, in.SignalName, in.Method, in.URI, in.Status,
		in.Site, in.Core, in.JSON, in.Key, in.Source).Scan(&in.ID)
	if errors.Is(err, sql.ErrNoRows) {
		// Already recorded (a replay), and its request already linked.
		if err := tx.QueryRowContext(ctx, s.q(`SELECT id FROM incidents WHERE incident_key = ?`), in.Key).Scan(&in.ID); err != nil {
			return fmt.Errorf("record incident: find recorded incident: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("record incident: %w", err)
	}
	_, err = tx.ExecContext(ctx, s.q(`INSERT INTO death_counts (host, pool, signal_name, source, n, last) VALUES (?, ?, ?, ?, 1, ?)
		ON CONFLICT (host, pool, signal_name, source) DO UPDATE SET n = death_counts.n + 1,
		last = CASE WHEN death_counts.last < excluded.last THEN excluded.last ELSE death_counts.last END`),
		in.Host, in.Pool, in.SignalName, in.Source, unix(in.Time))
	if err != nil {
		return fmt.Errorf("record incident: count death: %w", err)
	}
	if in.URI != "" || in.Pool != "" {
		t := unix(in.Time)
		w := int64(incidentWindow / time.Second)
		if in.Pool != "" {
			if err := s.movePool(ctx, tx, in.Host, in.PID, t-w, t+w, in.Pool); err != nil {
				return fmt.Errorf("record incident: %w", err)
			}
		}
		_, err = tx.ExecContext(ctx, s.q(`UPDATE crashes SET
			uri = CASE WHEN uri = '' THEN ? ELSE uri END,
			method = CASE WHEN method = '' THEN ? ELSE method END,
			pool = CASE WHEN pool = '' THEN ? ELSE pool END
			WHERE host = ? AND pid = ? AND t BETWEEN ? AND ?`),
			in.URI, in.Method, in.Pool, in.Host, in.PID, t-w, t+w)
		if err != nil {
			return fmt.Errorf("record incident: link crashes: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("record incident: commit: %w", err)
	}
	return nil
}

const incidentCols = `id, host, t, kind, pid, pool, signal, signal_name, method, uri, status, site, core, body, source`

func scanIncident(sc interface{ Scan(...any) error }) (*Incident, error) {
	var in Incident
	var t int64
	err := sc.Scan(&in.ID, &in.Host, &t, &in.Kind, &in.PID, &in.Pool, &in.Signal, &in.SignalName, &in.Method,
		&in.URI, &in.Status, &in.Site, &in.Core, &in.JSON, &in.Source)
	in.Time = fromUnix(t)
	return &in, err
}

// FindIncident implements Store.
func (s *sqlStore) FindIncident(ctx context.Context, host string, pid int, t time.Time) (*Incident, error) {
	w := int64(incidentWindow / time.Second)
	row := s.db.QueryRowContext(ctx, s.q(`SELECT `+incidentCols+` FROM incidents
		WHERE host = ? AND pid = ? AND t BETWEEN ? AND ? ORDER BY t DESC LIMIT 1`), host, pid, unix(t)-w, unix(t)+w)
	in, err := scanIncident(row)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("find incident: %w", err)
	}
	return in, nil
}

// Incidents implements Store.
func (s *sqlStore) Incidents(ctx context.Context, limit int) ([]Incident, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+incidentCols+` FROM incidents ORDER BY t DESC, id DESC LIMIT ?`), limit)
	if err != nil {
		return nil, fmt.Errorf("list incidents: %w", err)
	}
	defer rows.Close()
	var out []Incident
	for rows.Next() {
		in, err := scanIncident(rows)
		if err != nil {
			return nil, fmt.Errorf("list incidents: %w", err)
		}
		out = append(out, *in)
	}
	return out, rows.Err()
}

// HasCore implements Store.
func (s *sqlStore) HasCore(ctx context.Context, path string, mtime time.Time) (bool, error) {
	var n int
	err := s.db.QueryRowContext(ctx, s.q(`SELECT count(*) FROM crashes WHERE core_path = ? AND core_mtime = ?`),
		path, unix(mtime)).Scan(&n)
	if err != nil {
		return false, fmt.Errorf("look up core: %w", err)
	}
	return n > 0, nil
}

const groupCols = `fingerprint, rule, title, signal_name, frame, diagnosis, n, first_seen, last_seen, state, state_at, state_by, resolved_at, regressions, cores`

// groupState are the columns of groupCols after the counts, of crash_groups g.
const groupState = `g.state, g.state_at, g.state_by, g.resolved_at, g.regressions, g.cores`

func scanGroup(sc interface{ Scan(...any) error }) (*Group, error) {
	var g Group
	var diag string
	var first, last, stateAt, resolvedAt, cores int64
	if err := sc.Scan(&g.Fingerprint, &g.Rule, &g.Title, &g.SignalName, &g.Frame, &diag, &g.Count, &first, &last,
		&g.State, &stateAt, &g.StateBy, &resolvedAt, &g.Regressions, &cores); err != nil {
		return nil, err
	}
	g.FirstSeen, g.LastSeen = fromUnix(first), fromUnix(last)
	g.StateAt, g.ResolvedAt, g.LogOnly = fromUnix(stateAt), fromUnix(resolvedAt), cores == 0
	if diag != "" {
		var d crash.Diagnosis
		if json.Unmarshal([]byte(diag), &d) == nil {
			g.Diagnosis = &d
		}
	}
	return &g, nil
}

// Groups implements Store.
func (s *sqlStore) Groups(ctx context.Context) ([]Group, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+groupCols+` FROM crash_groups ORDER BY last_seen DESC, fingerprint`)
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, fmt.Errorf("list groups: %w", err)
		}
		out = append(out, *g)
	}
	return out, rows.Err()
}

// Group implements Store.
func (s *sqlStore) Group(ctx context.Context, fp string) (*Group, error) {
	g, err := scanGroup(s.db.QueryRowContext(ctx, s.q(`SELECT `+groupCols+` FROM crash_groups WHERE fingerprint = ?`), fp))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get group: %w", err)
	}
	if g.URIs, err = s.counts(ctx, "uri", fp); err != nil {
		return nil, err
	}
	if g.Hosts, err = s.counts(ctx, "host", fp); err != nil {
		return nil, err
	}
	return g, nil
}

func (s *sqlStore) counts(ctx context.Context, col, fp string) ([]Count, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+col+`, count(*) FROM crashes WHERE fingerprint = ?
		GROUP BY `+col+` ORDER BY count(*) DESC, `+col+` LIMIT 20`), fp)
	if err != nil {
		return nil, fmt.Errorf("count %s: %w", col, err)
	}
	defer rows.Close()
	var out []Count
	for rows.Next() {
		var c Count
		if err := rows.Scan(&c.Value, &c.N); err != nil {
			return nil, fmt.Errorf("count %s: %w", col, err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

const crashCols = `id, host, t, pid, signal, signal_name, pool, method, uri, fingerprint, rule, title, core_path, core_size, core_mtime, analysis_ms, log_only`

func scanCrash(sc interface{ Scan(...any) error }, extra ...any) (*Crash, error) {
	var c Crash
	var t, mt, logOnly int64
	dest := []any{&c.ID, &c.Host, &t, &c.PID, &c.Signal, &c.SignalName, &c.Pool, &c.Method, &c.URI, &c.Fingerprint,
		&c.Rule, &c.Title, &c.CorePath, &c.CoreSize, &mt, &c.AnalysisMS, &logOnly}
	if err := sc.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	c.Time, c.CoreMTime, c.LogOnly = fromUnix(t), fromUnix(mt), logOnly != 0
	return &c, nil
}

// Crashes implements Store.
func (s *sqlStore) Crashes(ctx context.Context, fp string, limit int) ([]Crash, error) {
	if limit <= 0 {
		limit = 100
	}
	var rows *sql.Rows
	var err error
	if fp == "" {
		rows, err = s.db.QueryContext(ctx, s.q(`SELECT `+crashCols+` FROM crashes ORDER BY t DESC, id DESC LIMIT ?`), limit)
	} else {
		rows, err = s.db.QueryContext(ctx, s.q(`SELECT `+crashCols+` FROM crashes WHERE fingerprint = ? ORDER BY t DESC, id DESC LIMIT ?`), fp, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("list crashes: %w", err)
	}
	defer rows.Close()
	var out []Crash
	for rows.Next() {
		c, err := scanCrash(rows)
		if err != nil {
			return nil, fmt.Errorf("list crashes: %w", err)
		}
		out = append(out, *c)
	}
	return out, rows.Err()
}

// Crash implements Store.
func (s *sqlStore) Crash(ctx context.Context, id int64) (*Crash, error) {
	var body string
	c, err := scanCrash(s.db.QueryRowContext(ctx, s.q(`SELECT `+crashCols+`, report FROM crashes WHERE id = ?`), id), &body)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("get crash %d: %w", id, err)
	}
	if body != "" {
		var r crash.Report
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			return nil, fmt.Errorf("decode report of crash %d: %w", id, err)
		}
		c.Report = &r
	}
	return c, nil
}

// where turns a filter, but its States, into a WHERE clause on crashes
// (aliased c) and its arguments.
func (s *sqlStore) where(f Filter) (string, []any) {
	var conds []string
	var args []any
	eq := func(col, v string) {
		if v != "" {
			conds = append(conds, "c."+col+" = ?")
			args = append(args, v)
		}
	}
	eq("fingerprint", f.Fingerprint)
	eq("host", f.Host)
	eq("pool", f.Pool)
	eq("rule", f.Rule)
	eq("signal_name", f.Signal)
	contains := "instr(%s, ?) > 0"
	if s.dialect == dialectPostgres {
		contains = "strpos(%s, ?) > 0"
	}
	if f.URI != "" {
		conds = append(conds, fmt.Sprintf(contains, "c.uri"))
		args = append(args, f.URI)
	}
	if f.Text != "" {
		var or []string
		for _, col := range []string{"c.title", "c.rule", "c.fingerprint", "c.uri"} {
			or = append(or, fmt.Sprintf(contains, "lower("+col+")"))
			args = append(args, strings.ToLower(f.Text))
		}
		conds = append(conds, "("+strings.Join(or, " OR ")+")")
	}
	if !f.Since.IsZero() {
		conds = append(conds, "c.t >= ?")
		args = append(args, f.Since.Unix())
	}
	if !f.Until.IsZero() {
		conds = append(conds, "c.t < ?")
		args = append(args, f.Until.Unix())
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// stateWhere is the WHERE clause selecting groups (aliased g) in one of
// states ("" for none), its arguments appended to args.
func (s *sqlStore) stateWhere(states []string, args *[]any) string {
	if len(states) == 0 {
		return ""
	}
	marks := make([]string, len(states))
	for i, st := range states {
		marks[i] = "?"
		*args = append(*args, st)
	}
	return "WHERE g.state IN (" + strings.Join(marks, ", ") + ")"
}

// FindGroups implements Store.
func (s *sqlStore) FindGroups(ctx context.Context, f Filter) ([]Group, error) {
	where, args := s.where(f)
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT g.fingerprint, g.rule, g.title, g.signal_name, g.frame, g.diagnosis,
		m.n, m.first, m.last, `+groupState+` FROM crash_groups g JOIN
		(SELECT c.fingerprint AS fp, count(*) AS n, min(c.t) AS first, max(c.t) AS last FROM crashes c`+where+`
		 GROUP BY c.fingerprint) m ON m.fp = g.fingerprint
		`+s.stateWhere(f.States, &args)+`
		ORDER BY m.last DESC, g.fingerprint`), args...)
	if err != nil {
		return nil, fmt.Errorf("find groups: %w", err)
	}
	defer rows.Close()
	var out []Group
	for rows.Next() {
		g, err := scanGroup(rows)
		if err != nil {
			return nil, fmt.Errorf("find groups: %w", err)
		}
		out = append(out, *g)
	}
	return out, rows.Err()
}

// FindCrashes implements Store.
func (s *sqlStore) FindCrashes(ctx context.Context, f Filter, limit int) ([]Crash, error) {
	if limit <= 0 {
		limit = 100
	}
	where, args := s.where(f)
	if len(f.States) > 0 {
		and := " WHERE "
		if where != "" {
			and = " AND "
		}
		// A correlated EXISTS, not IN: it must not lead the planner to read
		// the crashes by fingerprint instead of newest first.
		where += and + "EXISTS (SELECT 1 FROM crash_groups g " + s.stateWhere(f.States, &args) + " AND g.fingerprint = c.fingerprint)"
	}
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT `+prefixed("c.", crashCols)+` FROM crashes c`+where+`
		ORDER BY c.t DESC, c.id DESC LIMIT ?`), append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("find crashes: %w", err)
	}
	defer rows.Close()
	var out []Crash
	for rows.Next() {
		c, err := scanCrash(rows)
		if err != nil {
			return nil, fmt.Errorf("find crashes: %w", err)
		}
		out = append(out, *c)
	}
	return out, rows.Err()
}

// prefixed qualifies each column of a comma-separated list.
func prefixed(prefix, cols string) string {
	parts := strings.Split(cols, ", ")
	for i, p := range parts {
		parts[i] = prefix + p
	}
	return strings.Join(parts, ", ")
}

// Hourly implements Store.
func (s *sqlStore) Hourly(ctx context.Context, since time.Time) ([]HourCount, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT fingerprint, t / 3600, count(*) FROM crashes WHERE t >= ?
		GROUP BY fingerprint, t / 3600 ORDER BY 2, 1`), unix(since))
	if err != nil {
		return nil, fmt.Errorf("hourly counts: %w", err)
	}
	defer rows.Close()
	var out []HourCount
	for rows.Next() {
		var h HourCount
		var hour int64
		if err := rows.Scan(&h.Fingerprint, &hour, &h.N); err != nil {
			return nil, fmt.Errorf("hourly counts: %w", err)
		}
		h.Hour = time.Unix(hour*3600, 0).UTC()
		out = append(out, h)
	}
	return out, rows.Err()
}

// CrashCounts implements Store.
func (s *sqlStore) CrashCounts(ctx context.Context, host string) ([]MetricRow, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT host, fingerprint, rule, title, signal_name, pool, n, last
		FROM crash_counts WHERE ? = '' OR host = ? ORDER BY 1, 2, 3, 5, 6`), host, host)
	if err != nil {
		return nil, fmt.Errorf("crash counts: %w", err)
	}
	defer rows.Close()
	var out []MetricRow
	for rows.Next() {
		var m MetricRow
		var last int64
		if err := rows.Scan(&m.Host, &m.Fingerprint, &m.Rule, &m.Title, &m.Signal, &m.Pool, &m.N, &last); err != nil {
			return nil, fmt.Errorf("crash counts: %w", err)
		}
		m.Last = fromUnix(last)
		out = append(out, m)
	}
	return out, rows.Err()
}

// DeathCounts implements Store.
func (s *sqlStore) DeathCounts(ctx context.Context, host string) ([]DeathRow, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT host, pool, signal_name, source, n, last
		FROM death_counts WHERE ? = '' OR host = ? ORDER BY 1, 2, 3, 4`), host, host)
	if err != nil {
		return nil, fmt.Errorf("worker death counts: %w", err)
	}
	defer rows.Close()
	var out []DeathRow
	for rows.Next() {
		var d DeathRow
		var last int64
		if err := rows.Scan(&d.Host, &d.Pool, &d.Signal, &d.Source, &d.N, &last); err != nil {
			return nil, fmt.Errorf("worker death counts: %w", err)
		}
		d.Last = fromUnix(last)
		out = append(out, d)
	}
	return out, rows.Err()
}

// SetGroupState implements Store.
func (s *sqlStore) SetGroupState(ctx context.Context, fp, state, by string, at time.Time) (*Group, error) {
	if state != StateNew && state != StateResolved && state != StateIgnored {
		return nil, fmt.Errorf("set state of group %s: %q is not a state one sets (new, resolved, ignored)", fp, state)
	}
	if at.IsZero() {
		at = time.Now()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE crash_groups SET state = ?, state_at = ?, state_by = ?,
		resolved_at = CASE WHEN ? = 'resolved' THEN ? ELSE resolved_at END WHERE fingerprint = ?`),
		state, at.Unix(), by, state, at.Unix(), fp)
	if err != nil {
		return nil, fmt.Errorf("set state of group %s: %w", fp, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("set state of group %s: %w", fp, err)
	} else if n == 0 {
		return nil, ErrNotFound
	}
	return s.Group(ctx, fp)
}

// Daily implements Store.
func (s *sqlStore) Daily(ctx context.Context, since time.Time) ([]DayCount, error) {
	rows, err := s.db.QueryContext(ctx, s.q(`SELECT fingerprint, t / 86400, count(*) FROM crashes WHERE t >= ?
		GROUP BY fingerprint, t / 86400 ORDER BY 1, 2`), unix(since))
	if err != nil {
		return nil, fmt.Errorf("daily counts: %w", err)
	}
	defer rows.Close()
	var out []DayCount
	for rows.Next() {
		var d DayCount
		var day int64
		if err := rows.Scan(&d.Fingerprint, &day, &d.N); err != nil {
			return nil, fmt.Errorf("daily counts: %w", err)
		}
		d.Day = time.Unix(day*86400, 0).UTC()
		out = append(out, d)
	}
	return out, rows.Err()
}
