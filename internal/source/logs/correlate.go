package logs

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/signals"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// Confidence levels of a link between two pieces of evidence.
const (
	ConfHigh   = "high"
	ConfMedium = "medium"
	ConfLow    = "low"
)

// Incident is one dead worker (or other crashed process) with everything the
// logs say about it.
type Incident struct {
	ID   int       `json:"id"`
	Time time.Time `json:"time"`
	// Kind is "crash" (a fatal signal such as SIGSEGV, SIGABRT, SIGBUS),
	// "killed" (SIGKILL), "terminated" (SIGTERM, e.g. request_terminate_timeout)
	// or "signal" (any other).
	Kind       string  `json:"kind"`
	PID        int     `json:"pid"`
	Comm       string  `json:"comm,omitempty"`
	Exe        string  `json:"exe,omitempty"`
	Pool       string  `json:"pool,omitempty"`
	Signal     int     `json:"signal,omitempty"`
	SignalName string  `json:"signal_name,omitempty"`
	CoreDumped bool    `json:"core_dumped,omitempty"`
	Lifetime   float64 `json:"lifetime_seconds,omitempty"`

	// The request the worker was serving, from the front end's logs
	// (the pretty URL), else from FPM's timeout or slowlog lines.
	Method string `json:"method,omitempty"`
	URI    string `json:"uri,omitempty"`
	Host   string `json:"host,omitempty"`
	Client string `json:"client,omitempty"`
	Script string `json:"script,omitempty"`
	// Status is the HTTP status the client got (access log), 0 if unknown.
	Status int `json:"status,omitempty"`

	// Site is the native crash site: "libpcre2-8.so.0.11.2!pcre2_jit_match_8+0x41",
	// "[anon-exec]/JIT", or the first frame systemd-coredump printed.
	Site  string       `json:"site,omitempty"`
	Fault *KernelFault `json:"fault,omitempty"`
	// Core is the core file that belongs to this crash, if one was found
	// (for a core kept in systemd's journal, its name journal:PID:USEC).
	Core           string `json:"core,omitempty"`
	CoreConfidence string `json:"core_confidence,omitempty"`
	// Stack is the PHP stack of a slowlog entry of the same worker.
	Stack  []SlowFrame `json:"stack,omitempty"`
	Stderr []string    `json:"stderr,omitempty"`
	// Cause is set when the logs alone explain the death (a timeout kill).
	Cause string `json:"cause,omitempty"`
	// Links are the log lines that make up this incident, each with the
	// confidence that it belongs here and why.
	Links []Link `json:"links"`
	// PHP is true when the process that died runs PHP (a PHP-FPM worker,
	// php, php-cgi, FrankenPHP, an Apache child with mod_php); ProcessWhy
	// says how that is known. Summaries count PHP processes only unless
	// Options.AllProcesses is set.
	PHP        bool   `json:"php"`
	ProcessWhy string `json:"process_why,omitempty"`

	buildIDs map[string]string // from a linked systemd-coredump record
	apache   bool              // anchored on Apache's record of a child death
}

// Apache reports whether the incident is the death of an Apache child
// (Apache's own record of it: AH00051 / AH00052).
func (inc *Incident) Apache() bool { return inc.apache }

// Link is one piece of evidence attached to an incident.
type Link struct {
	Source     Source    `json:"source"`
	Kind       Kind      `json:"kind"`
	Time       time.Time `json:"time"`
	File       string    `json:"file"`
	Line       int64     `json:"line"`
	Text       string    `json:"text"`
	Confidence string    `json:"confidence"`
	Reason     string    `json:"reason"`
}

func linkOf(e *Event, conf, reason string) Link {
	return Link{Source: e.Source, Kind: e.Kind, Time: e.Time, File: e.File, Line: e.Line, Text: e.Text, Confidence: conf, Reason: reason}
}

// Correlation windows.
const (
	kernelWindow    = 5 * time.Second  // kernel line vs FPM exit line of the same pid
	frontWindow     = 2 * time.Second  // nginx/Apache error vs FPM exit (both whole seconds)
	coreLag         = 3 * time.Second  // how much earlier than the exit line the error may be (core writing)
	accessWindow    = 2 * time.Second  // access log line vs nginx error line
	coreWindow      = 5 * time.Minute  // core file time vs crash time
	timeoutWindow   = 2 * time.Minute  // "execution timed out" before the SIGTERM exit
	slowWindow      = 15 * time.Minute // slowlog entry before the crash
	forensicWindow  = 24 * time.Hour   // start of an unfinished request before its child's death
	stderrWindow    = 10 * time.Second
	approxTimeSlack = 10 * time.Minute // kernel uptime with an unsure boot time
)

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// isFrontError reports whether e is a front-end error that a dying worker
// causes.
func isFrontError(e *Event) bool {
	if e.Source != SrcNginxError && e.Source != SrcApache {
		return false
	}
	return e.Kind == KindUpstreamReset || e.Kind == KindUpstreamClosed
}

// signalKind classifies a terminating signal.
func signalKind(sig int) string {
	switch signals.Signal(sig) {
	case signals.SIGILL, signals.SIGTRAP, signals.SIGABRT, signals.SIGBUS, signals.SIGFPE, signals.SIGSEGV, signals.SIGSYS:
		return "crash"
	case signals.SIGKILL:
		return "killed"
	case signals.SIGTERM:
		return "terminated"
	}
	return "signal"
}

// correlate builds incidents from time-sorted events and core files, and
// says which cores it linked.
func correlate(events []Event, cores []*coredumps.Entry, modPHP *ModPHP) ([]*Incident, CoreLinks) {
	c := &correlator{events: events, byPID: map[int][]int{}, usedKernel: map[int]bool{}, usedCoredump: map[int]bool{}}
	for i := range events {
		if events[i].PID > 0 {
			c.byPID[events[i].PID] = append(c.byPID[events[i].PID], i)
		}
	}
	// Anchors: FPM child deaths by signal (except the graceful SIGQUIT) and
	// Apache child deaths; then kernel faults and coredumps without an FPM
	// record, as incidents of their own.
	for i := range events {
		e := &events[i]
		if (e.Kind == KindChildSignal && signals.Signal(e.Signal) != signals.SIGQUIT) || e.Kind == KindApacheChild {
			c.incs = append(c.incs, c.fromDeath(e))
		}
	}
	for i := range events {
		switch events[i].Kind {
		case KindSegfault, KindGPF, KindTrap:
			if !c.usedKernel[i] {
				c.incs = append(c.incs, c.fromKernel(i))
			}
		case KindCoredump:
			if !c.usedCoredump[i] {
				c.incs = append(c.incs, c.fromCoredump(i))
			}
		}
	}
	incs := c.incs
	sort.SliceStable(incs, func(i, j int) bool { return incs[i].Time.Before(incs[j].Time) })
	linkFront(events, incs)
	for i, inc := range incs {
		inc.ID = i + 1
	}
	byInc, links := linkCores(incs, cores)
	for _, inc := range incs {
		if inc.Site == "" && inc.Fault != nil {
			inc.Site = inc.Fault.Site()
		}
		checkBuildID(inc)
		classify(inc, byInc[inc], modPHP)
	}
	return incs, links
}

// correlator holds the events being joined into incidents and which
// kernel and coredump records an incident already took.
type correlator struct {
	events                   []Event
	byPID                    map[int][]int // pid -> indexes of its events
	usedKernel, usedCoredump map[int]bool
	incs                     []*Incident
}

// fromDeath builds the incident of a worker death the FPM master (or
// Apache) logged, with the other records of the same pid around it.
func (c *correlator) fromDeath(e *Event) *Incident {
	inc := &Incident{Time: e.Time, PID: e.PID, Pool: e.Pool, Signal: e.Signal, SignalName: e.SignalName,
		CoreDumped: e.CoreDumped, Lifetime: e.Lifetime, Kind: signalKind(e.Signal), apache: e.Kind == KindApacheChild}
	inc.Links = append(inc.Links, linkOf(e, ConfHigh, "anchor: the master's record of the death"))
	for _, j := range c.byPID[e.PID] {
		o := &c.events[j]
		d := o.Time.Sub(e.Time)
		switch o.Kind {
		case KindSegfault, KindGPF, KindTrap:
			c.kernelOfDeath(inc, j, d)
		case KindCoredump:
			if absDur(d) <= coreWindow && !c.usedCoredump[j] {
				c.usedCoredump[j] = true
				inc.buildIDs = o.BuildIDs
				if inc.Exe == "" {
					inc.Exe = o.Exe
				}
				if inc.Comm == "" {
					inc.Comm = o.Comm
				}
				if inc.Site == "" && o.Message != "" {
					inc.Site = o.Message
				}
				addCoredump(inc, o, fmt.Sprintf("systemd-coredump, same pid %d", e.PID))
			}
		case KindExecTimeout:
			if d <= 0 && -d <= timeoutWindow {
				inc.Cause = fmt.Sprintf("request_terminate_timeout: the request ran %.0fs and FPM killed the worker", o.RequestTime)
				takeRequest(inc, o)
				inc.Links = append(inc.Links, linkOf(o, ConfHigh, "same pid, timeout logged just before the kill"))
			}
		case KindSlowRequest:
			if d <= 0 && -d <= slowWindow {
				if len(o.Stack) > 0 {
					inc.Stack = o.Stack
				}
				takeRequest(inc, o)
				inc.Links = append(inc.Links, linkOf(o, ConfMedium, "same pid, slow request logged before the death (the same request unless the worker served another since)"))
			}
		case KindUnfinishedRequest:
			c.unfinishedOfDeath(inc, j, d)
		case KindChildStderr:
			if d <= time.Second && -d <= stderrWindow && len(inc.Stderr) < 20 {
				inc.Stderr = append(inc.Stderr, o.Message)
				inc.Links = append(inc.Links, linkOf(o, ConfMedium, "same pid, written shortly before the death"))
			}
		}
	}
	return inc
}

// kernelOfDeath links the kernel's record of the fault (event j, d after
// the death) to the incident: the first such record gives the fault.
func (c *correlator) kernelOfDeath(inc *Incident, j int, d time.Duration) {
	o := &c.events[j]
	win, conf := kernelWindow, ConfHigh
	reason := fmt.Sprintf("same pid %d, %s apart", inc.PID, roundDur(absDur(d)))
	if o.TimeApprox {
		win = approxTimeSlack
		if absDur(d) > kernelWindow {
			conf = ConfMedium
		}
		reason = fmt.Sprintf("same pid %d; kernel time derived from uptime (%s apart)", inc.PID, roundDur(absDur(d)))
	}
	if absDur(d) > win || c.usedKernel[j] {
		return
	}
	c.usedKernel[j] = true
	if inc.Fault == nil {
		inc.Fault = o.Fault
		inc.Comm = o.Comm
	} else {
		reason += "; the same fault recorded by another log"
	}
	inc.Links = append(inc.Links, linkOf(o, conf, reason))
}

// unfinishedOfDeath links a request mod_log_forensic saw start and never
// end in the same pid (event j, d after the death): the request the child
// died serving. A prefork child serves one request at a time, so the open
// request of its pid is the one; with threaded MPMs all its open requests
// were in flight (each linked, the first taken, with medium confidence).
func (c *correlator) unfinishedOfDeath(inc *Incident, j int, d time.Duration) {
	o := &c.events[j]
	if o.Time.IsZero() || d > frontWindow || -d > forensicWindow {
		return
	}
	conf, reason := ConfHigh, fmt.Sprintf("same pid %d: a request mod_log_forensic saw start %s before the death and never end", inc.PID, roundDur(absDur(d)))
	// Events come in time order: a later open request of the pid is the
	// more recent one (an earlier one is from a previous child of the
	// same pid, or in flight on another thread).
	for k := range inc.Links {
		if l := &inc.Links[k]; l.Kind == KindUnfinishedRequest && l.Confidence == ConfHigh {
			l.Confidence, l.Reason = ConfMedium, l.Reason+" (a later request of the same pid was open too: threaded MPM, or a previous child of that pid)"
			inc.Method, inc.URI, inc.Host = "", "", ""
		}
	}
	takeRequest(inc, o)
	if inc.Host == "" {
		inc.Host = o.Host
	}
	inc.Links = append(inc.Links, linkOf(o, conf, reason))
}

// addCoredump records that systemd-coredump dumped the incident's process.
func addCoredump(inc *Incident, o *Event, reason string) {
	inc.CoreDumped = true
	if o.CoreFile != "" && inc.Core == "" {
		inc.Core, inc.CoreConfidence = o.CoreFile, ConfHigh
	}
	inc.Links = append(inc.Links, linkOf(o, ConfHigh, reason))
}

// takeRequest fills the incident's request from a record of the pid (a
// timeout or a slowlog entry) when the incident has none.
func takeRequest(inc *Incident, o *Event) {
	if inc.Script == "" {
		inc.Script = o.Script
	}
	if inc.URI == "" && o.URI != "" {
		inc.Method, inc.URI = o.Method, o.URI
	}
}

// fromKernel builds the incident of a fault only the kernel logged (event
// i), with the same fault in other logs and its coredump record.
func (c *correlator) fromKernel(i int) *Incident {
	e := &c.events[i]
	sig := int(signals.SIGSEGV)
	if e.Kind == KindTrap {
		sig = trapSignal(e.Fault.Type)
	}
	inc := &Incident{Time: e.Time, PID: e.PID, Comm: e.Comm, Signal: sig, SignalName: signals.Name(sig), Kind: "crash", Fault: e.Fault}
	inc.Links = append(inc.Links, linkOf(e, ConfHigh, "anchor: kernel record of the fault (no PHP-FPM record of this pid)"))
	c.usedKernel[i] = true
	for _, j := range c.byPID[e.PID] {
		o := &c.events[j]
		if o.Fault != nil && !c.usedKernel[j] && o.Fault.IP == e.Fault.IP && absDur(o.Time.Sub(e.Time)) <= approxTimeSlack {
			c.usedKernel[j] = true
			inc.Links = append(inc.Links, linkOf(o, ConfHigh, "the same fault (pid and ip) recorded by another log"))
		}
		if o.Kind == KindCoredump && !c.usedCoredump[j] && absDur(o.Time.Sub(e.Time)) <= coreWindow {
			c.usedCoredump[j] = true
			inc.buildIDs, inc.Exe = o.BuildIDs, o.Exe
			addCoredump(inc, o, "systemd-coredump, same pid")
		}
	}
	return inc
}

// fromCoredump builds the incident of a crash only systemd-coredump
// recorded (event i).
func (c *correlator) fromCoredump(i int) *Incident {
	e := &c.events[i]
	c.usedCoredump[i] = true
	inc := &Incident{Time: e.Time, PID: e.PID, Comm: e.Comm, Exe: e.Exe, Signal: e.Signal, SignalName: signals.Name(e.Signal),
		Kind: signalKind(e.Signal), CoreDumped: true, Core: e.CoreFile, Site: e.Message, buildIDs: e.BuildIDs}
	if inc.Core != "" {
		inc.CoreConfidence = ConfHigh
	}
	inc.Links = append(inc.Links, linkOf(e, ConfHigh, "anchor: systemd-coredump record"))
	return inc
}

// checkBuildID compares the build-id of the library used to symbolize the
// kernel line with the one systemd-coredump recorded for the crashed
// process, when both are known.
func checkBuildID(inc *Incident) {
	f := inc.Fault
	if f == nil || f.BuildID == "" || f.LibraryPath == "" || len(inc.buildIDs) == 0 {
		return
	}
	for mod, id := range inc.buildIDs {
		base := filepath.Base(mod)
		if base != f.Module && mod != f.LibraryPath && !strings.HasPrefix(f.Module, base+".") {
			continue
		}
		if strings.EqualFold(id, f.BuildID) {
			f.Notes = append(f.Notes, "build-id matches the one systemd-coredump recorded for the crashed process")
		} else {
			f.Notes = append(f.Notes, fmt.Sprintf("BUILD-ID MISMATCH: the crashed process had %s %s, the file on disk is %s: the symbol may be wrong (library upgraded since?)", mod, id, f.BuildID))
			f.Symbol = ""
			inc.Site = f.Site()
		}
		return
	}
}

func trapSignal(t string) int {
	switch {
	case strings.Contains(t, "invalid opcode"):
		return int(signals.SIGILL)
	case strings.Contains(t, "divide"):
		return int(signals.SIGFPE)
	case strings.Contains(t, "int3"):
		return int(signals.SIGTRAP)
	}
	return int(signals.SIGSEGV)
}

func roundDur(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// linkFront assigns front-end errors (nginx, Apache) to incidents by time,
// nearest first, each error to at most one incident; then access-log lines
// to the front-end errors (same client and request) or, failing that, to
// incidents by time.
func linkFront(events []Event, incs []*Incident) {
	fc := frontCandidates(events, incs)
	front := fc.assign(events, incs)
	linkAccess(events, incs, front)
}

// frontPair is a front-end error (event ev) in the window of incident inc,
// d apart.
type frontPair struct {
	inc, ev int
	d       time.Duration
}

// frontPairs are the candidate links between incidents and front-end
// errors, with how many candidates each error and each incident has.
type frontPairs struct {
	pairs   []frontPair
	cand    map[int]int // event -> incidents in its window
	incCand map[int]int // incident -> errors in its window
}

// frontCandidates pairs every incident with the front-end errors in its
// window, deaths in time order and each death's errors in time order.
func frontCandidates(events []Event, incs []*Incident) *frontPairs {
	fc := &frontPairs{cand: map[int]int{}, incCand: map[int]int{}}
	for ii, inc := range incs {
		if inc.Time.IsZero() || !frontRelevant(inc) {
			continue
		}
		// The front end sees the connection reset when the worker dies;
		// the master logs the exit when it reaps the child, after the
		// kernel has written the core (a 200 MB core takes a second or
		// more): the error usually comes first, by up to coreLag.
		lo := inc.Time.Add(-frontWindow - coreLag)
		hi := inc.Time.Add(frontWindow + time.Second)
		k := sort.Search(len(events), func(k int) bool { return !events[k].Time.Before(lo) })
		for ; k < len(events) && events[k].Time.Before(hi); k++ {
			if isFrontError(&events[k]) || (inc.Kind != "crash" && events[k].Kind == KindUpstreamTimeout) {
				fc.pairs = append(fc.pairs, frontPair{ii, k, absDur(events[k].Time.Sub(inc.Time.Truncate(time.Second)))})
				fc.cand[k]++
				fc.incCand[ii]++
			}
		}
	}
	// Deaths and front-end errors happen in the same order: walk the
	// deaths in time order and give each the earliest unused error in its
	// window (nearest-first would hand each death the next request's
	// error whenever core writing delays the exit line).
	sort.SliceStable(fc.pairs, func(a, b int) bool {
		pa, pb := fc.pairs[a], fc.pairs[b]
		ia, ib := incs[pa.inc], incs[pb.inc]
		if !ia.Time.Equal(ib.Time) {
			return ia.Time.Before(ib.Time)
		}
		if pa.inc != pb.inc {
			return pa.inc < pb.inc
		}
		return events[pa.ev].Time.Before(events[pb.ev].Time)
	})
	return fc
}

// assign links each incident to the first unused front-end error of its
// window and returns incident -> event.
func (fc *frontPairs) assign(events []Event, incs []*Incident) map[int]int {
	// How many crashes and front-end errors share each second: a link is
	// unambiguous when its crash and its error are alone in their second.
	crashSec := map[int64]int{}
	for _, inc := range incs {
		if !inc.Time.IsZero() && frontRelevant(inc) {
			crashSec[inc.Time.Unix()]++
		}
	}
	errSec := map[int64]int{}
	counted := map[int]bool{}
	for _, p := range fc.pairs {
		if !counted[p.ev] {
			counted[p.ev] = true
			errSec[events[p.ev].Time.Unix()]++
		}
	}
	usedEv := map[int]bool{}
	front := map[int]int{}
	for _, p := range fc.pairs {
		if usedEv[p.ev] {
			continue
		}
		if _, ok := front[p.inc]; ok {
			continue
		}
		usedEv[p.ev] = true
		front[p.inc] = p.ev
		e := &events[p.ev]
		sec := e.Time.Unix()
		conf, reason := fc.confidence(p, crashSec[sec] == 1 && errSec[sec] == 1)
		inc := incs[p.inc]
		inc.Links = append(inc.Links, linkOf(e, conf, reason))
		if e.URI != "" {
			inc.Method, inc.URI = e.Method, e.URI
		}
		if e.Host != "" {
			inc.Host = e.Host
		}
		if e.Client != "" {
			inc.Client = e.Client
		}
	}
	return front
}

// confidence rates the link of a pair; aloneInSecond says that its crash
// and its error are the only ones in their second.
func (fc *frontPairs) confidence(p frontPair, aloneInSecond bool) (string, string) {
	reason := fmt.Sprintf("front-end error %s from the crash", roundDur(p.d))
	switch {
	case p.d > time.Second+coreLag:
		return ConfLow, reason
	case p.d == 0 && aloneInSecond:
		return ConfHigh, reason + "; the only worker death and the only upstream error in that second"
	case fc.cand[p.ev] == 1 && fc.incCand[p.inc] == 1:
		return ConfHigh, reason + "; the only crash and the only error in the window"
	}
	return ConfMedium, reason + fmt.Sprintf("; ambiguous: %d crashes and %d errors within 2s, nearest taken", fc.cand[p.ev], fc.incCand[p.inc])
}

// linkAccess links access-log 5xx lines: to the incident's front-end error
// (same client and request line), else to the incident by time.
func linkAccess(events []Event, incs []*Incident, front map[int]int) {
	usedAcc := map[int]bool{}
	for ii, inc := range incs {
		fe, hasFront := front[ii]
		var f *Event
		lo := inc.Time.Add(-accessWindow - time.Second)
		hi := inc.Time.Add(accessWindow + time.Second)
		if hasFront {
			f = &events[fe]
			lo = f.Time.Add(-accessWindow)
			hi = f.Time.Add(accessWindow + time.Second)
		} else if inc.Time.IsZero() || !frontRelevant(inc) {
			continue
		}
		best, bestD := -1, time.Duration(0)
		k := sort.Search(len(events), func(k int) bool { return !events[k].Time.Before(lo) })
		for ; k < len(events) && events[k].Time.Before(hi); k++ {
			a := &events[k]
			if a.Kind != KindHTTPError || usedAcc[k] || a.Status < 502 || (f == nil && a.Status == 504) || !sameRequest(a, f) {
				continue
			}
			if d := absDur(a.Time.Sub(inc.Time)); best < 0 || d < bestD {
				best, bestD = k, d
			}
		}
		if best < 0 {
			continue
		}
		usedAcc[best] = true
		a := &events[best]
		inc.Status = a.Status
		switch {
		case f != nil && f.URI != "":
			inc.Links = append(inc.Links, linkOf(a, ConfHigh, "same client and request line as the front-end error"))
		case f != nil:
			inc.Links = append(inc.Links, linkOf(a, ConfMedium, "same client as the front-end error, within 2s"))
			if inc.URI == "" {
				inc.Method, inc.URI = a.Method, a.URI
			}
		default:
			inc.Links = append(inc.Links, linkOf(a, ConfLow, fmt.Sprintf("5xx response %s from the crash (time only)", roundDur(bestD))))
			if inc.URI == "" {
				inc.Method, inc.URI, inc.Client = a.Method, a.URI, a.Client
			}
		}
	}
}

// sameRequest reports whether access-log line a can be the response of
// front-end error f (nil: no front-end error to compare with).
func sameRequest(a, f *Event) bool {
	if f == nil {
		return true
	}
	if f.URI != "" && (a.URI != f.URI || a.Method != f.Method) {
		return false
	}
	return a.Client == "" || f.Client == "" || a.Client == f.Client
}

// frontRelevant reports whether an incident can have caused a front-end
// error: PHP-FPM and Apache workers, and kernel-only crashes of PHP processes.
func frontRelevant(inc *Incident) bool {
	return inc.Pool != "" || inc.apache || IsPHPCommand(inc.Comm) || webServerCommRE().MatchString(inc.Comm) ||
		(inc.Comm == "" && inc.PID > 0)
}
