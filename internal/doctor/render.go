package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// SchemaVersion is the version of the JSON document JSON writes (its
// "schema" field); it changes only when a field changes meaning or goes away.
// Version 2: the kernel faults of the log incidents it holds have their
// addresses as "0x..." strings (logs.SchemaVersion 2).
const SchemaVersion = 2

// Document is the JSON document of `coroner doctor --json`: the Result with
// its schema version (docs/schema/doctor.json).
type Document struct {
	Schema int `json:"schema"` // SchemaVersion
	*Result
}

// JSON writes the result as indented JSON.
func JSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(Document{SchemaVersion, r})
}

// Text writes the diagnosis for a person at a terminal; every string from
// logs, cores and configuration is shown with its control characters
// escaped (package sanitize).
func Text(w io.Writer, r *Result) error {
	return write(w, sanitize.Copy(r), false, nil)
}

// TextIn is Text with the times shown in loc.
func TextIn(w io.Writer, r *Result, loc *time.Location) error {
	return write(w, sanitize.Copy(r), false, loc)
}

// Markdown writes the diagnosis as Markdown (for a ticket or a chat): what
// came from logs, cores and configuration is escaped as text (no tag, no
// link, no emphasis) or fenced as code.
func Markdown(w io.Writer, r *Result) error {
	return write(w, sanitize.Copy(r), true, nil)
}

// MarkdownIn is Markdown with the times shown in loc.
func MarkdownIn(w io.Writer, r *Result, loc *time.Location) error {
	return write(w, sanitize.Copy(r), true, loc)
}

// mdRaw is an argument of writer.line that is Markdown already (a fix
// text with its code spans): not escaped again.
type mdRaw string

type writer struct {
	w   io.Writer
	md  bool
	loc *time.Location // nil: as the times are
	err error
}

// at formats t in the writer's zone.
func (p *writer) at(t time.Time, layout string) string {
	if p.loc != nil {
		t = t.In(p.loc)
	}
	return t.Format(layout)
}

// line writes one line; in Markdown, its string arguments are escaped as
// text (the format is markup of ours).
func (p *writer) line(format string, args ...any) {
	if p.err != nil {
		return
	}
	if p.md {
		for i, a := range args {
			switch v := a.(type) {
			case string:
				args[i] = sanitize.MarkdownText(v)
			case mdRaw:
				args[i] = string(v)
			}
		}
	}
	_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *writer) heading(s string) {
	if p.md {
		p.line("\n## %s\n", s)
	} else {
		p.line("\n%s", strings.ToUpper(s))
	}
}

func (p *writer) code(lines []string) {
	fence := mdRaw(sanitize.CodeFence(lines...)) // longer than any run of backticks inside
	if p.md {
		p.line("%s", fence)
	}
	for _, l := range lines {
		if p.md {
			p.line("%s", mdRaw(l))
		} else {
			p.line("    %s", l)
		}
	}
	if p.md {
		p.line("%s", fence)
	}
}

func (p *writer) item(format string, args ...any) {
	if p.md {
		p.line("- "+format, args...)
	} else {
		p.line("  - "+format, args...)
	}
}

func write(w io.Writer, r *Result, md bool, loc *time.Location) error {
	p := &writer{w: w, md: md, loc: loc}
	title := fmt.Sprintf("coroner doctor: %s, %s", r.Host, p.at(r.Time, "2006-01-02 15:04:05 MST"))
	if md {
		p.line("# %s", title)
	} else {
		p.line("%s", title)
	}
	p.sources(r)
	p.crashing(r)
	for i, g := range r.Groups {
		p.group(i+1, g)
	}
	p.busy(r)
	p.capture(r)
	if len(r.Missing) > 0 {
		p.heading("Missing evidence")
		for _, m := range r.Missing {
			p.item("%s", m)
		}
	}
	if len(r.Warnings) > 0 {
		p.heading("Warnings")
		for i, wn := range r.Warnings {
			if i == 10 {
				p.item("... %d more (see --json)", len(r.Warnings)-10)
				break
			}
			p.item("%s", wn)
		}
	}
	return p.err
}

func (p *writer) sources(r *Result) {
	var parts []string
	if r.Logs != nil {
		n := 0
		for _, in := range r.Logs.Inputs {
			if in.Error == "" {
				n++
			}
		}
		parts = append(parts, fmt.Sprintf("%d log files read", n))
	} else {
		parts = append(parts, "no logs")
	}
	cores := fmt.Sprintf("%d cores found", len(r.Cores))
	if r.Logs != nil && r.Logs.CoreLinks.Cores > 0 {
		cores += fmt.Sprintf(" (%d linked to crashes in the logs)", r.Logs.CoreLinks.Linked)
	}
	parts = append(parts, fmt.Sprintf("%s, %d analysed", cores, r.Analysed))
	if r.Audit != nil {
		parts = append(parts, fmt.Sprintf("%d PHP installations audited (%s)", len(r.Audit.Installations), installationNames(r.Audit)))
	}
	p.line("evidence: %s", strings.Join(parts, ", "))
}

func (p *writer) crashing(r *Result) {
	p.heading("What is crashing")
	if r.Logs == nil && len(r.Groups) == 0 {
		p.line("nothing known: no logs and no cores (see Missing evidence)")
		return
	}
	if r.Logs != nil {
		s := r.Logs.Summary
		what := "PHP worker deaths"
		if s.Scope == "all" {
			what = "process deaths (all processes)"
		}
		if s.Incidents == 0 && len(r.Groups) == 0 {
			p.line("no %s in the logs read", what)
			p.others(r)
			return
		}
		if s.Incidents > 0 {
			p.line("%d %s (%d crashes) from %s to %s (%s)%s", s.Incidents, what, s.Crashes,
				p.at(s.First, "2006-01-02 15:04:05 MST"), p.at(s.Last, "2006-01-02 15:04:05 MST"), logs.SpanText(s.SpanSeconds), logs.RateText(&s))
		}
		if len(s.BySignal) > 0 {
			p.item("signals: %s", countList(s.BySignal, 5))
		}
		if len(s.ByURI) > 0 {
			p.item("requests: %s", countList(s.ByURI, 5))
		}
		if len(s.ByPool) > 0 {
			p.item("pools: %s", countList(s.ByPool, 5))
		}
		if s.EmergencyRestarts > 0 {
			p.item("emergency restarts of the FPM master: %d", s.EmergencyRestarts)
		}
		if n := s.HTTPStatus[502]; n > 0 {
			p.item("HTTP 502 responses in the access log: %d", n)
		}
	}
	for _, g := range r.Groups {
		for _, l := range g.Loops {
			p.item("crash loop: %d deaths of pool %s from one cause (%s) between %s and %s", l.N, l.Pool, l.Cause,
				p.at(l.Start, "15:04:05"), p.at(l.End, "15:04:05 MST"))
		}
	}
	p.line("%d crash group(s):", len(r.Groups))
	for i, g := range r.Groups {
		title := "unexplained crash"
		if len(g.Diagnosis) > 0 {
			title = g.Diagnosis[0].Title
		}
		uri := ""
		if len(g.URIs) > 0 {
			uri = " on " + g.URIs[0].Key
		}
		p.item("#%d %s: %d x%s", i+1, title, g.Count, uri)
	}
	p.others(r)
}

// others sums up the crashes of programs that are not PHP in one short
// list: they are not what coroner explains, but they happened.
func (p *writer) others(r *Result) {
	if len(r.Others) == 0 {
		return
	}
	n := 0
	var parts []string
	for i, o := range r.Others {
		n += o.Crashes
		if i < 8 {
			parts = append(parts, otherText(o))
		}
	}
	if len(r.Others) > 8 {
		parts = append(parts, fmt.Sprintf("and %d more programs", len(r.Others)-8))
	}
	p.line("Other programs crashed too (not PHP, not counted above; --all-processes diagnoses them): %d crashes: %s", n, strings.Join(parts, ", "))
}

// otherText is one program's crashes: "python3 (2 x SIGSEGV)",
// "perl (3: SIGSEGV 2, SIGABRT 1)".
func otherText(o *OtherProcess) string {
	switch len(o.Signals) {
	case 0:
		return fmt.Sprintf("%s (%d)", o.Name, o.Crashes)
	case 1:
		return fmt.Sprintf("%s (%d x %s)", o.Name, o.Crashes, o.Signals[0].Key)
	}
	var sigs []string
	for _, c := range o.Signals {
		sigs = append(sigs, fmt.Sprintf("%s %d", c.Key, c.N))
	}
	return fmt.Sprintf("%s (%d: %s)", o.Name, o.Crashes, strings.Join(sigs, ", "))
}

// countList formats the first n rows of a breakdown: "GET /a (3), GET /b (1)".
func countList(cs []logs.Count, n int) string {
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

func (p *writer) group(n int, g *Group) {
	title := "unexplained crash"
	if len(g.Diagnosis) > 0 {
		d := g.Diagnosis[0]
		title = fmt.Sprintf("%s [%s, %s confidence]", d.Title, d.Rule, d.Confidence)
	}
	p.heading(fmt.Sprintf("#%d %s", n, title))
	facts := []string{fmt.Sprintf("%d crashes", g.Count)}
	if g.FirstSeen != "" {
		facts = append(facts, "first "+p.at(g.First, "2006-01-02 15:04:05 MST"), "last "+p.at(g.Last, "2006-01-02 15:04:05 MST"))
	}
	if len(g.Signals) > 0 {
		facts = append(facts, countList(g.Signals, 3))
	}
	if g.Report != nil && g.Report.Fingerprint != "" {
		facts = append(facts, "fingerprint "+g.Report.Fingerprint)
	}
	p.line("%s", strings.Join(facts, ", "))
	if len(g.URIs) > 0 {
		p.item("requests: %s", countList(g.URIs, 5))
	}
	if len(g.Diagnosis) > 0 {
		d := g.Diagnosis[0]
		p.line("")
		p.line("%s", d.Explanation)
		if len(d.Fix) > 0 {
			p.line("")
			p.line("Fix:")
			for _, f := range d.Fix {
				p.item("%s", mdRaw(render.FixText(f, p.md)))
			}
		}
		if len(d.References) > 0 {
			p.item("references: %s", strings.Join(d.References, ", "))
		}
		for _, other := range g.Diagnosis[1:min(3, len(g.Diagnosis))] {
			p.item("also consistent with: %s [%s, %s]", other.Title, other.Rule, other.Confidence)
		}
	}
	p.line("")
	p.line("Evidence:")
	if rep := g.Report; rep != nil {
		p.item("core %s: %s, %s", rep.Process.CorePath, render.SignalText(rep.Signal), rep.Fault.Kind)
		if line := render.RootLine(rep.Root); line != "" {
			p.item("ran in the %s", line)
		}
		if rep.Root != nil && len(rep.Root.Unresolved) > 0 {
			p.item("partial analysis: %d mapped objects have no file with the build-id the process ran (coroner analyze says which; --sysroot, --roots or --container supply them)", len(rep.Root.Unresolved))
		}
		if t := rep.Process.Truncation; t != nil {
			p.item("%s", t.Summary)
		}
		if rep.Fault.Explanation != "" {
			p.item("fault: %s", rep.Fault.Explanation)
		}
		p.code(topFrames(rep, 8))
		if rep.PHP != nil {
			if q := rep.PHP.Request; q != nil {
				p.item("request in the core: %s %s (host %s, client %s)", q.Method, q.URI, q.Host, q.RemoteAddr)
			}
			if len(rep.PHP.Frames) > 0 {
				p.code(phpFrames(rep.PHP, 6))
			}
			var ini []string
			for _, k := range []string{"opcache.jit", "opcache.jit_buffer_size", "pcre.jit", "memory_limit", "zend.max_allowed_stack_size"} {
				if v, ok := rep.PHP.INI[k]; ok {
					ini = append(ini, k+"="+v)
				}
			}
			if len(ini) > 0 {
				p.item("INI at crash time (PHP %s): %s", rep.PHP.Version, strings.Join(ini, " "))
			}
		}
	}
	shown := 0
	for _, inc := range g.Incidents {
		if shown == 3 {
			p.item("... %d more incidents", len(g.Incidents)-shown)
			break
		}
		desc := fmt.Sprintf("%s pid %d %s", p.at(inc.Time, "2006-01-02 15:04:05 MST"), inc.PID, inc.SignalName)
		if inc.URI != "" {
			desc += " on " + inc.Method + " " + inc.URI
		}
		if inc.Site != "" {
			desc += " at " + inc.Site
		}
		if inc.Core != "" {
			desc += ", core " + inc.Core
		}
		p.item("log: %s", desc)
		shown++
	}
}

func topFrames(rep *crash.Report, n int) []string {
	th := rep.CrashedThread()
	if th == nil {
		return nil
	}
	var out []string
	for i, f := range th.Frames {
		if i == n {
			out = append(out, fmt.Sprintf("... %d more frames", len(th.Frames)-n))
			break
		}
		name := f.Function
		switch {
		case name == "" && f.FunctionSource == "eh-frame":
			name = render.UnnamedFunction(&f) // sub_START, as the text report names it
		case name == "":
			name = "??"
		}
		line := fmt.Sprintf("#%-3d %s (%s+%s)", i, name, f.Module, f.ModuleOffset)
		if pf := render.PHPFrameOf(rep, &f); pf != nil {
			line += "  <- php " + pf.QualifiedName() + "()"
		}
		out = append(out, line)
	}
	for _, c := range th.Cycles {
		if c.Repeats >= 10 {
			out = append(out, fmt.Sprintf("(frames #%d..#%d: a cycle of %d frames repeated %d times)", c.Start, c.End, c.Length, c.Repeats))
			break
		}
	}
	return out
}

// phpFrames shows a PHP stack the way a person reads a crash: the
// innermost frames (where the stack ran out), the loop of a recursion once,
// in call order, with how often it repeats, and the outermost frames (the
// request's entry point), instead of the first frames and "... N more".
func phpFrames(ph *crash.PHP, n int) []string {
	var out []string
	line := func(i int) {
		f := &ph.Frames[i]
		loc := ""
		if f.File != "" {
			loc = fmt.Sprintf("  %s:%d", f.File, f.Line)
		}
		out = append(out, fmt.Sprintf("php #%-5d %s%s", i, f.QualifiedName()+"()", loc))
	}
	total := len(ph.Frames)
	rec := ph.Recursion
	if rec == nil || rec.Outermost >= total || rec.Innermost < 0 {
		if total <= n+3 {
			for i := 0; i < total; i++ {
				line(i)
			}
			return out
		}
		for i := 0; i < n; i++ {
			line(i)
		}
		out = append(out, fmt.Sprintf("... %d frames ...", total-n-3))
		for i := total - 3; i < total; i++ {
			line(i)
		}
		return out
	}
	// Innermost: where the stack ran out (inside the loop or not).
	inner := min(3, total)
	if rec.Innermost > inner && rec.Innermost <= n {
		inner = rec.Innermost
	}
	for i := 0; i < inner; i++ {
		line(i)
	}
	out = append(out, fmt.Sprintf("... frames #%d-#%d: a loop of %d frames, %d times; one turn, in call order:",
		rec.Innermost, rec.Outermost, rec.Length, rec.Repeats))
	calls := rec.Calls
	if len(calls) > 12 {
		calls = append(append(calls[:6:6], -1), calls[len(calls)-5:]...)
	}
	for _, i := range calls {
		if i < 0 {
			out = append(out, "    ...")
			continue
		}
		f := &ph.Frames[i]
		loc := ""
		if f.File != "" {
			loc = fmt.Sprintf("  %s:%d", f.File, f.Line)
		}
		out = append(out, fmt.Sprintf("    %s%s", f.QualifiedName()+"()", loc))
	}
	// Outermost: from the loop's caller to {main}.
	rest := total - rec.Outermost - 1
	switch {
	case rest <= 6:
		for i := rec.Outermost + 1; i < total; i++ {
			line(i)
		}
	default:
		for i := rec.Outermost + 1; i < rec.Outermost+4; i++ {
			line(i)
		}
		out = append(out, fmt.Sprintf("... %d frames ...", rest-6))
		for i := total - 3; i < total; i++ {
			line(i)
		}
	}
	return out
}

func (p *writer) capture(r *Result) {
	if r.Audit == nil {
		return
	}
	p.heading("Will the next crash leave evidence?")
	// The pools that crashed first: the audit of another pool says
	// nothing about them.
	crashed, crashedIn := map[string]bool{}, map[string]bool{}
	for _, cp := range r.Pools {
		crashed[cp.Pool] = true
		if cp.Installation != "" {
			crashedIn[cp.Installation] = true
		}
		verdict := "not in the audited configuration"
		if cp.CoresWritten != nil {
			verdict = "cores will NOT be written"
			if *cp.CoresWritten {
				verdict = "cores will be written"
			}
			if cp.CoreDir != "" {
				verdict += " -> " + cp.CoreDir
			}
			verdict += " (" + cp.Config + ")"
		}
		what := "pool " + cp.Pool
		if strings.Contains(cp.Installation, "mod_php") {
			what = cp.Installation + " children"
		}
		p.line("%s (crashed %d times): %s", what, cp.Deaths, verdict)
		for _, n := range cp.Notes {
			p.item("MISMATCH: %s", n)
		}
	}
	blocks, risky, elsewhere := 0, 0, 0
	var lines []string
	for _, f := range r.Audit.Findings {
		switch f.Status {
		case audit.StatusBlocks, audit.StatusRisky, audit.StatusPending:
			if len(crashed) > 0 && f.Pool != "" && !crashed[f.Pool] || len(crashedIn) > 0 && f.Installation != "" && !crashedIn[f.Installation] {
				elsewhere++ // about a pool or an installation that did not crash
				continue
			}
			where := ""
			if len(f.Evidence) > 0 {
				where = " (" + f.Evidence[0].String() + ")"
			}
			lines = append(lines, fmt.Sprintf("%s: %s%s", f.Status, f.Message, where))
			if f.Status == audit.StatusBlocks {
				blocks++
			} else {
				risky++
			}
		}
	}
	sort.SliceStable(lines, func(i, j int) bool {
		return strings.HasPrefix(lines[i], "blocks") && !strings.HasPrefix(lines[j], "blocks")
	})
	if blocks == 0 {
		p.line("yes: no layer blocks core dumps (%d risky)", risky)
	} else {
		p.line("no: %d layer(s) block core dumps; `coroner fix --capture` shows the changes, `--apply` writes them", blocks)
	}
	for i, l := range lines {
		if i == 8 {
			p.item("... see `coroner audit`")
			break
		}
		p.item("%s", l)
	}
	if elsewhere > 0 {
		p.item("and %d finding(s) about pools or installations that did not crash (see `coroner audit`)", elsewhere)
	}
}

// installationNames lists the audited installations: "php8.2-fpm, apache2
// (mod_php 8.2)".
func installationNames(a *audit.Report) string {
	var names []string
	for _, in := range a.Installations {
		names = append(names, in.Name)
	}
	if len(names) == 0 {
		return "none found"
	}
	return strings.Join(names, ", ")
}
