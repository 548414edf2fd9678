package analyze

import (
	"bytes"
	"encoding/json"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/labtest"
)

type labCore struct {
	name, core, gdb string
	php             bool
}

func labCores(t *testing.T) []labCore {
	lab := labtest.Get(t)
	var out []labCore
	for name, s := range lab.Scenarios {
		out = append(out, labCore{name: name, core: s.Core, gdb: s.GDB, php: true})
	}
	for name, c := range lab.CPrograms {
		out = append(out, labCore{name: "c/" + name, core: c.Core, gdb: c.GDB})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// TestNativeFramesMatchGDB: every frame gdb names (inlined functions and
// tail calls included) coroner names the same, until gdb's own unwinding
// leaves the real stack (it does at PHP JIT frames); coroner names at
// least as many frames, strictly more on php-fpm cores.
func TestNativeFramesMatchGDB(t *testing.T) {
	for _, lc := range labCores(t) {
		t.Run(lc.name, func(t *testing.T) {
			rep, err := Core(lc.core, Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstGDB(t, rep, lc.gdb, lc.php, gdbCheck{})
		})
	}
}

func TestFaultExplained(t *testing.T) {
	lab := labtest.Get(t)
	check := func(name string, kind crash.FaultKind, words ...string) {
		s := lab.Scenarios[name]
		if s == nil {
			t.Errorf("lab has no scenario %s", name)
			return
		}
		rep, err := Core(s.Core, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Fault.Kind != kind {
			t.Errorf("%s: fault kind %q, want %q (%s)", name, rep.Fault.Kind, kind, rep.Fault.Explanation)
		}
		for _, w := range words {
			if !strings.Contains(rep.Fault.Explanation, w) {
				t.Errorf("%s: explanation %q does not mention %q", name, rep.Fault.Explanation, w)
			}
		}
	}
	check("ffi-null-code", crash.FaultNullDeref, "rdi", "NULL", "pcre2_jit_match")
	check("shortcode-recursion", crash.FaultStackOverflow)
	check("kill-segv", crash.FaultSignalSent)
	check("abort", crash.FaultAbort)
}

func TestDeepRecursionUnwindsCompletely(t *testing.T) {
	s := labtest.Get(t).Scenarios["shortcode-recursion"]
	rep, err := Core(s.Core, Options{})
	if err != nil {
		t.Fatal(err)
	}
	th := rep.CrashedThread()
	if len(th.Frames) < 10000 {
		t.Fatalf("only %d frames", len(th.Frames))
	}
	if len(th.Cycles) == 0 || th.Cycles[0].Repeats < 1000 {
		t.Fatalf("no large cycle folded: %+v", th.Cycles)
	}
	if last := th.Frames[len(th.Frames)-1]; last.Function != "_start" {
		t.Errorf("last frame %q, want _start", last.Function)
	}
	for _, f := range th.Frames {
		if f.Trust == crash.TrustScan || f.Trust == crash.TrustFP {
			t.Logf("frame #%d recovered by %s: %s %s", f.Index, f.Trust, f.Module, f.Function)
		}
	}
}

// TestDamagedCores: truncated and bit-flipped cores give a report with
// warnings (or a clear error), never a panic or a hang.
func TestDamagedCores(t *testing.T) {
	lab := labtest.Get(t)
	var src string
	for _, name := range []string{"pcre-null", "null-write"} {
		if c := lab.CPrograms[name]; c != nil {
			src = c.Core
			break
		}
	}
	if src == "" {
		t.Fatal("lab has no small C core")
	}
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	try := func(label string, b []byte) {
		p := filepath.Join(dir, "core")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		rep, err := Core(p, Options{})
		if err != nil {
			t.Logf("%s: error %v", label, err)
			return
		}
		if len(b) < len(data) && !rep.Process.Truncated && len(rep.Warnings) == 0 {
			t.Errorf("%s: truncated core reported without warning", label)
		}
	}
	for _, frac := range []float64{0.01, 0.1, 0.25, 0.5, 0.75, 0.99} {
		try("truncated", data[:int(float64(len(data))*frac)])
	}
	rng := rand.New(rand.NewSource(1))
	for i := 0; i < 30; i++ {
		b := append([]byte(nil), data...)
		for k := 0; k < 50; k++ {
			off := rng.Intn(len(b))
			if i%2 == 0 {
				off = rng.Intn(min(len(b), 8192)) // headers and notes
			}
			b[off] ^= byte(1 << rng.Intn(8))
		}
		try("bit-flipped", b)
	}
}

func BenchmarkAnalyzeLab(b *testing.B) {
	lab := labtest.Get(b)
	for _, name := range []string{"ffi-null-code", "shortcode-recursion"} {
		s := lab.Scenarios[name]
		if s == nil {
			continue
		}
		b.Run(name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if _, err := Core(s.Core, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkAnalyzeLabWarm analyses the same cores with a disk cache that
// earlier runs filled (the usual case of a host whose php-fpm crashes
// again).
func BenchmarkAnalyzeLabWarm(b *testing.B) {
	lab := labtest.Get(b)
	cache := b.TempDir()
	for _, name := range []string{"ffi-null-code", "shortcode-recursion"} {
		s := lab.Scenarios[name]
		if s == nil {
			continue
		}
		b.Run(name, func(b *testing.B) { benchStages(b, s.Core, Options{CacheDir: cache}, true) })
	}
}

// BenchmarkStages reports the time of each stage of the analysis of the
// lab's PHP cores (the report's own timings, as -timings prints them):
// cold, without a disk cache, and warm, with one earlier runs filled.
func BenchmarkStages(b *testing.B) {
	lab := labtest.Get(b)
	for _, name := range []string{"ffi-null-code", "shortcode-recursion", "abort"} {
		s := lab.Scenarios[name]
		if s == nil {
			continue
		}
		b.Run(name+"/cold", func(b *testing.B) { benchStages(b, s.Core, Options{}, false) })
		cache := b.TempDir()
		b.Run(name+"/warm", func(b *testing.B) { benchStages(b, s.Core, Options{CacheDir: cache}, true) })
	}
}

// benchStages runs Core b.N times and reports each stage's mean time in
// ms as a metric ("unwind-ms", ...).
func benchStages(b *testing.B, core string, opts Options, warm bool) {
	if warm {
		if _, err := Core(core, opts); err != nil {
			b.Fatal(err)
		}
	}
	sums := map[string]float64{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep, err := Core(core, opts)
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range rep.Timings {
			sums[t.Stage] += t.MS
		}
	}
	for stage, ms := range sums {
		b.ReportMetric(ms/float64(b.N), stage+"-ms")
	}
}

// TestDiskCacheSameReport: an analysis that finds the disk cache filled
// by an earlier one reports the same frames, names and positions as one
// without a cache, and writes nothing new.
func TestDiskCacheSameReport(t *testing.T) {
	cache := t.TempDir()
	for _, lc := range labCores(t) {
		t.Run(lc.name, func(t *testing.T) {
			cold, err := Core(lc.core, Options{})
			if err != nil {
				t.Fatal(err)
			}
			for run := 0; run < 2; run++ { // fills the cache, then reads it
				warm, err := Core(lc.core, Options{CacheDir: cache})
				if err != nil {
					t.Fatal(err)
				}
				a, _ := json.Marshal(cold.Threads)
				b, _ := json.Marshal(warm.Threads)
				if !bytes.Equal(a, b) {
					t.Fatalf("run %d: threads differ from the analysis without a cache", run)
				}
				if len(warm.Warnings) != len(cold.Warnings) {
					t.Errorf("run %d: warnings %q, without a cache %q", run, warm.Warnings, cold.Warnings)
				}
			}
		})
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "symbols", "*", "*"))
	if len(entries) == 0 {
		t.Error("nothing was cached")
	}
}
