package analyze

import (
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// A fatal signal caught by a handler that raises it again (Apache's
// sig_coredump, glibc's libSegFault, Python's faulthandler, the Go
// runtime, ...) leaves a core whose NT_SIGINFO says SI_USER or SI_TKILL,
// sent by the process itself. The first signal, the real fault, is in the
// signal frame the kernel pushed for the handler (struct rt_sigframe:
// the return address into the restorer, then the ucontext with the
// registers at the fault, then the siginfo):
//   - dumped inside the handler (SA_NODEFER, or the signal unblocked): the
//     unwinder crosses that frame (the restorer, then the interrupted
//     frame), and the ucontext is at the restorer frame's stack pointer;
//   - dumped after the handler returned (the usual case: the re-raised
//     signal stays blocked until sigreturn, which restores the registers of
//     the fault and delivers it): the frame is gone from the stack but its
//     bytes are still under the stack pointer, where a ucontext whose saved
//     rip and rsp are the core's own registers is found.

// Layout of the x86-64 kernel's struct ucontext (uc_flags, uc_link,
// uc_stack, uc_mcontext, uc_sigmask) and of the siginfo after it.
const (
	ucGregs     = 40  // uc_mcontext.gregs: r8..r15, rdi, rsi, rbp, rbx, rdx, rax, rcx, rsp, rip, eflags, csgsfs, err, trapno, oldmask, cr2
	ucSize      = 304 // 40 + struct sigcontext (256) + the kernel's sigset_t (8)
	siginfoRead = 24  // si_signo, si_errno, si_code, padding, then si_addr or si_pid/si_uid
	gregRSP     = 15
	gregRIP     = 16
	gregEflags  = 17
	gregErr     = 19
	gregTrapno  = 20
	gregCR2     = 22
	// staleScan is how far under the stack pointer a returned handler's
	// signal frame is looked for: the red zone (128 bytes), the FPU/AVX
	// state (up to ~11 KiB with AVX-512) and the frame itself.
	staleScan = 64 << 10
	// handlerScan is how far under a stale signal frame the handler's
	// return addresses are looked for.
	handlerScan = 1024
)

// sigframe is a kernel signal frame read from the stack.
type sigframe struct {
	uc     uint64
	regs   crash.Registers
	trapno uint64
	err    uint64
	cr2    uint64
	// info is the first signal's siginfo, ok when it names a signal.
	info   crash.Signal
	infoOK bool
}

// readSigframe reads the ucontext at uc and the siginfo after it.
func (a *analysis) readSigframe(uc uint64) (sigframe, bool) {
	buf := make([]byte, ucSize+siginfoRead)
	if n, _ := a.core.ReadAt(buf, int64(uc)); n < len(buf) {
		return sigframe{}, false
	}
	return parseSigframe(uc, buf), true
}

// parseSigframe decodes ucSize+siginfoRead bytes of a signal frame.
func parseSigframe(uc uint64, buf []byte) sigframe {
	g := func(i int) uint64 { return binary.LittleEndian.Uint64(buf[ucGregs+8*i:]) }
	sf := sigframe{uc: uc, trapno: g(gregTrapno), err: g(gregErr), cr2: g(gregCR2)}
	for i, r := range []crash.Reg{crash.RegR8, crash.RegR9, crash.RegR10, crash.RegR11, crash.RegR12, crash.RegR13,
		crash.RegR14, crash.RegR15, crash.RegRDI, crash.RegRSI, crash.RegRBP, crash.RegRBX, crash.RegRDX, crash.RegRAX,
		crash.RegRCX, crash.RegRSP, crash.RegRIP, crash.RegEflags} {
		sf.regs.Set(r, g(i))
	}
	si := buf[ucSize:]
	signo := int(int32(binary.LittleEndian.Uint32(si)))
	code := int(int32(binary.LittleEndian.Uint32(si[8:])))
	if signo <= 0 || signo >= 32 {
		return sf
	}
	sig := signals.Signal(signo)
	sf.info = crash.Signal{Number: signo, Name: sig.String(), Code: code, CodeName: sig.CodeName(code)}
	if signals.SentByProcess(code) {
		sf.info.Sent = true
		sf.info.SenderPID = int(int32(binary.LittleEndian.Uint32(si[16:])))
		sf.info.SenderUID = int(int32(binary.LittleEndian.Uint32(si[20:])))
	} else {
		sf.info.Address = crash.Addr(binary.LittleEndian.Uint64(si[16:]))
	}
	sf.infoOK = true
	return sf
}

// firstSignal tells the signal the handler caught. The siginfo after the
// ucontext is written only for handlers installed with SA_SIGINFO (else it
// holds what an earlier frame left there), so it is believed only when it
// agrees with the rest of the frame: a fault at the address of the page
// fault the kernel saved (trapno, cr2), or a signal sent while the thread
// was in a system call (the interrupted pc follows a syscall instruction).
// Otherwise the trap itself says it: a page fault at cr2, a general
// protection fault, a division error, an invalid opcode; and a signal that
// arrived in a system call is taken as the recorded one, sent.
func (a *analysis) firstSignal(sf *sigframe, recorded crash.Signal) (crash.Signal, bool) {
	rip, _ := sf.regs.Get(crash.RegRIP)
	var b [2]byte
	inSyscall := false
	if n, _ := a.core.ReadAt(b[:], int64(rip-2)); n == 2 && b[0] == 0x0f && b[1] == 0x05 {
		inSyscall = true
	}
	if i := sf.info; sf.infoOK {
		// a handler may raise another signal than the one it caught (the
		// Go runtime aborts with SIGABRT on a SIGSEGV it cannot recover):
		// the siginfo then needs the trap's agreement to be believed
		switch {
		case i.Sent && inSyscall && i.SenderPID > 0 && i.Number == recorded.Number:
			return i, true
		case !i.Sent && sf.trapno == 14 && uint64(i.Address) == sf.cr2 && (i.Number == int(signals.SIGSEGV) || i.Number == int(signals.SIGBUS)):
			return i, true
		case !i.Sent && sf.trapno == 13 && i.Code == signals.SI_KERNEL && (i.Number == int(signals.SIGSEGV) || i.Number == int(signals.SIGBUS)):
			return i, true
		}
	}
	if inSyscall {
		return recorded, true
	}
	mk := func(sig signals.Signal, code int, addr uint64) (crash.Signal, bool) {
		if int(sig) != recorded.Number {
			return recorded, false
		}
		return crash.Signal{Number: int(sig), Name: sig.String(), Code: code, CodeName: sig.CodeName(code), Address: crash.Addr(addr)}, true
	}
	switch sf.trapno {
	case 14:
		code := signals.SEGV_MAPERR
		if sf.err&1 != 0 {
			code = signals.SEGV_ACCERR
		}
		if recorded.Number == int(signals.SIGBUS) {
			return mk(signals.SIGBUS, 2, sf.cr2) // BUS_ADRERR
		}
		return mk(signals.SIGSEGV, code, sf.cr2)
	case 13:
		return mk(signals.SIGSEGV, signals.SI_KERNEL, 0)
	case 0:
		return mk(signals.SIGFPE, 1, rip) // FPE_INTDIV
	case 6:
		return mk(signals.SIGILL, 2, rip) // ILL_ILLOPN
	}
	return recorded, false
}

// reraisable lists the signals handlers catch to log a crash and raise
// again.
func reraisable(s signals.Signal) bool {
	switch s {
	case signals.SIGSEGV, signals.SIGBUS, signals.SIGILL, signals.SIGFPE, signals.SIGABRT, signals.SIGTRAP, signals.SIGSYS:
		return true
	}
	return false
}

// findReraise recognises a fatal signal re-raised by a handler of the
// crashed thread and makes the first signal the report's signal; the
// registers at the fault and the faulting frame are kept for the fault
// analysis (faultRegs, faultFrame).
func (a *analysis) findReraise() {
	rec := a.report.Signal
	if !rec.Sent || rec.SenderPID != a.report.Process.PID || rec.SenderPID == 0 || len(a.report.Threads) == 0 ||
		!a.report.Threads[0].Crashed || !reraisable(signals.Signal(rec.Number)) {
		return
	}
	raw := a.raw[0]
	for i := 0; i+1 < len(raw) && i < 64; i++ {
		if !raw[i].Trampoline || !raw[i+1].Signal {
			continue
		}
		sf, ok := a.readSigframe(raw[i].SP)
		if rip, _ := sf.regs.Get(crash.RegRIP); !ok || rip != raw[i+1].PC {
			continue
		}
		handler := ""
		if i > 0 {
			handler = a.handlerName(a.symbolizePC(raw[i-1].PC, i-1 > 0))
		}
		a.setReraise(sf, i+1, handler, crash.ReraiseSignalFrame)
		return
	}
	regs := a.report.Threads[0].Registers
	rip, ok1 := regs.Get(crash.RegRIP)
	rsp, ok2 := regs.Get(crash.RegRSP)
	if !ok1 || !ok2 || rsp < staleScan {
		return
	}
	lo := rsp - staleScan
	if m := a.core.Mapping(rsp - 1); m != nil && m.Start > lo {
		lo = m.Start
	}
	buf := make([]byte, rsp-lo)
	n, _ := a.core.ReadAt(buf, int64(lo))
	buf = buf[:n]
	// The ucontext is 16-byte aligned; its saved rip and rsp are the
	// registers sigreturn restored.
	for off := (len(buf) - ucSize - siginfoRead) &^ 7; off >= 0; off -= 8 {
		if binary.LittleEndian.Uint64(buf[off+ucGregs+8*gregRIP:]) != rip || binary.LittleEndian.Uint64(buf[off+ucGregs+8*gregRSP:]) != rsp {
			continue
		}
		sf := parseSigframe(lo+uint64(off), buf[off:off+ucSize+siginfoRead])
		a.setReraise(sf, 0, a.staleHandler(buf, off), crash.ReraiseStaleFrame)
		return
	}
}

// staleHandler looks under a stale signal frame (at buf[uc:]) for the
// handler that ran there: the highest return address into code after a
// call instruction, outside the C library (the handler's own call to
// kill() or raise()).
func (a *analysis) staleHandler(buf []byte, uc int) string {
	// The frame starts 8 bytes under the ucontext, with the return
	// address into the restorer that the handler returned through.
	for off := uc - 16; off >= 0 && off >= uc-handlerScan; off -= 8 {
		w := binary.LittleEndian.Uint64(buf[off:])
		r := a.space.region(w)
		if r == nil || r.mod == nil || !a.followsCall(w) {
			continue
		}
		f := a.symbolizePC(w, true)
		if isLibcModule(f.Module) {
			continue
		}
		return a.handlerName(f)
	}
	return ""
}

// followsCall reports whether the bytes before addr end with a call
// instruction (call rel32, or call through a register or memory).
func (a *analysis) followsCall(addr uint64) bool {
	var b [7]byte
	if n, _ := a.core.ReadAt(b[:], int64(addr-7)); n < len(b) {
		return false
	}
	switch {
	case b[2] == 0xe8: // call rel32
		return true
	case b[5] == 0xff && (b[6]>>3)&7 == 2: // call reg / [reg]
		return true
	case b[4] == 0xff && (b[5]>>3)&7 == 2: // call [reg+disp8]
		return true
	case b[1] == 0xff && (b[2]>>3)&7 == 2: // call [rip+disp32] / [reg+disp32]
		return true
	}
	return false
}

func isLibcModule(module string) bool {
	b := filepath.Base(module)
	for _, p := range []string{"libc.so", "libc-2.", "libpthread", "ld-linux"} {
		if strings.HasPrefix(b, p) {
			return true
		}
	}
	return false
}

// handlerName names a handler from a frame in it: "handler (prog)", or
// "apache2+0x3f2a0" (the function start) without a symbol.
func (a *analysis) handlerName(f crash.Frame) string {
	switch {
	case f.Function != "" && f.Module != "":
		return fmt.Sprintf("%s (%s)", f.Function, f.Module)
	case f.Function != "":
		return f.Function
	case f.Module != "" && f.FunctionSource != "":
		return fmt.Sprintf("%s+%#x", f.Module, uint64(f.ModuleOffset-f.FunctionOffset))
	case f.Module != "":
		return fmt.Sprintf("code in %s", f.Module)
	}
	return ""
}

// knownHandler says whose crash handler re-raises signals in a process
// running exe: "" when it is not one coroner knows.
func knownHandler(exe string) string {
	switch b := filepath.Base(exe); {
	case b == "apache2" || b == "httpd" || strings.HasPrefix(b, "httpd"):
		return "Apache's crash handler (sig_coredump in server/mpm_unix.c, which changes to CoreDumpDirectory and re-raises the signal so that a core is written)"
	}
	return ""
}

// setReraise records the re-raise and makes the first signal the report's.
func (a *analysis) setReraise(sf sigframe, frame int, handler, evidence string) {
	rec := a.report.Signal
	first, _ := a.firstSignal(&sf, rec)
	regs := sf.regs
	for _, r := range []crash.Reg{crash.RegFSBase, crash.RegGSBase} {
		if v, ok := a.report.Threads[0].Registers.Get(r); ok {
			regs.Set(r, v)
		}
	}
	a.faultRegs, a.faultFrame = &regs, frame
	a.report.Signal = first
	exe := filepath.Base(a.report.Process.Executable)
	if k := knownHandler(exe); k != "" && (handler == "" || strings.HasPrefix(handler, exe)) {
		handler = k
	}
	how := "kill()"
	if rec.Code == signals.SI_TKILL {
		how = "raise() or tgkill()"
	}
	subject := "A signal handler of the process"
	switch {
	case strings.HasPrefix(handler, "Apache"):
		subject = handler
	case handler != "":
		subject = "The signal handler " + handler
	}
	var b strings.Builder
	if first.Number == rec.Number {
		fmt.Fprintf(&b, "%s caught %s and raised it again with %s: the core records that second signal (%s, sent by the process to itself), ", subject, first.Name, how, rec.CodeName)
	} else {
		fmt.Fprintf(&b, "%s caught %s and raised %s with %s: the core records that second signal (%s, sent by the process to itself), ", subject, first.Name, rec.Name, how, rec.CodeName)
	}
	if frame > 0 {
		fmt.Fprintf(&b, "dumped inside the handler (frames #0-#%d are the handler's). ", frame-1)
	} else {
		b.WriteString("dumped when the handler returned. ")
	}
	switch {
	case first == rec:
		b.WriteString("The first signal arrived while the thread was in a system call: it was sent too (kill(), raise() or abort()), and is the one analysed here.")
	case first.Sent:
		fmt.Fprintf(&b, "The first signal was itself sent (%s by pid %d): it is the one analysed here.", first.CodeName, first.SenderPID)
	default:
		what := first.Name
		if first.CodeName != "" {
			what += " (" + first.CodeName + ")"
		}
		fmt.Fprintf(&b, "The fault analysed here is the first signal, %s, with the registers the kernel saved for the handler.", what)
	}
	a.report.Reraise = &crash.Reraise{Recorded: rec, Frame: frame, Handler: handler, Evidence: evidence, Explanation: b.String()}
	a.trap = &sf
}

// trapDetail says what the kernel's signal frame recorded of the trap.
func trapDetail(sf *sigframe) string {
	switch sf.trapno {
	case 14:
		access := "read"
		if sf.err&2 != 0 {
			access = "write"
		}
		if sf.err&16 != 0 {
			access = "instruction fetch"
		}
		present := "page not present"
		if sf.err&1 != 0 {
			present = "protection violation"
		}
		return fmt.Sprintf("the signal frame records a page fault (trap 14, %s, %s) at cr2 = %#x", access, present, sf.cr2)
	case 13:
		return "the signal frame records a general protection fault (trap 13)"
	case 0:
		return ""
	}
	return fmt.Sprintf("the signal frame records trap %d", sf.trapno)
}
