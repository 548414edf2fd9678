package snapshot

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
)

// TestRunProgress reads two real sleeping processes and checks that
// Progress hears of each before it is read, counted of the total.
func TestRunProgress(t *testing.T) {
	var targets []Target
	for range 2 {
		cmd := exec.Command("sleep", "60")
		if err := cmd.Start(); err != nil {
			t.Skipf("sleep: %v", err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		targets = append(targets, Target{PID: cmd.Process.Pid})
	}
	var calls []string
	res := Run(context.Background(), targets, Options{Progress: func(n, total int, tg Target) {
		calls = append(calls, fmt.Sprintf("%d/%d %d", n, total, tg.PID))
	}})
	want := fmt.Sprintf("1/2 %d,2/2 %d", targets[0].PID, targets[1].PID)
	if got := strings.Join(calls, ","); got != want {
		t.Errorf("progress %q, want %q", got, want)
	}
	if len(res) != 2 {
		t.Errorf("%d results, want 2", len(res))
	}
	for _, r := range res {
		if r.Err != nil {
			t.Logf("pid %d: %v", r.Target.PID, r.Err) // ptrace refused: Progress is told all the same
		}
	}
}
