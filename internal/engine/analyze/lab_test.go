package analyze

import (
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

// TestNativeFramesMatchGDB: wherever gdb names a frame's function, coroner
// names the same function in the same module, until gdb's own unwinding
// leaves the real stack (it does at PHP JIT frames); and coroner names at
// least as many frames, strictly more on php-fpm cores. gdb's inlined frames
// (printed without an address) are matched by name when they fall on a
// physical frame and skipped otherwise.
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
