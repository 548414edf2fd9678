// Package watch is the engine of `coroner watch`: it follows the logs, notices
// new cores in the core directories, analyses them in a bounded worker pool,
// groups them by fingerprint in a store.Store, keeps the managed core
// directories within a retention policy and runs alert hooks on new groups.
package watch

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/service/spool"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// Config configures a Watcher. Only Store is required.
type Config struct {
	Store store.Store
	// SpoolDir keeps the crashes and incidents the database cannot take
	// while it is unavailable (store.Unavailable), fsync'd, until they are
	// written to it, in order, once it is back. "" disables the spool: such
	// a record is then lost (the error is logged).
	SpoolDir string
	// SpoolMaxBytes bounds the spool (default 256 MiB).
	SpoolMaxBytes int64
	// DBTimeout bounds one database operation (default 20s); a database
	// that does not answer within it is unavailable.
	DBTimeout time.Duration
	// Host is recorded with every crash (default os.Hostname).
	Host string
	// CoreDirs are the core directories this watcher manages: new cores in
	// them are analysed and retention may delete cores there (and only there).
	CoreDirs []string
	// Discover also analyses cores that cores.Discover finds on the host
	// (core_pattern, systemd-coredump, Apport, ABRT): plain, compressed
	// (systemd-coredump's .zst), embedded in an Apport .crash report or
	// kept in systemd's journal (Storage=journal, named journal:PID:USEC);
	// those are never deleted.
	Discover bool
	// Stores overrides where discovery looks (SystemdDir, ApportCrashDir,
	// ApportCoreDir, ABRTDirs, Journal, Sources; tests); the zero value
	// is the host's usual places.
	Stores coredumps.DiscoverOptions
	// DiscoverEvery is how often discovery runs (default 30s).
	DiscoverEvery time.Duration
	// Logs are followed for incidents; empty disables log following.
	Logs []logs.Input
	// LogsFromStart reads the logs from their beginning (default: from the end).
	LogsFromStart bool
	// Since, when set, is where watching starts: cores of crashes before
	// it are neither analysed nor recorded (those of managed directories
	// stay subject to retention), and the logs are read from their
	// beginning with their incidents before it left out.
	Since time.Time
	// AllProcesses records the crashes of every process; by default only
	// PHP processes' incidents and cores are recorded (php-fpm, php, Apache
	// with mod_php, FrankenPHP), the others are counted in /metrics
	// (coroner_other_process_crashes_total).
	AllProcesses bool
	// ModPHP is what the host's Apache configuration says of mod_php
	// (nil: not read): Apache's children are PHP processes only with it
	// (see logs.Options.ModPHP).
	ModPHP *logs.ModPHP
	// Workers bounds concurrent analyses (default 1).
	Workers int
	// Queue bounds the cores waiting for analysis (default 64). A core that
	// finds the queue full stays on disk and is retried at the next poll.
	Queue int
	// Poll is how often the core directories are listed (default 1s).
	Poll time.Duration
	// Settle is how long a core's size and mtime must stay unchanged before
	// it is analysed (default 2s).
	Settle time.Duration
	// Retention of the managed directories; zero values disable each limit.
	KeepCores    int
	MaxCoreBytes int64
	MaxCoreAge   time.Duration
	// Webhook receives a JSON POST for every new crash group.
	Webhook string
	// OnNewGroup is run with sh -c for every new crash group, with the group
	// in CORONER_* environment variables.
	OnNewGroup string
	// OnRegression is run as OnNewGroup is, when a crash reopens a
	// resolved group (the store marks it regressed), with CORONER_EVENT
	// "regressed".
	OnRegression string
	// HookUser is the user OnNewGroup and OnRegression run as when the watcher runs as
	// root (default "nobody"; "root" keeps root): with that user's uid,
	// primary group and no supplementary groups, its home as HOME and "/"
	// as working directory. A watcher that is not root runs the hook as
	// itself.
	HookUser string
	// Analyze are the analysis options (ShowSecrets etc.).
	Analyze analyze.Options
	// Isolate, when set, analyses each core in a child process with its
	// own memory and time budget, and quarantines a core that makes it die
	// (see Isolation). `coroner watch` always sets it; nil analyses in
	// this process (tests, embedding).
	Isolate *Isolation
	// Rules are extra rule files for the knowledge base.
	Rules []string
	// Nice is the scheduling priority the process lowers itself to
	// (default 10; negative keeps the current one).
	Nice int
	// Logger receives operational messages (default: standard logger).
	Logger *log.Logger
	// Events receives the structured log: one line per analysis, new
	// group, failure, quarantine, retention deletion and worker death,
	// each with an "event" attribute (EventCrashRecorded...). Default:
	// key=value text through Logger.
	Events *slog.Logger
}

// Watcher runs the watch loop. Create it with New, run it with Run.
type Watcher struct {
	cfg     Config
	engine  *engine.Engine
	queue   chan job
	Metrics *Metrics
	log     *log.Logger
	ev      *slog.Logger
	db      *durable
	quar    *quarantine

	mu       sync.Mutex
	inflight map[string]bool // cores queued or being analysed
	seen     map[string]fileState
	alerts   chan Alert
}

type job struct {
	path  string
	size  int64
	mtime time.Time
}

// New validates cfg, loads the knowledge base and returns a Watcher.
func New(cfg Config) (*Watcher, error) {
	if cfg.Store == nil {
		return nil, errors.New("watch: no store")
	}
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("watch: hostname: %w", err)
		}
		cfg.Host = h
	}
	if cfg.Workers <= 0 {
		cfg.Workers = 1
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 64
	}
	if cfg.Poll <= 0 {
		cfg.Poll = time.Second
	}
	if cfg.Settle <= 0 {
		cfg.Settle = 2 * time.Second
	}
	if cfg.DiscoverEvery <= 0 {
		cfg.DiscoverEvery = 30 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = log.Default()
	}
	if cfg.DBTimeout <= 0 {
		cfg.DBTimeout = 20 * time.Second
	}
	if cfg.OnNewGroup != "" || cfg.OnRegression != "" {
		if cfg.HookUser == "" {
			cfg.HookUser = "nobody"
		}
		if _, err := hookCredential(cfg.HookUser); err != nil {
			return nil, fmt.Errorf("watch: --hook-user: %w", err)
		}
	}
	if cfg.Webhook != "" {
		if _, err := ValidateWebhook(cfg.Webhook); err != nil {
			return nil, fmt.Errorf("watch: %w", err)
		}
	}
	if cfg.Isolate != nil {
		iso := *cfg.Isolate
		iso.defaults()
		if iso.Executable == "" {
			return nil, errors.New("watch: isolation without the coroner executable")
		}
		cfg.Isolate = &iso
	}
	eng := engine.New(engine.Options{Analyze: cfg.Analyze, Rules: cfg.Rules,
		Discover: coredumps.DiscoverOptions{Journal: cfg.Stores.Journal, JournalTimeout: cfg.Stores.JournalTimeout}})
	if _, err := eng.KnowledgeBase(); err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	w := &Watcher{
		cfg:      cfg,
		engine:   eng,
		queue:    make(chan job, cfg.Queue),
		Metrics:  newMetrics(),
		log:      cfg.Logger,
		ev:       cfg.Events,
		inflight: map[string]bool{},
		seen:     map[string]fileState{},
		alerts:   make(chan Alert, 16),
	}
	if w.ev == nil {
		w.ev = textLogger(cfg.Logger)
	}
	var sp *spool.Spool
	var err error
	if cfg.Isolate != nil {
		if w.quar, err = openQuarantine(cfg.Isolate.QuarantineFile, cfg.Isolate.MaxFailures); err != nil {
			return nil, fmt.Errorf("watch: %w", err)
		}
		q := w.quar
		w.Metrics.quarantined = func() int { return len(q.list()) }
		for _, e := range q.list() {
			w.event(slog.LevelWarn, "core stays quarantined", EventQuarantined, slog.String("core", e.Path),
				slog.Int("failures", e.Failures), slog.String("reason", e.Reason))
		}
	}
	if cfg.SpoolDir != "" {
		sp, err = spool.Open(cfg.SpoolDir, spool.Options{MaxBytes: cfg.SpoolMaxBytes,
			Logf: func(format string, args ...any) { w.log.Printf("watch: "+format, args...) }})
		if err != nil {
			return nil, fmt.Errorf("watch: %w", err)
		}
		w.Metrics.spool = func() (int, int64, int64) { return sp.Len(), sp.Bytes(), sp.Damaged() }
	}
	w.db, err = newDurable(cfg.Store, sp, w.Metrics, w.log, cfg.DBTimeout)
	if err != nil {
		if sp != nil {
			sp.Close()
		}
		return nil, fmt.Errorf("watch: %w", err)
	}
	w.db.onReplay = func(c *store.Crash, newGroup bool) { w.announce(c, newGroup) }
	w.cfg.Store = w.db
	return w, nil
}

// Health reports the database as the watcher sees it (pinging it when it
// is believed up) and what waits in the spool.
func (w *Watcher) Health(ctx context.Context) DBHealth { return w.db.health(ctx) }

// Host is the host name recorded with this watcher's crashes.
func (w *Watcher) Host() string { return w.cfg.Host }

// Run watches until ctx is done.
func (w *Watcher) Run(ctx context.Context) error {
	if w.cfg.Nice >= 0 {
		nice := w.cfg.Nice
		if nice == 0 {
			nice = 10
		}
		if err := lowerPriority(nice); err != nil {
			w.log.Printf("watch: %v", err)
		}
	}
	var wg sync.WaitGroup
	for i := 0; i < w.cfg.Workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); w.worker(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); w.alerter(ctx) }()
	if len(w.cfg.Logs) > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); w.followLogs(ctx) }()
	}
	wg.Add(1)
	go func() { defer wg.Done(); w.scanLoop(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); w.db.run(ctx, 5*time.Second) }()
	wg.Wait()
	if w.db.sp != nil {
		if err := w.db.sp.Close(); err != nil {
			return fmt.Errorf("watch: %w", err)
		}
	}
	return nil
}

func (w *Watcher) followLogs(ctx context.Context) {
	// Kernel fault lines are symbolized as `coroner logs` does: a
	// log-only crash is grouped by the function it crashed in.
	sym := logs.NewObjectSymbolizer()
	defer sym.Close()
	opts := logs.Options{Inputs: w.cfg.Logs, AllProcesses: w.cfg.AllProcesses, ModPHP: w.cfg.ModPHP, Symbolizer: sym}
	fo := logs.FollowOptions{FromStart: w.cfg.LogsFromStart || !w.cfg.Since.IsZero()}
	if len(w.cfg.CoreDirs) > 0 {
		fo.Cores = func() []*coredumps.Entry {
			entries, _ := coredumps.Discover(coredumps.DiscoverOptions{
				Sources: []string{coredumps.SourceDir}, Dirs: w.cfg.CoreDirs, NoJournal: true, Quick: true,
			})
			return entries
		}
	}
	err := logs.Follow(ctx, opts, fo, func(inc *logs.Incident) {
		if !inc.Time.IsZero() && inc.Time.Before(w.cfg.Since) {
			return
		}
		if err := w.RecordIncident(ctx, inc); err != nil {
			w.log.Printf("watch: %v", err)
		}
	})
	if err != nil {
		w.log.Printf("watch: follow logs: %v", err)
	}
}

func (w *Watcher) worker(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-w.queue:
			w.Metrics.queue.Add(-1)
			w.Metrics.busy.Add(1)
			err := w.analyse(ctx, j)
			w.Metrics.busy.Add(-1)
			w.mu.Lock()
			delete(w.inflight, j.path)
			if errors.Is(err, errSpoolFull) || errors.Is(err, errRetry) {
				// Not recorded: taken again once the database is back,
				// or at the next poll for another try.
				delete(w.seen, j.path)
			}
			w.mu.Unlock()
			if err != nil && !errors.Is(err, errSpoolFull) {
				w.Metrics.failures.Add(1)
				w.event(slog.LevelError, "analysis failed", EventAnalysisFailed, slog.String("core", j.path),
					slog.Bool("retry", errors.Is(err, errRetry)), slog.String("error", err.Error()))
			}
		}
	}
}

// errRetry marks a core whose analysis process died once: it is analysed
// again at the next poll, and quarantined when that fails too.
var errRetry = errors.New("analysed again at the next poll")

// analyse runs the pipeline on one core and records the report.
func (w *Watcher) analyse(ctx context.Context, j job) error {
	if w.cfg.Isolate != nil {
		return w.analyseApart(ctx, j)
	}
	info := RecordInfo{CorePath: j.path, CoreSize: j.size, CoreMTime: j.mtime, Started: time.Now()}
	var inc *store.Incident
	rep, err := w.engine.Run(ctx, engine.Request{
		Core: engine.Core{Path: j.path},
		Evidence: func(rep *crash.Report) diagnose.Evidence {
			inc = w.findIncident(ctx, rep.Process.PID, info.crashTime())
			return evidenceOf(inc)
		},
	})
	if err != nil {
		// Remember the failure so the core is not retried in a loop.
		w.mu.Lock()
		w.seen[j.path] = fileState{size: j.size, mtime: j.mtime, done: true}
		w.mu.Unlock()
		return fmt.Errorf("analyse %s: %w", j.path, err)
	}
	if !w.cfg.AllProcesses && !diagnose.IsPHPProcess(rep) {
		// Not a PHP process: counted, not recorded (remembered as done).
		w.Metrics.others.Add(1)
		w.event(slog.LevelInfo, "core skipped: not a PHP process", EventCoreSkipped, slog.String("core", j.path),
			slog.Int("pid", rep.Process.PID), slog.String("signal", rep.Signal.Name))
		w.mu.Lock()
		w.seen[j.path] = fileState{size: j.size, mtime: j.mtime, done: true}
		w.mu.Unlock()
		return nil
	}
	_, err = w.store(ctx, rep, inc, info)
	return err
}

// analyseApart analyses one core in a child process (Isolation), then
// diagnoses the report with what the logs say, redacts it (unless
// ShowSecrets) and records it. A core whose child died is tried again,
// then quarantined.
func (w *Watcher) analyseApart(ctx context.Context, j job) error {
	info := RecordInfo{CorePath: j.path, CoreSize: j.size, CoreMTime: j.mtime, Started: time.Now()}
	rep, err := w.analyseIsolated(ctx, j.path)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // stopping: not the core's fault
		}
		w.mu.Lock()
		w.seen[j.path] = fileState{size: j.size, mtime: j.mtime, done: true}
		w.mu.Unlock()
		if !errors.Is(err, errChildFailed) {
			return fmt.Errorf("analyse %s: %w", j.path, err)
		}
		w.Metrics.childFailures.Add(1)
		e := w.quar.fail(j.path, j.size, j.mtime, err.Error())
		if e.Quarantined {
			w.event(slog.LevelWarn, "core quarantined: it is not analysed again while it is unchanged", EventQuarantined,
				slog.String("core", j.path), slog.Int("failures", e.Failures), slog.String("reason", err.Error()))
			return nil
		}
		return fmt.Errorf("analyse %s (failure %d of %d before quarantine): %w: %w", j.path, e.Failures, w.cfg.Isolate.MaxFailures, err, errRetry)
	}
	w.quar.forget(j.path)
	rep.Process.CorePath = absPath(j.path)
	if _, err := w.Record(ctx, rep, info); err != nil {
		return err
	}
	return nil
}

// RecordInfo describes where a report came from.
type RecordInfo struct {
	CorePath  string
	CoreSize  int64
	CoreMTime time.Time
	// Started is when the analysis began; the analysis duration is measured
	// from it up to the diagnosis (zero: not measured).
	Started time.Time
}

// crashTime is when the crash happened, as far as the watcher knows.
func (info RecordInfo) crashTime() time.Time {
	if info.CoreMTime.IsZero() {
		return time.Now()
	}
	return info.CoreMTime
}

// Record diagnoses a report analysed elsewhere (with what the logs said
// about the same pid), fingerprints it, stores it and alerts when its group
// is new: the end of the pipeline every analysed core takes.
func (w *Watcher) Record(ctx context.Context, rep *crash.Report, info RecordInfo) (*store.Crash, error) {
	inc := w.findIncident(ctx, rep.Process.PID, info.crashTime())
	if err := w.engine.Diagnose(rep, evidenceOf(inc)); err != nil {
		return nil, err
	}
	if !w.cfg.Analyze.ShowSecrets {
		redact.InPlace(rep) // after the diagnosis, as engine.Run does
	}
	return w.store(ctx, rep, inc, info)
}

func absPath(p string) string {
	if isJournalName(p) {
		return p // a core kept in the journal: its name
	}
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return p
}

// findIncident returns the incident the logs recorded for the crash of
// pid around t, or nil.
func (w *Watcher) findIncident(ctx context.Context, pid int, t time.Time) *store.Incident {
	inc, err := w.cfg.Store.FindIncident(ctx, w.cfg.Host, pid, t)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		w.log.Printf("watch: %v", err)
	}
	return inc
}

// evidenceOf is what an incident tells the diagnosis.
func evidenceOf(inc *store.Incident) diagnose.Evidence {
	var ev diagnose.Evidence
	if inc != nil {
		ev.ExitSignal = inc.Signal
	}
	return ev
}

// store stores a diagnosed report and alerts when its group is new.
func (w *Watcher) store(ctx context.Context, rep *crash.Report, inc *store.Incident, info RecordInfo) (*store.Crash, error) {
	trimReport(rep)
	var ms float64
	if !info.Started.IsZero() {
		d := time.Since(info.Started)
		ms = float64(d) / float64(time.Millisecond)
		w.Metrics.observe(d)
	}
	c := &store.Crash{
		Host: w.cfg.Host, Time: info.crashTime(), PID: rep.Process.PID, Signal: rep.Signal.Number, SignalName: rep.Signal.Name,
		Fingerprint: rep.Fingerprint, CorePath: info.CorePath, CoreSize: info.CoreSize, CoreMTime: info.CoreMTime,
		AnalysisMS: ms, Report: rep,
	}
	if len(rep.Diagnosis) > 0 {
		c.Rule, c.Title = rep.Diagnosis[0].Rule, rep.Diagnosis[0].Title
	}
	if rep.PHP != nil && rep.PHP.Request != nil {
		c.Method, c.URI = rep.PHP.Request.Method, rep.PHP.Request.URI
		if c.URI != "" && rep.PHP.Request.Query != "" && !strings.Contains(c.URI, "?") {
			c.URI += "?" + rep.PHP.Request.Query
		}
	}
	if inc != nil {
		if c.URI == "" {
			c.Method, c.URI = inc.Method, inc.URI
		}
		c.Pool = inc.Pool
	}
	isNew, err := w.cfg.Store.RecordCrash(ctx, c)
	if err != nil {
		return nil, err
	}
	w.Metrics.recorded.Add(1)
	attrs := append(crashAttrs(c), slog.Bool("new_group", isNew), slog.Float64("analysis_ms", float64(int64(ms*10))/10))
	w.event(slog.LevelInfo, "crash recorded", EventCrashRecorded, attrs...)
	w.announce(c, isNew)
	return c, nil
}

// announce logs and alerts a recorded crash that made a new group or
// reopened a resolved one.
func (w *Watcher) announce(c *store.Crash, newGroup bool) {
	switch {
	case newGroup:
		w.Metrics.groups.Add(1)
		w.event(slog.LevelInfo, "new crash group", EventNewGroup, crashAttrs(c)...)
		w.enqueueAlert(c, AlertEventNewGroup)
	case c.Regressed:
		w.Metrics.regressions.Add(1)
		w.event(slog.LevelWarn, "resolved crash group crashed again", EventRegressed, crashAttrs(c)...)
		w.enqueueAlert(c, AlertEventRegressed)
	}
}

// RecordIncident stores one incident from the logs.
func (w *Watcher) RecordIncident(ctx context.Context, inc *logs.Incident) error {
	if !w.cfg.Analyze.ShowSecrets {
		inc = redact.Value(inc) // log lines and URLs, as every output shows them
	}
	body, err := jsonMarshal(inc)
	if err != nil {
		return fmt.Errorf("encode incident: %w", err)
	}
	in := &store.Incident{
		Host: w.cfg.Host, Time: inc.Time, Kind: inc.Kind, PID: inc.PID, Pool: inc.Pool, Signal: inc.Signal,
		SignalName: inc.SignalName, Method: inc.Method, URI: inc.URI, Status: inc.Status, Site: inc.Site,
		Core: inc.Core, JSON: string(body),
	}
	if len(inc.Links) > 0 {
		in.Source = string(inc.Links[0].Source) // the anchor: the record of the death
	}
	if err := w.cfg.Store.RecordIncident(ctx, in); err != nil {
		return err
	}
	w.Metrics.incidents.Add(1)
	attrs := []slog.Attr{slog.String("kind", in.Kind), slog.Int("pid", in.PID), slog.String("signal", in.SignalName), slog.String("source", in.Source)}
	if in.Pool != "" {
		attrs = append(attrs, slog.String("pool", in.Pool))
	}
	if in.URI != "" {
		attrs = append(attrs, slog.String("uri", in.URI))
	}
	if in.Core != "" {
		attrs = append(attrs, slog.String("core", in.Core))
	}
	w.event(slog.LevelInfo, "worker died", EventWorkerDeath, attrs...)
	if logOnly(inc) {
		return w.recordLogOnly(ctx, in)
	}
	return nil
}

// logOnly reports whether an incident is a crash no core will tell more
// of: a fatal signal, no core linked, and no word that one was dumped.
func logOnly(inc *logs.Incident) bool {
	return inc.Kind == "crash" && inc.Core == "" && !inc.CoreDumped
}

// recordLogOnly records the crash of a log-only incident, grouped by its
// logged crash site (symbolized) and request path (diagnose.LogFingerprint).
func (w *Watcher) recordLogOnly(ctx context.Context, in *store.Incident) error {
	fp := diagnose.LogFingerprint(in.Signal, in.Site, in.URI)
	if fp == "" {
		return nil // nothing to group it by: counted as a worker death only
	}
	c := &store.Crash{Host: in.Host, Time: in.Time, PID: in.PID, Signal: in.Signal, SignalName: in.SignalName, Pool: in.Pool,
		Method: in.Method, URI: in.URI, Fingerprint: fp, LogOnly: true, Site: in.Site}
	isNew, err := w.cfg.Store.RecordCrash(ctx, c)
	if err != nil {
		return fmt.Errorf("record log-only crash: %w", err)
	}
	if c.Superseded {
		return nil // its core was analysed first: recorded with it
	}
	w.Metrics.recorded.Add(1)
	w.event(slog.LevelInfo, "log-only crash recorded", EventCrashRecorded,
		append(crashAttrs(c), slog.Bool("log_only", true), slog.String("site", in.Site), slog.Bool("new_group", isNew))...)
	w.announce(c, isNew)
	return nil
}

// lowerPriority sets the nice value of every thread of the process (on
// Linux, setpriority(PRIO_PROCESS, 0) changes only the calling thread);
// threads created later inherit it from their creator.
func lowerPriority(nice int) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, nice); err != nil {
			return fmt.Errorf("set priority %d: %w", nice, err)
		}
		return nil
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := syscall.Setpriority(syscall.PRIO_PROCESS, tid, nice); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("set priority %d of thread %d: %w", nice, tid, err)
		}
	}
	return nil
}
