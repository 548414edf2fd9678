package doctor

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// JSON writes the result as indented JSON.
func JSON(w io.Writer, r *Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Text writes the diagnosis for a person at a terminal; every string from
// logs, cores and configuration is shown with its control characters
// escaped (package sanitize).
func Text(w io.Writer, r *Result) error {
	return write(w, sanitize.Copy(r), false)
}

// Markdown writes the diagnosis as Markdown (for a ticket or a chat): what
// came from logs, cores and configuration is escaped as text (no tag, no
// link, no emphasis) or fenced as code.
func Markdown(w io.Writer, r *Result) error {
	return write(w, sanitize.Copy(r), true)
}

// mdRaw is an argument of writer.line that is Markdown already (a fix
// text with its code spans): not escaped again.
type mdRaw string

type writer struct {
	w   io.Writer
	md  bool
	err error
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

func write(w io.Writer, r *Result, md bool) error {
	p := &writer{w: w, md: md}
	title := fmt.Sprintf("coroner doctor: %s, %s", r.Host, r.Time.Format("2006-01-02 15:04:05 MST"))
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
	parts = append(parts, fmt.Sprintf("%d cores found, %d analysed", len(r.Cores), r.Analysed))
	if r.Audit != nil {
		parts = append(parts, fmt.Sprintf("%d PHP-FPM installations audited", len(r.Audit.Installations)))
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
		if s.Incidents == 0 && len(r.Groups) == 0 {
			p.line("no worker deaths in the logs read")
			return
		}
		if s.Incidents > 0 {
			p.line("%d worker deaths (%d crashes) from %s to %s, %.1f per hour", s.Incidents, s.Crashes,
				s.First.Format("2006-01-02 15:04:05"), s.Last.Format("2006-01-02 15:04:05"), s.PerHour)
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
		if len(s.Loops) > 0 {
			l := s.Loops[0]
			p.item("crash loop: %d deaths of pool %s between %s and %s", l.N, l.Pool, l.Start.Format("15:04:05"), l.End.Format("15:04:05"))
		}
		if s.EmergencyRestarts > 0 {
			p.item("emergency restarts of the FPM master: %d", s.EmergencyRestarts)
		}
		if n := s.HTTPStatus[502]; n > 0 {
			p.item("HTTP 502 responses in the access log: %d", n)
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
		facts = append(facts, "first "+g.First.Format("2006-01-02 15:04:05"), "last "+g.Last.Format("2006-01-02 15:04:05"))
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
		p.item("core %s: %s, %s", rep.Process.CorePath, rep.Signal.Name, rep.Fault.Kind)
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
		desc := fmt.Sprintf("%s pid %d %s", inc.Time.Format("2006-01-02 15:04:05"), inc.PID, inc.SignalName)
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
		if name == "" {
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

func phpFrames(ph *crash.PHP, n int) []string {
	var out []string
	for i, f := range ph.Frames {
		if i == n {
			out = append(out, fmt.Sprintf("... %d more PHP frames", len(ph.Frames)-n))
			break
		}
		loc := ""
		if f.File != "" {
			loc = fmt.Sprintf("  %s:%d", f.File, f.Line)
		}
		out = append(out, fmt.Sprintf("php #%-3d %s%s", i, f.QualifiedName()+"()", loc))
	}
	return out
}

func (p *writer) capture(r *Result) {
	if r.Audit == nil {
		return
	}
	p.heading("Will the next crash leave evidence?")
	blocks, risky := 0, 0
	var lines []string
	for _, f := range r.Audit.Findings {
		switch f.Status {
		case audit.StatusBlocks, audit.StatusRisky, audit.StatusPending:
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
}
