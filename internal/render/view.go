package render

import (
	"fmt"
	"sort"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/sanitize"
)

// View is a crash report laid out for people: the sections the text report
// prints and the dashboard's crash page shows, with the stacks folded, the
// frames named and annotated, the fixes with their commands. NewView builds
// it once from a crash.Report; Text prints it and the dashboard's HTML
// ranges over it, so that both show the same thing.
type View struct {
	// Report is the sanitised copy of the report the view was made from
	// (the header, registers and modules are read from it).
	Report *crash.Report
	// Fault is what went wrong, nil when the fault is not known.
	Fault *FaultView
	// Diagnosis lists the rules that matched, best first.
	Diagnosis []DiagnosisView
	// PHP is the PHP state, nil for a process that is not PHP.
	PHP *PHPView
	// Threads are the native stacks, in the report's order.
	Threads []StackView
	// Warnings are the report's own warnings.
	Warnings []string
	// Replay holds the `coroner replay` commands that re-send the request
	// the worker died on, nil unless the report is of a PHP-FPM worker's
	// core with a recovered request (ReplayCommands).
	Replay *ReplayView
}

// ReplayView is what to run next to see whether the crash is
// deterministic: DryRun shows the request that would be re-sent, Run
// re-sends it to the pool's socket (which `coroner replay` finds in the
// PHP-FPM configuration).
type ReplayView struct {
	DryRun, Run string
}

// ViewOptions tune what a View keeps of the stacks.
type ViewOptions struct {
	// OtherThreadFrames is how many frames of non-crashed threads to keep
	// (0: 8; negative: all).
	OtherThreadFrames int
	// MaxLines bounds the lines of each stack (0: no bound); the frames
	// after the last line are counted in StackView.More.
	MaxLines int
	// CorePath is the core the replay commands name (default: the
	// report's Process.CorePath), for a core kept elsewhere (the
	// dashboard's stored core).
	CorePath string
}

// FaultView is the fault explained.
type FaultView struct {
	Kind crash.FaultKind
	// Instruction is the faulting instruction, Where the function it is in
	// ("at pcre2_jit_match_8+0x41", "in f (inlined) at g+0x12"), "" when
	// the stack has no frame.
	Instruction, Where string
	// PC and Address are the instruction's address and the address it
	// accessed (0: none).
	PC, Address crash.Addr
	Register    string
	Explanation string
	Details     []string
}

// DiagnosisView is one matched rule with its fixes.
type DiagnosisView struct {
	// Number counts from 1.
	Number      int
	Rule, Title string
	Confidence  crash.Confidence
	Explanation string
	Matched     []string
	Fixes       []FixView
	References  []string
}

// FixView is one fix: what to do and, when a `coroner fix` profile applies
// it, the exact command.
type FixView struct {
	Kind crash.FixKind
	// Setting and Value are the INI setting and its new value ("" for a
	// fix that is not a setting).
	Setting, Value string
	Description    string
	// Text is the fix in one line as the text report prints it (FixText).
	Text string
	// Command is the `coroner fix --mitigate=... --apply` command that
	// applies the fix, "" when none does (FixCommand).
	Command string
}

// PHPView is the PHP state: version, request, JIT, INI and stacks.
type PHPView struct {
	Version, SAPI string
	ZTS           bool
	Request       *RequestView
	// JIT is the OPcache JIT's mode and description, nil when unknown.
	JIT *crash.JIT
	// INI lists the effective directives, sorted by name.
	INI []KV
	// Stacks are the PHP stack of the crashed thread (first, when it has
	// frames) and those of the other threads of a ZTS process.
	Stacks []StackView
	// Layout names the layout the PHP readers used.
	Layout   string
	Warnings []string
}

// RequestView is the request the worker was serving, with the fields the
// text report shows only when they add something left empty.
type RequestView struct {
	Method string
	// URI is the request URI, else the script.
	URI string
	// Query is the query string when URI does not hold it already.
	Query                   string
	Host, Client, UserAgent string
	// Script is the script when it differs from URI.
	Script string
	// Params are the FastCGI parameters, sorted by name.
	Params []KV
}

// KV is a name and its value.
type KV struct{ K, V string }

// StackView is one folded stack.
type StackView struct {
	// Title is the stack's heading as the text report prints it
	// ("CRASHED THREAD 123 (41226 frames)", "PHP stack (4 frames)").
	Title string
	// TID is the thread; Frames the number of frames of the whole stack.
	TID, Frames int
	Crashed     bool
	// Lines are the frames and cycle summaries shown.
	Lines []StackLine
	// More counts the frames after the last line that are left out.
	More     int
	Warnings []string
}

// StackLine is one line of a folded stack: a native frame, a PHP frame, or
// (Cycle set) the summary of a cycle whose first repetition the lines
// before it showed.
type StackLine struct {
	Native *NativeRow
	PHP    *PHPRow
	Cycle  *crash.Cycle
	// Repeats is the cycle's repeat count with thousands separators.
	Repeats string
}

// NativeRow is a native frame named and annotated as gdb and the text
// report show it.
type NativeRow struct {
	Index int
	PC    crash.Addr
	// Name is the function and offset ("execute_ex+0x72fd"), an unnamed
	// function by its start ("sub_6f28+0x52"), else the module or "??".
	Name string
	// Unnamed says Name is sub_START+OFFSET (no symbol names the function).
	Unnamed      bool
	Module       string
	ModuleOffset crash.Addr
	Trust        crash.Trust
	File         string
	Line         int
	// PHP is the PHP function the frame executes, "Class->method()
	// file:line" ("" when none).
	PHP string
	// Inlined are the functions inlined at the pc, innermost first, shown
	// before the frame; TailCalls the functions that left by a tail call
	// before its caller, shown after it.
	Inlined, TailCalls []crash.VirtualFrame
}

// PHPRow is a PHP frame with its arguments.
type PHPRow struct {
	Number int
	// Name is "Class->method", "Class::method" or "function".
	Name string
	Args []string
	File string
	Line int
	Kind crash.PHPFrameKind
}

// ArgList is the arguments joined as PHP writes them.
func (p *PHPRow) ArgList() string { return strings.Join(p.Args, ", ") }

// NewView lays out a report (a sanitised copy of it: every string has its
// control characters escaped).
func NewView(r *crash.Report, opts ViewOptions) *View {
	r = sanitize.Copy(r)
	if opts.OtherThreadFrames == 0 {
		opts.OtherThreadFrames = 8
	}
	v := &View{Report: r, Warnings: r.Warnings}
	v.Fault = faultView(r)
	for i, d := range r.Diagnosis {
		dv := DiagnosisView{Number: i + 1, Rule: d.Rule, Title: d.Title, Confidence: d.Confidence, Explanation: d.Explanation,
			Matched: d.Matched, References: d.References}
		for _, f := range d.Fix {
			dv.Fixes = append(dv.Fixes, FixView{Kind: f.Kind, Setting: f.Setting, Value: f.Value, Description: f.Description,
				Text: FixText(f, false), Command: FixCommand(f)})
		}
		v.Diagnosis = append(v.Diagnosis, dv)
	}
	v.PHP = phpView(r.PHP, opts.MaxLines)
	v.Replay = ReplayCommands(r, sanitize.Text(opts.CorePath))
	for i := range r.Threads {
		t := &r.Threads[i]
		limit := -1
		if !t.Crashed {
			limit = opts.OtherThreadFrames
		}
		v.Threads = append(v.Threads, nativeStack(r, t, limit, opts.MaxLines))
	}
	return v
}

// ReplayCommands are the `coroner replay` commands for a report: of a
// PHP-FPM worker that died (not a snapshot) serving a request whose URI
// or script the core kept, with the core's path (core, else the report's
// own). nil for anything else: Apache's mod_php, the CLI, a report
// without a core path.
func ReplayCommands(r *crash.Report, core string) *ReplayView {
	if core == "" {
		core = r.Process.CorePath
	}
	ph := r.PHP
	if core == "" || r.Live != nil || ph == nil || ph.Request == nil || (ph.Request.URI == "" && ph.Request.Script == "") {
		return nil
	}
	if ph.SAPI != "fpm-fcgi" && (ph.SAPI != "" || r.Process.FPMPool() == "") {
		return nil
	}
	run := "coroner replay " + shellQuote(core)
	return &ReplayView{DryRun: run + " --dry-run", Run: run}
}

// shellQuote quotes a word for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:,@%=", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func faultView(r *crash.Report) *FaultView {
	f := r.Fault
	if f.Kind == "" {
		return nil
	}
	fv := &FaultView{Kind: f.Kind, Instruction: f.Instruction, PC: f.PC, Address: f.Address, Register: f.Register,
		Explanation: f.Explanation, Details: f.Details}
	if ff := r.FaultFrames(); len(ff) > 0 {
		f0 := &ff[0]
		fv.Where = "at " + frameName(f0)
		if len(f0.Inlined) > 0 {
			// the code that faulted is the innermost inlined function
			fv.Where = "in " + f0.Inlined[0].Function + " (inlined) at " + frameName(f0)
		}
	}
	return fv
}

func phpView(ph *crash.PHP, maxLines int) *PHPView {
	if ph == nil {
		return nil
	}
	pv := &PHPView{Version: ph.Version, SAPI: ph.SAPI, ZTS: ph.ZTS, JIT: ph.JIT, INI: sortedKV(ph.INI), Layout: ph.Layout, Warnings: ph.Warnings}
	if q := ph.Request; q != nil {
		rv := &RequestView{Method: q.Method, URI: q.URI, Host: q.Host, Client: q.RemoteAddr, UserAgent: q.UserAgent, Params: sortedKV(q.Params)}
		if rv.URI == "" {
			rv.URI = q.Script
		}
		if q.Query != "" && !strings.Contains(rv.URI, "?") {
			rv.Query = q.Query
		}
		if q.Script != "" && q.Script != rv.URI {
			rv.Script = q.Script
		}
		pv.Request = rv
	}
	if len(ph.Frames) > 0 {
		title := fmt.Sprintf("PHP stack (%d frames)", len(ph.Frames))
		if ph.ZTS && ph.Thread != 0 {
			title = fmt.Sprintf("PHP stack of thread %d (%d frames)", ph.Thread, len(ph.Frames))
		}
		s := phpStackView(ph.Frames, ph.Cycles, maxLines)
		s.Title, s.TID, s.Crashed = title, ph.Thread, true
		pv.Stacks = append(pv.Stacks, s)
	}
	for _, th := range ph.Threads {
		what := ""
		if q := th.Request; q != nil && q.URI != "" {
			what = ", serving " + strings.TrimSpace(q.Method+" "+q.URI)
		}
		s := phpStackView(th.Frames, th.Cycles, maxLines)
		s.Title, s.TID = fmt.Sprintf("PHP stack of thread %d (%d frames%s)", th.TID, len(th.Frames), what), th.TID
		pv.Stacks = append(pv.Stacks, s)
	}
	return pv
}

func sortedKV(m map[string]string) []KV {
	if len(m) == 0 {
		return nil
	}
	out := make([]KV, 0, len(m))
	for k, v := range m {
		out = append(out, KV{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
	return out
}

func phpStackView(frames []crash.PHPFrame, cycles []crash.Cycle, maxLines int) StackView {
	s := StackView{Frames: len(frames)}
	s.Lines, s.More = foldLines(Fold(len(frames), nil, cycles), len(frames), -1, maxLines, func(i int) StackLine {
		f := &frames[i]
		return StackLine{PHP: &PHPRow{Number: i, Name: f.QualifiedName(), Args: f.Args, File: f.File, Line: f.Line, Kind: f.Kind}}
	})
	return s
}

func nativeStack(r *crash.Report, th *crash.Thread, limit, maxLines int) StackView {
	label := "THREAD"
	if th.Crashed {
		label = "CRASHED THREAD"
		if r.Live != nil {
			label = "MAIN THREAD"
		}
	}
	s := StackView{Title: fmt.Sprintf("%s %d (%d frames)", label, th.TID, len(th.Frames)), TID: th.TID, Frames: len(th.Frames),
		Crashed: th.Crashed, Warnings: th.Warnings}
	s.Lines, s.More = foldLines(Fold(len(th.Frames), FrameNumber(th.Frames), th.Cycles), len(th.Frames), limit, maxLines, func(i int) StackLine {
		f := &th.Frames[i]
		row := &NativeRow{Index: f.Index, PC: f.PC, Name: frameName(f), Unnamed: f.Function == "" && f.FunctionSource == "eh-frame",
			Module: f.Module, ModuleOffset: f.ModuleOffset, Trust: f.Trust, File: f.File, Line: f.Line,
			Inlined: f.Inlined, TailCalls: f.TailCalls}
		if pf := PHPFrameOf(r, f); pf != nil {
			row.PHP = PHPLocation(pf)
		}
		return StackLine{Native: row}
	})
	return s
}

// foldLines turns the lines of a folded stack of n frames into stack
// lines: at most limit frames (limit >= 0; a cycle summary right after the
// last frame still shown), at most maxLines lines (maxLines > 0). more is
// the number of frames left out.
func foldLines(lines []Line, n, limit, maxLines int, frame func(pos int) StackLine) (out []StackLine, more int) {
	shown := 0
	for _, l := range lines {
		if maxLines > 0 && len(out) == maxLines {
			return out, n - l.Pos
		}
		if l.Cycle != nil {
			out = append(out, StackLine{Cycle: l.Cycle, Repeats: thousands(l.Cycle.Repeats)})
			continue
		}
		if limit >= 0 && shown >= limit {
			break
		}
		out = append(out, frame(l.Pos))
		shown++
	}
	if limit >= 0 && n > limit {
		more = n - limit
	}
	return out, more
}
