package analyze

import (
	"fmt"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/units"
)

// cutMark is how the core reader says that memory was cut from a
// truncated core (elfcore).
const cutMark = "the core is truncated"

// noteTruncation says once, for the whole report, what a truncated core
// lacks: which frames are unknown because the stack's memory was cut, and
// whether the PHP state could be read. The diagnosis lowers its confidence
// on it and the rules that need what is missing do not fire.
func (a *analysis) noteTruncation() {
	if !a.core.Truncated() {
		return
	}
	t := &crash.Truncation{Size: a.core.Size(), Expected: a.core.ExpectedSize()}
	if th := a.report.CrashedThread(); th != nil && len(th.Frames) > 0 {
		t.LastFrame = len(th.Frames) - 1
		last := th.Frames[t.LastFrame]
		complete := true
		for _, w := range th.Warnings {
			if strings.HasPrefix(w, "unwinding stopped") {
				complete = false
			}
		}
		sp := uint64(last.SP)
		if v, ok := th.Registers.Get(crash.RegRSP); ok && t.LastFrame == 0 {
			sp = v
		}
		if m := a.core.Mapping(sp); !complete && m != nil && m.Cut > 0 {
			t.StackIncomplete = true
		}
	}
	if ph := a.report.PHP; ph != nil {
		for _, w := range ph.Warnings {
			if strings.Contains(w, cutMark) {
				t.PHPIncomplete = true
			}
		}
	} else if isPHPExecutable(a.report.Process.Executable) {
		t.PHPIncomplete = true
	}
	var what []string
	if t.StackIncomplete {
		th := a.report.CrashedThread()
		f := th.Frames[t.LastFrame]
		name := f.Function
		if name == "" {
			name = f.Module
		}
		what = append(what, fmt.Sprintf("the frames past #%d %s are unknown (the stack's memory was cut)", t.LastFrame, name))
	}
	if t.PHPIncomplete {
		what = append(what, "the PHP state (stack, request, INI) is partly or wholly unknown")
	}
	if len(what) == 0 {
		what = append(what, "the crashed thread's stack was read whole; other memory is missing")
	}
	t.Summary = fmt.Sprintf("the core is truncated at %s of %s: %s", units.Bytes(t.Size), units.Bytes(t.Expected), strings.Join(what, "; "))
	a.report.Process.Truncation = t
}

// isPHPExecutable reports whether an executable's name is a PHP binary.
func isPHPExecutable(path string) bool {
	b := path[strings.LastIndexByte(path, '/')+1:]
	return strings.HasPrefix(b, "php") || strings.HasPrefix(b, "lsphp") || b == "frankenphp"
}
