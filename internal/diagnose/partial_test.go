package diagnose

import (
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestPartialAnalysisLowersConfidence: a core whose objects were found
// nowhere (the process ran in another root) is diagnosed with low
// confidence at most; objects replaced by an upgrade are evidence, not a
// gap, and leave the confidence as it is.
func TestPartialAnalysisLowersConfidence(t *testing.T) {
	kb := mustLoad(t)
	tested := 0
	for _, tc := range loadCases(t) {
		ds := kb.Diagnose(tc.report, tc.ev)
		if len(ds) == 0 || ds[0].Confidence != crash.ConfidenceHigh || tc.report == nil {
			continue
		}
		tested++
		rep := *tc.report
		rep.Modules = append(append([]crash.Module(nil), rep.Modules...), crash.Module{Path: "/usr/lib/libgone.so", BuildID: "ab12", Missing: true})
		rep.Root = &crash.Root{Runtime: "host", Unresolved: []string{"/usr/lib/libgone.so"}}
		for _, d := range kb.Diagnose(&rep, tc.ev) {
			if d.Confidence != crash.ConfidenceLow || !strings.Contains(strings.Join(d.Matched, ";"), "analysis is partial") {
				t.Errorf("%s: partial analysis diagnosed %s with %s confidence (%v)", tc.name, d.Rule, d.Confidence, d.Matched)
			}
		}
		rep.Modules[len(rep.Modules)-1].Mismatch = true
		if d := kb.Diagnose(&rep, tc.ev); d[0].Confidence == crash.ConfidenceLow && d[0].Rule == ds[0].Rule {
			t.Errorf("%s: a library replaced by an upgrade lowered %s", tc.name, d[0].Rule)
		}
	}
	if tested == 0 {
		t.Fatal("no case is diagnosed with high confidence")
	}
}
