package compressed

import (
	"fmt"
	"github.com/coroner-dev/coroner/internal/units"
	"io"
	"os"
	"strings"
	"time"
)

// ProgressDelay is how long a copy runs before its progress bar appears, so
// that quick ones print nothing.
var ProgressDelay = 300 * time.Millisecond

// Progress is a one-line progress bar for a long copy. It counts the bytes
// written to it and redraws at most ten times a second, once the copy has
// run for ProgressDelay.
type Progress struct {
	w     io.Writer
	label string
	total int64
	n     int64
	start time.Time
	last  time.Time
	shown bool
}

// NewProgress returns a bar labelled label writing to w; total is the number
// of bytes expected (0 if unknown).
func NewProgress(w io.Writer, label string, total int64) *Progress {
	return &Progress{w: w, label: label, total: total, start: time.Now()}
}

// Write counts len(p) bytes of progress; it never fails.
func (p *Progress) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	if now := time.Now(); now.Sub(p.start) >= ProgressDelay && now.Sub(p.last) >= 100*time.Millisecond {
		p.last = now
		p.draw()
	}
	return len(b), nil
}

func (p *Progress) draw() {
	const width = 30
	line := p.label + " "
	if p.total > 0 {
		frac := float64(p.n) / float64(p.total)
		if frac > 1 {
			frac = 1
		}
		filled := int(frac * width)
		line += "[" + strings.Repeat("=", filled) + strings.Repeat(" ", width-filled) + "]" +
			fmt.Sprintf(" %3.0f%% %s/%s", frac*100, units.Bytes(p.n), units.Bytes(p.total))
	} else {
		line += units.Bytes(p.n)
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", line)
	p.shown = true
}

// Done draws the final state and ends the line, if the bar was shown.
func (p *Progress) Done() {
	if !p.shown {
		return
	}
	if p.total > 0 {
		p.n = p.total
	}
	p.draw()
	fmt.Fprintln(p.w)
}

// TerminalProgress returns os.Stderr when it is a terminal that moves its
// cursor (so a progress bar can be drawn there), else nil: nil in a pipe or
// a file, and on TERM=dumb.
func TerminalProgress() io.Writer {
	st, err := os.Stderr.Stat()
	if err != nil || st.Mode()&os.ModeCharDevice == 0 || os.Getenv("TERM") == "dumb" {
		return nil
	}
	return os.Stderr
}
