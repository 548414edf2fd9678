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
			gdb, err := parseGDBBacktrace(lc.gdb)
			if err != nil || len(gdb) == 0 {
				t.Fatalf("gdb oracle %s: %d frames, %v", lc.gdb, len(gdb), err)
			}
			th := rep.CrashedThread()
			if th == nil {
				t.Fatal("no crashed thread")
			}
			gdbNamed := map[int]bool{} // coroner frame indexes gdb named
			next := 0                  // coroner frame expected for gdb's next physical frame
			diverged := false
			find := func(pc uint64, from int) int {
				for k := from; k < len(th.Frames) && k < from+4; k++ {
					if uint64(th.Frames[k].PC) == pc {
						return k
					}
				}
				return -1
			}
			for gi, g := range gdb {
				j := -1
				switch {
				case g.pc != 0:
					j = find(g.pc, next)
					if j < 0 {
						// gdb synthesizes frames for tail calls from DWARF
						// call-site information (their pc follows a jmp and is
						// on no stack); skip one such frame, stop at two.
						if gi+1 < len(gdb) && gdb[gi+1].pc != 0 && find(gdb[gi+1].pc, next) >= 0 {
							t.Logf("gdb frame #%d %s (pc %#x) is not a physical frame (tail call synthesized by gdb)", g.index, g.function, g.pc)
							continue
						}
						t.Logf("gdb frame #%d pc %#x not on coroner's stack near #%d: gdb's unwinding diverges; comparison stops", g.index, g.pc, next)
						diverged = true
					}
				case next < len(th.Frames) && sameFunction(g.function, th.Frames[next].Function):
					j = next // frame 0 at the start of a source line: gdb prints no address
				default:
					continue // an inlined frame: not a physical frame
				}
				if diverged {
					break
				}
				next = j + 1
				f := th.Frames[j]
				if g.function == "" {
					continue
				}
				if !sameFunction(g.function, f.Function) && !isAlias(rep, &f, g.function) {
					// With inlined code at pc, gdb prints the innermost inlined
					// function with the address and the functions containing it
					// (the physical one last) as the following address-less frames.
					matched := false
					for _, h := range gdb[gi+1:] {
						if h.pc != 0 {
							break
						}
						if sameFunction(h.function, f.Function) || isAlias(rep, &f, h.function) {
							matched = true
							break
						}
					}
					if !matched {
						t.Errorf("frame #%d %s: gdb says %q, coroner %q (%s)", j, f.PC, g.function, f.Function, f.FunctionSource)
					}
				}
				gdbNamed[j] = true
				if g.lib != "" {
					want := g.lib
					if real, err := filepath.EvalSymlinks(g.lib); err == nil {
						want = real
					}
					if filepath.Base(want) != f.Module {
						t.Errorf("frame #%d: gdb module %s, coroner %s", j, filepath.Base(want), f.Module)
					}
				}
			}
			ourNamed := 0
			for _, f := range th.Frames {
				if f.Function != "" {
					ourNamed++
				}
			}
			t.Logf("%d frames (gdb %d, diverged %v); named: coroner %d, gdb %d", len(th.Frames), len(gdb), diverged, ourNamed, len(gdbNamed))
			if ourNamed < len(gdbNamed) {
				t.Errorf("coroner names %d frames, gdb %d", ourNamed, len(gdbNamed))
			}
			if lc.php && ourNamed <= len(gdbNamed) {
				t.Errorf("on a php-fpm core coroner must name strictly more frames than gdb: %d vs %d", ourNamed, len(gdbNamed))
			}
			last := th.Frames[len(th.Frames)-1]
			if last.Function != "_start" && last.Function != "clone" && last.Function != "clone3" && !strings.Contains(last.Function, "start_thread") &&
				!strings.HasPrefix(last.Function, "runtime.goexit") {
				t.Errorf("unwinding ends at %q (%s), not at _start/clone", last.Function, last.Module)
			}
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
