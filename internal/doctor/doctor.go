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
	// Since and Until restrict the logs and cores considered.
	Since, Until time.Time
	// MaxCores bounds how many cores are analysed (newest first; default 5).
	MaxCores int
	// Rules are extra rules files for the knowledge base.
	Rules []string
	// FPMConfig and PHPIniScanDir point the audit at a non-standard FPM
	// setup (see audit.Options).
	FPMConfig, PHPIniScanDir string
	// NoAudit, NoLogs and NoCores skip a source.
	NoAudit, NoLogs, NoCores bool
	// ShowSecrets disables redaction of cookies and credentials.
	ShowSecrets bool
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
	// Missing says which evidence is missing and how to get it.
	Missing []string `json:"missing"`
	// Warnings are problems met along the way.
	Warnings []string `json:"warnings"`
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
}

// Run gathers the evidence and diagnoses every crash group.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.MaxCores <= 0 {
		opts.MaxCores = 5
	}
	res := &Result{Time: time.Now(), Cores: []*coredumps.Entry{}, Groups: []*Group{}, Missing: []string{}, Warnings: []string{}}
	res.Host, _ = os.Hostname()
	eng := newEngine(opts)
	if _, err := eng.KnowledgeBase(); err != nil {
		return nil, err
	}
	if !opts.NoAudit {
		a, err := audit.Run(audit.Options{Root: opts.Root, FPMConfig: opts.FPMConfig, PHPIniScanDir: opts.PHPIniScanDir})
		if err != nil {
			res.Warnings = append(res.Warnings, "configuration audit: "+err.Error())
		} else {
			res.Audit = a
		}
	}
	if !opts.NoCores {
		entries, warns := coredumps.Discover(coredumps.DiscoverOptions{Dirs: opts.CoreDirs, Quick: true})
		for _, w := range warns {
			res.Warnings = append(res.Warnings, "cores: "+w.Error())
		}
		for _, e := range entries {
			if inWindow(e.Time, opts.Since, opts.Until) {
				res.Cores = append(res.Cores, e)
			}
		}
	}
	// The logs link crashes to the cores found (by pid and time).
	if !opts.NoLogs {
		res.Logs = readLogs(ctx, opts, res)
	}
	base := evidenceFromAudit(res.Audit)
	groups := map[string]*Group{}
	var order []*Group
	group := func(key string) *Group {
		if g := groups[key]; g != nil {
			return g
		}
		g := &Group{Key: key}
		groups[key] = g
		order = append(order, g)
		return g
	}
	incidents := crashIncidents(res.Logs)
	byPID := map[int]*logs.Incident{}
	for _, inc := range incidents {
		byPID[inc.PID] = inc
	}
	assigned := map[*logs.Incident]bool{}

	// Analyse the newest cores, preferring those linked to incidents.
	for _, path := range pickCores(res.Cores, incidents, opts.MaxCores) {
		var inc *logs.Incident
		rep, err := eng.Run(ctx, engine.Request{Core: engine.Core{Path: path}, Evidence: func(rep *crash.Report) diagnose.Evidence {
			inc = byPID[rep.Process.PID]
			if inc == nil {
				return base
			}
			return withIncident(base, inc)
		}})
		if err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("analyse %s: %v", path, err))
			continue
		}
		rep.Process.CorePath = path
		if inc != nil && rep.PHP != nil && rep.PHP.Request != nil && rep.PHP.Request.URI != "" {
			// The request read from the core is certain; the logs link
			// front-end errors to deaths by time only.
			inc.Method, inc.URI = rep.PHP.Request.Method, rep.PHP.Request.URI
		}
		key := rep.Fingerprint
		if key == "" {
			key = "core:" + path
		}
		g := group(key)
		g.Cores = append(g.Cores, path)
		res.Analysed++
		if g.Report == nil || rep.Process.PID != 0 && (inc != nil) {
			g.Report = rep
			g.Diagnosis = rep.Diagnosis
		}
		if inc != nil && !assigned[inc] {
			g.Incidents = append(g.Incidents, inc)
			assigned[inc] = true
		}
	}
	// Incidents without an analysed core join the group of an analysed
	// crash at the same native site, else a group of their own.
	// The site key includes the pool (or command): the same library
	// function crashing in another program is another problem.
	siteKey := func(inc *logs.Incident) string { return inc.Pool + "|" + inc.Site }
	siteGroup := map[string]*Group{}
	for _, g := range order {
		for _, inc := range g.Incidents {
			if inc.Site != "" {
				siteGroup[siteKey(inc)] = g
			}
		}
	}
	for _, inc := range incidents {
		if assigned[inc] {
			continue
		}
		g := siteGroup[siteKey(inc)]
		if g == nil || inc.Site == "" {
			key := "site:" + siteKey(inc)
			if inc.Site == "" {
				key = "signal:" + inc.Pool + "|" + inc.SignalName + " " + inc.URI
			}
			g = group(key)
			if g.Diagnosis == nil {
				rep := &crash.Report{Signal: crash.Signal{Number: inc.Signal, Name: inc.SignalName}}
				if err := eng.Diagnose(rep, withIncident(base, inc)); err != nil {
					return nil, err
				}
				g.Diagnosis = rep.Diagnosis
			}
			if inc.Site != "" {
				siteGroup[siteKey(inc)] = g
			}
		}
		g.Incidents = append(g.Incidents, inc)
		assigned[inc] = true
	}
	for _, g := range order {
		g.summarise()
	}
	sort.SliceStable(order, func(i, j int) bool { return order[i].Count > order[j].Count })
	res.Groups = order
	res.Missing = missingEvidence(res, incidents)
	return res, nil
}

func readLogs(ctx context.Context, opts Options, res *Result) *logs.Result {
	var inputs []logs.Input
	if len(opts.Logs) > 0 {
		for _, p := range opts.Logs {
			inputs = append(inputs, logs.Input{Path: p, Why: "given on the command line"})
		}
	} else {
		inputs = logs.Discover(logs.DiscoverOptions{Root: opts.Root})
	}
	if len(inputs) == 0 {
		return nil
	}
	lr, err := logs.Analyze(ctx, logs.Options{
		Inputs: inputs, Since: opts.Since, Until: opts.Until, Cores: res.Cores,
		Symbolizer: logs.NewObjectSymbolizer(),
	})
	if err != nil {
		res.Warnings = append(res.Warnings, "logs: "+err.Error())
		return nil
	}
	return lr
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

// crashIncidents returns the incidents of processes killed by a signal.
func crashIncidents(lr *logs.Result) []*logs.Incident {
	if lr == nil {
		return nil
	}
	var out []*logs.Incident
	for _, inc := range lr.Incidents {
		if inc.Signal != 0 || inc.Kind == "crash" {
			out = append(out, inc)
		}
	}
	return out
}

// pickCores chooses which cores to analyse: those linked to incidents
// first (newest first), then the newest analysable others, up to max.
func pickCores(entries []*coredumps.Entry, incidents []*logs.Incident, max int) []string {
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
	for _, e := range entries {
		if e.Analysable != coredumps.No {
			add(e.Path)
		}
	}
	return out
}

// newEngine returns the pipeline doctor analyses cores with: the host tree
// as sysroot when auditing another root.
func newEngine(opts Options) *engine.Engine {
	sysroot := ""
	if opts.Root != "" && opts.Root != "/" {
		sysroot = opts.Root
	}
	return engine.New(engine.Options{
		Analyze: analyze.Options{Sysroot: sysroot, ShowSecrets: opts.ShowSecrets},
		Rules:   opts.Rules,
	})
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
			Kind: kind, Module: f.Module, Function: fn, Address: f.Addr, IP: f.IP, SP: f.SP, Error: int(f.ErrorCode),
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
		out = append(out, "the configuration was not audited: the INI values FPM runs with are unknown (run as root, or give --fpm-config)")
	}
	return out
}
