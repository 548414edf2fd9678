package symbols

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestDebugFileSearch: a separate debug file is found by build-id below the
// sysroot and, unless NoHostDebug, on this host; one with another build-id
// is never used.
func TestDebugFileSearch(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	if err := os.WriteFile(src, []byte("int f(int x) { return x + 1; }\nint main(void) { return f(0); }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sysroot := filepath.Join(dir, "sysroot")
	bin := filepath.Join(sysroot, "usr/bin/p")
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-g", "-Wl,--build-id", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	o, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	id := o.BuildID
	o.Close()
	if len(id) < 4 {
		t.Fatalf("no build-id in %s", bin)
	}
	// The "host" debug directory (an absolute path outside the sysroot)
	// holds a debug file with the right build-id: the object itself.
	hostDebug := filepath.Join(dir, "host-debug")
	dbg := filepath.Join(hostDebug, ".build-id", id[:2], id[2:]+".debug")
	if err := os.MkdirAll(filepath.Dir(dbg), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dbg, b, 0o644); err != nil {
		t.Fatal(err)
	}
	open := func(opts Options) string {
		t.Helper()
		o, err := OpenWithOptions(bin, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		return o.DebugFile()
	}
	if got := open(Options{DebugDirs: []string{hostDebug}, Sysroot: sysroot}); got != dbg {
		t.Errorf("default search: debug file %q, want the host's %q", got, dbg)
	}
	if got := open(Options{DebugDirs: []string{hostDebug}, Sysroot: sysroot, NoHostDebug: true}); got != "" {
		t.Errorf("NoHostDebug: debug file %q used", got)
	}
	// Below the sysroot it is found with NoHostDebug too.
	inRoot := filepath.Join(sysroot, dbg)
	if err := os.MkdirAll(filepath.Dir(inRoot), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(inRoot, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := open(Options{DebugDirs: []string{hostDebug}, Sysroot: sysroot, NoHostDebug: true}); got != inRoot {
		t.Errorf("NoHostDebug: debug file %q, want the sysroot's %q", got, inRoot)
	}
	// A debug file of another build is not used.
	other := filepath.Join(dir, "other")
	if out, err := exec.Command("gcc", "-g", "-Wl,--build-id", "-O2", "-o", other, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	ob, _ := os.ReadFile(other)
	if err := os.WriteFile(inRoot, ob, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(dbg); err != nil {
		t.Fatal(err)
	}
	if got := open(Options{DebugDirs: []string{hostDebug}, Sysroot: sysroot, NoHostDebug: true}); got != "" {
		t.Errorf("a debug file with another build-id was used: %q", got)
	}
}
