package analyze

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// TestSysrootAndExe analyses a core "on another machine": every file the
// process mapped is copied under a sysroot (and the executable elsewhere
// for --exe), and the frames must come out the same as on the host.
func TestSysrootAndExe(t *testing.T) {
	c := labtest.Get(t).CPrograms["pcre-null"]
	if c == nil {
		t.Fatal("lab has no pcre-null core")
	}
	want, err := Core(c.Core, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := elfcore.Open(c.Core)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for _, fm := range cf.Files() {
		dst := filepath.Join(root, fm.Path)
		if _, err := os.Stat(dst); err == nil {
			continue
		}
		if err := copyFile(fm.Path, dst); err != nil {
			t.Fatalf("copy %s: %v", fm.Path, err)
		}
	}
	exe := cf.Executable()
	cf.Close()
	// The executable is not under the sysroot at its path: --exe names it.
	moved := filepath.Join(t.TempDir(), "renamed-binary")
	if err := os.Rename(filepath.Join(root, exe), moved); err != nil {
		t.Fatal(err)
	}
	got, err := Core(c.Core, Options{Sysroot: root, Exe: moved})
	if err != nil {
		t.Fatal(err)
	}
	wf, gf := want.CrashedThread().Frames, got.CrashedThread().Frames
	if len(wf) != len(gf) {
		t.Fatalf("%d frames with the sysroot, %d on the host", len(gf), len(wf))
	}
	for i := range wf {
		if wf[i].PC != gf[i].PC || wf[i].Function != gf[i].Function {
			t.Errorf("frame #%d: host %s %s, sysroot %s %s", i, wf[i].PC, wf[i].Function, gf[i].PC, gf[i].Function)
		}
	}
	if got.Fault.Kind != want.Fault.Kind {
		t.Errorf("fault %s, host %s", got.Fault.Kind, want.Fault.Kind)
	}
	// Without the files, the analysis still works and says what is missing.
	bare, err := Core(c.Core, Options{Sysroot: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, m := range bare.Modules {
		if m.Missing {
			missing++
		}
	}
	if missing == 0 || len(bare.Warnings) == 0 {
		t.Errorf("an empty sysroot reports %d missing modules, warnings %v", missing, bare.Warnings)
	}
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
