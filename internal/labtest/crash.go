package labtest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// corePatternFile is the machine-wide kernel.core_pattern.
const corePatternFile = "/proc/sys/kernel/core_pattern"

// Crashed is one program a test crashed with Crash.
type Crashed struct {
	// PID is the crashed process.
	PID int
	// Core is the core file the kernel wrote ("" when none appeared).
	Core string
	// Kernel holds the kernel's lines about the crash (segfault or trap
	// line and its Code: line); empty for a signal that was sent, or when
	// the kernel rate-limited them.
	Kernel []string
	// Exit is the shell's exit status (128 + the signal).
	Exit int
}

// corePatternLock is the machine-wide lock every change of
// kernel.core_pattern holds (lab/run.sh takes it around each crash window,
// a lab kept with --keep until --stop).
const corePatternLock = "/run/lock/coroner-lab-core-pattern.lock"

// lockCorePattern takes corePatternLock (waiting up to 15 minutes for a
// lab that holds it) and returns the function that releases it.
func lockCorePattern(t testing.TB) func() {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(corePatternLock), 0o755); err != nil {
		t.Fatalf("lock kernel.core_pattern: %v", err)
	}
	f, err := os.OpenFile(corePatternLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("lock kernel.core_pattern: %v", err)
	}
	deadline := time.Now().Add(15 * time.Minute)
	for syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		if time.Now().After(deadline) {
			f.Close()
			t.Fatalf("%s still held after 15 minutes", corePatternLock)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_ = f.Truncate(0)
	_, _ = f.WriteString("go test " + t.Name() + " (pid " + strconv.Itoa(os.Getpid()) + ")\n") // for run.sh's waiting message
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}
}

// Crash runs argv (with RLIMIT_CORE unlimited, in dir) until it dies, with
// kernel.core_pattern set to pattern only around the crash, the way the
// lab does it: holding the machine-wide core_pattern lock that lab/run.sh
// takes (so that no lab crashes anything meanwhile), the previous value
// put back right after, and only if it still holds ours. pattern should be
// absolute (a directory of the test). It returns the pid, the core the
// kernel wrote (the file that appeared in the pattern's directory) and the
// kernel's lines about the pid.
func Crash(t testing.TB, dir, pattern string, argv ...string) Crashed {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("changing kernel.core_pattern needs root")
	}
	unlock := lockCorePattern(t)
	defer unlock()
	coreDir := filepath.Dir(pattern)
	before := listDir(coreDir)
	mark := KernelMark()
	saved, err := os.ReadFile(corePatternFile)
	if err != nil {
		t.Fatalf("read kernel.core_pattern: %v", err)
	}
	if err := os.WriteFile(corePatternFile, []byte(pattern), 0o644); err != nil {
		t.Fatalf("set kernel.core_pattern: %v", err)
	}
	restore := func() {
		cur, _ := os.ReadFile(corePatternFile)
		if strings.TrimSpace(string(cur)) == pattern {
			_ = os.WriteFile(corePatternFile, saved, 0o644)
		} else {
			t.Logf("kernel.core_pattern was changed by someone else meanwhile (%q): left as it is", cur)
		}
	}
	// run through sh so that the pid is the program's (exec) and cores are not limited
	cmd := exec.Command("sh", append([]string{"-c", `ulimit -c unlimited && exec "$@"`, "sh"}, argv...)...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		restore()
		t.Fatalf("start %v: %v", argv, err)
	}
	pid := cmd.Process.Pid
	err = cmd.Wait()
	restore()
	c := Crashed{PID: pid}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("%v did not crash (err %v): %s", argv, err, out.Bytes())
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		c.Exit = 128 + int(ws.Signal())
	} else {
		t.Fatalf("%v exited without a signal (%v): %s", argv, err, out.Bytes())
	}
	c.Core = waitNewFile(coreDir, before)
	c.Kernel = KernelLines(mark, pid)
	return c
}

// listDir returns the names in dir.
func listDir(dir string) map[string]bool {
	out := map[string]bool{}
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		out[e.Name()] = true
	}
	return out
}

// waitNewFile waits (up to 20s) for a file that was not in before to
// appear in dir and stop growing, and returns its path ("" if none did).
func waitNewFile(dir string, before map[string]bool) string {
	var path string
	prev := int64(-1)
	for i := 0; i < 200; i++ {
		if path == "" {
			for name := range listDir(dir) {
				if !before[name] {
					path = filepath.Join(dir, name)
				}
			}
		}
		if path != "" {
			if st, err := os.Stat(path); err == nil {
				if st.Size() == prev && prev > 0 {
					return path
				}
				prev = st.Size()
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return path
}

var kmsgStamp = regexp.MustCompile(`^\[ *([0-9]+\.[0-9]+)\]`)

// KernelMark returns the stamp of the newest line of the kernel ring buffer
// (0 when it cannot be read), for KernelLines.
func KernelMark() float64 {
	out, err := exec.Command("dmesg").Output()
	if err != nil {
		return 0
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if m := kmsgStamp.FindStringSubmatch(lines[i]); m != nil {
			v, _ := strconv.ParseFloat(m[1], 64)
			return v
		}
	}
	return 0
}

// KernelLines returns the kernel ring buffer's lines after mark that name
// one of the pids ("comm[pid]: segfault at ..." or "traps: comm[pid] ..."),
// each followed by its Code: line, as dmesg prints them.
func KernelLines(mark float64, pids ...int) []string {
	out, err := exec.Command("dmesg").Output()
	if err != nil {
		return nil
	}
	var lines []string
	prev := false
	for _, l := range strings.Split(string(out), "\n") {
		m := kmsgStamp.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		if v, _ := strconv.ParseFloat(m[1], 64); v <= mark {
			prev = false
			continue
		}
		if prev && strings.Contains(l, " Code: ") {
			lines = append(lines, l)
			prev = false
			continue
		}
		prev = false
		for _, p := range pids {
			if strings.Contains(l, "["+strconv.Itoa(p)+"]") {
				lines = append(lines, l)
				prev = true
				break
			}
		}
	}
	return lines
}
