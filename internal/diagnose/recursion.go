package diagnose

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coroner-dev/coroner/crash"
)

// PHPRecursion describes the longest recursion of a PHP stack (nil when it
// has none): where the loop is entered from outside, which frame calls the
// entered function again, and whether the arguments repeat from level to
// level. PHP.Cycles come from the reader; a cycle is extended over the
// partial turns at both ends (the innermost turn where the stack ran out,
// the outermost where the loop was entered).
func PHPRecursion(ph *crash.PHP) *crash.Recursion {
	if ph == nil || len(ph.Frames) == 0 {
		return nil
	}
	cycles := ph.Cycles
	if len(cycles) == 0 {
		cycles = detectCycles(phpNames(ph.Frames), 3)
	}
	var c *crash.Cycle
	for i := range cycles {
		cy := &cycles[i]
		if cy.Length <= 0 || cy.Start < 0 || cy.Start+cy.Length > len(ph.Frames) || cy.Repeats < 3 {
			continue
		}
		if c == nil || cy.Length*cy.Repeats > c.Length*c.Repeats {
			c = cy
		}
	}
	if c == nil {
		return nil
	}
	frames := ph.Frames
	L := c.Length
	same := func(i, j int) bool {
		a, b := &frames[i], &frames[j]
		return a.Function == b.Function && a.Class == b.Class && a.File == b.File && a.Line == b.Line
	}
	in, out := c.Start, c.Start+c.Repeats*L-1
	if c.End > out && c.End < len(frames) {
		out = c.End
	}
	for in > 0 && in-1+L < len(frames) && same(in-1, in-1+L) {
		in--
	}
	for out+1 < len(frames) && out+1-L >= 0 && same(out+1, out+1-L) {
		out++
	}
	r := &crash.Recursion{Length: L, Repeats: (out - in + 1) / L, Innermost: in, Outermost: out, Entry: out}
	for k := 0; k < L && out-k >= 0; k++ {
		r.Calls = append(r.Calls, out-k)
	}
	r.ReEntry = r.Calls[len(r.Calls)-1]
	r.Args, r.ArgsEvidence = recursionArgs(frames, in, out, L)
	return r
}

// recursionArgs compares the arguments of each frame of the loop with the
// same frame one turn further out, leaving out the innermost turn (where
// the stack ran out, arguments may be half set up) and the outermost one
// (entered from outside, with the first call's arguments).
func recursionArgs(frames []crash.PHPFrame, in, out, L int) (crash.RecursionArgs, string) {
	lo, hi := in+L, out-L // frames i and i+L are compared for lo <= i, i+L <= hi
	if hi-lo < L {
		lo, hi = in, out
	}
	// The frames of the entered function (the loop's phase of out) are
	// looked at first, so that the evidence names the function that
	// recurses whatever turn the stack ran out in.
	entry := (out - in) % L
	phases := []int{entry}
	for p := 0; p < L; p++ {
		if p != entry {
			phases = append(phases, p)
		}
	}
	scalars := 0
	for _, p := range phases {
		for i := lo; i+L <= hi; i++ {
			if (i-in)%L != p {
				continue
			}
			a, b := frames[i].Args, frames[i+L].Args
			if len(a) != len(b) {
				return crash.RecursionVaries, varyEvidence(frames, i, lo, hi, L)
			}
			for k := range a {
				if a[k] != b[k] {
					return crash.RecursionVaries, varyEvidence(frames, i, lo, hi, L)
				}
				if isScalarArg(a[k]) {
					scalars++
				}
			}
		}
	}
	if scalars == 0 {
		return "", ""
	}
	// The repeated call: the first frame of the loop with a scalar argument.
	for i := hi; i >= lo; i-- {
		for _, a := range frames[i].Args {
			if isScalarArg(a) {
				return crash.RecursionRepeats, callText(&frames[i])
			}
		}
	}
	return crash.RecursionRepeats, ""
}

// varyEvidence shows a frame of the loop whose arguments change (frame i
// differs from frame i+L): the same frame of the loop at the outermost and
// at the innermost compared level.
func varyEvidence(frames []crash.PHPFrame, i, lo, hi, L int) string {
	outer := i + (hi-i)/L*L
	inner := i - (i-lo)/L*L
	return fmt.Sprintf("%s at the outermost level, %s at the innermost", callText(&frames[outer]), callText(&frames[inner]))
}

// callText is a PHP call with its arguments: `render(7, "a")`.
func callText(f *crash.PHPFrame) string {
	return f.QualifiedName() + "(" + strings.Join(f.Args, ", ") + ")"
}

// isScalarArg reports whether a rendered argument shows its value (a
// string, number, boolean or null) rather than a summary (array(3),
// object(Foo)) that can be equal for different values.
func isScalarArg(a string) bool {
	a = strings.TrimPrefix(a, "&")
	switch {
	case a == "":
		return false
	case a[0] == '"':
		return true
	case a == "true" || a == "false" || a == "NULL":
		return true
	}
	_, err := strconv.ParseFloat(a, 64)
	return err == nil
}

// loopText says a recursion in words: the loop's functions in call order
// and the place where it enters itself again.
func loopText(ph *crash.PHP, r *crash.Recursion) string {
	names := make([]string, 0, len(r.Calls)+1)
	for _, i := range r.Calls {
		names = append(names, ph.Frames[i].QualifiedName()+"()")
	}
	if len(names) > 8 {
		names = append(append(names[:4:4], "..."), names[len(names)-3:]...)
	}
	entry := &ph.Frames[r.Entry]
	names = append(names, entry.QualifiedName()+"()")
	re := &ph.Frames[r.ReEntry]
	where := re.QualifiedName() + "()"
	if re.File != "" {
		where += fmt.Sprintf(" at %s:%d", filepath.Base(re.File), re.Line)
	}
	return fmt.Sprintf("%s calls %s again, in a loop of %d frames repeated %s times: %s", where, entry.QualifiedName()+"()",
		r.Length, thousands(r.Repeats), strings.Join(names, " -> "))
}

// argsText says what the arguments tell about the end of a recursion.
func argsText(r *crash.Recursion) string {
	switch r.Args {
	case crash.RecursionRepeats:
		s := "The same arguments come back at every level"
		if r.ArgsEvidence != "" {
			s += " (" + r.ArgsEvidence + " each time)"
		}
		return s + ": the recursion never ends by itself, and a bigger stack would only delay the crash."
	case crash.RecursionVaries:
		s := "The arguments change from level to level"
		if r.ArgsEvidence != "" {
			s += " (" + r.ArgsEvidence + ")"
		}
		return s + ": a recursion that would end, but deeper than the C stack allows."
	}
	return ""
}

func thousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
