package diagnose

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// templateData is what a rule's explanation template sees (documented in
// docs/rules.md). Every field may be empty.
type templateData struct {
	Signal       string // "SIGSEGV"
	Sent         bool
	SenderPID    int
	SenderUID    int
	SelfSent     bool   // the process signalled itself
	PID          int    // the crashed process
	Fault        string // fault kind
	FaultText    string // the fault explanation from the core analysis
	FaultAddress string // "0x20"
	Frame        string // the first frame a native condition matched, in words
	FrameIndex   int
	Top          string // frame #0 in words
	Culprit      string // the innermost frame outside libc and allocator/abort internals
	Module       string // module matched by a module condition
	PHPFunction  string // the first PHP frame a php condition matched, else the innermost
	PHPLocation  string // file:line of that frame, or of the nearest caller with a file
	PHPVersion   string
	JIT          string // effective JIT mode
	INI          map[string]string
	Extension    string // extensions matched by an extension condition
	CycleFunc    string // the cycle function that matched
	CycleLength  int
	CycleRepeats int
	Frames       int // native frame count
	Message      string
	Repeated     int
	URL          string // request URI
	// Syscall is the system call a running process was blocked in, and
	// Running how long its request had run ("14.2 s"), for live rules.
	Syscall, Running string
	// Subject is "The worker" for PHP processes, "The process" otherwise;
	// SubjectLower is the same in lower case.
	Subject, SubjectLower string
	// PHP is true when the crashed process runs PHP (texts about php.ini,
	// FPM or PHP versions only make sense then).
	PHP bool
	// Truncated says what a truncated core lacks ("" for a whole core).
	Truncated string
	// PHPLoop names the PHP stack's recursion in words: the frame that
	// calls the entered function again, at its file and line, and the
	// loop's functions; PHPLoopArgs is "unbounded" (the same arguments at
	// every level), "finite" (they change) or ""; PHPLoopArgsText says
	// what that means, with the calls that show it.
	PHPLoop, PHPLoopArgs, PHPLoopArgsText string
	// Server is the program PHP runs in: "Apache" for mod_php
	// (apache2handler), "php-fpm" otherwise.
	Server string
	// PHPLoopCallback is the internal function the loop calls back
	// through (preg_replace_callback, array_map ...), "" when none.
	PHPLoopCallback string
}

func (ru *rule) explain(f *facts, cp *capture) string {
	r := f.r
	subject := "worker"
	php := f.isPHP()
	if !php {
		subject = "process"
	}
	d := templateData{
		Subject: "The " + subject, SubjectLower: "the " + subject, PHP: php, Server: "php-fpm",
		Signal:       signals.Name(f.signal),
		Sent:         f.sent,
		SenderPID:    r.Signal.SenderPID,
		SenderUID:    r.Signal.SenderUID,
		PID:          r.Process.PID,
		Fault:        string(f.fault),
		FaultText:    r.Fault.Explanation,
		PHPVersion:   f.version,
		JIT:          f.jit,
		INI:          f.ini,
		Extension:    cp.ext,
		CycleFunc:    cp.cycleFunc,
		Frames:       len(f.frames),
		Message:      cp.message,
		Repeated:     f.ev.RepeatedCrashes,
		FrameIndex:   cp.frameIdx,
		SelfSent:     f.sent && r.Signal.SenderPID != 0 && r.Signal.SenderPID == r.Process.PID,
		FaultAddress: "",
	}
	if f.sapi() == "apache2handler" {
		d.Server = "Apache"
	}
	switch {
	case r.Fault.Address != 0:
		d.FaultAddress = r.Fault.Address.String()
	case r.Signal.Address != 0 && !f.sent:
		d.FaultAddress = r.Signal.Address.String()
	case f.fault == crash.FaultNullDeref && f.ev.Kernel == nil:
		d.FaultAddress = "0x0"
	}
	if d.FaultText == "" && f.ev.Kernel != nil {
		d.FaultAddress = fmt.Sprintf("%#x", f.ev.Kernel.Address)
	}
	if r.Process.Truncated {
		d.Truncated = "the core is truncated"
		if t := r.Process.Truncation; t != nil && t.Summary != "" {
			d.Truncated = t.Summary
		}
	}
	if cp.frame != nil {
		d.Frame = describeFrame(cp.frame)
	}
	if len(f.frames) > 0 {
		d.Top = describeFrame(&f.frames[0])
	} else if k := f.ev.Kernel; k != nil && k.Module != "" {
		d.Top = filepath.Base(k.Module)
		if k.Function != "" {
			d.Top = k.Function + " in " + d.Top
		}
	}
	for i := range f.frames {
		fr := &f.frames[i]
		if nativeToken(fr) == "" || normalModule(fr.Module) == "libc" || strings.HasPrefix(filepath.Base(fr.Module), "ld-linux") {
			continue
		}
		d.Culprit = describeFrame(fr)
		break
	}
	if d.Frame == "" {
		d.Frame = d.Top
	}
	if cp.module != nil {
		d.Module = cp.module.Path
	}
	pi := -1
	if cp.phpFrame != nil {
		for i := range f.php {
			if &f.php[i] == cp.phpFrame {
				pi = i
			}
		}
	} else if len(f.php) > 0 {
		pi = 0
	}
	if pi >= 0 {
		d.PHPFunction = f.php[pi].QualifiedName() + "()"
		for i := pi; i < len(f.php); i++ {
			if f.php[i].File != "" {
				d.PHPLocation = fmt.Sprintf("%s:%d", f.php[i].File, f.php[i].Line)
				break
			}
		}
	}
	if cp.cycle != nil {
		d.CycleLength, d.CycleRepeats = cp.cycle.Length, cp.cycle.Repeats
	}
	if r.PHP != nil && r.PHP.Request != nil {
		d.URL = r.PHP.Request.URI
	}
	if rec := f.recursion; rec != nil {
		d.PHPLoop = loopText(r.PHP, rec)
		for _, i := range rec.Calls {
			if fr := &r.PHP.Frames[i]; fr.Kind == crash.PHPInternal && d.PHPLoopCallback == "" {
				d.PHPLoopCallback = fr.QualifiedName()
			}
		}
		d.PHPLoopArgsText = argsText(rec)
		switch rec.Args {
		case crash.RecursionRepeats:
			d.PHPLoopArgs = "unbounded"
		case crash.RecursionVaries:
			d.PHPLoopArgs = "finite"
		}
	}
	if l := r.Live; l != nil {
		d.Syscall = l.Syscall
		if l.Worker != nil && l.Worker.RequestMS >= 0 {
			d.Running = fmt.Sprintf("%.1f s", l.Worker.RequestMS/1000)
		}
	}
	tmpl := ru.tmpl()
	if tmpl == nil {
		return strings.TrimSpace(ru.Explanation)
	}
	var b strings.Builder
	if err := tmpl.Execute(&b, d); err != nil {
		return strings.TrimSpace(ru.Explanation)
	}
	return strings.Join(strings.Fields(b.String()), " ")
}
