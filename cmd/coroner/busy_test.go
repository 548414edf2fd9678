package main

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestBusy checks the status line of a long step: drawn once a second has
// passed, erased when the step ends, and nothing at all without a terminal.
func TestBusy(t *testing.T) {
	var w lockedBuffer
	s := newStatus(&w, "looking for cores", time.Second)
	for !strings.Contains(w.String(), "coroner: looking for cores... 1s") {
		time.Sleep(50 * time.Millisecond) // until the first redraw (the test's timeout bounds it)
	}
	s.done()
	if s := w.String(); !strings.HasSuffix(s, "\r\033[K") {
		t.Errorf("the status line is not erased at the end: %q", s)
	}
	s = newStatus(nil, "nothing", 0) // not a terminal: no goroutine, no output
	s.count("analysing", 1, 2, "cores", "core.1")
	s.done()
}

// TestStatusCounts checks the fraction on a fake terminal: each item
// redraws the line with "N/TOTAL" and the item (escaped, its end kept when
// long), nothing is drawn before the delay, and the line is erased at the
// end.
func TestStatusCounts(t *testing.T) {
	var w lockedBuffer
	s := newStatus(&w, "looking for cores", time.Hour)
	s.count("inspecting", 1, 6, "cores", "/var/crash/core.1")
	if w.String() != "" {
		t.Errorf("drawn before the delay: %q", w.String())
	}
	s.done()
	if w.String() != "" {
		t.Errorf("erased a line never drawn: %q", w.String())
	}

	s = newStatus(&w, "looking for cores", 0)
	s.count("analysing", 3, 6, "cores", "/var/crash/core.php-fpm.1234")
	long := "/var/lib/systemd/coredump/" + strings.Repeat("x", 100) + ".zst"
	s.count("analysing", 4, 6, "cores", "/tmp/\x1b[2Jcore")
	s.count("analysing", 5, 6, "cores", long)
	s.done()
	out := w.String()
	for _, want := range []string{
		"\r\033[Kcoroner: analysing 3/6 cores... 0s: /var/crash/core.php-fpm.1234",
		"coroner: analysing 4/6 cores... 0s: /tmp/\\x1b[2Jcore",
		"coroner: analysing 5/6 cores... 0s: ..." + strings.Repeat("x", 53) + ".zst",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the line lacks %q:\n%q", want, out)
		}
	}
	if !strings.HasSuffix(out, "\r\033[K") {
		t.Errorf("the status line is not erased at the end: %q", out)
	}
}
