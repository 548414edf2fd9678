package analyze

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// crashUnderGDB builds a test program (testdata/SRC, or a path), runs it
// under gdb until it faults and has gdb write a core there
// (kernel.core_pattern is the lab's to set); it returns the core and
// gdb's backtrace of it.
func crashUnderGDB(t *testing.T, src string, flags ...string) (core, gdbOut string) {
	t.Helper()
	return crashUnderGDBWith(t, crashSetup{}, src, flags...)
}

// crashSetup changes how crashUnderGDBWith builds and reads the program.
type crashSetup struct {
	// prepare changes the built program (strips it, adds sections)
	// before it runs.
	prepare func(bin string)
	// gdbInit are gdb commands run before the files are read for the
	// oracle ("set debug-file-directory DIR").
	gdbInit []string
	// libs are linker flags given after the source.
	libs []string
	// cc is the compiler (default gcc, or g++ for C++).
	cc string
}

func crashUnderGDBWith(t *testing.T, setup crashSetup, src string, flags ...string) (core, gdbOut string) {
	t.Helper()
	cc := "gcc"
	if strings.HasSuffix(src, ".cpp") {
		cc = "g++"
		flags = append(flags, "-pthread")
	}
	if setup.cc != "" {
		cc = setup.cc
	}
	for _, tool := range []string{cc, "gdb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	path := src
	if !strings.Contains(src, "/") {
		path = filepath.Join("testdata", src)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, strings.TrimSuffix(filepath.Base(src), filepath.Ext(src)))
	args := append(append(append([]string{}, flags...), "-o", bin, path), setup.libs...)
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", cc, err, out)
	}
	if setup.prepare != nil {
		setup.prepare(bin)
	}
	core = filepath.Join(dir, "core")
	out, err := exec.Command("gdb", "-nx", "-batch", "-ex", "run", "-ex", "generate-core-file "+core, bin).CombinedOutput()
	if _, statErr := os.Stat(core); statErr != nil {
		t.Skipf("gdb could not run the program and dump it (no ptrace?): %v\n%s", err, out)
	}
	gargs := []string{"-nx", "-batch"}
	for _, c := range setup.gdbInit {
		gargs = append(gargs, "-iex", c)
	}
	out, _ = exec.Command("gdb", append(gargs, "-ex", "bt", bin, core)...).CombinedOutput()
	gdbOut = filepath.Join(dir, "gdb.txt")
	if err := os.WriteFile(gdbOut, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return core, gdbOut
}

// TestInlinedFramesMatchGDB: a C++ crash deep in inlined code (a lambda
// run by std::thread, templates, namespaces, an anonymous namespace) shows
// every inlined function gdb shows, innermost first, named as gdb names
// them, with the call lines; the physical frame is the out-of-line
// _State_impl<...>::_M_run.
func TestInlinedFramesMatchGDB(t *testing.T) {
	for _, dw := range []string{"-gdwarf-5", "-gdwarf-4"} {
		t.Run(dw, func(t *testing.T) {
			core, gdbOut := crashUnderGDB(t, "inlines.cpp", "-O2", "-g", dw)
			rep, err := Core(core, Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstGDB(t, rep, gdbOut, false, gdbCheck{})
			f0 := rep.CrashedThread().Frames[0]
			var names []string
			for _, v := range f0.Inlined {
				names = append(names, v.Function)
			}
			want := []string{"shop::Book<shop::(anonymous namespace)::Ledger>::close", "shop::settle", "operator()"}
			if len(names) < 6 || strings.Join(names[:3], "|") != strings.Join(want, "|") {
				t.Errorf("frame #0 inlined %q, want %q first and the std::thread chain after", names, want)
			}
			if !strings.HasSuffix(f0.Function, "::_M_run") || f0.FunctionSource != "dwarf" {
				t.Errorf("frame #0 function %q (%s), want the out-of-line _M_run from DWARF", f0.Function, f0.FunctionSource)
			}
			if f0.Inlined[0].Line == 0 || f0.File == "" || !strings.HasSuffix(f0.File, "std_thread.h") {
				t.Errorf("positions: innermost %s:%d, physical %s:%d", f0.Inlined[0].File, f0.Inlined[0].Line, f0.File, f0.Line)
			}
		})
	}
}

// TestClangFramesMatchGDB: clang writes DWARF differently (no
// .debug_aranges, no DW_AT_sibling, indexed strings and addresses,
// linkage names on every function, which gdb prints demangled:
// main::$_0::operator()); the inlined and physical frames are still gdb's.
func TestClangFramesMatchGDB(t *testing.T) {
	for _, p := range []struct{ cc, src string }{{"clang++", "inlines.cpp"}, {"clang", "tailcall.c"}} {
		t.Run(p.src, func(t *testing.T) {
			if _, err := exec.LookPath(p.cc); err != nil {
				t.Skipf("%s not installed", p.cc)
			}
			core, gdbOut := crashUnderGDBWith(t, crashSetup{cc: p.cc}, p.src, "-O2", "-g")
			rep, err := Core(core, Options{})
			if err != nil {
				t.Fatal(err)
			}
			c := checkAgainstGDB(t, rep, gdbOut, false, gdbCheck{})
			inlined := 0
			for _, f := range rep.CrashedThread().Frames {
				inlined += len(f.Inlined)
			}
			if inlined == 0 || c.same < 4 {
				t.Errorf("%d inlined functions, %d names the same as gdb's", inlined, c.same)
			}
		})
	}
}

// TestTailCallFramesMatchGDB: middle() ends in a jump to leaf(); gdb
// shows it between leaf() and top() from DWARF call-site information, at
// the address after the jump, and so does coroner, marked as a tail call.
func TestTailCallFramesMatchGDB(t *testing.T) {
	for _, dw := range []string{"-gdwarf-5", "-gdwarf-4"} {
		t.Run(dw, func(t *testing.T) {
			core, gdbOut := crashUnderGDB(t, "tailcall.c", "-O2", "-g", dw)
			rep, err := Core(core, Options{})
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstGDB(t, rep, gdbOut, false, gdbCheck{})
			fr := rep.CrashedThread().Frames
			if len(fr) < 2 || fr[0].Function != "leaf" || len(fr[0].TailCalls) != 1 || fr[0].TailCalls[0].Function != "middle" {
				t.Fatalf("frame #0 %q with tail calls %+v, want leaf reached from middle by a jump", fr[0].Function, fr[0].TailCalls)
			}
			if fr[1].Function != "top" || len(fr[1].Inlined) != 1 || fr[1].Inlined[0].Function != "wrapped" {
				t.Errorf("frame #1 %q inlined %+v, want top with wrapped inlined", fr[1].Function, fr[1].Inlined)
			}
			tc := fr[0].TailCalls[0]
			if tc.PC == 0 || tc.Line == 0 || tc.ModuleOffset == 0 {
				t.Errorf("tail call frame %+v lacks its address or line", tc)
			}
		})
	}
}
