package diagnose

import (
	"strconv"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// recursionStack is a PHP stack, innermost frame first, of render(k) ->
// array_map() -> {closure}() turns with k growing outwards, entered from
// {main}: a deep recursion with varying arguments.
func recursionStack(turns int) *crash.PHP {
	ph := &crash.PHP{}
	for k := turns; k > 0; k-- {
		ph.Frames = append(ph.Frames,
			crash.PHPFrame{Function: "{closure}", Class: "Thread", File: "t.php", Line: 22, Kind: crash.PHPUser, Args: []string{strconv.Itoa(k)}},
			crash.PHPFrame{Function: "array_map", Kind: crash.PHPInternal, Args: []string{"object(Closure)", "array(1)"}},
			crash.PHPFrame{Function: "render", Class: "Thread", File: "t.php", Line: 20, Kind: crash.PHPUser, Args: []string{strconv.Itoa(k)}},
		)
	}
	ph.Frames = append(ph.Frames, crash.PHPFrame{Function: "{main}", File: "t.php", Line: 40, Kind: crash.PHPUser})
	ph.Cycles = detectCycles(phpNames(ph.Frames), 3)
	return ph
}

// TestPHPRecursionStoredStack diagnoses a deep recursion whose stack was
// cut for storage (the innermost 1000 and outermost 50 frames kept, the
// cycle as found on the whole stack, as the watcher stores reports): the
// loop is named as on the whole stack, within the frames held.
func TestPHPRecursionStoredStack(t *testing.T) {
	full := recursionStack(13000)
	want := PHPRecursion(full)
	if want == nil || want.Length != 3 || want.Args != crash.RecursionVaries {
		t.Fatalf("whole stack: %+v", want)
	}
	n := len(full.Frames)
	stored := &crash.PHP{Frames: append(full.Frames[:1000:1000], full.Frames[n-50:]...)}
	for _, c := range full.Cycles {
		stored.Cycles = append(stored.Cycles, crash.Cycle{Start: c.Start, End: 999, Length: c.Length, Repeats: c.Repeats})
	}
	got := PHPRecursion(stored)
	if got == nil {
		t.Fatal("stored stack: no recursion")
	}
	if got.Length != want.Length || got.Repeats != want.Repeats || got.Args != want.Args {
		t.Errorf("stored stack: %d frames x %d (%s), whole stack: %d x %d (%s)", got.Length, got.Repeats, got.Args, want.Length, want.Repeats, want.Args)
	}
	for _, i := range append([]int{got.Innermost, got.Outermost, got.Entry, got.ReEntry}, got.Calls...) {
		if i < 0 || i >= len(stored.Frames) {
			t.Errorf("frame index %d outside the %d frames held", i, len(stored.Frames))
		}
	}
}

// FuzzPHPRecursion gives PHPRecursion cycles that do not fit the frames
// (a stored or hostile report): it must not panic, and what it returns
// must point into the frames.
func FuzzPHPRecursion(f *testing.F) {
	f.Add(0, 999, 3, 13000, 1050)
	f.Add(2, 5, 1, 4, 10)
	f.Add(-1, -1, 0, 0, 3)
	f.Add(7, 1<<30, 2, 1<<29, 40)
	f.Fuzz(func(t *testing.T, start, end, length, repeats, frames int) {
		if frames < 0 || frames > 5000 {
			return
		}
		ph := recursionStack(frames/3 + 1)
		ph.Frames = ph.Frames[:min(frames, len(ph.Frames))]
		ph.Cycles = []crash.Cycle{{Start: start, End: end, Length: length, Repeats: repeats}}
		r := PHPRecursion(ph)
		if r == nil {
			return
		}
		for _, i := range append([]int{r.Innermost, r.Outermost, r.Entry, r.ReEntry}, r.Calls...) {
			if i < 0 || i >= len(ph.Frames) {
				t.Fatalf("frame index %d outside the %d frames", i, len(ph.Frames))
			}
		}
	})
}
