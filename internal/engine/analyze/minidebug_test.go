package analyze

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// addMiniDebugInfo turns a program built with -g into what Fedora and RHEL
// ship (find-debuginfo's add_minidebug): stripped, with an xz-compressed
// ELF in .gnu_debugdata whose .symtab holds the functions .dynsym lacks.
func addMiniDebugInfo(t *testing.T, bin string) {
	t.Helper()
	for _, tool := range []string{"nm", "objcopy", "strip", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := filepath.Dir(bin)
	run := func(name string, args ...string) []byte {
		out, err := exec.Command(name, args...).Output()
		if err != nil {
			t.Fatalf("%s %v: %v", name, args, err)
		}
		return out
	}
	symbols := func(out []byte, keep func(typ string) bool) map[string]bool {
		m := map[string]bool{}
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && keep(f[1]) {
				m[f[0]] = true
			}
		}
		return m
	}
	dyn := symbols(run("nm", "-D", bin, "--format=posix", "--defined-only"), func(string) bool { return true })
	funcs := symbols(run("nm", bin, "--format=posix", "--defined-only"), func(typ string) bool {
		return typ == "T" || typ == "t" || typ == "D"
	})
	var keep []string
	for f := range funcs {
		if !dyn[f] {
			keep = append(keep, f)
		}
	}
	sort.Strings(keep)
	keepFile := filepath.Join(dir, "keep_symbols")
	if err := os.WriteFile(keepFile, []byte(strings.Join(keep, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	debug, mini := filepath.Join(dir, "debug"), filepath.Join(dir, "mini_debuginfo")
	run("objcopy", "--only-keep-debug", bin, debug)
	run("objcopy", "-S", "--remove-section", ".gdb_index", "--remove-section", ".comment", "--keep-symbols="+keepFile, debug, mini)
	run("xz", "--keep", "--force", mini)
	run("strip", "--strip-all", "--remove-section", ".comment", bin)
	run("objcopy", "--add-section", ".gnu_debugdata="+mini+".xz", bin)
}

// TestMiniDebugInfoMatchesGDB: a stripped program with MiniDebugInfo has
// its static functions named from .gnu_debugdata, as gdb names them.
func TestMiniDebugInfoMatchesGDB(t *testing.T) {
	core, gdbOut := crashUnderGDBWith(t, crashSetup{prepare: func(bin string) { addMiniDebugInfo(t, bin) }}, "tailcall.c", "-O2", "-g")
	rep, err := Core(core, Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := checkAgainstGDB(t, rep, gdbOut, false, gdbCheck{})
	fr := rep.CrashedThread().Frames
	if fr[0].Function != "leaf" || fr[0].FunctionSource != "minidebuginfo" {
		t.Errorf("frame #0 %q from %q, want leaf from minidebuginfo", fr[0].Function, fr[0].FunctionSource)
	}
	if c.gdbNamed < 3 {
		t.Errorf("gdb named only %d frames: does it read .gnu_debugdata here?", c.gdbNamed)
	}
	for _, m := range rep.Modules {
		if filepath.Base(m.Path) == "tailcall" && m.Symbols != "minidebuginfo" {
			t.Errorf("module symbols %q", m.Symbols)
		}
	}
}
