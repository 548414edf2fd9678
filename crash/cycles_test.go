package crash

import (
	"reflect"
	"testing"
)

func fold(s string, min int) []Cycle {
	return FoldCycles(len(s), func(i, j int) bool { return s[i] == s[j] }, min)
}

func TestFoldCycles(t *testing.T) {
	cases := []struct {
		in   string
		want []Cycle
	}{
		{"abcdef", nil},
		{"aaaa", []Cycle{{Start: 0, End: 3, Length: 1, Repeats: 4}}},
		{"xabcabcabcy", []Cycle{{Start: 1, End: 9, Length: 3, Repeats: 3}}},
		{"xabab", nil}, // two repeats are below the minimum of 3
		{"ababababzz", []Cycle{{Start: 0, End: 7, Length: 2, Repeats: 4}}},
	}
	for _, c := range cases {
		if got := fold(c.in, 3); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: got %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestFoldCyclesDeepRecursionIsLinear(t *testing.T) {
	// 6-frame cycle repeated 6,744 times between a 5-frame top and a tail.
	frames := []int{1, 2, 3, 4, 5}
	for i := 0; i < 6744; i++ {
		frames = append(frames, 10, 11, 12, 13, 14, 15)
	}
	frames = append(frames, 20, 21, 22)
	calls := 0
	cs := FoldCycles(len(frames), func(i, j int) bool { calls++; return frames[i] == frames[j] }, 3)
	if len(cs) != 1 || cs[0].Start != 5 || cs[0].Length != 6 || cs[0].Repeats != 6744 {
		t.Fatalf("got %+v", cs)
	}
	if calls > 4*len(frames)*MaxCyclePeriod {
		t.Fatalf("%d comparisons for %d frames", calls, len(frames))
	}
}
