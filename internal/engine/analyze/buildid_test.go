package analyze

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// A library the crashed program ran and the build that replaced it on
// disk: the new one starts with a function "decoy" of 8 KiB of nops, over
// the offsets where the old one's functions were.
const (
	libOld = `__attribute__((noinline)) int foo_crash(volatile int *p) { return *p + 1; }
int foo_entry(volatile int *p) { return foo_crash(p) * 2; }
`
	libNew = `__asm__(".text\n.globl decoy\n.type decoy,@function\ndecoy:\n.fill 8192,1,0x90\nret\n.size decoy, .-decoy\n");
__attribute__((noinline)) int foo_crash(volatile int *p) { return *p + 3; }
int foo_entry(volatile int *p) { return foo_crash(p) * 5; }
`
	mainProg = `extern int foo_entry(volatile int *p);
int main(void) { return foo_entry((volatile int *)0); }
`
)

func gcc(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("gcc", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, out)
	}
}

// TestReplacedLibraryNotUsed crashes a program in a library of its own,
// then replaces the library on disk with another build (an upgrade under
// a running process): the library's file is no longer the one that ran,
// so nothing may be read from it (no "decoy" frame, no nop decoded as the
// faulting instruction), and the report says it was replaced.
func TestReplacedLibraryNotUsed(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed")
	}
	dir := t.TempDir()
	for name, src := range map[string]string{"old.c": libOld, "new.c": libNew, "main.c": mainProg} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	gcc(t, dir, "-O1", "-g", "-shared", "-fPIC", "-o", "libfoo.so", "old.c")
	gcc(t, dir, "-O1", "-g", "-shared", "-fPIC", "-o", "libfoo-new.so", "new.c")
	gcc(t, dir, "-O1", "-g", "-o", "prog", "main.c", "-L.", "-lfoo", "-Wl,-rpath,"+dir)
	core, _ := labtest.CrashCore(t, dir, nil, filepath.Join(dir, "prog"))

	lib := filepath.Join(dir, "libfoo.so")
	before, err := Core(core, Options{NoAutoRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	if f := before.CrashedThread().Frames; len(f) == 0 || f[0].Function != "foo_crash" {
		t.Fatalf("before the upgrade the crash is not in foo_crash: %+v", f)
	}
	if out, err := exec.Command("cp", lib, filepath.Join(dir, "libfoo-old.so")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	if err := os.Rename(filepath.Join(dir, "libfoo-new.so"), lib); err != nil {
		t.Fatal(err)
	}
	rep, err := Core(core, Options{NoAutoRoot: true})
	if err != nil {
		t.Fatal(err)
	}
	var mod *crash.Module
	for i := range rep.Modules {
		if rep.Modules[i].Path == lib {
			mod = &rep.Modules[i]
		}
	}
	if mod == nil || !mod.Mismatch || !mod.Missing || mod.FileBuildID == "" || mod.FileBuildID == mod.BuildID {
		t.Fatalf("replaced library: %+v", mod)
	}
	f0 := rep.CrashedThread().Frames[0]
	if f0.Function != "" || f0.Module != "libfoo.so" || f0.ModuleOffset != before.CrashedThread().Frames[0].ModuleOffset {
		t.Errorf("frame #0 of the replaced library: %+v (before: %+v)", f0, before.CrashedThread().Frames[0])
	}
	for _, f := range rep.CrashedThread().Frames {
		if f.Function == "decoy" {
			t.Errorf("a frame is named from the replacing build: %+v", f)
		}
	}
	// The code bytes come from the core (gdb dumps the text pages) or
	// are unknown, never from the replacing build's nops.
	if in := rep.Fault.Instruction; strings.Contains(in, "nop") || (in != "" && in != before.Fault.Instruction) {
		t.Errorf("faulting instruction %q, before the upgrade %q", in, before.Fault.Instruction)
	}
	if !hasWarning(rep, "libfoo.so") {
		t.Errorf("no warning names the replaced library: %v", rep.Warnings)
	}
	if rep.Root != nil && len(rep.Root.Unresolved) != 1 {
		t.Errorf("unresolved objects: %v", rep.Root.Unresolved)
	}
	// With the old build's debug file (as a dbgsym package installs it),
	// its frame is named again, still without reading the new file.
	debugDir := t.TempDir()
	idDir := filepath.Join(debugDir, ".build-id", mod.BuildID[:2])
	if err := os.MkdirAll(idDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("objcopy", "--only-keep-debug", filepath.Join(dir, "libfoo-old.so"), filepath.Join(idDir, mod.BuildID[2:]+".debug")).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	withDebug, err := Core(core, Options{NoAutoRoot: true, DebugDirs: []string{debugDir}})
	if err != nil {
		t.Fatal(err)
	}
	if f := withDebug.CrashedThread().Frames[0]; f.Function != "foo_crash" || f.ModuleOffset != before.CrashedThread().Frames[0].ModuleOffset {
		t.Errorf("frame #0 with the old build's debug file: %+v", f)
	}
	if in := withDebug.Fault.Instruction; (in != "" && in != before.Fault.Instruction) || !hasWarning(withDebug, "separate debug files alone") {
		t.Errorf("debug file only: instruction %q, warnings %v", withDebug.Fault.Instruction, withDebug.Warnings)
	}
	kb, err := diagnose.Load()
	if err != nil {
		t.Fatal(err)
	}
	if d := kb.Diagnose(rep, diagnose.Evidence{}); len(d) == 0 || d[0].Rule != "stale-libraries" || d[0].Confidence != crash.ConfidenceHigh {
		t.Errorf("an upgraded library on the stack is not diagnosed as stale-libraries: %+v", d)
	}
}

func hasWarning(rep *crash.Report, sub string) bool {
	for _, w := range rep.Warnings {
		if strings.Contains(w, sub) {
			return true
		}
	}
	return false
}
