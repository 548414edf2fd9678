package diagnose_test

import (
	"sort"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/signals"
)

// TestApacheLab checks the verdicts on the cores of Apache httpd + mod_php
// children (lab/run.sh --apache). Apache's sig_coredump catches every
// fatal signal and re-raises it with kill(): each core's NT_SIGINFO says
// SI_USER, sent by the child itself, but the right rule must come from the
// first signal; the recursion's children die of SI_KERNEL (no room left for
// the handler's frame), which must read as a stack overflow. The PHP stack
// and the request must be PHP's own (the truth), PATH_INFO and mod_rewrite
// URLs included.
func TestApacheLab(t *testing.T) {
	l := labtest.Apache(t)
	kb, err := diagnose.Load()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		rule    string
		fault   crash.FaultKind
		reraise bool
		// code is the first signal's si_code
		code int
	}{
		"ffi-null-code":          {"ffi-call-crash", crash.FaultNullDeref, true, signals.SEGV_MAPERR},
		"method-closure-include": {"ffi-call-crash", crash.FaultNullDeref, true, signals.SEGV_MAPERR},
		"shortcode-recursion":    {"callback-recursion-stack-overflow", crash.FaultStackOverflow, false, signals.SI_KERNEL},
		"deep-comments":          {"callback-recursion-stack-overflow", crash.FaultStackOverflow, false, signals.SI_KERNEL},
		"kill-segv":              {"signal-sent-by-process", crash.FaultSignalSent, true, signals.SI_USER},
		"abort":                  {"abort", crash.FaultAbort, true, signals.SI_USER},
	}
	var names []string
	for name := range cases {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		want := cases[name]
		t.Run(name, func(t *testing.T) {
			s := l.Scenarios[name]
			if s == nil {
				t.Fatalf("the Apache lab has no scenario %s", name)
			}
			r := analyse(t, s.Core, name, analyze.Options{})
			if want.reraise != (r.Reraise != nil) {
				t.Fatalf("re-raise %+v, want %v (signal %+v)", r.Reraise, want.reraise, r.Signal)
			}
			if r.Reraise != nil {
				if r.Reraise.Recorded.Code != signals.SI_USER || r.Reraise.Recorded.SenderPID != s.PID {
					t.Errorf("recorded signal %+v, want SI_USER from the child %d", r.Reraise.Recorded, s.PID)
				}
				if !strings.Contains(r.Reraise.Handler, "sig_coredump") {
					t.Errorf("handler %q, want Apache's sig_coredump", r.Reraise.Handler)
				}
			}
			if r.Signal.Number != s.Signal || r.Signal.Code != want.code {
				t.Errorf("signal %+v, want %d with code %d", r.Signal, s.Signal, want.code)
			}
			if r.Fault.Kind != want.fault {
				t.Errorf("fault %s, want %s: %s", r.Fault.Kind, want.fault, r.Fault.Explanation)
			}
			ds := kb.Diagnose(r, diagnose.Evidence{})
			if len(ds) == 0 || ds[0].Rule != want.rule || ds[0].Confidence == crash.ConfidenceLow {
				var ids []string
				for _, d := range ds {
					ids = append(ids, d.Rule+"/"+string(d.Confidence))
				}
				t.Fatalf("diagnoses %v, want %s first with medium or high confidence; fault %s: %s", ids, want.rule, r.Fault.Kind, r.Fault.Explanation)
			}
			for _, d := range ds {
				if d.Rule == "tracing-jit-crash" || d.Rule == "signal-sent-by-process" && want.rule != d.Rule {
					t.Errorf("rule %s matches too: %s", d.Rule, d.Explanation)
				}
			}
			// PHP's own view: the request and the stack
			if r.PHP == nil || r.PHP.Request == nil {
				t.Fatalf("no PHP request in the report (warnings %v)", r.Warnings)
			}
			if r.PHP.SAPI != "apache2handler" {
				t.Errorf("SAPI %q, want apache2handler", r.PHP.SAPI)
			}
			tr := s.Truth
			if tr == nil {
				t.Fatal("no truth")
			}
			if r.PHP.Request.URI != tr.RequestURI || r.PHP.Request.Method != tr.Method {
				t.Errorf("request %s %s, PHP saw %s %s", r.PHP.Request.Method, r.PHP.Request.URI, tr.Method, tr.RequestURI)
			}
			type frame struct {
				fn, class, file string
				line            int
			}
			var got, wantFrames []frame
			for _, f := range r.PHP.Frames {
				if len(got) == 0 && f.File == "" {
					continue // the internal function being called: debug_backtrace() starts at its caller
				}
				got = append(got, frame{f.Function, f.Class, f.File, f.Line})
			}
			for _, f := range tr.Frames {
				wantFrames = append(wantFrames, frame{f.Function, f.Class, f.File, f.Line})
			}
			if tr.Outermost && len(got) >= len(wantFrames) {
				got = got[len(got)-len(wantFrames):]
			}
			if len(got) != len(wantFrames) {
				t.Fatalf("%d PHP frames, debug_backtrace() saw %d:\n got %+v\nwant %+v", len(got), len(wantFrames), got, wantFrames)
			}
			for i := range wantFrames {
				if got[i] != wantFrames[i] {
					t.Errorf("PHP frame #%d = %+v, PHP says %+v", i, got[i], wantFrames[i])
				}
			}
		})
	}
}
