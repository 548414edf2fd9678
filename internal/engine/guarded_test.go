package engine

import (
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestGuardedStage checks that a panic in a diagnosis stage becomes a
// warning of the report, naming the stage and the panic, and that the
// stages after it still run.
func TestGuardedStage(t *testing.T) {
	rep := &crash.Report{}
	var frames []int
	guarded(rep, "diagnosis", func() { _ = frames[41197] })
	ran := false
	guarded(rep, "fingerprint", func() { ran = true })
	if !ran {
		t.Error("the stage after the failed one did not run")
	}
	if len(rep.Warnings) != 1 || !strings.HasPrefix(rep.Warnings[0], "diagnosis failed: internal error: runtime error: index out of range [41197]") {
		t.Errorf("warnings: %q", rep.Warnings)
	}
}
