package analyze

import (
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestVDSOFramesMatchGDB crashes a program inside the vDSO (no file holds
// its code): the vDSO is read from the core's memory, so frame #0 is named
// as gdb names it and the unwind goes on through libc to main.
func TestVDSOFramesMatchGDB(t *testing.T) {
	core, gdbOut := crashUnderGDB(t, "vdso.c", "-O0", "-g")
	rep, err := Core(core, Options{})
	if err != nil {
		t.Fatal(err)
	}
	checkAgainstGDB(t, rep, gdbOut, false, gdbCheck{})
	f := rep.CrashedThread().Frames
	if len(f) < 3 || f[0].Module != crash.LabelVDSO || f[0].Function == "" {
		t.Fatalf("frames %+v, want frame #0 named in the vDSO", f)
	}
	found := false
	for _, m := range rep.Modules {
		if m.Path == crash.LabelVDSO {
			found = true
			if m.Kind != crash.ModuleVDSO || m.BuildID == "" {
				t.Errorf("vDSO module %+v", m)
			}
		}
	}
	if !found {
		t.Error("no vDSO module in the report")
	}
	main := false
	for _, fr := range f {
		main = main || fr.Function == "main"
	}
	if !main {
		t.Errorf("the unwind from the vDSO does not reach main: %+v", f)
	}
}
