package watch

import (
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestTrimKeepsFoldable: after trimming a deep PHP recursion the stored
// cycles and the native frames' links point at the stored PHP frames.
func TestTrimKeepsFoldable(t *testing.T) {
	const n = 9000
	php := &crash.PHP{Cycles: []crash.Cycle{{Start: 1, End: n - 3, Length: 2, Repeats: (n - 3) / 2}}}
	for i := 0; i < n; i++ {
		php.Frames = append(php.Frames, crash.PHPFrame{Function: []string{"cb", "f"}[i%2]})
	}
	php.Frames[0].Function, php.Frames[n-2].Function, php.Frames[n-1].Function = "top", "caller", "{main}"
	at := func(i int) *int { return &i }
	th := crash.Thread{Crashed: true, Frames: []crash.Frame{{Index: 0, PHPFrame: at(0)}, {Index: 1, PHPFrame: at(5000)}, {Index: 2, PHPFrame: at(n - 1)}}}
	rep := &crash.Report{PHP: php, Threads: []crash.Thread{th}}
	trimReport(rep)
	if len(php.Frames) != keepInner+keepOuter {
		t.Fatalf("%d PHP frames stored", len(php.Frames))
	}
	last := len(php.Frames) - 1
	if php.Frames[last].Function != "{main}" || php.Frames[last-1].Function != "caller" {
		t.Errorf("outermost frames not kept: %+v", php.Frames[last-1:])
	}
	if len(php.Cycles) != 1 {
		t.Fatalf("cycles %+v", php.Cycles)
	}
	c := php.Cycles[0]
	if c.Start != 1 || c.Length != 2 || c.Repeats != (n-3)/2 || c.End != last-2 {
		t.Errorf("cycle %+v, want start 1, end %d, length 2, repeats %d", c, last-2, (n-3)/2)
	}
	fr := rep.Threads[0].Frames
	if *fr[0].PHPFrame != 0 || fr[1].PHPFrame != nil || *fr[2].PHPFrame != last {
		t.Errorf("links: %v %v %v", fr[0].PHPFrame, fr[1].PHPFrame, fr[2].PHPFrame)
	}
}
