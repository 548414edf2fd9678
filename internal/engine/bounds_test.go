package engine

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/hostile"
)

// TestBudgetPartialReport: an analysis whose budget is used up ends with
// a report (not an error) that says it is partial.
func TestBudgetPartialReport(t *testing.T) {
	dir := t.TempDir()
	cs, err := hostile.Make(dir, "threads-100k") // 4,096 threads to unwind: long enough for the watchdog
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range []analyze.Options{{Timeout: time.Nanosecond}, {MaxMemory: 1}} {
		e := New(Options{Analyze: opts})
		// The budget's watchdog looks every few milliseconds; a budget of
		// a nanosecond or a byte is used up long before the analysis ends
		// (try again on a machine so loaded that it did not).
		for i := 0; ; i++ {
			rep, err := e.Run(context.Background(), Request{Core: Core{Path: cs.Path}, NoDiagnosis: true})
			if err != nil {
				t.Fatal(err)
			}
			if w := strings.Join(rep.Warnings, "\n"); strings.Contains(w, "analysis stopped") && strings.Contains(w, "the report is partial") {
				break
			}
			if i == 5 {
				t.Fatalf("%+v: no partial-report warning in %q", opts, rep.Warnings)
			}
		}
	}
}

// TestErrorsNameTheUsersFile: the error for a compressed file that holds
// no core names the file given, not the decompressed temporary copy.
func TestErrorsNameTheUsersFile(t *testing.T) {
	dir := t.TempDir()
	plain := dir + "/garbage"
	out, err := exec.Command("sh", "-c", `printf '\177ELF\002\001\001' > "$0"; head -c 200 /dev/zero >> "$0"; zstd -q "$0" -o "$0.zst"`, plain).CombinedOutput()
	if err != nil {
		t.Skipf("zstd: %v %s", err, out)
	}
	_, err = New(Options{}).Run(context.Background(), Request{Core: Core{Path: plain + ".zst"}, NoDiagnosis: true})
	if err == nil || !strings.Contains(err.Error(), plain+".zst") || strings.Contains(err.Error(), "coroner-") {
		t.Fatalf("error %v, want one naming %s.zst", err, plain)
	}
}
