package liveproc

import (
	"strconv"

	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// syscallNames names the x86-64 system calls a blocked PHP worker is
// usually found in.
var syscallNames = map[uint64]string{
	0: "read", 1: "write", 7: "poll", 17: "pread64", 18: "pwrite64", 19: "readv", 20: "writev",
	23: "select", 34: "pause", 35: "nanosleep", 42: "connect", 43: "accept", 44: "sendto",
	45: "recvfrom", 46: "sendmsg", 47: "recvmsg", 61: "wait4", 72: "fcntl", 73: "flock",
	202: "futex", 219: "restart_syscall", 230: "clock_nanosleep", 232: "epoll_wait", 270: "pselect6", 271: "ppoll",
	281: "epoll_pwait", 288: "accept4", 299: "recvmmsg", 307: "sendmmsg", 441: "epoll_pwait2",
}

// SyscallName names system call nr ("syscall 123" for one not in the table).
func SyscallName(nr uint64) string {
	if s, ok := syscallNames[nr]; ok {
		return s
	}
	return "syscall " + strconv.FormatUint(nr, 10)
}

// Errors a system call interrupted by the stop returns in rax until the
// kernel restarts it (include/linux/errno.h).
const (
	errRestartSys         = 512
	errRestartNoIntr      = 513
	errRestartNoHand      = 514
	errRestartRestartBlck = 516
	errIntr               = 4
)

// InSyscall returns the system call a stopped thread was blocked in, from
// its registers: orig_rax holds the call's number while rax holds the
// error the interrupted call returns (-ERESTARTSYS...). It returns "" for
// a thread that was running user code.
func InSyscall(r elfcore.Regs) string {
	if int64(r.OrigRax) < 0 {
		return ""
	}
	switch -int64(r.Rax) {
	case errRestartSys, errRestartNoIntr, errRestartNoHand, errRestartRestartBlck, errIntr:
		return SyscallName(r.OrigRax)
	}
	return ""
}
