package labtest

import (
	"os"
	"strings"
	"testing"
)

// TestLabArtifacts checks what the lab produced: every scenario has a core,
// its ground truth and gdb's output, the logs saw the crash, and
// kernel.core_pattern was restored.
func TestLabArtifacts(t *testing.T) {
	before, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	l := Get(t)
	if err := l.complete(); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile("/proc/sys/kernel/core_pattern")
	if string(before) != string(after) || strings.Contains(string(after), l.Dir) {
		t.Errorf("kernel.core_pattern is %q after the lab (was %q)", after, before)
	}
	for name, s := range l.Scenarios {
		if s.Truth.PID != s.PID {
			t.Errorf("%s: truth written by pid %d, worker %d died", name, s.Truth.PID, s.PID)
		}
		if !strings.HasPrefix(s.URL, s.Truth.RequestURI) {
			t.Errorf("%s: requested %s, PHP saw %s", name, s.URL, s.Truth.RequestURI)
		}
		joined := strings.Join(s.FPMLog, "\n")
		if !strings.Contains(joined, "exited on signal") || !strings.Contains(joined, "core dumped") {
			t.Errorf("%s: FPM log lacks the core-dumped exit: %q", name, joined)
		}
		if len(s.NginxError) == 0 {
			t.Errorf("%s: nginx logged nothing", name)
		}
		gdb, err := os.ReadFile(s.GDB)
		if err != nil || !strings.Contains(string(gdb), "#0") {
			t.Errorf("%s: gdb output has no backtrace", name)
		}
	}
	if got := l.Scenarios["shortcode-recursion"].Truth; !got.Outermost || len(got.RecursionFunctions) == 0 {
		t.Errorf("shortcode-recursion truth: outermost %v, recursion %v", got.Outermost, got.RecursionFunctions)
	}
	if l.Scenarios["ffi-null-code"].Signal != 11 || l.Scenarios["abort"].Signal != 6 {
		t.Errorf("signals: ffi %d, abort %d", l.Scenarios["ffi-null-code"].Signal, l.Scenarios["abort"].Signal)
	}
	t.Logf("lab %s, PHP %s, timings %v", l.Dir, l.PHPVersion, l.Timings)
}
