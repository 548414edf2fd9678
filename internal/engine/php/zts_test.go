package php

import (
	"fmt"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// stackLines writes PHP frames as labtest.ZTSThreadsCore does.
func stackLines(frames []crash.PHPFrame) []string {
	var out []string
	for _, f := range frames {
		s := f.Function
		if f.File != "" {
			s += fmt.Sprintf(" %s:%d", f.File, f.Line)
		}
		out = append(out, s)
	}
	return out
}

// TestZTSThreads reads the core of a process with two threads running PHP
// on a ZTS libphp, one of which crashed inside PHP: the crashed thread's
// stack is the report's, the other thread's is in Threads, each read
// through its own TSRM block (the libphp reaches it through initial-exec
// TLS, an offset the loader wrote into a GOT slot).
func TestZTSThreads(t *testing.T) {
	z := labtest.ZTSThreads(t)
	for _, mode := range []LayoutMode{LayoutAuto, LayoutDerived, LayoutTable} {
		in := inputFromCore(t, z.Core)
		in.Layout = mode
		res, err := Analyze(in)
		if err != nil || res == nil {
			t.Fatalf("%s: Analyze = %v, %v", mode, res, err)
		}
		if !res.ZTS || res.TSRM == "" || res.Thread != in.Threads[0].TID {
			t.Errorf("%s: ZTS %v, thread %d (crashed %d), tsrm %q", mode, res.ZTS, res.Thread, in.Threads[0].TID, res.TSRM)
		}
		if got, want := strings.Join(stackLines(res.Frames), ", "), strings.Join(z.Crashed, ", "); got != want {
			t.Errorf("%s: crashed thread's stack %s, want %s", mode, got, want)
		}
		if len(res.Threads) != 1 {
			t.Fatalf("%s: %d more PHP threads, want 1 (the sleeper): %+v; warnings %q", mode, len(res.Threads), res.Threads, res.Warnings)
		}
		if got, want := strings.Join(stackLines(res.Threads[0].Frames), ", "), strings.Join(z.Sleeping, ", "); got != want {
			t.Errorf("%s: sleeping thread's stack %s, want %s", mode, got, want)
		}
		if res.Threads[0].TID == res.Thread || res.Threads[0].TID == 0 {
			t.Errorf("%s: thread ids %d, %d", mode, res.Thread, res.Threads[0].TID)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("%s: warnings %q", mode, res.Warnings)
		}
	}
}
