package analyze

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/signals"
)

// TestReraisedSignal crashes the lab's C programs whose SIGSEGV handler
// re-raises the signal with kill(), like libSegFault or Apache's
// sig_coredump, and has the kernel dump them (gdb would stop at the first
// signal): with the signal blocked in the handler (the core is dumped after
// the handler returned, its registers restored to the fault) and with
// SA_NODEFER (dumped inside the handler). The core's NT_SIGINFO says
// SI_USER from the process itself; coroner must report the first signal,
// the NULL write in store_result, from the kernel's signal frame.
func TestReraisedSignal(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	for _, tc := range []struct {
		prog     string
		evidence string
		inside   bool
	}{
		{"segv-reraise", crash.ReraiseStaleFrame, false},
		{"segv-reraise-nodefer", crash.ReraiseSignalFrame, true},
	} {
		t.Run(tc.prog, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, tc.prog)
			if out, err := exec.Command("gcc", "-O0", "-g", "-o", bin, filepath.Join("..", "..", "..", "lab", "c", tc.prog+".c")).CombinedOutput(); err != nil {
				t.Fatalf("gcc: %v\n%s", err, out)
			}
			cores := filepath.Join(dir, "cores")
			if err := os.Mkdir(cores, 0o755); err != nil {
				t.Fatal(err)
			}
			c := labtest.Crash(t, dir, filepath.Join(cores, "core.%e.%p"), bin)
			if c.Core == "" {
				t.Fatalf("%s (pid %d, exit %d) left no core", tc.prog, c.PID, c.Exit)
			}
			rep, err := Core(c.Core, Options{})
			if err != nil {
				t.Fatal(err)
			}
			rr := rep.Reraise
			if rr == nil {
				t.Fatalf("no re-raise found; signal %+v, fault %s: %s", rep.Signal, rep.Fault.Kind, rep.Fault.Explanation)
			}
			t.Logf("recorded %s %s from pid %d; analysed %s %s at %#x (%s, frame %d, handler %s): %s: %s", rr.Recorded.Name, rr.Recorded.CodeName, rr.Recorded.SenderPID,
				rep.Signal.Name, rep.Signal.CodeName, uint64(rep.Signal.Address), rr.Evidence, rr.Frame, rr.Handler, rep.Fault.Kind, rep.Fault.Explanation)
			if rr.Recorded.Code != signals.SI_USER || rr.Recorded.SenderPID != c.PID {
				t.Errorf("recorded signal %+v, want SI_USER from %d", rr.Recorded, c.PID)
			}
			if rr.Evidence != tc.evidence {
				t.Errorf("evidence %q, want %q", rr.Evidence, tc.evidence)
			}
			if rep.Signal.Number != int(signals.SIGSEGV) || rep.Signal.Code != signals.SEGV_MAPERR || rep.Signal.Address != 0 || rep.Signal.Sent {
				t.Errorf("signal %+v, want the first one: SIGSEGV SEGV_MAPERR at 0x0", rep.Signal)
			}
			if rep.Fault.Kind != crash.FaultNullDeref {
				t.Errorf("fault %s, want null-dereference: %s", rep.Fault.Kind, rep.Fault.Explanation)
			}
			ff := rep.FaultFrames()
			if len(ff) == 0 || ff[0].Function != "store_result" {
				t.Fatalf("faulting frame %+v, want store_result", ff)
			}
			if !strings.Contains(rep.Fault.Explanation, "store_result") || !strings.Contains(rep.Fault.Explanation, "writing") {
				t.Errorf("fault explanation %q does not name the write in store_result", rep.Fault.Explanation)
			}
			if !strings.Contains(rr.Handler, "crash_handler") {
				t.Errorf("handler %q, want crash_handler", rr.Handler)
			}
			if tc.inside != (rr.Frame > 0) {
				t.Errorf("faulting frame index %d (inside the handler: %v)", rr.Frame, tc.inside)
			}
			// the frames after the faulting one are the program's own
			var names []string
			for _, f := range ff {
				names = append(names, f.Function)
			}
			if got := strings.Join(names, " "); !strings.HasPrefix(got, "store_result compute main") {
				t.Errorf("frames from the fault: %s", got)
			}
		})
	}
}
