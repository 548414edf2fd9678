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
	err = tx.QueryRowContext(ctx, s.q(`INSERT INTO crashes
		(host, t, pid, signal, signal_name, pool, method, uri, fingerprint, rule, title, core_path, core_size, core_mtime, analysis_ms, report, crash_key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (crash_key) DO NOTHING RETURNING id`),
		c.Host, unix(c.Time), c.PID, c.Signal, c.SignalName, c.Pool, c.Method, c.URI, c.Fingerprint, c.Rule, c.Title,
		c.CorePath, c.CoreSize, unix(c.CoreMTime), c.AnalysisMS, string(body), c.Key).Scan(&c.ID)
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
	res, err := tx.ExecContext(ctx, s.q(`INSERT INTO crash_groups
		(fingerprint, rule, title, signal_name, frame, diagnosis, n, first_seen, last_seen)
		VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?) ON CONFLICT (fingerprint) DO NOTHING`),
		c.Fingerprint, c.Rule, c.Title, c.SignalName, frame, string(diag), unix(c.Time), unix(c.Time))
	if err != nil {
		return false, fmt.Errorf("record crash: insert group: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("record crash: insert group: %w", err)
	}
	newGroup := n == 1
	if !newGroup {
		_, err = tx.ExecContext(ctx, s.q(`UPDATE crash_groups SET n = n + 1,
			last_seen = CASE WHEN last_seen < ? THEN ? ELSE last_seen END,
			first_seen = CASE WHEN first_seen > ? THEN ? ELSE first_seen END
			WHERE fingerprint = ?`),
			unix(c.Time), unix(c.Time), unix(c.Time), unix(c.Time), c.Fingerprint)
		if err != nil {
			return false, fmt.Errorf("record crash: update group: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("record crash: commit: %w", err)
	}
	return newGroup, nil
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
		(host, t, kind, pid, pool, signal, signal_name, method, uri, status, site, core, body, incident_key)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (incident_key) DO NOTHING RETURNING id`),
		in.Host, unix(in.Time), in.Kind, in.PID, in.Pool, in.Signal, in.SignalName, in.Method, in.URI, in.Status,
		in.Site, in.Core, in.JSON, in.Key).Scan(&in.ID)
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
	if in.URI != "" || in.Pool != "" {
		t := unix(in.Time)
		w := int64(incidentWindow / time.Second)
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

const incidentCols = `id, host, t, kind, pid, pool, signal, signal_name, method, uri, status, site, core, body`

func scanIncident(sc interface{ Scan(...any) error }) (*Incident, error) {
	var in Incident
	var t int64
	err := sc.Scan(&in.ID, &in.Host, &t, &in.Kind, &in.PID, &in.Pool, &in.Signal, &in.SignalName, &in.Method,
		&in.URI, &in.Status, &in.Site, &in.Core, &in.JSON)
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

const groupCols = `fingerprint, rule, title, signal_name, frame, diagnosis, n, first_seen, last_seen`

func scanGroup(sc interface{ Scan(...any) error }) (*Group, error) {
	var g Group
	var diag string
	var first, last int64
	if err := sc.Scan(&g.Fingerprint, &g.Rule, &g.Title, &g.SignalName, &g.Frame, &diag, &g.Count, &first, &last); err != nil {
		return nil, err
	}
	g.FirstSeen, g.LastSeen = fromUnix(first), fromUnix(last)
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

const crashCols = `id, host, t, pid, signal, signal_name, pool, method, uri, fingerprint, rule, title, core_path, core_size, core_mtime, analysis_ms`

func scanCrash(sc interface{ Scan(...any) error }, extra ...any) (*Crash, error) {
	var c Crash
	var t, mt int64
	dest := []any{&c.ID, &c.Host, &t, &c.PID, &c.Signal, &c.SignalName, &c.Pool, &c.Method, &c.URI, &c.Fingerprint,
		&c.Rule, &c.Title, &c.CorePath, &c.CoreSize, &mt, &c.AnalysisMS}
	if err := sc.Scan(append(dest, extra...)...); err != nil {
		return nil, err
	}
	c.Time, c.CoreMTime = fromUnix(t), fromUnix(mt)
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
func (s *sqlStore) CrashCounts(ctx context.Context) ([]MetricRow, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT fingerprint, signal_name, pool, count(*) FROM crashes
		GROUP BY fingerprint, signal_name, pool ORDER BY 1, 2, 3`)
	if err != nil {
		return nil, fmt.Errorf("crash counts: %w", err)
	}
	defer rows.Close()
	var out []MetricRow
	for rows.Next() {
		var m MetricRow
		if err := rows.Scan(&m.Fingerprint, &m.Signal, &m.Pool, &m.N); err != nil {
			return nil, fmt.Errorf("crash counts: %w", err)
		}
		out = append(out, m)
	}
	return out, rows.Err()
}
