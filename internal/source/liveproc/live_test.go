package liveproc_test

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
	"github.com/coroner-dev/coroner/internal/source/liveproc"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// sleeperBinary compiles testdata/sleeper.c once, into a directory every
// user can read (the refusal tests run it as nobody).
func sleeperBinary(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed")
	}
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "coroner-liveproc-")
		if buildErr != nil {
			return
		}
		_ = os.Chmod(binDir, 0o755)
		src, _ := filepath.Abs("testdata/sleeper.c")
		out, err := exec.Command("gcc", "-O1", "-g", "-pthread", "-o", filepath.Join(binDir, "sleeper"), src).CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("gcc: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "sleeper")
}

func TestMain(m *testing.M) {
	if os.Getenv("LIVEPROC_HOLD") != "" {
		// Stop the process, say so, and wait to be killed meanwhile.
		liveproc.SetHoldStop(func() {
			fmt.Println("stopped")
			time.Sleep(time.Minute)
		})
	}
	if os.Getenv("LIVEPROC_HELPER") != "" {
		helper()
		return
	}
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// helper runs in a child test binary (as another user): it tries to
// snapshot the pid in LIVEPROC_HELPER and prints the error.
func helper() {
	pid, _ := strconv.Atoi(os.Getenv("LIVEPROC_HELPER"))
	p, err := liveproc.Attach(pid, liveproc.Options{})
	if err != nil {
		fmt.Println("ERROR:", err)
		return
	}
	fmt.Printf("OK: %d threads\n", len(p.Threads()))
}

type sleeper struct {
	cmd   *exec.Cmd
	pid   int
	lines chan string
}

func startSleeper(t *testing.T, cred *syscall.Credential, args ...string) *sleeper {
	t.Helper()
	return startProgram(t, sleeperBinary(t), cred, args...)
}

func startProgram(t *testing.T, bin string, cred *syscall.Credential, args ...string) *sleeper {
	t.Helper()
	cmd := exec.Command(bin, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &sleeper{cmd: cmd, pid: cmd.Process.Pid, lines: make(chan string, 1000)}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		stdin.Close()
	})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			s.lines <- sc.Text()
		}
		close(s.lines)
	}()
	if l := s.next(t); l != "ready" {
		t.Fatalf("sleeper said %q, want ready", l)
	}
	s.next(t) // the first tick: the main thread is in its loop
	return s
}

func (s *sleeper) next(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-s.lines:
		if !ok {
			t.Fatalf("sleeper %d ended", s.pid)
		}
		return l
	case <-time.After(30 * time.Second):
		t.Fatalf("sleeper %d printed nothing for 30 s: is it still stopped?", s.pid)
	}
	return ""
}

// goesOn checks that the process runs on after a snapshot: its next
// sleeps complete, none was interrupted (EINTR).
func (s *sleeper) goesOn(t *testing.T) {
	t.Helper()
	for i := 0; i < 3; i++ {
		if l := s.next(t); !strings.HasPrefix(l, "tick") {
			t.Fatalf("after the snapshot the program printed %q: a system call was interrupted", l)
		}
	}
	if st, err := liveproc.ReadStat(s.pid); err != nil || st.State == 't' || st.State == 'T' {
		t.Fatalf("process state after the snapshot: %c (%v)", st.State, err)
	}
}

func functions(th *crash.Thread) []string {
	var out []string
	for _, f := range th.Frames {
		out = append(out, f.Function)
	}
	return out
}

func threadByTID(rep *crash.Report, tid int) *crash.Thread {
	for i := range rep.Threads {
		if rep.Threads[i].TID == tid {
			return &rep.Threads[i]
		}
	}
	return nil
}

func hasSeq(fns []string, want ...string) bool {
	i := 0
	for _, f := range fns {
		if i < len(want) && f == want[i] {
			i++
		}
	}
	return i == len(want)
}

// TestSnapshotLiveProgram snapshots a running program (both memory
// modes), checks its stacks, writes a core of it and checks that gdb reads
// the core with the same return addresses, that coroner analyses the core
// like the live process, and that the program ran on unharmed.
func TestSnapshotLiveProgram(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (ptrace of a child is allowed, but the core test reads /proc/PID/map_files)")
	}
	for _, live := range []bool{false, true} {
		t.Run(fmt.Sprintf("live-memory=%v", live), func(t *testing.T) {
			s := startSleeper(t, nil)
			p, err := liveproc.Attach(s.pid, liveproc.Options{LiveMemory: live})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			pause := p.Pause()
			t.Logf("pause %v (registers %v), %d threads, %d bytes copied", pause.Stopped, pause.Registers, pause.Threads, pause.Copied)
			if pause.Threads != 2 || len(p.Threads()) != 2 || p.Threads()[0].TID != s.pid {
				t.Fatalf("threads %+v, pause %+v: want 2, the main thread first", p.Threads(), pause)
			}
			if pause.Copied == 0 || p.Frozen() == live {
				t.Errorf("live-memory %v: copied %d bytes, frozen %v", live, pause.Copied, p.Frozen())
			}
			if pause.Stopped <= 0 || pause.Registers > pause.Stopped {
				t.Errorf("pause %+v", pause)
			}
			rep := analyze.Process(p, p.Path(), analyze.Options{NoPHP: true})
			s.goesOn(t)

			main := threadByTID(rep, s.pid)
			if main == nil || !hasSeq(functions(main), "inner_sleep", "middle_sleep", "main") {
				t.Fatalf("main thread: %v", main)
			}
			var other *crash.Thread
			for i := range rep.Threads {
				if rep.Threads[i].TID != s.pid {
					other = &rep.Threads[i]
				}
			}
			if other == nil || !hasSeq(functions(other), "read", "reader", "start_thread") {
				t.Fatalf("reader thread: %v", other)
			}

			core := filepath.Join(t.TempDir(), "core.sleeper")
			st, err := p.WriteCore(core)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("core: %+v", st)
			s.goesOn(t)
			c, err := elfcore.Open(core)
			if err != nil {
				t.Fatal(err)
			}
			if len(c.Threads()) != 2 || len(c.Files()) == 0 || c.Process().PID != s.pid || len(c.Warnings()) != 0 {
				t.Errorf("core: %d threads, %d files, pid %d, warnings %q", len(c.Threads()), len(c.Files()), c.Process().PID, c.Warnings())
			}
			c.Close()
			fromCore, err := analyze.Core(core, analyze.Options{NoPHP: true})
			if err != nil {
				t.Fatal(err)
			}
			gdb := gdbThreads(t, p.Executable(), core)
			for _, th := range rep.Threads {
				ct := threadByTID(fromCore, th.TID)
				if ct == nil || !samePCs(th.Frames, ct.Frames) {
					t.Errorf("thread %d: live %v, from the core %v", th.TID, pcs(th.Frames), ct)
				}
				g, ok := gdb[th.TID]
				if !ok {
					t.Errorf("gdb shows no thread %d: %v", th.TID, gdb)
					continue
				}
				if !subsequence(g, pcs(th.Frames)) {
					t.Errorf("thread %d: gdb's return addresses %x are not those of the live snapshot %x", th.TID, g, pcs(th.Frames))
				}
			}
		})
	}
}

func pcs(fs []crash.Frame) []uint64 {
	var out []uint64
	for _, f := range fs {
		out = append(out, uint64(f.PC))
	}
	return out
}

func samePCs(a, b []crash.Frame) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].PC != b[i].PC {
			return false
		}
	}
	return true
}

// subsequence reports whether every pc gdb printed appears in ours, in
// order (gdb adds inlined frames, which have no pc of their own).
func subsequence(gdb, ours []uint64) bool {
	if len(gdb) == 0 {
		return false
	}
	i := 0
	for _, pc := range ours {
		if i < len(gdb) && gdb[i] == pc {
			i++
		}
	}
	return i == len(gdb)
}

var (
	gdbThreadRE = regexp.MustCompile(`^Thread \d+ .*\(LWP (\d+)\)\)?:`)
	gdbPCRE     = regexp.MustCompile(`^#\d+\s+(0x[0-9a-f]+) in `)
)

// gdbThreads runs gdb's `thread apply all bt` on a core: the pcs it
// prints, per thread id.
func gdbThreads(t *testing.T, exe, core string) map[int][]uint64 {
	t.Helper()
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skip("gdb is not installed")
	}
	out, err := exec.Command("gdb", "-nx", "-batch", "-ex", "thread apply all bt", exe, core).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	res := map[int][]uint64{}
	tid := 0
	for _, line := range strings.Split(string(out), "\n") {
		if m := gdbThreadRE.FindStringSubmatch(line); m != nil {
			tid, _ = strconv.Atoi(m[1])
			res[tid] = nil
			continue
		}
		if m := gdbPCRE.FindStringSubmatch(line); m != nil && tid != 0 {
			pc, _ := strconv.ParseUint(m[1], 0, 64)
			res[tid] = append(res[tid], pc)
		}
	}
	if len(res) == 0 {
		t.Fatalf("gdb printed no threads:\n%s", out)
	}
	return res
}

// TestRefusals checks the refusals a user meets: a process traced already,
// another user's process, a non-dumpable process of one's own user; and
// that a user may snapshot a dumpable process of its own.
func TestRefusals(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (runs the sleeper and the snapshot as nobody)")
	}
	t.Run("traced", func(t *testing.T) {
		s := startSleeper(t, nil)
		release := traceFor(t, s.pid)
		_, err := liveproc.Attach(s.pid, liveproc.Options{})
		release()
		var te *liveproc.TracedError
		if !errors.As(err, &te) || te.Tracer != os.Getpid() || !errors.Is(err, liveproc.ErrTraced) {
			t.Fatalf("got %v, want a TracedError naming pid %d", err, os.Getpid())
		}
		t.Log(err)
		s.goesOn(t)
	})
	t.Run("no-such-process", func(t *testing.T) {
		_, err := liveproc.Attach(1<<22+1, liveproc.Options{})
		if err == nil || !strings.Contains(err.Error(), "no process") {
			t.Fatalf("got %v", err)
		}
	})
	nobody := &syscall.Credential{Uid: 65534, Gid: 65534}
	helperOut := func(t *testing.T, pid int) string {
		t.Helper()
		exe := filepath.Join(binDir, "liveproc.test")
		if _, err := os.Stat(exe); err != nil {
			b, err := os.ReadFile(os.Args[0])
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(exe, b, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(exe)
		cmd.Env = append(os.Environ(), fmt.Sprintf("LIVEPROC_HELPER=%d", pid))
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper: %v\n%s", err, out)
		}
		return strings.TrimSpace(string(out))
	}
	t.Run("other-user", func(t *testing.T) {
		s := startSleeper(t, nil)
		out := helperOut(t, s.pid)
		if !strings.HasPrefix(out, "ERROR:") || !strings.Contains(out, "runs as uid 0 and coroner as uid 65534") {
			t.Fatalf("as nobody, snapshot of a root process: %s", out)
		}
		t.Log(out)
	})
	t.Run("undumpable", func(t *testing.T) {
		s := startSleeper(t, nobody, "undumpable")
		out := helperOut(t, s.pid)
		if !strings.HasPrefix(out, "ERROR:") || !strings.Contains(out, "not dumpable") || !strings.Contains(out, "process.dumpable") {
			t.Fatalf("as nobody, snapshot of a non-dumpable process of nobody: %s", out)
		}
		t.Log(out)
	})
	t.Run("same-user", func(t *testing.T) {
		s := startSleeper(t, nobody)
		if out := helperOut(t, s.pid); out != "OK: 2 threads" {
			t.Fatalf("as nobody, snapshot of a process of nobody: %s", out)
		}
		s.goesOn(t)
	})
}

// traceFor makes this test process trace pid (PTRACE_SEIZE from a locked
// OS thread) until the returned function is called.
func traceFor(t *testing.T, pid int) func() {
	t.Helper()
	done := make(chan struct{})
	ready := make(chan error)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		err := unix.PtraceSeize(pid)
		ready <- err
		if err != nil {
			return
		}
		<-done
		// A seized tracee that was never stopped: interrupt, wait, detach.
		_ = unix.PtraceInterrupt(pid)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, unix.WALL, nil)
		_ = unix.PtraceDetach(pid)
		close(ready)
	}()
	if err := <-ready; err != nil {
		t.Fatalf("PTRACE_SEIZE: %v", err)
	}
	return func() {
		close(done)
		<-ready
	}
}

// TestDeletedExecutable snapshots a program whose executable was deleted
// after it started (a library or php-fpm upgraded under a running pool):
// its frames are still named, from the file the process runs.
func TestDeletedExecutable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (/proc/PID/map_files)")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "sleeper")
	b, err := os.ReadFile(sleeperBinary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	s := startProgram(t, bin, nil)
	if err := os.Remove(bin); err != nil {
		t.Fatal(err)
	}
	p, err := liveproc.Attach(s.pid, liveproc.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if hp := p.HostPath(bin); !strings.HasPrefix(hp, fmt.Sprintf("/proc/%d/map_files/", s.pid)) {
		t.Errorf("HostPath of the deleted executable: %s", hp)
	}
	rep := analyze.Process(p, p.Path(), analyze.Options{NoPHP: true})
	if main := threadByTID(rep, s.pid); main == nil || !hasSeq(functions(main), "inner_sleep", "middle_sleep", "main") {
		t.Fatalf("main thread of the deleted program: %v", main)
	}
	deleted := false
	for _, m := range rep.Modules {
		if m.Path == bin && m.Deleted && !m.Missing {
			deleted = true
		}
	}
	if !deleted {
		t.Errorf("modules %+v: want %s deleted and read", rep.Modules, bin)
	}
	s.goesOn(t)
}

// TestKilledWhileStopped kills a coroner-like process (this test binary
// as a helper) while it holds a process stopped, with SIGTERM, SIGINT and
// SIGKILL, and checks that the process is released and runs on.
func TestKilledWhileStopped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) {
			s := startSleeper(t, nil)
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), fmt.Sprintf("LIVEPROC_HELPER=%d", s.pid), "LIVEPROC_HOLD=1")
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			line, _ := bufio.NewReader(out).ReadString('\n')
			if line != "stopped\n" {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				t.Fatalf("helper said %q", line)
			}
			if st, _ := liveproc.ReadStat(s.pid); st.State != 't' {
				t.Errorf("while held, the process is in state %c, want t (traced)", st.State)
			}
			_ = cmd.Process.Signal(sig)
			_ = cmd.Wait()
			// drain what the sleeper printed while stopped (nothing) and check it runs on
			for {
				select {
				case l := <-s.lines:
					if strings.HasPrefix(l, "EINTR") {
						t.Fatalf("the program saw %q", l)
					}
					continue
				default:
				}
				break
			}
			s.goesOn(t)
		})
	}
}

var _ = io.EOF
