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
	done := busyOn(&w, "looking for cores")
	for !strings.Contains(w.String(), "coroner: looking for cores... 1s") {
		time.Sleep(50 * time.Millisecond) // until the first redraw (the test's timeout bounds it)
	}
	done()
	if s := w.String(); !strings.HasSuffix(s, "\r\033[K") {
		t.Errorf("the status line is not erased at the end: %q", s)
	}
	busyOn(nil, "nothing")() // not a terminal: no goroutine, no output, done is callable
}
