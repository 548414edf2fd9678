package liveproc

import (
	"errors"
	"fmt"
	"runtime"
	"time"

	"golang.org/x/sys/unix"

	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// A seize refused with EPERM before any thread is held is tried again
// seizeRetries times, seizeRetryWait apart: a tracer that holds the process
// for a snapshot lets go within that (a real refusal is reported 200 ms
// later).
const (
	seizeRetries   = 10
	seizeRetryWait = 20 * time.Millisecond
)

// Pause measures how long the process was stopped.
type Pause struct {
	// Stopped is from the first thread's PTRACE_SEIZE to the last
	// thread's PTRACE_DETACH.
	Stopped time.Duration
	// Registers is the part of Stopped until every thread was stopped and
	// its registers read.
	Registers time.Duration
	// Threads is the number of threads stopped.
	Threads int
	// Copied is the number of bytes of memory copied while stopped.
	Copied int64
	// CPU is the CPU time coroner's tracing thread used during the pause:
	// on a busy host, Stopped also holds the time that thread and the
	// target's threads waited for a CPU.
	CPU time.Duration
}

// stopTimeout is how long a thread may take to stop after PTRACE_INTERRUPT
// (a thread in uninterruptible sleep, state D, stops only when it leaves it).
const stopTimeout = 2 * time.Second

// stopped is one thread held in a ptrace stop.
type stopped struct {
	tid  int
	sig  int // a signal that arrived meanwhile, given back on detach
	regs unix.PtraceRegs
}

// freezeResult is what freeze returns through its channel.
type freezeResult struct {
	threads []elfcore.Thread
	pause   Pause
	err     error
}

// freeze stops every thread of pid (PTRACE_SEIZE + PTRACE_INTERRUPT, so no
// signal is sent and the process never sees a SIGSTOP), reads each thread's
// registers, calls during with them while all are stopped, and detaches every thread
// (PTRACE_DETACH, giving back any signal that arrived in between).
//
// ptrace binds a tracee to the OS thread that attached it, so all of this
// runs in a goroutine locked to its OS thread that never unlocks: when the
// goroutine ends, the Go runtime ends that OS thread, and the kernel
// detaches whatever it still traced. Whatever happens to this function, no
// thread of pid stays stopped.
func freeze(pid int, during func([]elfcore.Thread) (int64, error)) ([]elfcore.Thread, Pause, error) {
	ch := make(chan freezeResult, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with the goroutine
		var res freezeResult
		defer func() { ch <- res }()
		res.threads, res.pause, res.err = freezeLocked(pid, during)
	}()
	r := <-ch
	return r.threads, r.pause, r.err
}

func freezeLocked(pid int, during func([]elfcore.Thread) (int64, error)) (threads []elfcore.Thread, pause Pause, err error) {
	if !regsSupported {
		return nil, Pause{}, fmt.Errorf("live snapshots read x86-64 registers: this coroner is built for %s", runtime.GOARCH)
	}
	var held []*stopped
	seized := map[int]bool{}
	cpu0 := threadCPU()
	start := time.Now()
	defer func() {
		for _, s := range held {
			// PTRACE_DETACH restarts the thread (with the signal that
			// arrived meanwhile, if any). A thread that exited meanwhile
			// answers ESRCH: nothing to release.
			_, _, _ = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(s.tid), 0, uintptr(s.sig), 0, 0)
		}
		pause.Stopped = time.Since(start)
		pause.CPU = threadCPU() - cpu0
		pause.Threads = len(held)
	}()
	// Threads may be created while the first ones are stopped: list the
	// tasks again until no new one appears.
	for round := 0; ; round++ {
		tids, lerr := tasks(pid)
		if lerr != nil {
			return nil, pause, fmt.Errorf("list the threads of pid %d: %w", pid, lerr)
		}
		var fresh []int
		for _, tid := range tids {
			if seized[tid] {
				continue
			}
			seized[tid] = true
			serr := unix.PtraceSeize(tid)
			// Another tracer (a second coroner snapshotting the same
			// worker, a debugger attaching for a moment) makes the seize
			// fail with EPERM while it holds the process: before anything
			// is stopped here, wait a little for it to let go.
			for try := 0; errors.Is(serr, unix.EPERM) && len(seized) == 1 && try < seizeRetries; try++ {
				time.Sleep(seizeRetryWait)
				serr = unix.PtraceSeize(tid)
			}
			if serr != nil {
				if errors.Is(serr, unix.ESRCH) && tid != pid {
					continue // the thread exited
				}
				return nil, pause, &RefusedError{PID: pid, Op: "PTRACE_SEIZE", Err: serr}
			}
			// Interrupt at once: the thread stops wherever it is (a
			// blocking system call is restarted after the detach).
			if ierr := unix.PtraceInterrupt(tid); ierr != nil && !errors.Is(ierr, unix.ESRCH) {
				_, _, _ = unix.Syscall6(unix.SYS_PTRACE, unix.PTRACE_DETACH, uintptr(tid), 0, 0, 0, 0)
				return nil, pause, fmt.Errorf("PTRACE_INTERRUPT thread %d: %w", tid, ierr)
			}
			fresh = append(fresh, tid)
		}
		if len(fresh) == 0 {
			break
		}
		if round > 100 {
			return nil, pause, fmt.Errorf("pid %d keeps creating threads", pid)
		}
		for _, tid := range fresh {
			s, werr := waitStop(tid)
			if werr != nil {
				if errors.Is(werr, errThreadGone) && tid != pid {
					continue
				}
				return nil, pause, werr
			}
			held = append(held, s)
		}
	}
	for _, s := range held {
		if gerr := unix.PtraceGetRegs(s.tid, &s.regs); gerr != nil {
			return nil, pause, fmt.Errorf("PTRACE_GETREGS thread %d: %w", s.tid, gerr)
		}
		threads = append(threads, elfcore.Thread{TID: s.tid, Regs: regsOf(&s.regs)})
	}
	pause.Registers = time.Since(start)
	if during != nil {
		n, derr := during(threads)
		pause.Copied = n
		if derr != nil {
			return nil, pause, derr
		}
	}
	if holdStop != nil {
		holdStop() // tests: coroner killed while the process is stopped
	}
	return threads, pause, nil
}

// holdStop, set by tests only, runs while the threads are stopped.
var holdStop func()

var errThreadGone = errors.New("thread exited")

// waitStop waits until tid is in a ptrace stop. A signal-delivery stop
// (a signal that arrived before our interrupt) is a stop too: the signal
// is kept to be given back on detach.
func waitStop(tid int) (*stopped, error) {
	start := time.Now()
	deadline := start.Add(stopTimeout)
	delay := 50 * time.Microsecond
	for {
		var ws unix.WaitStatus
		wpid, err := unix.Wait4(tid, &ws, unix.WALL|unix.WNOHANG, nil)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return nil, fmt.Errorf("wait for thread %d to stop: %w", tid, err)
		case wpid == tid && (ws.Exited() || ws.Signaled()):
			return nil, errThreadGone
		case wpid == tid && ws.Stopped():
			s := &stopped{tid: tid}
			sig := ws.StopSignal()
			event := int(ws) >> 16 & 0xff
			if event == 0 && sig != unix.SIGTRAP && sig != unix.SIGSTOP {
				s.sig = int(sig) // signal-delivery stop: deliver it on detach
			}
			return s, nil
		}
		if time.Now().After(deadline) {
			st, _ := ReadStat(tid)
			return nil, fmt.Errorf("thread %d did not stop within %v (state %c%s); it is released when it leaves that state or when coroner exits",
				tid, stopTimeout, st.State, map[bool]string{true: ": uninterruptible sleep, usually I/O on a hung file system", false: ""}[st.State == 'D'])
		}
		// A thread woken from a system call stops within microseconds:
		// give it the CPU (sched_yield) for the first 2 ms rather than
		// sleeping on a timer, whose wake-up costs more than that on a
		// busy host; then poll more slowly.
		if time.Since(start) < 2*time.Millisecond {
			_, _, _ = unix.Syscall(unix.SYS_SCHED_YIELD, 0, 0, 0)
			continue
		}
		time.Sleep(delay)
		if delay < time.Millisecond {
			delay *= 2
		}
	}
}

// threadCPU returns the CPU time of the calling OS thread.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}
