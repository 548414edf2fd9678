package php

import (
	"sort"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// TestLab checks Analyze on every PHP-FPM crash of the lab against the
// ground truth the lab recorded with debug_backtrace() and the request it
// sent through nginx.
func TestLab(t *testing.T) {
	lab := labtest.Get(t)
	names := make([]string, 0, len(lab.Scenarios))
	for n := range lab.Scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	redacted := 0
	for _, name := range names {
		sc := lab.Scenarios[name]
		t.Run(name, func(t *testing.T) {
			if sc.Truth == nil {
				t.Fatalf("scenario %s has no truth", name)
			}
			for _, secrets := range []bool{false, true} {
				in := inputFromCore(t, sc.Core)
				in.ShowSecrets = secrets
				res, err := Analyze(in)
				if err != nil || res == nil {
					t.Fatalf("Analyze = %v, %v", res, err)
				}
				if secrets {
					checkSecretsShown(t, res.Request.Params)
					continue
				}
				checkLabScenario(t, lab, sc, res.Version, res.SAPI, res.Warnings)
				var got []truthFrame
				for _, f := range res.Frames {
					got = append(got, truthFrame{f.Function, f.Class, f.CallType, f.File, f.Line})
				}
				var want []truthFrame
				for _, f := range sc.Truth.Frames {
					want = append(want, truthFrame{f.Function, f.Class, f.CallType, f.File, f.Line})
				}
				if sc.Truth.Outermost {
					if len(got) < len(want) {
						t.Fatalf("%d frames, fewer than the %d outermost ones", len(got), len(want))
					}
					compareFrames(t, got[len(got)-len(want):], want)
					checkRecursion(t, res.Frames, res.Cycles, sc.Truth.RecursionFunctions)
				} else {
					compareFrames(t, got, want)
				}
				r := res.Request
				if r == nil {
					t.Fatalf("no request (warnings %q)", res.Warnings)
				}
				if r.Source != SourceFastCGI || r.URI != sc.URL || r.URI != sc.Truth.RequestURI || r.Method != sc.Truth.Method ||
					r.Query != sc.Truth.Query || r.Script != sc.Truth.ScriptFilename || r.Host != sc.Truth.Host {
					t.Errorf("request %+v, want %s %s (query %q, script %s, host %s)", *r, sc.Truth.Method, sc.Truth.RequestURI,
						sc.Truth.Query, sc.Truth.ScriptFilename, sc.Truth.Host)
				}
				for k, v := range r.Params {
					if IsSecret(k) && !strings.HasPrefix(v, "[redacted") {
						t.Errorf("%s not redacted: %q", k, v)
					}
					if k == "HTTP_COOKIE" || k == "HTTP_AUTHORIZATION" {
						redacted++
					}
				}
				if j := res.INI["opcache.jit"]; j != "tracing" && j != "1254" {
					t.Errorf("opcache.jit = %q", j)
				}
				if res.INI["pcre.jit"] != "1" {
					t.Errorf("pcre.jit = %q", res.INI["pcre.jit"])
				}
				if res.JIT == nil || res.JIT.Mode != "tracing" {
					t.Errorf("JIT = %+v", res.JIT)
				}
			}
		})
	}
	if redacted == 0 {
		t.Error("no scenario sent a Cookie or Authorization header: redaction untested")
	}
}

func checkLabScenario(t *testing.T, lab *labtest.Lab, sc *labtest.Scenario, version, sapi string, warns []string) {
	t.Helper()
	if version != lab.PHPVersion {
		t.Errorf("version %q, lab ran PHP %q", version, lab.PHPVersion)
	}
	if sapi != "fpm-fcgi" {
		t.Errorf("SAPI %q", sapi)
	}
	if len(warns) != 0 {
		t.Errorf("warnings: %q", warns)
	}
}

// checkSecretsShown checks that ShowSecrets leaves the Cookie and
// Authorization headers the lab sent readable.
func checkSecretsShown(t *testing.T, params map[string]string) {
	t.Helper()
	for _, k := range []string{"HTTP_COOKIE", "HTTP_AUTHORIZATION"} {
		if v, ok := params[k]; ok && strings.HasPrefix(v, "[redacted") {
			t.Errorf("ShowSecrets: %s = %q", k, v)
		}
	}
}

// checkRecursion checks that the repeating functions of a recursion are
// folded into a cycle that covers most of the stack.
func checkRecursion(t *testing.T, frames []crash.PHPFrame, cycles []crash.Cycle, funcs []string) {
	t.Helper()
	if len(cycles) == 0 {
		t.Fatalf("no cycle in %d frames", len(frames))
	}
	c := cycles[0]
	if c.Length*c.Repeats < len(frames)/2 {
		t.Errorf("cycle %+v covers less than half of %d frames", c, len(frames))
	}
	in := map[string]bool{}
	for i := c.Start; i < c.Start+c.Length; i++ {
		in[frames[i].Function] = true
	}
	for _, f := range funcs {
		if !in[f] {
			t.Errorf("recursion function %s not in the cycle %+v", f, c)
		}
	}
}

func TestLabFunctionEntries(t *testing.T) {
	lab := labtest.Get(t)
	fns, err := FunctionEntries(lab.PHPFPM)
	if err != nil {
		t.Fatal(err)
	}
	starts := ehFrameStarts(t, lab.PHPFPM)
	for _, f := range fns {
		if f.Name == "zif_preg_replace_callback" {
			if !starts[f.Addr] {
				t.Errorf("zif_preg_replace_callback at %#x is not an .eh_frame function start", f.Addr)
			}
			return
		}
	}
	t.Errorf("zif_preg_replace_callback not among %d functions of %s", len(fns), lab.PHPFPM)
}

func TestLabFunctionEntriesMatchRuntime(t *testing.T) {
	lab := labtest.Get(t)
	sc := lab.Scenarios["kill-segv"]
	if sc == nil {
		t.Fatal("no kill-segv scenario")
	}
	checkEntriesAgainstEngine(t, inputFromCore(t, sc.Core))
}

// BenchmarkLabShortcodeRecursion measures Analyze on the lab's
// shortcode-recursion core (PHP-FPM, C stack overflow, 27,000+ PHP frames).
func BenchmarkLabShortcodeRecursion(b *testing.B) {
	lab := labtest.Get(b)
	sc := lab.Scenarios["shortcode-recursion"]
	if sc == nil {
		b.Fatal("no shortcode-recursion scenario")
	}
	benchmarkAnalyze(b, sc.Core)
}
