package analyze

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/engine/symbols"
)

// splitDebugFile does to a program built with -g what Debian's dh_strip
// does for a -dbgsym package: the DWARF goes, compressed, into
// DIR/.build-id/xx/rest.debug, and (with debuglink) the program names it in
// .gnu_debuglink; the program is stripped.
func splitDebugFile(t *testing.T, bin, dir string, debuglink bool) {
	t.Helper()
	for _, tool := range []string{"objcopy", "strip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	o, err := symbols.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	id := o.BuildID
	o.Close()
	if len(id) < 4 {
		t.Fatalf("%s has no build-id", bin)
	}
	debug := filepath.Join(dir, ".build-id", id[:2], id[2:]+".debug")
	if err := os.MkdirAll(filepath.Dir(debug), 0o755); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run("objcopy", "--only-keep-debug", "--compress-debug-sections=zlib", bin, debug)
	run("strip", "--remove-section=.comment", "--remove-section=.note", "--strip-unneeded", bin)
	if debuglink {
		run("objcopy", "--add-gnu-debuglink="+debug, bin)
	}
}

// TestDbgsymDebugFilesMatchGDB: programs built -O2 -g (the lab's C and C++
// programs and the inlining and tail-call ones) and stripped, with their
// debug files in a separate directory laid out as Debian's -dbgsym
// packages lay them out: with --debug-dir pointing there, coroner names
// every frame gdb names (with debug-file-directory pointing there), inlined
// functions and tail calls included, the same way.
func TestDbgsymDebugFilesMatchGDB(t *testing.T) {
	lab := filepath.Join("..", "..", "..", "lab", "c")
	progs := []struct {
		src  string
		libs []string
	}{
		{filepath.Join(lab, "null-write.c"), nil},
		{filepath.Join(lab, "thread-crash.c"), nil},
		{filepath.Join(lab, "cpp-namespace.cpp"), nil},
		{filepath.Join(lab, "pcre-null.c"), []string{"-lpcre2-8"}},
		{"inlines.cpp", nil},
		{"tailcall.c", nil},
	}
	for i, p := range progs {
		t.Run(filepath.Base(p.src), func(t *testing.T) {
			if p.libs != nil {
				if _, err := os.Stat("/usr/include/pcre2.h"); err != nil {
					t.Skip("libpcre2-dev not installed")
				}
			}
			dir := t.TempDir()
			setup := crashSetup{
				prepare: func(bin string) { splitDebugFile(t, bin, dir, i%2 == 0) },
				gdbInit: []string{"set debug-file-directory " + dir + ":/usr/lib/debug"},
				libs:    p.libs,
			}
			core, gdbOut := crashUnderGDBWith(t, setup, p.src, "-O2", "-g")
			rep, err := Core(core, Options{DebugDirs: []string{dir}})
			if err != nil {
				t.Fatal(err)
			}
			c := checkAgainstGDB(t, rep, gdbOut, false, gdbCheck{})
			if c.same == 0 {
				t.Errorf("no frame compared")
			}
			prog := strings.TrimSuffix(filepath.Base(p.src), filepath.Ext(p.src))
			for _, m := range rep.Modules {
				if filepath.Base(m.Path) == prog && !strings.HasPrefix(m.DebugFile, dir) {
					t.Errorf("%s: debug file %q, want the one in the debug directory", prog, m.DebugFile)
				}
			}
		})
	}
}

// TestDwzDebugFilesMatchGDB: debug files that dwz has rewritten, as
// Debian's dh_dwz does for -dbgsym packages: what two programs share moves
// into a supplementary file (.gnu_debugaltlink, found here by its build-id
// under the debug directory), and the DIEs refer into it (DW_FORM_GNU_ref_alt,
// DW_FORM_GNU_strp_alt, partial units). The names are gdb's still.
func TestDwzDebugFilesMatchGDB(t *testing.T) {
	if _, err := exec.LookPath("dwz"); err != nil {
		t.Skip("dwz not installed")
	}
	dir := t.TempDir()
	prepare := func(bin string) {
		// A second program sharing most of its types, for dwz -m.
		other := bin + "-variant"
		if out, err := exec.Command("g++", "-O2", "-g", "-pthread", "-DVARIANT=2", "-o", other, filepath.Join("testdata", "inlines.cpp")).CombinedOutput(); err != nil {
			t.Fatalf("g++: %v\n%s", err, out)
		}
		multi := filepath.Join(filepath.Dir(bin), "common.debug")
		// -M names where Debian installs it: not on this host, so that the
		// supplementary file is found by its build-id.
		if out, err := exec.Command("dwz", "-m", multi, "-M", "/usr/lib/debug/.dwz/x86_64-linux-gnu/coroner-test.debug", bin, other).CombinedOutput(); err != nil {
			t.Fatalf("dwz: %v\n%s", err, out)
		}
		o, err := symbols.Open(multi)
		if err != nil {
			t.Fatal(err)
		}
		id := o.BuildID
		o.Close()
		dst := filepath.Join(dir, ".build-id", id[:2], id[2:]+".debug")
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(multi, dst); err != nil {
			t.Fatal(err)
		}
		splitDebugFile(t, bin, dir, false)
	}
	setup := crashSetup{prepare: prepare, gdbInit: []string{"set debug-file-directory " + dir + ":/usr/lib/debug"}}
	core, gdbOut := crashUnderGDBWith(t, setup, "inlines.cpp", "-O2", "-g")
	rep, err := Core(core, Options{DebugDirs: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	c := checkAgainstGDB(t, rep, gdbOut, false, gdbCheck{})
	f0 := rep.CrashedThread().Frames[0]
	if len(f0.Inlined) < 6 || c.same < 8 {
		t.Errorf("frame #0 %q with %d inlined functions; %d names the same as gdb", f0.Function, len(f0.Inlined), c.same)
	}
}
