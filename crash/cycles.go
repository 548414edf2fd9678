package crash

// MaxCyclePeriod is the longest repeating run of frames FoldCycles detects.
const MaxCyclePeriod = 64

// FoldCycles finds runs of frames that repeat back to back, for stacks of n
// frames where same(i, j) tells whether frames i and j are the same
// (usually: same pc, or same function). A run is reported when it repeats
// at least minRepeats times. The scan is greedy from the innermost frame and
// costs O(n * MaxCyclePeriod) comparisons at most.
func FoldCycles(n int, same func(i, j int) bool, minRepeats int) []Cycle {
	if minRepeats < 2 {
		minRepeats = 2
	}
	var out []Cycle
	for i := 0; i < n; {
		bestP, bestCover := 0, 0
		for p := 1; p <= MaxCyclePeriod && i+p < n; p++ {
			// length of the run where frame k equals frame k+p
			k := i
			for k+p < n && same(k, k+p) {
				k++
			}
			match := k - i // frames i..k-1 equal their counterparts p later
			reps := (match + p) / p
			if reps >= minRepeats && reps*p > bestCover {
				bestP, bestCover = p, reps*p
			}
			if match >= n-i-p {
				break // the whole remainder repeats with this period
			}
		}
		if bestP == 0 {
			i++
			continue
		}
		reps := bestCover / bestP
		out = append(out, Cycle{Start: i, End: i + bestCover - 1, Length: bestP, Repeats: reps})
		i += bestCover
	}
	return out
}
