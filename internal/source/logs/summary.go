package logs

import (
	"sort"
	"time"
)

// Summary aggregates the incidents and events.
type Summary struct {
	// Scope is what the counts below are about: "php" (deaths of PHP
	// processes only, the default) or "all" (Options.AllProcesses).
	Scope string `json:"scope"`
	// Incidents counts the incidents in scope; Crashes those killed by a
	// crash signal (SIGSEGV, SIGBUS, SIGABRT, SIGILL, SIGFPE, SIGTRAP, SIGSYS).
	Incidents int       `json:"incidents"`
	Crashes   int       `json:"crashes"`
	First     time.Time `json:"first,omitzero"`
	Last      time.Time `json:"last,omitzero"`
	// SpanSeconds is the time from First to Last.
	SpanSeconds float64 `json:"span_seconds"`
	// PerHour is incidents per hour between First and Last, only when they
	// are at least MinRateSpan apart (a rate over a shorter window means
	// nothing); 0 otherwise.
	PerHour float64 `json:"per_hour,omitempty"`
	// Others counts, by command, the crashes of processes that are not
	// PHP (kernel and systemd-coredump log every program of the host);
	// they are not in the counts above unless Scope is "all".
	Others []Count `json:"other_processes"`
	// OtherIncidents is the number of those crashes.
	OtherIncidents int     `json:"other_incidents"`
	ByURI          []Count `json:"by_uri"`
	BySignal       []Count `json:"by_signal"`
	BySite         []Count `json:"by_site"`
	ByPool         []Count `json:"by_pool"`
	ByHour         []Count `json:"by_hour"`
	// Loops are bursts of at least LoopMin incidents of one pool within
	// LoopWindow.
	Loops []Loop `json:"crash_loops"`
	// EmergencyRestarts counts "failed processes threshold ... reached".
	EmergencyRestarts int `json:"emergency_restarts"`
	MaxChildren       int `json:"max_children_reached"`
	ExecTimeouts      int `json:"execution_timeouts"`
	PtraceFailures    int `json:"ptrace_failures"`
	// ExitCodes counts children that exited with a non-zero code.
	ExitCodes int `json:"nonzero_exits"`
	// HTTPStatus counts access-log responses by status (500-504).
	HTTPStatus map[int]int `json:"http_status"`
	// HTTP5xxByURI lists the URIs with 502/503/504 responses.
	HTTP5xxByURI []Count `json:"http_5xx_by_uri"`
	// FrontErrors counts front-end upstream errors by kind; Unexplained
	// counts resets/closes not linked to any incident.
	FrontErrors map[Kind]int `json:"front_errors"`
	Unexplained int          `json:"unexplained_front_errors"`
}

// Count is one row of a breakdown.
type Count struct {
	Key   string    `json:"key"`
	N     int       `json:"n"`
	First time.Time `json:"first,omitzero"`
	Last  time.Time `json:"last,omitzero"`
}

// Loop is a crash loop: many deaths of one pool from one cause in a short
// time.
type Loop struct {
	Pool string `json:"pool"`
	// Cause is what the deaths share: their native crash site, else their
	// signal; CauseKnown is false in the second case (then whether they
	// share a cause is not known).
	Cause      string    `json:"cause"`
	CauseKnown bool      `json:"cause_known"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	N          int       `json:"n"`
}

// Crash loop detection parameters, and the shortest window a rate is given
// for.
const (
	LoopMin     = 5
	LoopWindow  = time.Minute
	MinRateSpan = time.Hour
)

type counter struct {
	m map[string]*Count
}

// addCount merges c into the counter; beyond max distinct keys, new keys
// are counted under "(other)".
func (c *counter) addCount(x Count, max int) {
	if c.m == nil {
		c.m = map[string]*Count{}
	}
	y, ok := c.m[x.Key]
	if !ok {
		if len(c.m) >= max {
			x.Key = "(other)"
			y, ok = c.m[x.Key]
		}
		if !ok {
			y = &Count{Key: x.Key}
			c.m[x.Key] = y
		}
	}
	y.N += x.N
	if !x.First.IsZero() && (y.First.IsZero() || x.First.Before(y.First)) {
		y.First = x.First
	}
	if x.Last.After(y.Last) {
		y.Last = x.Last
	}
}

func (c *counter) add(key string, t time.Time) {
	if c.m == nil {
		c.m = map[string]*Count{}
	}
	x, ok := c.m[key]
	if !ok {
		x = &Count{Key: key}
		c.m[key] = x
	}
	x.N++
	if !t.IsZero() && (x.First.IsZero() || t.Before(x.First)) {
		x.First = t
	}
	if t.After(x.Last) {
		x.Last = t
	}
}

func (c *counter) sorted() []Count {
	out := make([]Count, 0, len(c.m))
	for _, x := range c.m {
		out = append(out, *x)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].N != out[j].N {
			return out[i].N > out[j].N
		}
		return out[i].Key < out[j].Key
	})
	return out
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}

// summarize counts the incidents in scope (PHP processes, or all when all
// is set), lists the other processes' crashes apart, and tallies the events.
func summarize(events []Event, incs []*Incident, t *tally, all bool) Summary {
	s := Summary{Scope: "php", HTTPStatus: map[int]int{}, FrontErrors: map[Kind]int{}}
	if all {
		s.Scope = "all"
	}
	var byURI, bySig, bySite, byPool, byHour, others counter
	linked := map[string]bool{}
	var counted []*Incident
	for _, inc := range incs {
		for _, l := range inc.Links {
			linked[l.File+"\x00"+itoa(l.Line)] = true
		}
		if !inc.PHP {
			s.OtherIncidents++
			others.add(processName(inc), inc.Time)
			if !all {
				continue
			}
		}
		counted = append(counted, inc)
		s.Incidents++
		if inc.Kind == "crash" {
			s.Crashes++
		}
		if !inc.Time.IsZero() {
			if s.First.IsZero() || inc.Time.Before(s.First) {
				s.First = inc.Time
			}
			if inc.Time.After(s.Last) {
				s.Last = inc.Time
			}
			byHour.add(inc.Time.Truncate(time.Hour).Format("2006-01-02 15:00"), inc.Time)
		}
		byURI.add(orUnknown(uriKey(inc)), inc.Time)
		sig := inc.SignalName
		if sig == "" && inc.Signal != 0 {
			sig = itoa(int64(inc.Signal))
		}
		bySig.add(orUnknown(sig), inc.Time)
		bySite.add(orUnknown(inc.Site), inc.Time)
		byPool.add(orUnknown(poolKey(inc)), inc.Time)
	}
	if span := s.Last.Sub(s.First); s.Incidents > 0 {
		s.SpanSeconds = span.Seconds()
		if span >= MinRateSpan {
			s.PerHour = float64(s.Incidents) / span.Hours()
		}
	}
	s.ByURI, s.BySignal, s.BySite, s.ByPool, s.ByHour = byURI.sorted(), bySig.sorted(), bySite.sorted(), byPool.sorted(), byHour.sorted()
	s.Others = others.sorted()
	sort.Slice(s.ByHour, func(i, j int) bool { return s.ByHour[i].Key < s.ByHour[j].Key })
	if t == nil {
		t = newTally()
	}
	s.EmergencyRestarts = t.Kinds[KindEmergency]
	s.MaxChildren = t.Kinds[KindMaxChildren]
	s.ExecTimeouts = t.Kinds[KindExecTimeout]
	s.PtraceFailures = t.Kinds[KindPtraceFailed]
	s.ExitCodes = t.NonzeroExit
	s.HTTPStatus = t.HTTPStatus
	for _, k := range []Kind{KindUpstreamReset, KindUpstreamClosed, KindConnectFailed, KindUpstreamTimeout} {
		if t.Kinds[k] > 0 {
			s.FrontErrors[k] = t.Kinds[k]
		}
	}
	for i := range events {
		e := &events[i]
		if isFrontError(e) && !linked[e.File+"\x00"+itoa(e.Line)] {
			s.Unexplained++
		}
	}
	s.HTTP5xxByURI = t.HTTPByURI.sorted()
	if len(s.HTTP5xxByURI) > 50 {
		s.HTTP5xxByURI = s.HTTP5xxByURI[:50]
	}
	s.Loops = FindLoops(counted, nil)
	if s.Loops == nil {
		s.Loops = []Loop{}
	}
	return s
}

// uriKey is the request an incident is counted under.
func uriKey(inc *Incident) string {
	if inc.URI == "" && inc.Script != "" {
		return "script:" + inc.Script
	}
	return inc.URI
}

// RecountURIs counts the incidents by URI again, once some got their
// request from elsewhere (the core of an Apache child, whose death leaves
// no access-log line).
func RecountURIs(s *Summary, incs []*Incident, all bool) {
	var byURI counter
	for _, inc := range incs {
		if inc.PHP || all {
			byURI.add(orUnknown(uriKey(inc)), inc.Time)
		}
	}
	s.ByURI = byURI.sorted()
}

// poolKey is the pool an incident belongs to, "apache2 (mod_php)" for an Apache
// child, or "comm:NAME" for a process without one.
func poolKey(inc *Incident) string {
	if inc.Pool != "" {
		return inc.Pool
	}
	if inc.apache {
		return "apache2 (mod_php)"
	}
	if inc.Comm != "" {
		return "comm:" + inc.Comm
	}
	return ""
}

// CrashCause is the cause an incident is grouped by for crash loops: its
// native crash site when known, else its signal (known false).
func CrashCause(inc *Incident) (cause string, known bool) {
	if inc.Site != "" {
		return inc.Site, true
	}
	sig := inc.SignalName
	if sig == "" {
		sig = "signal " + itoa(int64(inc.Signal))
	}
	return sig + ", crash site unknown", false
}

// FindLoops finds bursts of at least LoopMin incidents of one pool and one
// cause within LoopWindow, merging overlapping bursts. cause names the
// cause of an incident (nil: CrashCause); deaths of one pool from
// different causes are not a loop.
func FindLoops(incs []*Incident, cause func(*Incident) (string, bool)) []Loop {
	if cause == nil {
		cause = CrashCause
	}
	type key struct{ pool, cause string }
	byKey := map[key][]time.Time{}
	known := map[key]bool{}
	var keys []key
	for _, inc := range incs {
		if inc.Time.IsZero() {
			continue
		}
		c, ok := cause(inc)
		k := key{poolKey(inc), c}
		if _, seen := byKey[k]; !seen {
			keys = append(keys, k)
			known[k] = ok
		}
		byKey[k] = append(byKey[k], inc.Time)
	}
	var loops []Loop
	for _, k := range keys {
		ts := byKey[k]
		sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
		start, end := -1, -1
		emit := func() {
			if start >= 0 {
				loops = append(loops, Loop{Pool: k.pool, Cause: k.cause, CauseKnown: known[k], Start: ts[start], End: ts[end], N: end - start + 1})
			}
		}
		for i := 0; i+LoopMin-1 < len(ts); i++ {
			j := i + LoopMin - 1
			if ts[j].Sub(ts[i]) > LoopWindow {
				continue
			}
			if start >= 0 && i <= end {
				end = j
				continue
			}
			emit()
			start, end = i, j
		}
		emit()
	}
	sort.SliceStable(loops, func(i, j int) bool { return loops[i].Start.Before(loops[j].Start) })
	return loops
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
