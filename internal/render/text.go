package render

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/units"
)

// TextOptions tune the text report.
type TextOptions struct {
	// OtherThreadFrames is how many frames of non-crashed threads to show
	// (default 8; negative shows all).
	OtherThreadFrames int
	// Registers shows the crashed thread's registers.
	Registers bool
	// Timings shows how long each analysis stage took.
	Timings bool
}

// Text writes a human-readable post-mortem: the View of the report
// (NewView), printed. Every string of the report is shown with its
// control characters escaped (package sanitize).
func Text(w io.Writer, r *crash.Report, opts TextOptions) error {
	v := NewView(r, ViewOptions{OtherThreadFrames: opts.OtherThreadFrames})
	r = v.Report
	tw := &textWriter{w: w}
	tw.header(r)
	tw.fault(v.Fault)
	tw.diagnosis(v.Diagnosis)
	tw.replay(v.Replay)
	tw.php(v.PHP)
	for i := range v.Threads {
		tw.thread(&v.Threads[i])
	}
	if opts.Registers {
		tw.registers(r)
	}
	tw.modules(r)
	tw.warnings(v.Warnings)
	if opts.Timings {
		tw.timings(r)
	}
	return tw.err
}

type textWriter struct {
	w   io.Writer
	err error
}

func (t *textWriter) p(format string, args ...any) {
	if t.err != nil {
		return
	}
	_, t.err = fmt.Fprintf(t.w, format+"\n", args...)
}

func (t *textWriter) header(r *crash.Report) {
	p := r.Process
	name := p.Comm
	if p.Executable != "" {
		name = filepath.Base(p.Executable)
	}
	if r.Live != nil {
		t.liveHeader(r, name)
		return
	}
	t.p("%s (pid %d, uid %d) died of %s", name, p.PID, p.UID, SignalText(r.Signal))
	if p.Args != "" {
		t.p("  command:  %s", p.Args)
	}
	t.p("  core:     %s (%s)%s", p.CorePath, units.Bytes(p.CoreSize), map[bool]string{true: " TRUNCATED", false: ""}[p.Truncated])
	if line := RootLine(r.Root); line != "" {
		t.p("  root:     %s", line)
	}
	if tr := p.Truncation; tr != nil {
		t.p("            %s", wrap(tr.Summary, 96, "            "))
	}
	if r.Fingerprint != "" {
		t.p("  signature: %s", r.Fingerprint)
	}
	if rr := r.Reraise; rr != nil {
		t.p("  re-raised: %s", wrap(rr.Explanation, 96, "             "))
	}
	t.p("")
}

// SignalText names a signal with its code ("SIGSEGV (SEGV_MAPERR)"), or
// says it is unknown when the core records none.
func SignalText(s crash.Signal) string {
	if s.Name == "" {
		if s.Number != 0 {
			return fmt.Sprintf("signal %d", s.Number)
		}
		return "an unknown signal (the core records none)"
	}
	if s.CodeName != "" {
		return s.Name + " (" + s.CodeName + ")"
	}
	return s.Name
}

// liveHeader is the header of a snapshot of a running process.
func (t *textWriter) liveHeader(r *crash.Report, name string) {
	p, l := r.Process, r.Live
	t.p("%s (pid %d, uid %d) is running: snapshot at %s", name, p.PID, p.UID, l.Time)
	if p.Args != "" {
		t.p("  command:  %s", p.Args)
	}
	t.p("  pause:    %s for %d thread(s), %s memory (%s copied while stopped)",
		LiveDuration(l.PauseMS), l.Threads, l.Memory, units.Bytes(l.CopiedBytes))
	t.p("  doing:    %s", LiveDoing(l))
	if w := l.Worker; w != nil {
		t.p("  worker:   %s", WorkerText(w))
	}
	if l.CorePath != "" {
		t.p("  core:     %s", l.CorePath)
	}
	if r.Fingerprint != "" {
		t.p("  signature: %s", r.Fingerprint)
	}
	t.p("")
}

// LiveDuration formats milliseconds for people ("3.2 ms", "14.1 s").
func LiveDuration(ms float64) string {
	switch {
	case ms < 0:
		return "?"
	case ms < 1000:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 120000:
		return fmt.Sprintf("%.1f s", ms/1000)
	}
	return fmt.Sprintf("%.0f min", ms/60000)
}

// LiveDoing says what a running process was doing when it was stopped.
func LiveDoing(l *crash.Live) string {
	var s string
	switch {
	case l.Syscall != "":
		s = "blocked in the system call " + l.Syscall
	case l.State == "R":
		s = "running on a CPU (user code)"
	default:
		s = "state " + l.State
	}
	return fmt.Sprintf("%s; %.2f s of CPU so far", s, l.CPUSeconds)
}

// WorkerText describes an FPM worker and its current request.
func WorkerText(w *crash.Worker) string {
	s := fmt.Sprintf("pool %s, %s", w.Pool, w.State)
	idle := strings.EqualFold(w.State, "idle")
	if w.RequestMS >= 0 && !idle {
		s += ", request running for " + LiveDuration(w.RequestMS)
	}
	if w.Method != "" || w.URI != "" {
		if idle {
			s += " (last request " + strings.TrimSpace(w.Method+" "+w.URI) + ")"
		} else {
			s += ": " + strings.TrimSpace(w.Method+" "+w.URI)
		}
	}
	s += fmt.Sprintf(" (%d requests served; from %s)", w.Requests, w.Source)
	return s
}

func (t *textWriter) fault(f *FaultView) {
	if f == nil {
		return
	}
	t.p("FAULT: %s", f.Kind)
	if f.Instruction != "" {
		where := ""
		if f.Where != "" {
			where = "  " + f.Where
		}
		t.p("  %s%s", f.Instruction, where)
	}
	if f.Explanation != "" {
		t.p("  %s", wrap(f.Explanation, 100, "  "))
	}
	for _, d := range f.Details {
		t.p("  - %s", d)
	}
	t.p("")
}

func (t *textWriter) diagnosis(ds []DiagnosisView) {
	if len(ds) == 0 {
		return
	}
	t.p("DIAGNOSIS")
	for _, d := range ds {
		t.p("  %d. [%s] %s (%s confidence)", d.Number, d.Rule, d.Title, d.Confidence)
		if d.Explanation != "" {
			t.p("     %s", wrap(d.Explanation, 96, "     "))
		}
		for _, f := range d.Fixes {
			t.p("     fix: %s", f.Text)
		}
		for _, ref := range d.References {
			t.p("     see: %s", ref)
		}
	}
	t.p("")
}

// replay prints what to run next to see whether the crash is
// deterministic.
func (t *textWriter) replay(r *ReplayView) {
	if r == nil {
		return
	}
	t.p("REPRODUCE")
	t.p("  see the request:  %s", r.DryRun)
	t.p("  re-send it:       %s", r.Run)
	t.p("")
}

func (t *textWriter) php(ph *PHPView) {
	if ph == nil {
		return
	}
	head := "PHP " + ph.Version
	if ph.SAPI != "" {
		head += " (" + ph.SAPI + ")"
	}
	t.p("%s", head)
	if q := ph.Request; q != nil {
		t.p("  request:  %s %s", q.Method, q.URI)
		if q.Query != "" {
			t.p("  query:    %s", q.Query)
		}
		if q.Host != "" {
			t.p("  host:     %s", q.Host)
		}
		if q.Client != "" {
			t.p("  client:   %s", q.Client)
		}
		if q.Script != "" {
			t.p("  script:   %s", q.Script)
		}
		if q.UserAgent != "" {
			t.p("  agent:    %s", q.UserAgent)
		}
	}
	if ph.JIT != nil {
		t.p("  jit:      %s (%s)", ph.JIT.Mode, ph.JIT.Description)
	}
	if len(ph.INI) > 0 {
		parts := make([]string, 0, len(ph.INI))
		for _, kv := range ph.INI {
			parts = append(parts, kv.K+"="+kv.V)
		}
		t.p("  ini:      %s", wrap(strings.Join(parts, "  "), 100, "            "))
	}
	for i := range ph.Stacks {
		s := &ph.Stacks[i]
		t.p("  %s:", s.Title)
		for _, l := range s.Lines {
			if c := l.Cycle; c != nil {
				t.p("    #%d..#%d: cycle of %d frames x %s", c.Start, c.End, c.Length, l.Repeats)
				continue
			}
			f := l.PHP
			loc := ""
			if f.File != "" {
				loc = fmt.Sprintf("  %s:%d", f.File, f.Line)
			}
			t.p("    #%-4d %s(%s)%s", f.Number, f.Name, f.ArgList(), loc)
		}
	}
	if ph.Layout != "" {
		t.p("  layout:   %s", ph.Layout)
	}
	for _, w := range ph.Warnings {
		t.p("  warning: %s", w)
	}
	t.p("")
}

func (t *textWriter) thread(s *StackView) {
	t.p("%s", s.Title)
	for _, l := range s.Lines {
		if c := l.Cycle; c != nil {
			t.p("  #%d..#%d: cycle of %d frames x %s", c.Start, c.End, c.Length, l.Repeats)
			continue
		}
		f := l.Native
		php := ""
		if f.PHP != "" {
			php = "  <- php: " + f.PHP
		}
		// As gdb: the functions inlined at the pc first (innermost
		// first), then the function whose frame it is, then the
		// functions that left by a tail call before its caller.
		for _, v := range f.Inlined {
			t.p("  #%-4d %s  %-40s %s+%s [inlined]%s", f.Index, f.PC, v.Function, f.Module, f.ModuleOffset, at(v.File, v.Line))
		}
		t.p("  #%-4d %s  %-40s %s+%s [%s]%s%s", f.Index, f.PC, f.Name, f.Module, f.ModuleOffset, f.Trust, at(f.File, f.Line), php)
		for _, v := range f.TailCalls {
			t.p("        %s  %-40s %s+%s [tail call]%s", v.PC, v.Function, f.Module, v.ModuleOffset, at(v.File, v.Line))
		}
	}
	if s.More > 0 {
		t.p("  ... %d more frames", s.More)
	}
	for _, w := range s.Warnings {
		t.p("  warning: %s", w)
	}
	t.p("")
}

func frameName(f *crash.Frame) string {
	switch {
	case f.Function != "":
		if f.FunctionOffset != 0 {
			return fmt.Sprintf("%s+%s", f.Function, f.FunctionOffset)
		}
		return f.Function
	case f.FunctionSource == "eh-frame":
		// A function without a name whose start .eh_frame gives: named
		// after that start, as disassemblers do (sub_6f28+0x52 is 0x52
		// bytes into the function at module offset 0x6f28).
		return fmt.Sprintf("%s+%s", UnnamedFunction(f), f.FunctionOffset)
	case f.Module != "":
		return f.Module
	}
	return "??"
}

// UnnamedFunction names a function that has no symbol by the module
// offset of its start ("sub_171d70"), for frames whose function_source is
// eh-frame.
func UnnamedFunction(f *crash.Frame) string {
	return fmt.Sprintf("sub_%x", uint64(f.ModuleOffset)-uint64(f.FunctionOffset))
}

func at(file string, line int) string {
	if file == "" {
		return ""
	}
	return fmt.Sprintf(" at %s:%d", file, line)
}

// registerOrder is the order registers are shown in, as gdb's `info
// registers` shows them.
var registerOrder = []crash.Reg{crash.RegRAX, crash.RegRBX, crash.RegRCX, crash.RegRDX, crash.RegRSI, crash.RegRDI,
	crash.RegRBP, crash.RegRSP, crash.RegR8, crash.RegR9, crash.RegR10, crash.RegR11, crash.RegR12, crash.RegR13,
	crash.RegR14, crash.RegR15, crash.RegRIP, crash.RegEflags, crash.RegFSBase, crash.RegGSBase}

func (t *textWriter) registers(r *crash.Report) {
	th := r.CrashedThread()
	if th == nil || th.Registers.IsZero() {
		return
	}
	t.p("REGISTERS (thread %d)", th.TID)
	for i := 0; i < len(registerOrder); i += 4 {
		var parts []string
		for _, r := range registerOrder[i:min(i+4, len(registerOrder))] {
			parts = append(parts, fmt.Sprintf("%-7s 0x%016x", r, th.Registers.Value(r)))
		}
		t.p("  %s", strings.Join(parts, "  "))
	}
	t.p("")
}

func (t *textWriter) modules(r *crash.Report) {
	var notes []string
	for _, m := range r.Modules {
		switch {
		case m.Mismatch:
			notes = append(notes, fmt.Sprintf("%s: build-id differs from the file on disk (%s in core, %s on disk)", m.Path, m.BuildID, m.FileBuildID))
		case m.Missing && m.FileBuildID != "":
			notes = append(notes, fmt.Sprintf("%s: not used: the file here is another build (%s in core, %s on disk)", m.Path, m.BuildID, m.FileBuildID))
		case m.Deleted:
			notes = append(notes, fmt.Sprintf("%s: mapped (deleted): replaced while the process ran", m.Path))
		case m.Missing:
			notes = append(notes, fmt.Sprintf("%s: not found on this host", m.Path))
		}
	}
	if len(notes) == 0 {
		return
	}
	t.p("MODULES")
	shown := notes
	if len(shown) > maxModuleNotes {
		// Another root: most objects lack their file; the warnings say
		// which and how to supply them (--json lists them all).
		shown = shown[:maxModuleNotes]
	}
	for _, n := range shown {
		t.p("  %s", n)
	}
	if len(notes) > len(shown) {
		t.p("  ... and %d more (--json lists every module)", len(notes)-len(shown))
	}
	t.p("")
}

// maxModuleNotes bounds the modules the text report lists as replaced or
// missing.
const maxModuleNotes = 12

func (t *textWriter) warnings(ws []string) {
	if len(ws) == 0 {
		return
	}
	t.p("WARNINGS")
	for _, w := range ws {
		t.p("  - %s", w)
	}
	t.p("")
}

func (t *textWriter) timings(r *crash.Report) {
	var parts []string
	for _, d := range r.Timings {
		parts = append(parts, fmt.Sprintf("%s %.1fms", d.Stage, d.MS))
	}
	t.p("timings: %s", strings.Join(parts, ", "))
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// wrap folds text at width, indenting continuation lines.
func wrap(s string, width int, indent string) string {
	words := strings.Fields(s)
	var b strings.Builder
	col := 0
	for i, w := range words {
		if i > 0 {
			if col+1+len(w) > width {
				b.WriteString("\n" + indent)
				col = 0
			} else {
				b.WriteByte(' ')
				col++
			}
		}
		b.WriteString(w)
		col += len(w)
	}
	return b.String()
}

// RootLine describes where the process's files were found, "" for this
// host: "docker container web (3f2a9c1b0d4e, image php:8.4-fpm) at DIR".
func RootLine(r *crash.Root) string {
	if r == nil || r.Runtime == "" || r.Runtime == "host" || r.Runtime == "sysroot" {
		return ""
	}
	var b strings.Builder
	switch r.Runtime {
	case "given":
		b.WriteString("chroot")
	case "core-dir":
		b.WriteString("chroot holding the core")
	case "process":
		b.WriteString("root of the running process")
	case "docker-layer", "containerd-layer", "podman-layer":
		// Files found in the unpacked layers of images (the container
		// may be gone); a layer's id names no container.
		return strings.TrimSuffix(r.Runtime, "-layer") + " image layers, the executable in " + r.Dir
	default:
		b.WriteString(r.Runtime + " container")
	}
	if r.Name != "" {
		b.WriteString(" " + r.Name)
	}
	var extra []string
	if r.ID != "" {
		id := r.ID
		if len(id) > 12 {
			id = id[:12]
		}
		extra = append(extra, id)
	}
	if r.Pod != "" {
		pod := "pod " + r.Pod
		if r.Namespace != "" {
			pod = "pod " + r.Namespace + "/" + r.Pod
		}
		extra = append(extra, pod)
	}
	if r.Image != "" {
		extra = append(extra, "image "+r.Image)
	}
	if len(extra) > 0 {
		b.WriteString(" (" + strings.Join(extra, ", ") + ")")
	}
	b.WriteString(" at " + r.Dir)
	return b.String()
}
