// Package doctor joins every source of evidence coroner has — the logs, the
// host's configuration, the cores and their analyses — into one diagnosis
// per crash group: what is crashing (URIs, rate, since when), the best
// explanation, the evidence, the fix, and what to do when evidence is
// missing. It is the driver behind `coroner doctor`.
package doctor

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// Options say where to look and how much to do.
type Options struct {
	// Root is the host tree to audit and search ("" = this machine).
	Root string
	// Logs are log files to read; empty discovers the host's logs.
	Logs []string
	// CoreDirs are extra directories (or files) holding cores.
	CoreDirs []string
	// Journal is the journal whose systemd-coredump records (and the cores
	// kept in them) are read: a directory or a journal file; "" is the
	// host's, or ROOT/var/log/journal with Root when it exists.
	Journal string
	// Since and Until restrict the logs and cores considered.
	Since, Until time.Time
	// Location is the zone of log times written without one and of the
	// times the renderers show (nil: time.Local).
	Location *time.Location
	// BootTime dates the kernel's seconds-since-boot stamps (zero:
	// inferred from the logs, else this host's).
	BootTime time.Time
	// Progress, when set, is told of each core as its analysis starts:
	// the how-manieth of how many, and its path.
	Progress func(n, total int, path string)
	// MaxCores bounds how many cores are analysed (newest first; default 5).
	MaxCores int
	// Rules are extra rules files for the knowledge base.
	Rules []string
	// FPMConfig and PHPIniScanDir point the audit at a non-standard FPM
	// setup, ApacheConfig at a non-standard Apache with mod_php (see
	// audit.Options).
	FPMConfig, PHPIniScanDir, ApacheConfig string
	// NoAudit, NoLogs and NoCores skip a source.
	NoAudit, NoLogs, NoCores bool
	// ShowSecrets disables redaction of cookies and credentials.
	ShowSecrets bool
	// AllProcesses groups and diagnoses the crashes of every process; by
	// default only PHP processes are (php-fpm, php, Apache with mod_php,
	// FrankenPHP) and the others are summed up in Result.Others.
	AllProcesses bool
	// NoLive skips the running workers; BusyOver is how long a request
	// must have run for its worker to be looked at (default: the pool's
	// request_slowlog_timeout, else 10 s).
	NoLive   bool
	BusyOver time.Duration
	// Timeout and MaxMemory bound each core's analysis (see
	// analyze.Options; 0: unbounded).
	Timeout   time.Duration
	MaxMemory int64
	// MaxCoreSize bounds the decompression of a compressed core (see
	// engine.Options).
	MaxCoreSize int64
	// Sources supply the evidence; nil means Host(options).
	Sources Sources
}

// Result is the outcome of a doctor run.
type Result struct {
	Host string    `json:"host"`
	Time time.Time `json:"time"`
	// Logs is what the logs say (nil when skipped).
	Logs *logs.Result `json:"logs,omitempty"`
	// Audit is the configuration audit (nil when skipped or failed).
	Audit *audit.Report `json:"audit,omitempty"`
	// Cores are the cores found on the host, newest first.
	Cores []*coredumps.Entry `json:"cores"`
	// Analysed is how many cores were analysed.
	Analysed int `json:"analysed"`
	// Groups are the crash groups, most frequent first.
	Groups []*Group `json:"groups"`
	// Others are the crashes of processes that are not PHP, one line per
	// program, neither grouped nor diagnosed (unless AllProcesses).
	Others []*OtherProcess `json:"other_processes"`
	// Pools are the FPM pools that crashed, as the audit sees them, with
	// where the crashes contradict it.
	Pools []*CrashedPool `json:"crashed_pools"`
	// Missing says which evidence is missing and how to get it.
	Missing []string `json:"missing"`
	// Warnings are problems met along the way.
	Warnings []string `json:"warnings"`
	// Busy are the workers serving one request for too long right now,
	// with their snapshots (hangs, slow requests).
	Busy []*BusyWorker `json:"busy,omitempty"`
}

// Group is one crash family on this host: the crashes that share a
// fingerprint (when cores were analysed) or a crash site (logs only).
type Group struct {
	// Key is the fingerprint, or "site:..." for groups known from logs only.
	Key string `json:"key"`
	// Diagnosis lists the matching known crash families, best first.
	Diagnosis []crash.Diagnosis `json:"diagnosis"`
	// Report is the analysis of the newest core of the group (nil when
	// the group is known from logs only).
	Report *crash.Report `json:"report,omitempty"`
	// Cores are the analysed cores of the group.
	Cores []string `json:"cores,omitempty"`
	// Incidents are the log incidents of the group.
	Incidents []*logs.Incident `json:"incidents,omitempty"`
	// Count is the number of crashes (incidents, else cores).
	Count int `json:"count"`
	// URIs are the requests that died, most frequent first.
	URIs []logs.Count `json:"uris,omitempty"`
	// Signals counts the signals.
	Signals     []logs.Count `json:"signals,omitempty"`
	First, Last time.Time    `json:"-"`
	FirstSeen   string       `json:"first_seen,omitempty"`
	LastSeen    string       `json:"last_seen,omitempty"`
	// Loops are the crash loops of the group: deaths of one pool from
	// this group's cause in a short time.
	Loops []logs.Loop `json:"crash_loops,omitempty"`
}

// OtherProcess sums up the crashes of one program that is not PHP.
type OtherProcess struct {
	// Name is the program's command name (or its executable's base name).
	Name    string       `json:"name"`
	Crashes int          `json:"crashes"`
	Signals []logs.Count `json:"signals,omitempty"`
	Last    time.Time    `json:"last,omitzero"`
	// Cores are its core files found on the host.
	Cores []string `json:"cores,omitempty"`
	// Why says how it is known not to be PHP.
	Why string `json:"why,omitempty"`
}

// Sources is where Run gets its evidence, the way pprof's driver takes its
// fetcher, symbolizer and object tool through plugin interfaces: Host reads
// this machine (or the host tree at Options.Root); tests give fixtures.
type Sources interface {
	// Hostname names the host in the result.
	Hostname() (string, error)
	// Audit audits the PHP-FPM configuration.
	Audit(audit.Options) (*audit.Report, error)
	// Logs reads the logs the query names and links their crashes to the
	// cores; nil (and no error) when there are no logs.
	Logs(ctx context.Context, q LogQuery) (*logs.Result, error)
	// Cores lists the cores of the host.
	Cores(coredumps.DiscoverOptions) ([]*coredumps.Entry, []error)
	// Analyze runs the analysis pipeline on one core (engine.Engine.Run).
	Analyze(ctx context.Context, req engine.Request) (*crash.Report, error)
	// Diagnose diagnoses a report made from the logs alone
	// (engine.Engine.Diagnose).
	Diagnose(rep *crash.Report, ev diagnose.Evidence) error
}

// LogQuery says which logs Sources.Logs reads.
type LogQuery struct {
	// Paths are the files given by the user; empty means the host's logs.
	Paths []string
	// Root is the host tree whose logs are discovered ("" = this machine).
	Root string
	// Since and Until restrict the events considered.
	Since, Until time.Time
	// Location is the zone of log times written without one (nil: local).
	Location *time.Location
	// BootTime dates kernel uptime stamps (zero: inferred).
	BootTime time.Time
	// Cores are linked to the crashes (by pid and time).
	Cores []*coredumps.Entry
	// AllProcesses counts every process's crashes in the summary, not
	// only PHP processes'.
	AllProcesses bool
	// ApacheConfig is the Apache configuration that says whether Apache's
	// children run PHP (mod_php); "" reads the host's own.
	ApacheConfig string
}

// Host returns the Sources of this machine, or of the host tree at
// opts.Root (then also the sysroot of the core analyses). It fails when the
// knowledge base (with opts.Rules) cannot be loaded.
func Host(opts Options) (Sources, error) {
	eng := newEngine(opts)
	if _, err := eng.KnowledgeBase(); err != nil {
		return nil, err
	}
	return &host{eng: eng}, nil
}

type host struct{ eng *engine.Engine }

func (h *host) Hostname() (string, error) { return os.Hostname() }

func (h *host) Audit(o audit.Options) (*audit.Report, error) { return audit.Run(o) }

func (h *host) Cores(o coredumps.DiscoverOptions) ([]*coredumps.Entry, []error) {
	return coredumps.Discover(o)
}

func (h *host) Logs(ctx context.Context, q LogQuery) (*logs.Result, error) {
	var inputs []logs.Input
	if len(q.Paths) > 0 {
		for _, p := range q.Paths {
			inputs = append(inputs, logs.Input{Path: p, Format: logs.FormatAuto, Why: "given on the command line"})
		}
	} else {
		inputs = logs.Discover(logs.DiscoverOptions{Root: q.Root})
	}
	if len(inputs) == 0 {
		return nil, nil
	}
	sym := logs.NewObjectSymbolizer()
	defer sym.Close()
	var modPHP *logs.ModPHP
	if m, err := audit.ApacheModPHP(q.Root, q.ApacheConfig); err == nil && m.Known() {
		modPHP = &logs.ModPHP{Loaded: m.Loaded(), Why: m.Why()}
	}
	return logs.Analyze(ctx, logs.Options{Inputs: inputs, Since: q.Since, Until: q.Until, Location: q.Location, BootTime: q.BootTime,
		Cores: q.Cores, Symbolizer: sym, AllProcesses: q.AllProcesses, ModPHP: modPHP})
}

func (h *host) Analyze(ctx context.Context, req engine.Request) (*crash.Report, error) {
	return h.eng.Run(ctx, req)
}

func (h *host) Diagnose(rep *crash.Report, ev diagnose.Evidence) error {
	return h.eng.Diagnose(rep, ev)
}

// newEngine returns the pipeline doctor analyses cores with: the host tree
// as sysroot when auditing another root.
func newEngine(opts Options) *engine.Engine {
	sysroot := ""
	if opts.Root != "" && opts.Root != "/" {
		sysroot = opts.Root
	}
	return engine.New(engine.Options{
		Analyze:     analyze.Options{Sysroot: sysroot, ShowSecrets: opts.ShowSecrets, Timeout: opts.Timeout, MaxMemory: opts.MaxMemory},
		Rules:       opts.Rules,
		MaxCoreSize: opts.MaxCoreSize,
		Discover:    coredumps.DiscoverOptions{Journal: journalOf(opts)},
	})
}

// journalOf is the journal doctor reads: the one given, else the host
// tree's (ROOT/var/log/journal) when it has one, else the host's.
func journalOf(opts Options) string {
	if opts.Journal != "" || opts.Root == "" || opts.Root == "/" {
		return opts.Journal
	}
	dir := filepath.Join(opts.Root, "var/log/journal")
	if st, err := os.Stat(dir); err == nil && st.IsDir() {
		return dir
	}
	return ""
}

// Run gathers the evidence and diagnoses every crash group.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.MaxCores <= 0 {
		opts.MaxCores = 5
	}
	src := opts.Sources
	if src == nil {
		var err error
		if src, err = Host(opts); err != nil {
			return nil, err
		}
	}
	r := &run{opts: opts, src: src, groups: map[string]*Group{}, assigned: map[*logs.Incident]bool{}, others: map[string]*OtherProcess{},
		res: &Result{Time: time.Now(), Cores: []*coredumps.Entry{}, Groups: []*Group{}, Others: []*OtherProcess{}, Pools: []*CrashedPool{},
			Missing: []string{}, Warnings: []string{}}}
	r.res.Host, _ = src.Hostname()
	r.audit()
	r.findCores()
	r.readLogs(ctx) // after the cores: the logs link crashes to them
	r.base = evidenceFromAudit(r.res.Audit)
	incidents := r.crashIncidents()
	r.analyseCores(ctx, incidents)
	if lr := r.res.Logs; lr != nil {
		// the cores named the requests that Apache's logs do not
		logs.RecountURIs(&lr.Summary, lr.Incidents, opts.AllProcesses)
	}
	if err := r.groupIncidents(incidents); err != nil {
		return nil, err
	}
	r.otherCores()
	for _, g := range r.order {
		g.summarise()
	}
	r.res.Others = sortOthers(r.others)
	r.crashedPools()
	sort.SliceStable(r.order, func(i, j int) bool { return r.order[i].Count > r.order[j].Count })
	r.res.Groups = r.order
	r.res.Missing = missingEvidence(r.res, incidents)
	r.lookAtBusyWorkers(ctx)
	return r.res, nil
}

// run is one doctor run: the evidence gathered so far and the groups.
type run struct {
	opts Options
	src  Sources
	res  *Result
	// base is what the configuration says, the evidence of every crash.
	base     diagnose.Evidence
	groups   map[string]*Group
	order    []*Group
	assigned map[*logs.Incident]bool
	// others are the non-PHP crashes by program; otherCore marks the
	// cores counted there.
	others    map[string]*OtherProcess
	otherCore map[string]bool
}

// inZone is t in the zone of Options.Location (as it is without one).
func (r *run) inZone(t time.Time) time.Time {
	if r.opts.Location != nil {
		return t.In(r.opts.Location)
	}
	return t
}

func (r *run) warn(format string, args ...any) {
	r.res.Warnings = append(r.res.Warnings, fmt.Sprintf(format, args...))
}

// group returns the group of key, creating it.
func (r *run) group(key string) *Group {
	if g := r.groups[key]; g != nil {
		return g
	}
	g := &Group{Key: key}
	r.groups[key] = g
	r.order = append(r.order, g)
	return g
}

func (r *run) audit() {
	if r.opts.NoAudit {
		return
	}
	a, err := r.src.Audit(audit.Options{Root: r.opts.Root, FPMConfig: r.opts.FPMConfig, PHPIniScanDir: r.opts.PHPIniScanDir, ApacheConfig: r.opts.ApacheConfig})
	if err != nil {
		r.warn("configuration audit: %v", err)
		return
	}
	r.res.Audit = a
}

func (r *run) findCores() {
	if r.opts.NoCores {
		return
	}
	entries, warns := r.src.Cores(coredumps.DiscoverOptions{Dirs: r.opts.CoreDirs, Journal: journalOf(r.opts), Quick: true, Since: r.opts.Since, Until: r.opts.Until})
	for _, w := range warns {
		r.warn("cores: %v", w)
	}
	for _, e := range entries {
		if inWindow(e.Time, r.opts.Since, r.opts.Until) {
			r.res.Cores = append(r.res.Cores, e)
		}
	}
}

func (r *run) readLogs(ctx context.Context) {
	if r.opts.NoLogs {
		return
	}
	lr, err := r.src.Logs(ctx, LogQuery{Paths: r.opts.Logs, Root: r.opts.Root, Since: r.opts.Since, Until: r.opts.Until,
		Location: r.opts.Location, BootTime: r.opts.BootTime, Cores: r.res.Cores,
		AllProcesses: r.opts.AllProcesses, ApacheConfig: r.opts.ApacheConfig})
	if err != nil {
		r.warn("logs: %v", err)
		return
	}
	r.res.Logs = lr
	if lr == nil {
		return
	}
	// A core of a PHP program that no crash in the logs took is worth a
	// word: the logs may not reach back that far, or another process's
	// death was logged under the pid.
	for _, u := range lr.CoreLinks.Unlinked {
		if u.PHP {
			r.warn("core %s (pid %d, %s) is linked to no crash in the logs: %s", u.Path, u.PID, u.Comm, u.Why)
		}
	}
}

// analyseCores analyses the newest cores, preferring those linked to
// incidents, and groups them by fingerprint with their incidents.
func (r *run) analyseCores(ctx context.Context, incidents []*logs.Incident) {
	if r.opts.NoCores {
		return // not even the cores the logs name
	}
	byPID := map[int]*logs.Incident{}
	for _, inc := range incidents {
		byPID[inc.PID] = inc
	}
	var partial []partialCore
	defer func() { r.addPartial(partial) }()
	picked := pickCores(r.res.Cores, incidents, r.opts.MaxCores, r.opts.AllProcesses)
	for i, path := range picked {
		if r.opts.Progress != nil {
			r.opts.Progress(i+1, len(picked), path)
		}
		var inc *logs.Incident
		rep, err := r.src.Analyze(ctx, engine.Request{Core: engine.Core{Path: path}, Evidence: func(rep *crash.Report) diagnose.Evidence {
			inc = byPID[rep.Process.PID]
			ev := r.evidenceFor(poolOf(inc, rep))
			if inc == nil {
				return ev
			}
			return withIncident(ev, inc)
		}})
		if err != nil {
			r.warn("analyse %s: %v", path, err)
			continue
		}
		rep.Process.CorePath = path
		r.res.Analysed++
		if rep.Process.Truncation.Incomplete() {
			partial = append(partial, partialCore{path, rep, inc})
			continue
		}
		if !r.opts.AllProcesses && !diagnose.IsPHPProcess(rep) {
			// Its entry did not say (a core of unknown executable): now
			// the analysis does.
			r.addOther(otherName(rep.Process.Comm, rep.Process.Executable), rep.Signal.Name, fileTime(r.res.Cores, path), path,
				"the core's executable "+rep.Process.Executable+" is not PHP")
			continue
		}
		r.addCore(path, rep, inc)
	}
}

// partialCore is the analysis of a truncated core whose stack is partly
// unknown.
type partialCore struct {
	path string
	rep  *crash.Report
	inc  *logs.Incident
}

// addPartial puts the analyses of truncated cores in groups, once the
// whole cores are grouped: their fingerprint is made of the frames that
// were read, so it differs from the same crash's on a whole core. A
// truncated core whose frames are the innermost frames of a group's crash
// (same signal) joins that group; else it is a group of its own.
func (r *run) addPartial(partial []partialCore) {
	for _, pc := range partial {
		if !r.opts.AllProcesses && !diagnose.IsPHPProcess(pc.rep) && !isPHPExe(pc.rep.Process.Executable) {
			r.addOther(otherName(pc.rep.Process.Comm, pc.rep.Process.Executable), pc.rep.Signal.Name, fileTime(r.res.Cores, pc.path), pc.path,
				"the core's executable "+pc.rep.Process.Executable+" is not PHP")
			continue
		}
		frames := nativeTokens(pc.rep)
		var into *Group
		if len(frames) > 0 {
			for _, g := range r.order {
				if g.Report == nil || g.Report.Process.Truncation.Incomplete() || g.Report.Signal.Number != pc.rep.Signal.Number {
					continue
				}
				if hasPrefix(nativeTokens(g.Report), frames) {
					into = g
					break
				}
			}
		}
		if into == nil {
			r.addCore(pc.path, pc.rep, pc.inc)
			continue
		}
		r.warn("%s is truncated (%s); its %d frame(s) begin the crashes of group %s, which it joins", pc.path,
			pc.rep.Process.Truncation.Summary, len(frames), into.Key)
		into.Cores = append(into.Cores, pc.path)
		if pc.inc != nil && !r.assigned[pc.inc] {
			into.Incidents = append(into.Incidents, pc.inc)
			r.assigned[pc.inc] = true
		}
	}
}

// nativeTokens are the normalised native frames of a report's fingerprint.
func nativeTokens(rep *crash.Report) []string {
	var out []string
	for _, t := range diagnose.FingerprintFrames(rep) {
		if strings.HasPrefix(t, "n ") {
			out = append(out, t)
		}
	}
	return out
}

func hasPrefix(s, prefix []string) bool {
	if len(prefix) > len(s) {
		return false
	}
	for i := range prefix {
		if s[i] != prefix[i] {
			return false
		}
	}
	return true
}

// isPHPExe reports whether an executable's name is a PHP binary (for a
// truncated core whose PHP state could not be read).
func isPHPExe(path string) bool {
	return logs.IsPHPCommand(path)
}

// addCore puts an analysed core (and the incident of its pid) in the group
// of its fingerprint.
func (r *run) addCore(path string, rep *crash.Report, inc *logs.Incident) {
	if inc != nil && rep.PHP != nil && rep.PHP.Request != nil && rep.PHP.Request.URI != "" {
		// The request read from the core is certain; the logs link
		// front-end errors to deaths by time only.
		inc.Method, inc.URI = rep.PHP.Request.Method, rep.PHP.Request.URI
	}
	key := rep.Fingerprint
	if key == "" {
		key = "core:" + path
	}
	g := r.group(key)
	g.Cores = append(g.Cores, path)
	// The report shown is the first core's, or the newest one the logs
	// explain.
	if g.Report == nil || (rep.Process.PID != 0 && inc != nil) {
		g.Report = rep
		g.Diagnosis = rep.Diagnosis
	}
	if inc != nil && !r.assigned[inc] {
		g.Incidents = append(g.Incidents, inc)
		r.assigned[inc] = true
	}
}

// siteKey is where an incident crashed, in its pool (or command): the same
// library function crashing in another program is another problem.
func siteKey(inc *logs.Incident) string { return inc.Pool + "|" + inc.Site }

// groupIncidents puts the incidents without an analysed core in the group
// of an analysed crash at the same native site, else in a group of their
// own, diagnosed from the logs and the configuration.
func (r *run) groupIncidents(incidents []*logs.Incident) error {
	siteGroup := map[string]*Group{}
	for _, g := range r.order {
		for _, inc := range g.Incidents {
			if inc.Site != "" {
				siteGroup[siteKey(inc)] = g
			}
		}
	}
	for _, inc := range incidents {
		if r.assigned[inc] {
			continue
		}
		g := siteGroup[siteKey(inc)]
		if g == nil || inc.Site == "" {
			key := "site:" + siteKey(inc)
			if inc.Site == "" {
				key = "signal:" + inc.Pool + "|" + inc.SignalName + " " + inc.URI
			}
			g = r.group(key)
			if g.Diagnosis == nil {
				rep := &crash.Report{Signal: crash.Signal{Number: inc.Signal, Name: inc.SignalName}}
				if err := r.src.Diagnose(rep, withIncident(r.evidenceFor(inc.Pool), inc)); err != nil {
					return err
				}
				g.Diagnosis = rep.Diagnosis
			}
			if inc.Site != "" {
				siteGroup[siteKey(inc)] = g
			}
		}
		g.Incidents = append(g.Incidents, inc)
		r.assigned[inc] = true
	}
	return nil
}

func inWindow(t, since, until time.Time) bool {
	if t.IsZero() {
		return true
	}
	if !since.IsZero() && t.Before(since) {
		return false
	}
	if !until.IsZero() && !t.Before(until) {
		return false
	}
	return true
}

// crashIncidents returns the incidents of processes killed by a signal:
// those of PHP processes (all processes with AllProcesses); the others are
// summed up apart.
func (r *run) crashIncidents() []*logs.Incident {
	lr := r.res.Logs
	if lr == nil {
		return nil
	}
	var out []*logs.Incident
	for _, inc := range lr.Incidents {
		if inc.Signal == 0 && inc.Kind != "crash" {
			continue
		}
		if !inc.PHP && !r.opts.AllProcesses {
			name := otherName(inc.Comm, inc.Exe)
			if inc.Comm == "" && inc.Exe == "" && inc.Apache() {
				name = "Apache httpd"
			}
			r.addOther(name, inc.SignalName, inc.Time, inc.Core, inc.ProcessWhy)
			continue
		}
		out = append(out, inc)
	}
	return out
}

// otherName names a program in the others' section.
func otherName(comm, exe string) string {
	switch {
	case comm != "":
		return comm
	case exe != "":
		return filepath.Base(exe)
	}
	return "(unknown program)"
}

// addOther counts one crash of a program that is not PHP.
func (r *run) addOther(name, signal string, t time.Time, core, why string) {
	o := r.others[name]
	if o == nil {
		o = &OtherProcess{Name: name, Why: why}
		r.others[name] = o
	}
	o.Crashes++
	if t.After(o.Last) {
		o.Last = t
	}
	if signal != "" {
		found := false
		for i := range o.Signals {
			if o.Signals[i].Key == signal {
				o.Signals[i].N++
				found = true
			}
		}
		if !found {
			o.Signals = append(o.Signals, logs.Count{Key: signal, N: 1})
		}
	}
	if core != "" {
		if r.otherCore == nil {
			r.otherCore = map[string]bool{}
		}
		if !r.otherCore[core] {
			r.otherCore[core] = true
			o.Cores = append(o.Cores, core)
		}
	}
}

// otherCores counts the cores of programs that are not PHP which no log
// incident named: each is a crash of its own.
func (r *run) otherCores() {
	if r.opts.AllProcesses {
		return
	}
	for _, e := range r.res.Cores {
		if e.Name() == "" || r.otherCore[e.Name()] || !knownNotPHP(e) {
			continue
		}
		r.addOther(otherName(e.Comm, e.Exe), e.SignalName(), e.Time, e.Name(), "its executable "+firstOf(e.Exe, e.Comm)+" is not PHP")
	}
}

// knownNotPHP reports whether a core entry is known to be of a program
// that is not PHP (its executable or command is known and not PHP; for
// Apache, which may run mod_php, its mappings were read and hold no PHP
// library).
func knownNotPHP(e *coredumps.Entry) bool {
	switch {
	case e.PHPModule != "" || e.Exe == "" && e.Comm == "":
		return false
	case logs.IsWebServerCommand(e.Exe) || logs.IsWebServerCommand(e.Comm):
		return e.MapsKnown // else the analysis of the core tells
	}
	return !logs.IsPHPCommand(e.Exe) && !logs.IsPHPCommand(e.Comm)
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// fileTime is the time of the core entry at path.
func fileTime(entries []*coredumps.Entry, path string) time.Time {
	for _, e := range entries {
		if e.Name() == path {
			return e.Time
		}
	}
	return time.Time{}
}

// sortOthers lists the other programs, most crashes first.
func sortOthers(m map[string]*OtherProcess) []*OtherProcess {
	out := make([]*OtherProcess, 0, len(m))
	for _, o := range m {
		sort.Slice(o.Signals, func(i, j int) bool { return o.Signals[i].N > o.Signals[j].N })
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Crashes != out[j].Crashes {
			return out[i].Crashes > out[j].Crashes
		}
		return out[i].Name < out[j].Name
	})
	return out
}

// pickCores chooses which cores to analyse: those linked to incidents
// first (newest first), then the newest analysable others of PHP programs,
// then those whose program is unknown, up to max. Cores known to be of
// other programs are analysed only when all is set.
func pickCores(entries []*coredumps.Entry, incidents []*logs.Incident, max int, all bool) []string {
	var out []string
	seen := map[string]bool{}
	add := func(p string) {
		if p != "" && !seen[p] && len(out) < max {
			seen[p] = true
			out = append(out, p)
		}
	}
	for i := len(incidents) - 1; i >= 0; i-- {
		add(incidents[i].Core)
	}
	for pass := 0; pass < 3; pass++ {
		for _, e := range entries {
			if e.Analysable == coredumps.No {
				continue
			}
			php := logs.IsPHPCommand(e.Exe) || logs.IsPHPCommand(e.Comm) || e.PHPModule != ""
			switch {
			case pass == 0 && php, pass == 1 && !php && !knownNotPHP(e), pass == 2 && all && knownNotPHP(e):
				add(e.Name())
			}
		}
	}
	return out
}

// evidenceFromAudit takes the PHP configuration FPM runs with from the
// audit (the first installation with pools).
func evidenceFromAudit(a *audit.Report) diagnose.Evidence {
	var ev diagnose.Evidence
	if a == nil {
		return ev
	}
	if len(a.Installations) == 0 {
		return ev
	}
	in := a.Installations[0]
	ev.PHPVersion = in.Version
	ev.Extensions = append([]string(nil), in.Extensions...)
	ev.INI = map[string]string{}
	for k, s := range in.INI {
		ev.INI[k] = s.Value
	}
	if len(in.Pools) > 0 {
		for k, s := range in.Pools[0].Effective {
			ev.INI[k] = s.Value
		}
	}
	return ev
}

// withIncident adds what the logs say about one crash.
func withIncident(ev diagnose.Evidence, inc *logs.Incident) diagnose.Evidence {
	ev.ExitSignal = inc.Signal
	switch {
	case inc.Apache():
		ev.SAPI = "apache2handler"
	case inc.Pool != "":
		ev.SAPI = "fpm-fcgi"
	}
	php := inc.PHP
	ev.PHPProcess = &php
	ev.Messages = append(append([]string(nil), ev.Messages...), inc.Stderr...)
	if f := inc.Fault; f != nil {
		kind := "segfault"
		switch {
		case strings.Contains(f.Type, "general protection"):
			kind = "general-protection"
		case f.Type != "segfault" && f.Type != "":
			kind = "trap"
		}
		fn := f.Symbol
		if i := strings.IndexByte(fn, '+'); i > 0 {
			fn = fn[:i]
		}
		ev.Kernel = &diagnose.KernelFault{
			Kind: kind, Module: f.Module, Function: fn, Address: uint64(f.Addr), IP: uint64(f.IP), SP: uint64(f.SP), Error: int(f.ErrorCode),
		}
	}
	return ev
}

func (g *Group) summarise() {
	uris := map[string]*logs.Count{}
	sigs := map[string]*logs.Count{}
	bump := func(m map[string]*logs.Count, key string, t time.Time) {
		c := m[key]
		if c == nil {
			c = &logs.Count{Key: key, First: t, Last: t}
			m[key] = c
		}
		c.N++
		if !t.IsZero() && (c.First.IsZero() || t.Before(c.First)) {
			c.First = t
		}
		if t.After(c.Last) {
			c.Last = t
		}
	}
	for _, inc := range g.Incidents {
		if inc.URI != "" {
			bump(uris, inc.Method+" "+inc.URI, inc.Time)
		}
		if inc.SignalName != "" {
			bump(sigs, inc.SignalName, inc.Time)
		}
		if !inc.Time.IsZero() && (g.First.IsZero() || inc.Time.Before(g.First)) {
			g.First = inc.Time
		}
		if inc.Time.After(g.Last) {
			g.Last = inc.Time
		}
	}
	g.Count = len(g.Incidents)
	if g.Count < len(g.Cores) {
		g.Count = len(g.Cores)
	}
	if len(uris) == 0 && g.Report != nil && g.Report.PHP != nil && g.Report.PHP.Request != nil {
		q := g.Report.PHP.Request
		bump(uris, strings.TrimSpace(q.Method+" "+q.URI), time.Time{})
	}
	if len(sigs) == 0 && g.Report != nil {
		for range g.Cores {
			bump(sigs, g.Report.Signal.Name, time.Time{})
		}
	}
	g.URIs = sortCounts(uris)
	g.Signals = sortCounts(sigs)
	cause := g.Key
	if len(g.Diagnosis) > 0 {
		cause = g.Diagnosis[0].Title
	}
	g.Loops = logs.FindLoops(g.Incidents, func(*logs.Incident) (string, bool) { return cause, true })
	if !g.First.IsZero() {
		g.FirstSeen = g.First.Format(time.RFC3339)
		g.LastSeen = g.Last.Format(time.RFC3339)
	}
}

func sortCounts(m map[string]*logs.Count) []logs.Count {
	out := make([]logs.Count, 0, len(m))
	for _, c := range m {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].Key < out[j].Key
	})
	return out
}

// missingEvidence says what is missing and how to get it.
func missingEvidence(res *Result, incidents []*logs.Incident) []string {
	var out []string
	if res.Logs == nil || len(res.Logs.Inputs) == 0 {
		out = append(out, "no logs were found or given: pass the nginx error log, the PHP-FPM log and the kernel log (dmesg, kern.log) as arguments")
	}
	coresSeen := false
	for _, g := range res.Groups {
		if len(g.Cores) > 0 {
			coresSeen = true
		}
	}
	if len(incidents) > 0 && !coresSeen {
		var blockers []string
		if res.Audit != nil {
			for _, f := range res.Audit.Findings {
				if f.Status == audit.StatusBlocks {
					where := ""
					if len(f.Evidence) > 0 {
						where = " (" + f.Evidence[0].String() + ")"
					}
					blockers = append(blockers, f.Message+where)
				}
			}
		}
		msg := fmt.Sprintf("%d crashes but no core to analyse: the diagnosis rests on logs and configuration only", len(incidents))
		if len(blockers) > 0 {
			msg += "; cores are blocked by: " + strings.Join(blockers, "; ") + ". Run `coroner fix --capture` (and `--apply`) so that the next crash leaves a core"
		} else {
			msg += "; run `coroner audit` to see where cores should land"
		}
		out = append(out, msg)
	}
	if res.Audit == nil {
		out = append(out, "the configuration was not audited: the INI values PHP runs with are unknown (run as root, or give --fpm-config or --apache-config)")
	}
	return out
}
