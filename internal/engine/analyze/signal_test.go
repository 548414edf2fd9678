package analyze

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestSignalFrameAndGcore builds a program that waits inside a signal
// handler, dumps it with gdb's gcore (a core without read-only file
// mappings, so text comes from the files), and checks that coroner unwinds
// through the signal trampoline (__restore_rt, CFI with the 'S'
// augmentation and expression rules) to _start, agreeing with gdb.
func TestSignalFrameAndGcore(t *testing.T) {
	for _, tool := range []string{"gcc", "gdb"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sighandler")
	if out, err := exec.Command("gcc", "-O1", "-g", "-o", bin, "testdata/sighandler.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	cmd := exec.Command(bin)
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	lines := bufio.NewScanner(stdout)
	lines.Scan()                       // "pid N": main is about to enter busy_loop
	time.Sleep(200 * time.Millisecond) // let it get there
	_ = cmd.Process.Signal(syscall.SIGUSR1)
	lines.Scan() // "ready": the handler is running
	time.Sleep(50 * time.Millisecond)
	core := filepath.Join(dir, "core")
	if out, err := exec.Command("gdb", "-nx", "-batch", "-p", strconv.Itoa(cmd.Process.Pid), "-ex", "gcore "+core).CombinedOutput(); err != nil {
		if _, statErr := os.Stat(core); statErr != nil {
			t.Skipf("gcore failed (no ptrace permission?): %v\n%s", err, out)
		}
	}
	gdbOut := filepath.Join(dir, "gdb.txt")
	out, _ := exec.Command("gdb", "-nx", "-batch", "-ex", "bt", bin, core).CombinedOutput()
	os.WriteFile(gdbOut, out, 0o644)
	gdb, err := parseGDBBacktrace(gdbOut)
	if err != nil || len(gdb) < 5 {
		t.Fatalf("gdb backtrace: %v\n%s", err, out)
	}
	rep, err := Core(core, Options{})
	if err != nil {
		t.Fatal(err)
	}
	th := rep.CrashedThread()
	if len(th.Frames) < len(gdb) {
		t.Fatalf("coroner has %d frames, gdb %d", len(th.Frames), len(gdb))
	}
	sawTrampoline := false
	for _, f := range th.Frames {
		if f.Function == "__restore_rt" || f.Function == "<signal handler called>" {
			sawTrampoline = true
		}
	}
	checkAgainstGDB(t, rep, gdbOut, false, gdbCheck{})
	if !sawTrampoline {
		t.Error("no signal trampoline frame")
	}
	want := []string{"inner_wait", "handler", "busy_loop", "main"}
	var got []string
	for _, f := range th.Frames {
		for _, w := range want {
			if f.Function == w {
				got = append(got, w)
			}
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("frames %v, want %v in order", got, want)
	}
	if last := th.Frames[len(th.Frames)-1].Function; last != "_start" {
		t.Errorf("last frame %q", last)
	}
}
