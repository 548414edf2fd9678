package watch

import (
	"fmt"

	"github.com/coroner-dev/coroner/crash"
)

// Frames kept per stack in the database: the innermost keepInner and the
// outermost keepOuter. A deep recursion has tens of thousands of frames
// (26 MB of JSON for one core); the cycles still describe the whole stack,
// so the dashboard folds a stored stack as the CLI folds the full one.
const (
	keepInner = 1000
	keepOuter = 50
)

// trimReport bounds the stacks of rep before it is stored, noting in its
// warnings what was left out. Native frames keep their Index (and their
// cycles count in it); the PHP stack has no frame numbers, so its cycles
// and the native frames' links to it are renumbered to the stored frames.
func trimReport(rep *crash.Report) {
	for i := range rep.Threads {
		t := &rep.Threads[i]
		if n := len(t.Frames); n > keepInner+keepOuter {
			t.Frames = append(t.Frames[:keepInner:keepInner], t.Frames[n-keepOuter:]...)
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("stored %d of the %d native frames of thread %d (innermost %d, outermost %d); cycles refer to the full stack",
				len(t.Frames), n, t.TID, keepInner, keepOuter))
		}
	}
	if rep.PHP == nil {
		return
	}
	n := len(rep.PHP.Frames)
	if n <= keepInner+keepOuter {
		return
	}
	dropped := n - keepInner - keepOuter
	// stored returns the stored position of PHP frame i, or -1.
	stored := func(i int) int {
		switch {
		case i < keepInner:
			return i
		case i >= n-keepOuter:
			return i - dropped
		}
		return -1
	}
	rep.PHP.Frames = append(rep.PHP.Frames[:keepInner:keepInner], rep.PHP.Frames[n-keepOuter:]...)
	cycles := rep.PHP.Cycles[:0:0]
	for _, c := range rep.PHP.Cycles {
		start, first := stored(c.Start), stored(c.Start+c.Length-1)
		if start < 0 || first < 0 || first-start != c.Length-1 {
			continue // its first repetition is not stored: nothing to fold
		}
		end := stored(c.End)
		if end < 0 {
			end = keepInner - 1 // the cycle runs into the frames left out
		}
		cycles = append(cycles, crash.Cycle{Start: start, End: end, Length: c.Length, Repeats: c.Repeats})
	}
	rep.PHP.Cycles = cycles
	for ti := range rep.Threads {
		for fi := range rep.Threads[ti].Frames {
			f := &rep.Threads[ti].Frames[fi]
			if f.PHPFrame == nil {
				continue
			}
			if p := stored(*f.PHPFrame); p >= 0 {
				f.PHPFrame = &p
			} else {
				f.PHPFrame = nil
			}
		}
	}
	rep.Warnings = append(rep.Warnings, fmt.Sprintf("stored %d of the %d PHP frames (innermost %d, outermost %d); the frames after #%d are numbered as stored",
		len(rep.PHP.Frames), n, keepInner, keepOuter, keepInner-1))
}
