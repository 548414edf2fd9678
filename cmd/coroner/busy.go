package main

import (
	"fmt"
	"io"
	"time"

	"github.com/coroner-dev/coroner/internal/source/compressed"
)

// busy shows, on a terminal only, that a step that can take seconds is
// still running: after a second, "coroner: WHAT... 3s" on standard error,
// redrawn every second and erased when the step ends (done). In a pipe or
// a file nothing is written.
func busy(what string) (done func()) {
	return busyOn(compressed.TerminalProgress(), what)
}

func busyOn(w io.Writer, what string) (done func()) {
	if w == nil {
		return func() {}
	}
	stop, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		start := time.Now()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		drawn := false
		for {
			select {
			case <-stop:
				if drawn {
					fmt.Fprint(w, "\r\033[K")
				}
				return
			case <-t.C:
				fmt.Fprintf(w, "\r\033[Kcoroner: %s... %ds", what, int(time.Since(start).Seconds()))
				drawn = true
			}
		}
	}()
	return func() { close(stop); <-finished }
}
