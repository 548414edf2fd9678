package main

import (
	"fmt"
	"io"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/source/compressed"
)

// status is the line on a terminal that shows a step that can take seconds
// is still running: after a second, "coroner: WHAT... 3s" on standard
// error, redrawn every second and erased when the step ends (done); with
// the step's items counted (set), "coroner: analysing 3/6 cores... 3s:
// ITEM", redrawn as each item starts. In a pipe or a file nothing is
// written.
type status struct {
	w      io.Writer // nil: not a terminal, nothing drawn
	start  time.Time
	delay  time.Duration
	mu     sync.Mutex
	what   string
	item   string
	drawn  bool
	stop   chan struct{}
	closed chan struct{}
}

// busy starts the status line of a step on standard error, when it is a
// terminal.
func busy(what string) *status {
	return newStatus(compressed.TerminalProgress(), what, time.Second)
}

// newStatus starts a status line on w (nil: none) that appears after delay.
func newStatus(w io.Writer, what string, delay time.Duration) *status {
	s := &status{w: w, what: what, start: time.Now(), delay: delay}
	if w == nil {
		return s
	}
	s.stop, s.closed = make(chan struct{}), make(chan struct{})
	go s.tick()
	return s
}

func (s *status) tick() {
	defer close(s.closed)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			s.mu.Lock()
			if s.drawn {
				fmt.Fprint(s.w, "\r\033[K")
			}
			s.mu.Unlock()
			return
		case <-t.C:
			s.mu.Lock()
			s.draw()
			s.mu.Unlock()
		}
	}
}

// count sets the step's progress: the n-th of total items (noun, plural),
// and the item itself; "analysing" 3 6 "cores" reads "analysing 3/6 cores".
func (s *status) count(verb string, n, total int, noun, item string) {
	if s.w == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.what = fmt.Sprintf("%s %d/%d %s", verb, n, total, noun)
	s.item = item
	s.draw()
}

// maxItem bounds the characters of the item shown (its end is kept: the
// file name of a path).
const maxItem = 60

// draw writes the line, once the delay has passed (s.mu held).
func (s *status) draw() {
	el := time.Since(s.start)
	if el < s.delay {
		return
	}
	line := fmt.Sprintf("coroner: %s... %ds", s.what, int(el.Seconds()))
	if s.item != "" {
		item := sanitize.Text(s.item) // a path found on disk
		if n := utf8.RuneCountInString(item); n > maxItem {
			r := []rune(item)
			item = "..." + string(r[n-maxItem+3:])
		}
		line += ": " + item
	}
	fmt.Fprintf(s.w, "\r\033[K%s", line)
	s.drawn = true
}

// done erases the line; the step is over.
func (s *status) done() {
	if s.w == nil {
		return
	}
	close(s.stop)
	<-s.closed
}
