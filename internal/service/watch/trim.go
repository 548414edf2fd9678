package watch

import (
	"fmt"

	"github.com/coroner-dev/coroner/crash"
)

// Frames kept per stack in the database: the innermost keepInner and the
// outermost keepOuter. A deep recursion has tens of thousands of frames
// (26 MB of JSON for one core); the cycles still describe the whole stack.
const (
	keepInner = 1000
	keepOuter = 50
)

// trimReport bounds the stacks of rep before it is stored, noting in its
// warnings what was left out.
func trimReport(rep *crash.Report) {
	for i := range rep.Threads {
		t := &rep.Threads[i]
		if n := len(t.Frames); n > keepInner+keepOuter {
			t.Frames = append(t.Frames[:keepInner:keepInner], t.Frames[n-keepOuter:]...)
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("stored %d of the %d native frames of thread %d (innermost %d, outermost %d); cycles refer to the full stack",
				len(t.Frames), n, t.TID, keepInner, keepOuter))
		}
	}
	if rep.PHP != nil {
		if n := len(rep.PHP.Frames); n > keepInner+keepOuter {
			rep.PHP.Frames = append(rep.PHP.Frames[:keepInner:keepInner], rep.PHP.Frames[n-keepOuter:]...)
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("stored %d of the %d PHP frames (innermost %d, outermost %d); cycles refer to the full stack",
				len(rep.PHP.Frames), n, keepInner, keepOuter))
		}
	}
}
