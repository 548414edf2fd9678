// Package signals is the one table of Linux x86-64 signal numbers, their
// names and the names of their si_code values, shared by the core reader,
// the fault explanation, the knowledge base, the core stores and the log
// parsers.
package signals

import (
	"strconv"
	"strings"
)

// Signal is a Linux x86-64 signal number.
type Signal int

// Signals (asm-generic/signal.h, as on x86-64).
const (
	SIGHUP    Signal = 1
	SIGINT    Signal = 2
	SIGQUIT   Signal = 3
	SIGILL    Signal = 4
	SIGTRAP   Signal = 5
	SIGABRT   Signal = 6
	SIGBUS    Signal = 7
	SIGFPE    Signal = 8
	SIGKILL   Signal = 9
	SIGUSR1   Signal = 10
	SIGSEGV   Signal = 11
	SIGUSR2   Signal = 12
	SIGPIPE   Signal = 13
	SIGALRM   Signal = 14
	SIGTERM   Signal = 15
	SIGSTKFLT Signal = 16
	SIGCHLD   Signal = 17
	SIGCONT   Signal = 18
	SIGSTOP   Signal = 19
	SIGTSTP   Signal = 20
	SIGTTIN   Signal = 21
	SIGTTOU   Signal = 22
	SIGURG    Signal = 23
	SIGXCPU   Signal = 24
	SIGXFSZ   Signal = 25
	SIGVTALRM Signal = 26
	SIGPROF   Signal = 27
	SIGWINCH  Signal = 28
	SIGIO     Signal = 29
	SIGPWR    Signal = 30
	SIGSYS    Signal = 31
	// SIGRTMIN is the first real-time signal as the kernel numbers them
	// (glibc reserves 32 and 33 for itself).
	SIGRTMIN Signal = 34
	SIGRTMAX Signal = 64
)

var names = [...]string{"", "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
	"SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT", "SIGCHLD", "SIGCONT",
	"SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU", "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH",
	"SIGIO", "SIGPWR", "SIGSYS"}

// String returns the signal's name: "SIGSEGV", "SIGRTMIN+3" for real-time
// signals, "signal N" for numbers without a name, and "" for 0.
func (s Signal) String() string {
	switch {
	case s == 0:
		return ""
	case s > 0 && int(s) < len(names):
		return names[s]
	case s >= SIGRTMIN && s <= SIGRTMAX:
		return "SIGRTMIN+" + strconv.Itoa(int(s-SIGRTMIN))
	}
	return "signal " + strconv.Itoa(int(s))
}

// Name returns the name of signal number n (see Signal.String).
func Name(n int) string { return Signal(n).String() }

// Parse reads a signal given as a number ("11"), a name ("SIGSEGV") or a
// name without its prefix ("segv"), in any case.
func Parse(s string) (Signal, bool) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil {
		if n > 0 && Signal(n) <= SIGRTMAX {
			return Signal(n), true
		}
		return 0, false
	}
	u := strings.ToUpper(s)
	if !strings.HasPrefix(u, "SIG") {
		u = "SIG" + u
	}
	for n, name := range names {
		if n > 0 && name == u {
			return Signal(n), true
		}
	}
	if rest, ok := strings.CutPrefix(u, "SIGRTMIN+"); ok {
		if k, err := strconv.Atoi(rest); err == nil && k >= 0 && SIGRTMIN+Signal(k) <= SIGRTMAX {
			return SIGRTMIN + Signal(k), true
		}
	}
	return 0, false
}

// Fault reports whether the kernel sets si_addr for this signal (SIGSEGV,
// SIGBUS, SIGILL, SIGFPE, SIGTRAP) when it raises it for a fault.
func (s Signal) Fault() bool {
	switch s {
	case SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGTRAP:
		return true
	}
	return false
}

// si_code values (asm-generic/siginfo.h).
const (
	SI_USER    = 0
	SI_KERNEL  = 0x80
	SI_QUEUE   = -1
	SI_TIMER   = -2
	SI_MESGQ   = -3
	SI_ASYNCIO = -4
	SI_SIGIO   = -5
	SI_TKILL   = -6

	SEGV_MAPERR = 1
	SEGV_ACCERR = 2

	BUS_ADRALN    = 1
	BUS_ADRERR    = 2
	BUS_OBJERR    = 3
	BUS_MCEERR_AR = 4

	FPE_INTDIV = 1
	FPE_INTOVF = 2
)

var generalCodes = map[int]string{
	SI_USER: "SI_USER", SI_KERNEL: "SI_KERNEL", SI_QUEUE: "SI_QUEUE", SI_TIMER: "SI_TIMER",
	SI_MESGQ: "SI_MESGQ", SI_ASYNCIO: "SI_ASYNCIO", SI_SIGIO: "SI_SIGIO", SI_TKILL: "SI_TKILL",
}

// codeNames are the per-signal si_code names, indexed by code.
var codeNames = map[Signal][]string{
	SIGSEGV: {"", "SEGV_MAPERR", "SEGV_ACCERR", "SEGV_BNDERR", "SEGV_PKUERR", "SEGV_ACCADI", "SEGV_ADIDERR", "SEGV_ADIPERR", "SEGV_MTEAERR", "SEGV_MTESERR", "SEGV_CPERR"},
	SIGBUS:  {"", "BUS_ADRALN", "BUS_ADRERR", "BUS_OBJERR", "BUS_MCEERR_AR", "BUS_MCEERR_AO"},
	SIGILL:  {"", "ILL_ILLOPC", "ILL_ILLOPN", "ILL_ILLADR", "ILL_ILLTRP", "ILL_PRVOPC", "ILL_PRVREG", "ILL_COPROC", "ILL_BADSTK", "ILL_BADIADDR"},
	SIGFPE:  {"", "FPE_INTDIV", "FPE_INTOVF", "FPE_FLTDIV", "FPE_FLTOVF", "FPE_FLTUND", "FPE_FLTRES", "FPE_FLTINV", "FPE_FLTSUB", "FPE_FLTUNK", "FPE_CONDTRAP"},
	SIGTRAP: {"", "TRAP_BRKPT", "TRAP_TRACE", "TRAP_BRANCH", "TRAP_HWBKPT", "TRAP_UNK", "TRAP_PERF"},
}

// CodeName returns the name of si_code value code for this signal
// ("SEGV_MAPERR", "SI_USER"), or "code N".
func (s Signal) CodeName(code int) string {
	if n, ok := generalCodes[code]; ok {
		return n
	}
	if list, ok := codeNames[s]; ok && code > 0 && code < len(list) {
		return list[code]
	}
	return "code " + strconv.Itoa(code)
}

// SentByProcess reports whether si_code says the signal was sent by a
// process (kill, tkill, sigqueue, ...) rather than raised by the kernel.
func SentByProcess(code int) bool { return code <= 0 }
