package liveproc

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// capSysPtrace is the bit of CAP_SYS_PTRACE in the capability sets.
const capSysPtrace = 19

// RefusedError is returned when the kernel refuses to let coroner stop or
// read a process; Error says why in words and what would allow it.
type RefusedError struct {
	PID int
	// Op is what was refused ("PTRACE_SEIZE", "read /proc/PID/auxv"...).
	Op  string
	Err error
	// Reason is the explanation (filled by explain).
	Reason string
}

func (e *RefusedError) Error() string {
	if e.Reason == "" {
		e.Reason = explain(e.PID, e.Err)
	}
	return fmt.Sprintf("cannot snapshot pid %d: %s: %v: %s", e.PID, e.Op, e.Err, e.Reason)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// ErrTraced is returned (wrapped) when the process is already traced by
// another process (a debugger, strace, FPM's slowlog at that moment):
// Linux allows one tracer at a time.
var ErrTraced = errors.New("the process is being traced already")

// TracedError says which process traces the target.
type TracedError struct {
	PID, Tracer int
	// TracerComm is the tracer's command name ("" when unknown).
	TracerComm string
}

func (e *TracedError) Error() string {
	who := fmt.Sprintf("pid %d", e.Tracer)
	if e.TracerComm != "" {
		who += " (" + e.TracerComm + ")"
	}
	hint := "a debugger or strace"
	if strings.Contains(e.TracerComm, "php-fpm") {
		hint = "the FPM master writing the slowlog (request_slowlog_timeout): try again in a moment"
	}
	return fmt.Sprintf("cannot snapshot pid %d: it is being traced already by %s, %s; Linux allows one tracer at a time", e.PID, who, hint)
}

func (e *TracedError) Unwrap() error { return ErrTraced }

// explain turns a refusal of ptrace or of a /proc file into words: the
// capability, Yama's ptrace_scope, the target's owner and dumpable flag.
func explain(pid int, err error) string {
	self := readSelfStatus()
	f := refusal{err: err, scope: yamaScope(), capPtrace: self.CapEff&(1<<capSysPtrace) != 0, selfUID: self.UID, dumpable: true}
	if b, terr := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); terr == nil {
		st := parseStatus(b)
		f.target = &st
		f.dumpable = dumpable(pid)
		if st.TracerPID != 0 {
			return tracedBy(pid, st.TracerPID).Error()
		}
	}
	return f.explain()
}

// refusal is what explains a refusal: the error, Yama's ptrace_scope (-1
// without Yama), whether coroner has CAP_SYS_PTRACE, its uid, and the
// target's status (nil when unreadable) and dumpable flag.
type refusal struct {
	err       error
	scope     int
	capPtrace bool
	selfUID   int
	target    *status
	dumpable  bool
}

func (f refusal) explain() string {
	if errors.Is(f.err, unix.ESRCH) || errors.Is(f.err, os.ErrNotExist) {
		return "the process does not exist (any more)"
	}
	var why []string
	switch f.scope {
	case 3:
		return "kernel.yama.ptrace_scope is 3: no process may be traced, not even by root, until the next boot"
	case 2:
		if !f.capPtrace {
			why = append(why, "kernel.yama.ptrace_scope is 2: only a process with CAP_SYS_PTRACE may trace (run coroner as root)")
		}
	case 1:
		if !f.capPtrace {
			why = append(why, "kernel.yama.ptrace_scope is 1: without CAP_SYS_PTRACE a process may trace only its own descendants (run coroner as root, or set kernel.yama.ptrace_scope=0)")
		}
	}
	if !f.capPtrace && f.target != nil {
		if f.target.UID != f.selfUID {
			why = append(why, fmt.Sprintf("the process runs as uid %d and coroner as uid %d: run coroner as root or as that user", f.target.UID, f.selfUID))
		} else if !f.dumpable {
			why = append(why, "the process is not dumpable (PR_SET_DUMPABLE 0: PHP-FPM workers are, since they change uid at start, unless the pool sets process.dumpable = yes): only root (CAP_SYS_PTRACE) may trace it")
		}
	}
	if f.capPtrace && len(why) == 0 && (errors.Is(f.err, syscall.EPERM) || errors.Is(f.err, syscall.EACCES)) {
		why = append(why, "refused even with CAP_SYS_PTRACE (a security module such as AppArmor or SELinux, or a process in another user namespace)")
	}
	if len(why) == 0 {
		return "no known reason"
	}
	return strings.Join(why, "; ")
}

// readSelfStatus returns coroner's own status (real uid, effective capabilities).
func readSelfStatus() status {
	b, _ := os.ReadFile("/proc/self/status")
	return parseStatus(b)
}

// yamaScope returns kernel.yama.ptrace_scope, or -1 without Yama.
func yamaScope() int {
	b, err := os.ReadFile("/proc/sys/kernel/yama/ptrace_scope")
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return -1
	}
	return n
}

// dumpable reports whether pid is dumpable: the kernel makes the /proc
// files of a non-dumpable process belong to root.
func dumpable(pid int) bool {
	st, err := os.Stat(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return true
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	return sys.Uid != 0 || parseStatus(b).UID == 0
}

// tracedBy names the process whose thread tid traces pid.
func tracedBy(pid, tid int) *TracedError {
	tracer := tid
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", tid)); err == nil {
		if st := parseStatus(b); st.TGID != 0 {
			tracer = st.TGID
		}
	}
	return &TracedError{PID: pid, Tracer: tracer, TracerComm: comm(tracer)}
}

func comm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
