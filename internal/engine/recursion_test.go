package engine

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// sourceLine returns line n of file (1-based), "" when there is none.
func sourceLine(t *testing.T, file string, n int) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(b), "\n")
	if n < 1 || n > len(lines) {
		return ""
	}
	return lines[n-1]
}

// TestRecursionNamed: the verdict on the lab's two recursion crashes names
// the PHP loop where the code calls itself again (a line of the lab's
// source that makes that call), tells the shortcode loop (the same
// arguments at every level: it never ends) from the comment thread (another
// comment one level deeper each time: deep but finite), and picks the
// fixes accordingly: no bigger stack for the loop that never ends. The
// frames outside the loop are the outermost frames PHP's own
// debug_backtrace() recorded.
func TestRecursionNamed(t *testing.T) {
	l := labtest.Get(t)
	cases := []struct {
		scenario, entry, call string
		args                  crash.RecursionArgs
		words                 []string
		stack                 bool // a LimitSTACK fix is right
	}{
		{"shortcode-recursion", "do_shortcode", "do_shortcode(", crash.RecursionRepeats,
			[]string{"calls do_shortcode() again", "The same arguments come back at every level", "never ends", "through preg_replace_callback()"}, false},
		{"deep-comments", "render", "$this->render(", crash.RecursionVaries,
			[]string{"calls CommentThread->render() again", "change from level to level", "CommentThread->render(2, 1)", "through array_map()"}, true},
	}
	e := New(Options{})
	for _, c := range cases {
		s := l.Scenarios[c.scenario]
		if s == nil {
			t.Fatalf("the lab has no scenario %s", c.scenario)
		}
		rep, err := e.Run(context.Background(), Request{Core: Core{Path: s.Core}})
		if err != nil {
			t.Fatal(err)
		}
		if rep.PHP == nil || rep.PHP.Recursion == nil {
			t.Fatalf("%s: no PHP recursion found", c.scenario)
		}
		seen := map[string]bool{}
		for _, x := range rep.PHP.Extensions {
			if seen[x.Name] {
				t.Errorf("%s: extension %s listed twice", c.scenario, x.Name)
			}
			seen[x.Name] = true
		}
		if !seen["Zend OPcache"] {
			t.Errorf("%s: OPcache is not among the extensions %v", c.scenario, rep.PHP.Extensions)
		}
		r := rep.PHP.Recursion
		frames := rep.PHP.Frames
		if r.Args != c.args || frames[r.Entry].Function != c.entry || r.Repeats < 100 || r.Outermost != r.Entry || len(r.Calls) != r.Length {
			t.Errorf("%s: recursion %+v (entry %s)", c.scenario, *r, frames[r.Entry].Function)
		}
		re := frames[r.ReEntry]
		if line := sourceLine(t, re.File, re.Line); !strings.Contains(line, c.call) {
			t.Errorf("%s: re-entry at %s:%d, whose line %q does not call %s", c.scenario, re.File, re.Line, line, c.call)
		}
		// Outside the loop: the frames debug_backtrace() saw below it.
		var got, want []string
		for _, f := range frames[r.Outermost+1:] {
			got = append(got, f.QualifiedName())
		}
		tf := s.Truth.Frames
		for _, f := range tf[max(0, len(tf)-len(got)):] {
			name := f.Function
			if f.Class != "" {
				name = f.Class + f.CallType + f.Function
			}
			want = append(want, name)
		}
		if strings.Join(got, " ") != strings.Join(want, " ") || len(got) == 0 {
			t.Errorf("%s: frames outside the loop %q, debug_backtrace() %q", c.scenario, got, want)
		}
		if len(rep.Diagnosis) == 0 || rep.Diagnosis[0].Rule != "callback-recursion-stack-overflow" {
			t.Fatalf("%s: diagnosis %v", c.scenario, rep.Diagnosis)
		}
		d := rep.Diagnosis[0]
		for _, w := range c.words {
			if !strings.Contains(d.Explanation, w) {
				t.Errorf("%s: explanation lacks %q: %s", c.scenario, w, d.Explanation)
			}
		}
		stack := false
		for _, f := range d.Fix {
			stack = stack || f.Setting == "LimitSTACK"
		}
		if stack != c.stack {
			t.Errorf("%s: a LimitSTACK fix: %v, want %v (%+v)", c.scenario, stack, c.stack, d.Fix)
		}
	}
}
