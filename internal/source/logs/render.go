package logs

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/units"
)

// SchemaVersion is the version of the JSON documents of `coroner logs
// --json` (Document) and of `coroner logs --follow --json`
// (IncidentDocument), their "schema" field; it changes only when a field
// changes meaning or goes away. Version 2: the addresses and offsets of a
// kernel fault (fault.addr, ip, sp, vma_start, vma_offset, file_offset)
// are "0x..." strings, as everywhere else, instead of numbers, and a
// slowlog frame's addr is one too (without the slowlog's leading zeros).
const SchemaVersion = 2

// Document is the JSON document of `coroner logs --json`: the Result with
// its schema version (docs/schema/logs.json).
type Document struct {
	Schema int `json:"schema"` // SchemaVersion
	*Result
}

// IncidentDocument is one line of `coroner logs --follow --json`: an
// incident with its schema version (docs/schema/logs-incident.json).
type IncidentDocument struct {
	Schema int `json:"schema"` // SchemaVersion
	*Incident
}

// TextOptions tune WriteText.
type TextOptions struct {
	// Top bounds the rows of each breakdown (default 10).
	Top int
	// Evidence prints every linked log line under each incident.
	Evidence bool
	// Location is the zone times are printed in (default time.Local).
	Location *time.Location
}

// WriteText renders a Result for people; what came from the logs is shown
// with its control characters escaped (package sanitize).
func WriteText(w io.Writer, r *Result, o TextOptions) error {
	r = sanitize.Copy(r)
	if o.Top <= 0 {
		o.Top = 10
	}
	if o.Location == nil {
		o.Location = time.Local
	}
	ew := &errWriter{w: w}
	tf := func(t time.Time) string {
		if t.IsZero() {
			return "(time unknown)"
		}
		return t.In(o.Location).Format("2006-01-02 15:04:05 MST")
	}
	ew.printf("Logs read:\n")
	for _, in := range r.Inputs {
		status := fmt.Sprintf("%s, %s, %d lines, %d events", in.Detected, units.Bytes(in.Bytes), in.Lines, in.Events)
		if in.Error != "" {
			status = "ERROR: " + in.Error
		}
		why := ""
		if in.Why != "" && in.Why != "given" {
			why = " [" + in.Why + "]"
		}
		ew.printf("  %s (%s)%s\n", in.Path, status, why)
	}
	if !r.BootTime.IsZero() {
		ew.printf("  kernel uptime converted with boot time %s (from %s)\n", tf(r.BootTime), r.BootFrom)
	}
	s := &r.Summary
	ew.printf("\nSummary\n")
	what := "PHP process deaths"
	if s.Scope == "all" {
		what = "incidents (all processes)"
	}
	if s.Incidents == 0 {
		if s.Scope == "all" {
			ew.printf("  no process deaths found\n")
		} else {
			ew.printf("  no deaths of PHP processes found\n")
		}
	} else {
		ew.printf("  %d %s (%d crashes) from %s to %s (%s)%s\n", s.Incidents, what, s.Crashes, tf(s.First), tf(s.Last),
			SpanText(s.SpanSeconds), RateText(s))
		table := func(title string, rows []Count) {
			if len(rows) == 0 {
				return
			}
			ew.printf("  %s:\n", title)
			for i, c := range rows {
				if i == o.Top {
					ew.printf("    ... %d more\n", len(rows)-o.Top)
					break
				}
				ew.printf("    %6d  %s  (first %s, last %s)\n", c.N, c.Key, tf(c.First), tf(c.Last))
			}
		}
		table("by URI", s.ByURI)
		table("by signal", s.BySignal)
		table("by crash site", s.BySite)
		table("by pool", s.ByPool)
		if len(s.ByHour) > 1 {
			table("by hour", s.ByHour)
		}
		for _, l := range s.Loops {
			ew.printf("  %s\n", LoopText(l, tf))
		}
	}
	if s.Scope != "all" && s.OtherIncidents > 0 {
		ew.printf("  other processes (not PHP, not counted above; --all-processes counts them): %d crashes: %s\n",
			s.OtherIncidents, countList(s.Others, o.Top))
	}
	if s.EmergencyRestarts > 0 {
		ew.printf("  emergency restarts (failed processes threshold reached): %d\n", s.EmergencyRestarts)
	}
	if s.MaxChildren > 0 {
		ew.printf("  pm.max_children reached: %d times\n", s.MaxChildren)
	}
	if s.ExecTimeouts > 0 {
		ew.printf("  execution timeouts (request_terminate_timeout): %d\n", s.ExecTimeouts)
	}
	if s.PtraceFailures > 0 {
		ew.printf("  slowlog ptrace failures: %d\n", s.PtraceFailures)
	}
	if s.ExitCodes > 0 {
		ew.printf("  children exited with a non-zero code: %d\n", s.ExitCodes)
	}
	if len(s.HTTPStatus) > 0 {
		var parts []string
		for _, st := range sortedKeys(s.HTTPStatus) {
			parts = append(parts, fmt.Sprintf("%d: %d", st, s.HTTPStatus[st]))
		}
		ew.printf("  access log 5xx: %s\n", strings.Join(parts, ", "))
	}
	if s.Unexplained > 0 {
		ew.printf("  front-end upstream resets/closes with no matching worker death: %d\n", s.Unexplained)
	}
	writeCoreLinks(ew, &r.CoreLinks, tf, o.Top)
	shown := 0
	for _, inc := range r.Incidents {
		if !inc.PHP && s.Scope != "all" {
			continue
		}
		if shown == 0 {
			ew.printf("\nIncidents\n")
		}
		shown++
		writeIncident(ew, inc, tf, o.Evidence)
	}
	if len(r.Warnings) > 0 {
		ew.printf("\nWarnings\n")
		for _, w := range r.Warnings {
			ew.printf("  %s\n", w)
		}
	}
	return ew.err
}

// WriteIncident renders one incident (used by --follow).
func WriteIncident(w io.Writer, inc *Incident, loc *time.Location, evidence bool) error {
	if loc == nil {
		loc = time.Local
	}
	ew := &errWriter{w: w}
	writeIncident(ew, inc, func(t time.Time) string {
		if t.IsZero() {
			return "(time unknown)"
		}
		return t.In(loc).Format("2006-01-02 15:04:05 MST")
	}, evidence)
	return ew.err
}

func writeIncident(ew *errWriter, inc *Incident, tf func(time.Time) string, evidence bool) {
	who := fmt.Sprintf("pid %d", inc.PID)
	if inc.Pool != "" {
		who = "pool " + inc.Pool + " " + who
	}
	if inc.Comm != "" {
		who += " (" + inc.Comm + ")"
	}
	sig := inc.SignalName
	if sig == "" {
		sig = fmt.Sprintf("signal %d", inc.Signal)
	}
	if inc.CoreDumped {
		sig += " - core dumped"
	}
	life := ""
	if inc.Lifetime > 0 {
		life = fmt.Sprintf(" after %.2fs", inc.Lifetime)
	}
	notPHP := ""
	if !inc.PHP {
		notPHP = "  [not PHP]"
	}
	ew.printf("#%d %s  %s  %s  %s%s%s\n", inc.ID, tf(inc.Time), inc.Kind, who, sig, life, notPHP)
	if inc.URI != "" || inc.Script != "" {
		req := strings.TrimSpace(inc.Method + " " + inc.URI)
		if inc.Host != "" {
			req += "  host " + inc.Host
		}
		if inc.Client != "" {
			req += "  client " + inc.Client
		}
		if inc.Status != 0 {
			req += fmt.Sprintf("  -> HTTP %d", inc.Status)
		}
		if inc.Script != "" {
			req += "  script " + inc.Script
		}
		ew.printf("   request: %s\n", strings.TrimSpace(req))
	}
	if inc.Site != "" {
		ew.printf("   site:    %s\n", inc.Site)
	}
	if f := inc.Fault; f != nil {
		ew.printf("   fault:   %s at %s ip %s sp %s\n", f.Type, hex(f.Addr), hex(f.IP), hex(f.SP))
		if f.Explanation != "" {
			ew.printf("            %s\n", f.Explanation)
		}
		if f.LibraryPath != "" {
			ew.printf("            symbolized with %s (build-id %s)\n", f.LibraryPath, orUnknown(f.BuildID))
		}
		for _, n := range f.Notes {
			ew.printf("            note: %s\n", n)
		}
	}
	if inc.Cause != "" {
		ew.printf("   cause:   %s\n", inc.Cause)
	}
	if inc.Core != "" {
		ew.printf("   core:    %s (%s confidence)\n", inc.Core, inc.CoreConfidence)
	}
	for i, f := range inc.Stack {
		if i == 0 {
			ew.printf("   PHP stack (slowlog):\n")
		}
		ew.printf("     %s() %s:%d\n", f.Function, f.File, f.Line)
	}
	for _, s := range inc.Stderr {
		ew.printf("   stderr:  %s\n", s)
	}
	if evidence {
		for _, l := range inc.Links {
			ew.printf("   [%s] %s:%d  %s\n", l.Confidence, l.File, l.Line, l.Reason)
			if l.Text != "" {
				ew.printf("          %s\n", l.Text)
			}
		}
	} else {
		var parts []string
		for _, l := range inc.Links[1:] {
			parts = append(parts, fmt.Sprintf("%s(%s)", l.Source, l.Confidence))
		}
		if len(parts) > 0 {
			ew.printf("   linked:  %s\n", strings.Join(parts, ", "))
		}
	}
}

// writeCoreLinks says how many cores were found and linked, and why each
// of the others was not.
func writeCoreLinks(ew *errWriter, cl *CoreLinks, tf func(time.Time) string, top int) {
	if cl.Cores == 0 && cl.NotKept == 0 {
		return
	}
	ew.printf("\nCores: %d found, %d linked to incidents", cl.Cores, cl.Linked)
	if cl.NotKept > 0 {
		ew.printf(" (and %d crashes recorded by a store that did not keep the core)", cl.NotKept)
	}
	ew.printf("\n")
	for i, u := range cl.Unlinked {
		if i == top {
			ew.printf("  ... %d more not linked (see --json)\n", len(cl.Unlinked)-top)
			break
		}
		who := fmt.Sprintf("pid %d", u.PID)
		if u.Comm != "" {
			who += " " + u.Comm
		}
		ew.printf("  not linked: %s (%s, %s): %s\n", u.Path, who, tf(u.Time), u.Why)
	}
}

// SpanText says a time span in words: "17s", "42m", "3.5h", "2.0 days".
func SpanText(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.0fs", d.Seconds())
	case d < time.Hour:
		return fmt.Sprintf("%.0fm", d.Minutes())
	case d < 48*time.Hour:
		return fmt.Sprintf("%.1fh", d.Hours())
	}
	return fmt.Sprintf("%.1f days", d.Hours()/24)
}

// RateText is ", N per hour" when the summary's window is long enough for
// a rate to mean something, else "".
func RateText(s *Summary) string {
	if s.PerHour <= 0 {
		return ""
	}
	return fmt.Sprintf(", %.1f per hour", s.PerHour)
}

// LoopText describes a crash loop in one line.
func LoopText(l Loop, tf func(time.Time) string) string {
	if l.CauseKnown {
		return fmt.Sprintf("CRASH LOOP: pool %s, %d deaths at %s between %s and %s", l.Pool, l.N, l.Cause, tf(l.Start), tf(l.End))
	}
	return fmt.Sprintf("BURST: pool %s, %d deaths by %s between %s and %s (whether they share a cause is not known)", l.Pool, l.N, l.Cause, tf(l.Start), tf(l.End))
}

// countList formats the first n rows of a breakdown: "python3 (3), perl (1)".
func countList(cs []Count, n int) string {
	var parts []string
	for i, c := range cs {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(cs)-n))
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d)", c.Key, c.N))
	}
	return strings.Join(parts, ", ")
}

func sortedKeys(m map[int]int) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err != nil {
		return
	}
	_, e.err = fmt.Fprintf(e.w, format, args...)
}
