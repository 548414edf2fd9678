package analyze

import (
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
)

// TestZTSThreads checks that analyze gives the PHP stage every thread's
// registers (the report keeps only the crashed thread's): in a process
// running PHP in two threads on a ZTS libphp, both PHP stacks are read.
func TestZTSThreads(t *testing.T) {
	z := labtest.ZTSThreads(t)
	rep, err := Core(z.Core, Options{})
	if err != nil {
		t.Fatal(err)
	}
	ph := rep.PHP
	if ph == nil || !ph.ZTS || ph.Thread != rep.Threads[0].TID || len(ph.Frames) != len(z.Crashed) {
		t.Fatalf("PHP %+v", ph)
	}
	if len(ph.Threads) != 1 || len(ph.Threads[0].Frames) != len(z.Sleeping) || ph.Threads[0].Frames[1].Function != "wait_here" {
		t.Errorf("other PHP threads %+v", ph.Threads)
	}
}
