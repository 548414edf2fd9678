// Package store persists what `coroner watch` learns: crashes (one analysed
// core each, with its crash.Report as JSON), the groups they form by
// fingerprint, and the incidents read from the logs. It hides the database
// behind the small Store interface; Open picks SQLite (pure Go, the default)
// or PostgreSQL from a DSN.
package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
)

// ErrNotFound is returned when a crash or group does not exist.
var ErrNotFound = errors.New("not found")

// Crash is one analysed core (or, with Report nil, a crash known only from
// the logs).
type Crash struct {
	ID          int64
	Host        string
	Time        time.Time
	PID         int
	Signal      int
	SignalName  string
	Pool        string
	Method      string
	URI         string
	Fingerprint string
	// Rule and Title are the best diagnosis, "" when no rule matched.
	Rule, Title string
	CorePath    string
	CoreSize    int64
	// CoreMTime is the core's modification time, used with CorePath to
	// recognise a core already analysed.
	CoreMTime time.Time
	// AnalysisMS is how long the analysis took.
	AnalysisMS float64
	// Key is the crash's identity (see CrashKey); RecordCrash fills it when
	// empty and stores a crash whose key is already stored only once.
	Key string
	// Report is the full analysis; Crashes leaves it nil, Crash loads it.
	Report *crash.Report
	// LogOnly marks a crash known only from the logs (no core): it is
	// grouped by its logged crash site and request, and is not counted in
	// CrashCounts (the analysed cores).
	LogOnly bool
	// Site is the crash site of a crash without a Report (the symbolized
	// site the logs give), shown as its group's site.
	Site string
	// Regressed is set by RecordCrash when this crash reopened a resolved
	// group (its state became StateRegressed).
	Regressed bool
	// Superseded is set by RecordCrash when a log-only crash was not
	// recorded because the same death (host and pid within 10 minutes)
	// is recorded with a core; ID is then that crash's. Recording a crash
	// with a core deletes the log-only crashes of the same death.
	Superseded bool
}

// Group states. A group is new until someone resolves or ignores it; a
// resolved group that crashes again (a crash at or after its resolution)
// becomes regressed.
const (
	StateNew       = "new"
	StateResolved  = "resolved"
	StateIgnored   = "ignored"
	StateRegressed = "regressed"
)

// States are the group states, in the order pages show them.
var States = []string{StateNew, StateRegressed, StateResolved, StateIgnored}

// ValidState reports whether s is a group state.
func ValidState(s string) bool {
	for _, v := range States {
		if s == v {
			return true
		}
	}
	return false
}

// Group is the set of crashes sharing one fingerprint.
type Group struct {
	Fingerprint string
	Rule, Title string
	SignalName  string
	Count       int
	FirstSeen   time.Time
	LastSeen    time.Time
	// Diagnosis is the best diagnosis of the first crash of the group.
	Diagnosis *crash.Diagnosis
	// Frame is a short description of the crash site (first frames).
	Frame string
	// URIs and Hosts are filled by Group (not by Groups), most frequent first.
	URIs  []Count
	Hosts []Count
	// State is the group's state (StateNew...), StateAt when and StateBy
	// who set it ("coroner" for a regression), ResolvedAt when it was last
	// resolved (zero: never).
	State      string
	StateAt    time.Time
	StateBy    string
	ResolvedAt time.Time
	// Regressions counts the crashes that reopened the group.
	Regressions int
	// LogOnly is true when no crash of the group has a core: it is known
	// from the logs alone.
	LogOnly bool
}

// DayCount is the number of crashes of one group in one day (UTC).
type DayCount struct {
	Fingerprint string
	Day         time.Time
	N           int
}

// Count is a value and how often it occurs.
type Count struct {
	Value string
	N     int
}

// Incident is one dead worker as the logs tell it.
type Incident struct {
	ID         int64
	Host       string
	Time       time.Time
	Kind       string
	PID        int
	Pool       string
	Signal     int
	SignalName string
	Method     string
	URI        string
	Status     int
	Site       string
	Core       string
	// Source is the log that recorded the death (the incident's anchor:
	// "php-fpm", "kernel", "systemd-coredump", "apache-error").
	Source string
	// JSON is the logs.Incident as JSON.
	JSON string
	// Key is the incident's identity (see IncidentKey); RecordIncident
	// fills it when empty and stores an incident whose key is already
	// stored only once.
	Key string
}

// HourCount is the number of crashes of one group in one hour.
type HourCount struct {
	Fingerprint string
	Hour        time.Time
	N           int
}

// MetricRow is a crash count by host, fingerprint, rule, signal and pool,
// with the group's title and the time of the last of those crashes.
type MetricRow struct {
	Host, Fingerprint, Rule, Title, Signal, Pool string
	N                                            int
	Last                                         time.Time
}

// DeathRow is a count of worker deaths the logs recorded, by host, pool,
// signal and log source, with the time of the last one.
type DeathRow struct {
	Host, Pool, Signal, Source string
	N                          int
	Last                       time.Time
}

// Filter selects crashes; its zero value selects every crash. Groups
// found with a filter count only the crashes it selects.
type Filter struct {
	// Fingerprint, Host, Pool, Rule and Signal (a name: "SIGSEGV") must
	// match exactly when set.
	Fingerprint, Host, Pool, Rule, Signal string
	// URI must be contained in the crash's request URI.
	URI string
	// Text must be contained (case-insensitively) in the title, rule,
	// fingerprint or URI.
	Text string
	// Since and Until bound the crash time (Until excluded).
	Since, Until time.Time
	// States selects the groups in one of these states (nil: any).
	States []string
}

// Store is coroner's persistence.
type Store interface {
	// RecordCrash stores c (its ID is set), upserts its group and reports
	// whether the group is new. An empty pool or request is taken from the
	// log incident of the same host and pid within 10 minutes, if any.
	// Recording a crash whose Key is already stored changes nothing: c.ID
	// is set to the stored crash and newGroup is false.
	// A crash of a resolved group at or after its resolution marks it
	// regressed (c.Regressed is set), in the same transaction: of
	// concurrent writers, exactly one sees the regression.
	RecordCrash(ctx context.Context, c *Crash) (newGroup bool, err error)
	// RecordIncident stores a log incident and copies its request (URI,
	// method, pool) onto crashes of the same host and pid within 10 minutes
	// that lack one. Recording an incident whose Key is already stored
	// changes nothing (in.ID is set to the stored one).
	RecordIncident(ctx context.Context, in *Incident) error
	// FindIncident returns the latest incident of host and pid within
	// 10 minutes of t, or ErrNotFound.
	FindIncident(ctx context.Context, host string, pid int, t time.Time) (*Incident, error)
	// HasCore reports whether the core at path with this mtime was recorded.
	HasCore(ctx context.Context, path string, mtime time.Time) (bool, error)
	// Groups lists the groups, most recently seen first.
	Groups(ctx context.Context) ([]Group, error)
	// Group returns one group with its URIs and hosts.
	Group(ctx context.Context, fingerprint string) (*Group, error)
	// Crashes lists the crashes of a group ("" = all), newest first.
	Crashes(ctx context.Context, fingerprint string, limit int) ([]Crash, error)
	// Crash returns one crash with its Report.
	Crash(ctx context.Context, id int64) (*Crash, error)
	// Incidents lists log incidents, newest first.
	Incidents(ctx context.Context, limit int) ([]Incident, error)
	// Hourly counts crashes per hour per group since t.
	Hourly(ctx context.Context, since time.Time) ([]HourCount, error)
	// CrashCounts counts the crashes of host ("" = every host) by host,
	// fingerprint, rule, signal and pool.
	CrashCounts(ctx context.Context, host string) ([]MetricRow, error)
	// DeathCounts counts the log incidents (worker deaths) of host ("" =
	// every host) by host, pool, signal and source.
	DeathCounts(ctx context.Context, host string) ([]DeathRow, error)
	// FindGroups lists the groups of the crashes f selects, most recently
	// seen first, with their count, first and last seen among those.
	FindGroups(ctx context.Context, f Filter) ([]Group, error)
	// FindCrashes lists the crashes f selects, newest first, at most limit.
	FindCrashes(ctx context.Context, f Filter, limit int) ([]Crash, error)
	// SetGroupState sets the state of a group (StateNew, StateResolved or
	// StateIgnored; StateRegressed is the store's alone), recording who
	// set it and when (resolving also sets ResolvedAt), and returns the
	// group. A group that does not exist is ErrNotFound.
	SetGroupState(ctx context.Context, fingerprint, state, by string, at time.Time) (*Group, error)
	// Daily counts crashes per day (UTC) per group since t, in one query.
	Daily(ctx context.Context, since time.Time) ([]DayCount, error)
	// Ping checks that the database answers.
	Ping(ctx context.Context) error
	// Close closes the database.
	Close() error
}

// CrashKey is the identity of a crash, the same however often (and from
// wherever: the database, a spool, a restarted watcher) it is recorded: a
// hash of the host, the core's path, modification time (in nanoseconds)
// and size; for a crash without a core, of the host, time, pid, signal and
// fingerprint.
func CrashKey(c *Crash) string {
	h := sha256.New()
	if c.CorePath != "" {
		fmt.Fprintf(h, "core\x00%s\x00%s\x00%d\x00%d", c.Host, c.CorePath, nanos(c.CoreMTime), c.CoreSize)
	} else {
		fmt.Fprintf(h, "crash\x00%s\x00%d\x00%d\x00%d\x00%s", c.Host, nanos(c.Time), c.PID, c.Signal, c.Fingerprint)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// IncidentKey is the identity of a log incident: a hash of the host, time,
// kind, pid and its JSON (the whole logs.Incident).
func IncidentKey(in *Incident) string {
	h := sha256.New()
	fmt.Fprintf(h, "incident\x00%s\x00%d\x00%s\x00%d\x00%s", in.Host, nanos(in.Time), in.Kind, in.PID, in.JSON)
	return hex.EncodeToString(h.Sum(nil))
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// SQLitePath returns the file of a SQLite database name ("sqlite:PATH" or
// a plain PATH), and false for PostgreSQL or an unknown scheme.
func SQLitePath(dsn string) (string, bool) {
	switch {
	case strings.HasPrefix(dsn, "sqlite:"):
		return strings.TrimPrefix(dsn, "sqlite:"), true
	case dsn == "" || strings.Contains(dsn, "://"):
		return "", false
	}
	return dsn, true
}

// Open opens (creating and migrating) the database named by dsn:
// "sqlite:PATH", a plain PATH (SQLite), or "postgres://..." /
// "postgresql://...".
func Open(ctx context.Context, dsn string) (Store, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return openSQL(ctx, dialectPostgres, dsn)
	case strings.HasPrefix(dsn, "sqlite:"):
		return openSQL(ctx, dialectSQLite, strings.TrimPrefix(dsn, "sqlite:"))
	case strings.Contains(dsn, "://"):
		return nil, fmt.Errorf("open store %q: unknown database scheme (want sqlite:PATH or postgres://)", dsn)
	case dsn == "":
		return nil, errors.New("open store: empty database name")
	default:
		return openSQL(ctx, dialectSQLite, dsn)
	}
}
