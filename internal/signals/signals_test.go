package signals

import (
	"syscall"
	"testing"
)

// TestNamesMatchTheKernel checks the table against the numbers Go's syscall
// package has for this platform.
func TestNamesMatchTheKernel(t *testing.T) {
	for _, c := range []struct {
		sys  syscall.Signal
		name string
	}{
		{syscall.SIGHUP, "SIGHUP"}, {syscall.SIGQUIT, "SIGQUIT"}, {syscall.SIGILL, "SIGILL"}, {syscall.SIGTRAP, "SIGTRAP"},
		{syscall.SIGABRT, "SIGABRT"}, {syscall.SIGBUS, "SIGBUS"}, {syscall.SIGFPE, "SIGFPE"}, {syscall.SIGKILL, "SIGKILL"},
		{syscall.SIGSEGV, "SIGSEGV"}, {syscall.SIGPIPE, "SIGPIPE"}, {syscall.SIGTERM, "SIGTERM"}, {syscall.SIGCHLD, "SIGCHLD"},
		{syscall.SIGXCPU, "SIGXCPU"}, {syscall.SIGXFSZ, "SIGXFSZ"}, {syscall.SIGSYS, "SIGSYS"}, {syscall.SIGPWR, "SIGPWR"},
	} {
		if got := Name(int(c.sys)); got != c.name {
			t.Errorf("signal %d: %q, want %q", int(c.sys), got, c.name)
		}
		if n, ok := Parse(c.name); !ok || int(n) != int(c.sys) {
			t.Errorf("Parse(%q) = %d, %v", c.name, n, ok)
		}
	}
}

func TestStringAndParse(t *testing.T) {
	for _, c := range []struct {
		n    Signal
		name string
	}{{0, ""}, {SIGSEGV, "SIGSEGV"}, {SIGRTMIN, "SIGRTMIN+0"}, {40, "SIGRTMIN+6"}, {32, "signal 32"}, {-1, "signal -1"}, {99, "signal 99"}} {
		if got := c.n.String(); got != c.name {
			t.Errorf("%d: %q, want %q", int(c.n), got, c.name)
		}
	}
	for in, want := range map[string]Signal{"11": SIGSEGV, "SIGSEGV": SIGSEGV, "segv": SIGSEGV, " abrt ": SIGABRT, "SIGRTMIN+2": 36} {
		if got, ok := Parse(in); !ok || got != want {
			t.Errorf("Parse(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
	for _, in := range []string{"", "0", "65", "-3", "SIGNOPE", "SIGRTMIN+31", "SIGRTMIN+x"} {
		if got, ok := Parse(in); ok {
			t.Errorf("Parse(%q) = %d, want no signal", in, got)
		}
	}
}

func TestCodeName(t *testing.T) {
	for _, c := range []struct {
		sig  Signal
		code int
		want string
	}{
		{SIGSEGV, SEGV_MAPERR, "SEGV_MAPERR"}, {SIGSEGV, SEGV_ACCERR, "SEGV_ACCERR"}, {SIGSEGV, SI_KERNEL, "SI_KERNEL"},
		{SIGABRT, SI_TKILL, "SI_TKILL"}, {SIGTERM, SI_USER, "SI_USER"}, {SIGBUS, BUS_ADRERR, "BUS_ADRERR"},
		{SIGFPE, FPE_INTDIV, "FPE_INTDIV"}, {SIGILL, 2, "ILL_ILLOPN"}, {SIGTRAP, 1, "TRAP_BRKPT"},
		{SIGSEGV, 42, "code 42"}, {SIGTERM, 1, "code 1"}, {SIGSEGV, -7, "code -7"},
	} {
		if got := c.sig.CodeName(c.code); got != c.want {
			t.Errorf("%s code %d: %q, want %q", c.sig, c.code, got, c.want)
		}
	}
	if !SentByProcess(SI_TKILL) || !SentByProcess(SI_USER) || SentByProcess(SEGV_MAPERR) || SentByProcess(SI_KERNEL) {
		t.Error("SentByProcess")
	}
}
