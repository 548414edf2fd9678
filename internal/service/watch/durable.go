package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"sync"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/service/spool"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/units"
)

// Record kinds in the spool.
const (
	kindCrash    = 1
	kindIncident = 2
)

// incidentWindow is how far apart a log incident and a core of the same pid
// may be to belong together (as in the store).
const incidentWindow = 10 * time.Minute

// errSpoolFull says that a core cannot be recorded now: the database is
// unavailable and the spool is full. The core stays on disk and is taken
// again at a later poll.
var errSpoolFull = errors.New("database unavailable and spool full")

// durable is the store.Store the watcher writes through. While the
// database answers, writes go to it; while it is unavailable (see
// store.Unavailable), crashes and incidents are appended to the spool on
// local disk, and a background loop (run) writes them to the database in
// order once it is back. The database's identity keys make every write
// idempotent, so a record written again after a crash of the watcher is
// stored once. Reads other than those the watcher needs pass through.
type durable struct {
	store.Store // the database
	sp          *spool.Spool
	m           *Metrics
	log         *log.Logger
	timeout     time.Duration // of one database operation
	// onReplay is called for every spooled crash written to the database.
	onReplay func(c *store.Crash, newGroup bool)

	mu       sync.Mutex
	up       bool
	since    time.Time // when the database went away
	reason   string
	lastErr  string
	fullSaid bool
	// What the spool holds, for HasCore and FindIncident.
	cores     map[string]int
	incidents map[string]store.Incident
	wake      chan struct{}
}

func coreID(path string, mtime time.Time) string {
	return fmt.Sprintf("%s\x00%d", path, mtime.Unix())
}

// crashRecord is a spooled crash (payload format 1).
type crashRecord struct {
	Key         string        `json:"key"`
	Host        string        `json:"host"`
	Time        time.Time     `json:"time"`
	PID         int           `json:"pid"`
	Signal      int           `json:"signal"`
	SignalName  string        `json:"signal_name"`
	Pool        string        `json:"pool,omitempty"`
	Method      string        `json:"method,omitempty"`
	URI         string        `json:"uri,omitempty"`
	Fingerprint string        `json:"fingerprint"`
	Rule        string        `json:"rule,omitempty"`
	Title       string        `json:"title,omitempty"`
	CorePath    string        `json:"core_path,omitempty"`
	CoreSize    int64         `json:"core_size,omitempty"`
	CoreMTime   time.Time     `json:"core_mtime"`
	AnalysisMS  float64       `json:"analysis_ms,omitempty"`
	Report      *crash.Report `json:"report,omitempty"`
	// LogOnly and Site: a crash known from the logs alone (fields added
	// within format 1: an older spool has neither).
	LogOnly bool   `json:"log_only,omitempty"`
	Site    string `json:"site,omitempty"`
}

// incidentRecord is a spooled incident (payload format 1).
type incidentRecord struct {
	Key        string    `json:"key"`
	Host       string    `json:"host"`
	Time       time.Time `json:"time"`
	Kind       string    `json:"kind"`
	PID        int       `json:"pid"`
	Pool       string    `json:"pool,omitempty"`
	Signal     int       `json:"signal,omitempty"`
	SignalName string    `json:"signal_name,omitempty"`
	Method     string    `json:"method,omitempty"`
	URI        string    `json:"uri,omitempty"`
	Status     int       `json:"status,omitempty"`
	Site       string    `json:"site,omitempty"`
	Core       string    `json:"core,omitempty"`
	Source     string    `json:"source,omitempty"`
	JSON       string    `json:"json"`
}

func toCrashRecord(c *store.Crash) crashRecord {
	return crashRecord{Key: c.Key, Host: c.Host, Time: c.Time, PID: c.PID, Signal: c.Signal, SignalName: c.SignalName,
		Pool: c.Pool, Method: c.Method, URI: c.URI, Fingerprint: c.Fingerprint, Rule: c.Rule, Title: c.Title,
		CorePath: c.CorePath, CoreSize: c.CoreSize, CoreMTime: c.CoreMTime, AnalysisMS: c.AnalysisMS, Report: c.Report,
		LogOnly: c.LogOnly, Site: c.Site}
}

func (r crashRecord) crash() *store.Crash {
	return &store.Crash{Key: r.Key, Host: r.Host, Time: r.Time, PID: r.PID, Signal: r.Signal, SignalName: r.SignalName,
		Pool: r.Pool, Method: r.Method, URI: r.URI, Fingerprint: r.Fingerprint, Rule: r.Rule, Title: r.Title,
		CorePath: r.CorePath, CoreSize: r.CoreSize, CoreMTime: r.CoreMTime, AnalysisMS: r.AnalysisMS, Report: r.Report,
		LogOnly: r.LogOnly, Site: r.Site}
}

func toIncidentRecord(in *store.Incident) incidentRecord {
	return incidentRecord{Key: in.Key, Host: in.Host, Time: in.Time, Kind: in.Kind, PID: in.PID, Pool: in.Pool,
		Signal: in.Signal, SignalName: in.SignalName, Method: in.Method, URI: in.URI, Status: in.Status, Site: in.Site,
		Core: in.Core, Source: in.Source, JSON: in.JSON}
}

func (r incidentRecord) incident() *store.Incident {
	return &store.Incident{Key: r.Key, Host: r.Host, Time: r.Time, Kind: r.Kind, PID: r.PID, Pool: r.Pool,
		Signal: r.Signal, SignalName: r.SignalName, Method: r.Method, URI: r.URI, Status: r.Status, Site: r.Site,
		Core: r.Core, Source: r.Source, JSON: r.JSON}
}

// decodeRecord decodes a spooled record into a crash or an incident.
func decodeRecord(e spool.Entry) (*store.Crash, *store.Incident, error) {
	switch e.Kind {
	case kindCrash:
		var r crashRecord
		if err := json.Unmarshal(e.Payload, &r); err != nil {
			return nil, nil, fmt.Errorf("decode spooled crash: %w", err)
		}
		if r.Key == "" {
			return nil, nil, errors.New("decode spooled crash: no key")
		}
		return r.crash(), nil, nil
	case kindIncident:
		var r incidentRecord
		if err := json.Unmarshal(e.Payload, &r); err != nil {
			return nil, nil, fmt.Errorf("decode spooled incident: %w", err)
		}
		if r.Key == "" {
			return nil, nil, errors.New("decode spooled incident: no key")
		}
		return nil, r.incident(), nil
	}
	return nil, nil, fmt.Errorf("unknown spooled record kind %d", e.Kind)
}

// newDurable wraps st; sp may be nil (no spool: a write the database
// cannot take fails, as without this wrapper).
func newDurable(st store.Store, sp *spool.Spool, m *Metrics, lg *log.Logger, timeout time.Duration) (*durable, error) {
	d := &durable{Store: st, sp: sp, m: m, log: lg, timeout: timeout, up: true,
		cores: map[string]int{}, incidents: map[string]store.Incident{}, wake: make(chan struct{}, 1)}
	if sp == nil {
		return d, nil
	}
	err := sp.Walk(func(e spool.Entry) error {
		c, in, err := decodeRecord(e)
		if err == nil {
			d.remember(c, in)
		}
		return nil // run reports undecodable records when it reaches them
	})
	if err != nil {
		return nil, err
	}
	if n := sp.Len(); n > 0 {
		d.log.Printf("watch: spool %s holds %d records (%s) from an earlier run: writing them to the database",
			sp.Dir(), n, units.Bytes(sp.Bytes()))
	}
	return d, nil
}

// remember indexes a spooled record; forget drops it once written.
func (d *durable) remember(c *store.Crash, in *store.Incident) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c != nil && c.CorePath != "" {
		d.cores[coreID(c.CorePath, c.CoreMTime)]++
	}
	if in != nil {
		v := *in
		v.JSON = "" // not needed for lookups
		d.incidents[in.Key] = v
	}
}

func (d *durable) forget(c *store.Crash, in *store.Incident) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if c != nil && c.CorePath != "" {
		id := coreID(c.CorePath, c.CoreMTime)
		if d.cores[id]--; d.cores[id] <= 0 {
			delete(d.cores, id)
		}
	}
	if in != nil {
		delete(d.incidents, in.Key)
	}
}

// direct reports whether writes go straight to the database: it is up and
// nothing waits in the spool (which would be written first, in order).
func (d *durable) direct() bool {
	d.mu.Lock()
	up := d.up
	d.mu.Unlock()
	return up && (d.sp == nil || d.sp.Len() == 0)
}

func (d *durable) isUp() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.up
}

// markDown records that the database is unavailable because of err.
func (d *durable) markDown(err error) {
	d.m.dbErrors.Add(1)
	reason := store.Reason(err)
	d.mu.Lock()
	was, old := d.up, d.reason
	d.up = false
	if was {
		d.since = time.Now()
	}
	d.reason, d.lastErr = reason, err.Error()
	d.mu.Unlock()
	if was || old != reason {
		where := "nothing is spooled (no spool directory)"
		if d.sp != nil {
			where = "crashes and incidents are spooled in " + d.sp.Dir()
		}
		d.log.Printf("watch: database unavailable (%s): %v; %s until it is back", reason, err, where)
	}
}

// markUp records that the database answers again.
func (d *durable) markUp() {
	d.mu.Lock()
	was, since := d.up, d.since
	d.up, d.reason, d.lastErr, d.fullSaid = true, "", "", false
	d.mu.Unlock()
	if !was {
		d.log.Printf("watch: database back after %s", time.Since(since).Round(time.Second))
	}
}

// failed decides what to do after the database failed an operation:
// true means keep the record (spool it), false means return the error.
func (d *durable) failed(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true // shutting down: keep what is in hand
	}
	if store.Unavailable(err) {
		d.markDown(err)
		return true
	}
	return false
}

func (d *durable) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// append spools one record.
// cause is the database's error, nil when it was not asked (it is
// believed unavailable).
func (d *durable) append(kind byte, v any, c *store.Crash, in *store.Incident, cause error) error {
	if d.sp == nil {
		d.m.spoolDropped.Add(1)
		if cause == nil {
			d.mu.Lock()
			cause = fmt.Errorf("database unavailable (%s): %s", d.reason, d.lastErr)
			d.mu.Unlock()
		}
		return fmt.Errorf("%w (no spool to keep it)", cause)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode spooled record: %w", err)
	}
	if err := d.sp.Append(kind, b); err != nil {
		d.m.spoolDropped.Add(1)
		if errors.Is(err, spool.ErrFull) {
			d.mu.Lock()
			said := d.fullSaid
			d.fullSaid = true
			d.mu.Unlock()
			if !said {
				d.log.Printf("watch: %v: new cores wait on disk until the database is back; new log incidents are lost", err)
			}
			return fmt.Errorf("%w: %w", errSpoolFull, err)
		}
		return fmt.Errorf("database unavailable, and %w", err)
	}
	d.m.spooled.Add(1)
	d.remember(c, in)
	d.poke()
	return nil
}

func (d *durable) opCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, d.timeout)
}

// RecordCrash implements store.Store: to the database, or to the spool.
func (d *durable) RecordCrash(ctx context.Context, c *store.Crash) (bool, error) {
	if c.Time.IsZero() {
		c.Time = time.Now()
	}
	if c.Key == "" {
		c.Key = store.CrashKey(c)
	}
	var cause error
	if d.direct() {
		octx, cancel := d.opCtx(ctx)
		isNew, err := d.Store.RecordCrash(octx, c)
		cancel()
		if err == nil || !d.failed(ctx, err) {
			return isNew, err
		}
		cause = err
	}
	if err := d.append(kindCrash, toCrashRecord(c), c, nil, cause); err != nil {
		return false, fmt.Errorf("record crash of pid %d: %w", c.PID, err)
	}
	d.log.Printf("watch: crash of pid %d (%s) spooled until the database is back (%d waiting)", c.PID, c.CorePath, d.sp.Len())
	return false, nil
}

// RecordIncident implements store.Store: to the database, or to the spool.
func (d *durable) RecordIncident(ctx context.Context, in *store.Incident) error {
	if in.Key == "" {
		in.Key = store.IncidentKey(in)
	}
	var cause error
	if d.direct() {
		octx, cancel := d.opCtx(ctx)
		err := d.Store.RecordIncident(octx, in)
		cancel()
		if err == nil || !d.failed(ctx, err) {
			return err
		}
		cause = err
	}
	if err := d.append(kindIncident, toIncidentRecord(in), nil, in, cause); err != nil {
		return fmt.Errorf("record incident of pid %d: %w", in.PID, err)
	}
	return nil
}

// HasCore implements store.Store: a core waiting in the spool is known;
// while the database is unavailable any other core is not (it is
// analysed, and recorded once thanks to its key), unless the spool is
// full (then it waits on disk).
func (d *durable) HasCore(ctx context.Context, path string, mtime time.Time) (bool, error) {
	d.mu.Lock()
	n := d.cores[coreID(path, mtime)]
	d.mu.Unlock()
	if n > 0 {
		return true, nil
	}
	if d.isUp() {
		octx, cancel := d.opCtx(ctx)
		has, err := d.Store.HasCore(octx, path, mtime)
		cancel()
		if err == nil || !d.failed(ctx, err) {
			return has, err
		}
	}
	if d.sp != nil && d.full() {
		return false, errSpoolFull
	}
	return false, nil
}

// full reports whether the spool takes no more crashes.
func (d *durable) full() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fullSaid
}

// FindIncident implements store.Store, looking in the spool first.
func (d *durable) FindIncident(ctx context.Context, host string, pid int, t time.Time) (*store.Incident, error) {
	d.mu.Lock()
	var best *store.Incident
	for _, in := range d.incidents {
		if in.Host != host || in.PID != pid || in.Time.Sub(t).Abs() > incidentWindow {
			continue
		}
		if best == nil || in.Time.After(best.Time) {
			v := in
			best = &v
		}
	}
	d.mu.Unlock()
	if best != nil {
		return best, nil
	}
	if !d.isUp() {
		return nil, store.ErrNotFound
	}
	octx, cancel := d.opCtx(ctx)
	in, err := d.Store.FindIncident(octx, host, pid, t)
	cancel()
	if err != nil && !errors.Is(err, store.ErrNotFound) && d.failed(ctx, err) {
		return nil, store.ErrNotFound
	}
	return in, err
}

// Ping implements store.Store.
func (d *durable) Ping(ctx context.Context) error {
	octx, cancel := d.opCtx(ctx)
	defer cancel()
	return d.Store.Ping(octx)
}

// run writes the spool to the database whenever it is available, oldest
// record first, retrying with backoff while it is not, and probes the
// database every probeEvery while nothing is spooled. It returns when ctx
// is done.
func (d *durable) run(ctx context.Context, probeEvery time.Duration) {
	b := store.Backoff{Min: time.Second, Max: 15 * time.Second}
	sleep := func(t time.Duration) bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(t):
			return true
		}
	}
	started, written := time.Time{}, 0
	for ctx.Err() == nil {
		if d.sp != nil && d.sp.Len() > 0 {
			if started.IsZero() {
				started = time.Now()
			}
			ok, err := d.replayOne(ctx)
			if err != nil {
				if written == 0 {
					started = time.Time{} // measure from when the database takes writes
				}
				if !sleep(b.Next()) {
					return
				}
				continue
			}
			if ok {
				written++
			}
			b.Reset()
			continue
		}
		if written > 0 {
			d.log.Printf("watch: spool written to the database: %d records in %s", written, time.Since(started).Round(100*time.Millisecond))
		}
		started, written = time.Time{}, 0
		d.mu.Lock()
		if d.sp != nil && len(d.cores)+len(d.incidents) > 0 && d.sp.Len() == 0 {
			// Records the spool dropped as damaged after they were indexed.
			clear(d.cores)
			clear(d.incidents)
		}
		d.mu.Unlock()
		if !d.isUp() {
			if err := d.Ping(ctx); err == nil {
				d.markUp()
				b.Reset()
			} else if d.failed(ctx, err) && !sleep(b.Next()) {
				return
			}
			continue
		}
		select {
		case <-ctx.Done():
			return
		case <-d.wake:
		case <-time.After(probeEvery):
			if err := d.Ping(ctx); err != nil {
				d.failed(ctx, err)
			}
		}
	}
}

// replayOne writes the oldest spooled record to the database. It returns
// an error when the database is (still) unavailable; ok tells whether a
// record was written.
func (d *durable) replayOne(ctx context.Context) (ok bool, err error) {
	e, found, err := d.sp.Peek()
	if err != nil {
		d.log.Printf("watch: %v", err)
		return false, err
	}
	if !found {
		return false, nil
	}
	c, in, err := decodeRecord(e)
	if err != nil {
		d.m.spoolDamaged.Add(1)
		d.log.Printf("watch: spool: %s: %v; skipped", e.Where(), err)
		return false, d.sp.Ack(e)
	}
	octx, cancel := d.opCtx(ctx)
	var newGroup bool
	if c != nil {
		newGroup, err = d.Store.RecordCrash(octx, c)
	} else {
		err = d.Store.RecordIncident(octx, in)
	}
	cancel()
	if err != nil {
		if store.Unavailable(err) || ctx.Err() != nil {
			if ctx.Err() == nil {
				d.markDown(err)
			}
			return false, err
		}
		// The database refuses this record for good: keep it from
		// blocking the others.
		d.m.spoolDropped.Add(1)
		d.log.Printf("watch: the database refused a spooled record (%s): %v; dropped", describe(c, in), err)
	} else {
		d.m.replayed.Add(1)
		d.markUp()
	}
	if err := d.sp.Ack(e); err != nil {
		d.log.Printf("watch: %v", err)
		return false, err
	}
	d.forget(c, in)
	if err == nil && c != nil && d.onReplay != nil {
		d.onReplay(c, newGroup)
	}
	return err == nil, nil
}

func describe(c *store.Crash, in *store.Incident) string {
	if c != nil {
		return fmt.Sprintf("crash of pid %d, core %s", c.PID, c.CorePath)
	}
	return fmt.Sprintf("incident of pid %d at %s", in.PID, in.Time.Format(time.RFC3339))
}

// DBHealth is the database state as the watcher sees it.
type DBHealth struct {
	// Up is false while the database does not answer or refuses writes.
	Up bool
	// Since is when it went away, Reason and Err why (when !Up).
	Since       time.Time
	Reason, Err string
	// Spooled and SpoolBytes are what waits in the spool.
	Spooled    int
	SpoolBytes int64
}

// health pings the database when it is believed up (a database that went
// away while nothing was written is noticed) and returns the state.
func (d *durable) health(ctx context.Context) DBHealth {
	if d.isUp() {
		if err := d.Ping(ctx); err != nil {
			if d.failed(ctx, err) {
				d.poke()
			}
		}
	}
	d.mu.Lock()
	h := DBHealth{Up: d.up, Since: d.since, Reason: d.reason, Err: d.lastErr}
	d.mu.Unlock()
	if d.sp != nil {
		h.Spooled, h.SpoolBytes = d.sp.Len(), d.sp.Bytes()
	}
	return h
}

// Problems describes what is not right, one line each (none: healthy).
func (h DBHealth) Problems() []string {
	var out []string
	if !h.Up {
		out = append(out, fmt.Sprintf("database: unavailable since %s (%s): %s",
			h.Since.UTC().Format(time.RFC3339), h.Reason, h.Err))
	}
	if h.Spooled > 0 {
		what := "waiting for the database"
		if h.Up {
			what = "being written to the database"
		}
		out = append(out, fmt.Sprintf("spool: %d records (%s) %s", h.Spooled, units.Bytes(h.SpoolBytes), what))
	}
	return out
}
