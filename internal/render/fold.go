package render

import (
	"fmt"
	"sort"

	"github.com/coroner-dev/coroner/crash"
)

// Line is one line of a folded stack: the frame at position Pos of the
// stack, or, when Cycle is set, the summary of a cycle whose first
// repetition the lines before it showed.
type Line struct {
	Pos   int
	Cycle *crash.Cycle
}

// Fold lists the lines that show a stack of n frames: every frame, except
// that only the first repetition of each cycle is listed, followed by one
// summary line. number(pos) is the frame number the cycles count in (the
// position itself, or crash.Frame.Index for a stack that was shortened in
// the middle, as the watch service stores deep stacks); cycles that do not
// fit the stack are ignored.
func Fold(n int, number func(pos int) int, cycles []crash.Cycle) []Line {
	if number == nil {
		number = func(pos int) int { return pos }
	}
	valid := make([]crash.Cycle, 0, len(cycles))
	for _, c := range cycles {
		if c.Length > 0 && c.Start >= 0 && c.End >= c.Start+c.Length-1 {
			valid = append(valid, c)
		}
	}
	sort.Slice(valid, func(i, j int) bool { return valid[i].Start < valid[j].Start })
	out := make([]Line, 0, min(n, 256))
	ci := 0
	for pos := 0; pos < n; pos++ {
		num := number(pos)
		for ci < len(valid) && valid[ci].Start+valid[ci].Length-1 < num {
			ci++ // a cycle whose first repetition is not (entirely) stored
		}
		out = append(out, Line{Pos: pos})
		if ci < len(valid) && num == valid[ci].Start+valid[ci].Length-1 {
			c := valid[ci]
			out = append(out, Line{Pos: pos, Cycle: &c})
			for pos+1 < n && number(pos+1) <= c.End {
				pos++
			}
			ci++
		}
	}
	return out
}

// FrameNumber numbers the frames of a native stack by their Index.
func FrameNumber(frames []crash.Frame) func(int) int {
	return func(pos int) int { return frames[pos].Index }
}

// PHPFrameOf returns the PHP frame native frame f executes, or nil.
func PHPFrameOf(r *crash.Report, f *crash.Frame) *crash.PHPFrame {
	if f.PHPFrame == nil || r.PHP == nil || *f.PHPFrame < 0 || *f.PHPFrame >= len(r.PHP.Frames) {
		return nil
	}
	return &r.PHP.Frames[*f.PHPFrame]
}

// PHPLocation is "Class->method() file:line" for a PHP frame.
func PHPLocation(pf *crash.PHPFrame) string {
	s := pf.QualifiedName() + "()"
	if pf.File != "" {
		s += fmt.Sprintf(" %s:%d", pf.File, pf.Line)
	}
	return s
}

// FixText says a fix in one line: "SETTING = VALUE: description", then the
// `coroner fix` command that applies it; in Markdown the command is code.
func FixText(f crash.Fix, markdown bool) string {
	line := f.Description
	if f.Setting != "" {
		line = fmt.Sprintf("%s = %s: %s", f.Setting, f.Value, f.Description)
	}
	if cmd := FixCommand(f); cmd != "" {
		if markdown {
			cmd = "`" + cmd + "`"
		}
		line += " (" + cmd + ")"
	}
	return line
}

// FixCommand is the `coroner fix` command that applies a fix
// ("coroner fix --mitigate=no-pcre-jit --apply"), "" when no mitigation
// profile applies it.
func FixCommand(f crash.Fix) string {
	switch {
	case f.Mitigation == "":
		return ""
	case f.SAPI != "":
		return fmt.Sprintf("coroner fix --mitigate=%s --sapi %s --apply", f.Mitigation, f.SAPI)
	}
	return fmt.Sprintf("coroner fix --mitigate=%s --apply", f.Mitigation)
}
