// Package fault decodes the instruction a crashed x86-64 process died on
// and explains the fault in words a sysadmin can act on: a NULL pointer in
// which register (and which function argument), a stack overflow, a jump to
// unmapped or non-executable memory, a non-canonical address, a write to
// read-only memory, an abort and who called it, or a signal sent by another
// process. It is the "x/i $pc, info registers, think about the ABI" step of
// a manual gdb session, done for every crash.
package fault

import (
	"fmt"
	"path/filepath"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/coroner-dev/coroner/crash"
)

// Input is what Explain needs to know about the crash.
type Input struct {
	// Signal is the signal that killed the process (from NT_SIGINFO).
	Signal crash.Signal
	// Registers of the crashed thread: "rax".."r15", "rip", "rsp", "fs_base"...
	Registers map[string]uint64
	// Code holds up to 16 bytes of memory at rip (nil when unreadable).
	Code []byte
	// FunctionCode holds the bytes from the start of the crashing function
	// up to rip (and a little beyond), when the function start is known.
	FunctionCode []byte
	// Mappings are the process's memory mappings, sorted by address.
	Mappings []Mapping
	// Frames is the crashed thread's stack, innermost first, symbolized.
	Frames []crash.Frame
}

// Mapping is one memory mapping of the process.
type Mapping struct {
	Start, End        uint64
	Read, Write, Exec bool
	// Path is the mapped file, "" for anonymous memory.
	Path string
}

// Linux signal numbers used here.
const (
	sigILL  = 4
	sigTRAP = 5
	sigABRT = 6
	sigBUS  = 7
	sigFPE  = 8
	sigSEGV = 11
)

// si_code values.
const (
	segvMapErr = 1
	segvAccErr = 2
	siKernel   = 0x80
)

// nullLimit is the size of the zero page region where a fault is treated
// as a NULL (or NULL plus a field offset) dereference.
const nullLimit = 64 << 10

// Explain classifies the crash and explains it in words.
func Explain(in Input) crash.Fault {
	e := &explainer{in: in}
	return e.explain()
}

type explainer struct {
	in   Input
	inst *x86asm.Inst
	f    crash.Fault
}

func (e *explainer) reg(name string) (uint64, bool) {
	v, ok := e.in.Registers[name]
	return v, ok
}

func (e *explainer) explain() crash.Fault {
	rip, _ := e.reg("rip")
	e.f.PC = crash.Addr(rip)
	if len(e.in.Code) > 0 {
		if inst, err := x86asm.Decode(e.in.Code, 64); err == nil {
			e.inst = &inst
			e.f.Instruction = x86asm.IntelSyntax(inst, rip, nil)
		}
	}
	sig := e.in.Signal
	switch {
	case sig.Number == sigABRT:
		e.abort()
	case sig.Sent:
		e.sent()
	case sig.Number == sigSEGV || sig.Number == sigBUS:
		e.memory()
	case sig.Number == sigILL:
		e.illegal()
	case sig.Number == sigFPE:
		e.arith()
	case sig.Number == sigTRAP:
		e.f.Kind = crash.FaultUnknown
		e.f.Explanation = fmt.Sprintf("The process stopped on a breakpoint or trace trap (%s) %s.", sig.Name, e.where())
	default:
		e.f.Kind = crash.FaultUnknown
		e.f.Explanation = fmt.Sprintf("The process was killed by %s %s.", sig.Name, e.where())
	}
	return e.f
}

// where names the crashing location: "in pcre2_jit_match_8 (libpcre2-8.so.0)".
func (e *explainer) where() string {
	if len(e.in.Frames) == 0 {
		return ""
	}
	return "in " + frameLabel(&e.in.Frames[0])
}

func frameLabel(f *crash.Frame) string {
	switch {
	case f.Function != "" && f.Module != "":
		return fmt.Sprintf("%s (%s)", f.Function, f.Module)
	case f.Function != "":
		return f.Function
	case f.Module == "[php-jit]":
		return "PHP JIT-compiled code ([php-jit])"
	case f.Module == "[anon-exec]":
		return "anonymous executable memory ([anon-exec], e.g. PCRE2 JIT code)"
	case f.Module != "":
		return fmt.Sprintf("%s+%s", f.Module, f.ModuleOffset)
	}
	return fmt.Sprintf("code at %s", f.PC)
}

func (e *explainer) mapping(addr uint64) *Mapping {
	for i := range e.in.Mappings {
		m := &e.in.Mappings[i]
		if addr >= m.Start && addr < m.End {
			return m
		}
	}
	return nil
}

// stackMapping returns the mapping that holds rsp (the thread's stack).
func (e *explainer) stackMapping() *Mapping {
	rsp, ok := e.reg("rsp")
	if !ok {
		return nil
	}
	return e.mapping(rsp)
}

func describeMapping(m *Mapping) string {
	perm := []byte("---")
	if m.Read {
		perm[0] = 'r'
	}
	if m.Write {
		perm[1] = 'w'
	}
	if m.Exec {
		perm[2] = 'x'
	}
	name := m.Path
	if name == "" {
		name = "anonymous"
	}
	return fmt.Sprintf("%#x-%#x %s %s", m.Start, m.End, perm, name)
}

func (e *explainer) detail(format string, args ...any) {
	e.f.Details = append(e.f.Details, fmt.Sprintf(format, args...))
}

// libcAbortPath lists the functions between abort() and its real caller.
var libcAbortPath = map[string]bool{
	"raise": true, "gsignal": true, "abort": true, "pthread_kill": true, "__pthread_kill": true,
	"__pthread_kill_implementation": true, "__pthread_kill_internal": true, "__GI_raise": true,
	"__GI_abort": true, "__libc_message": true, "__libc_message_impl": true, "malloc_printerr": true,
	"__assert_fail": true, "__assert_fail_base": true, "__fortify_fail": true, "__chk_fail": true,
	"__stack_chk_fail": true, "__libc_fatal": true, "tgkill": true, "_int_malloc": true, "_int_free": true,
	"__libc_free": true, "__libc_malloc": true, "free": true, "malloc": true, "__libc_realloc": true, "realloc": true,
	"_int_realloc": true, "__libc_calloc": true, "calloc": true, "cfree": true, "unlink_chunk": true,
	"_int_free_merge_chunk": true, "_int_free_create_chunk": true, "__GI___libc_free": true,
}

func (e *explainer) abort() {
	e.f.Kind = crash.FaultAbort
	var reason string
	caller := ""
	seenAbort := false
	for i := range e.in.Frames {
		fn := e.in.Frames[i].Function
		switch {
		case strings.Contains(fn, "__assert_fail"):
			reason = "an assertion failed (assert() called __assert_fail)"
		case fn == "malloc_printerr":
			reason = "glibc detected heap corruption (malloc_printerr: a double free, a buffer overrun into heap metadata, or a use after free)"
		case strings.Contains(fn, "__stack_chk_fail"):
			reason = "a stack buffer overflow was detected (__stack_chk_fail: stack smashing detected)"
		case strings.Contains(fn, "__fortify_fail") || strings.Contains(fn, "__chk_fail"):
			reason = "a buffer overflow was detected by _FORTIFY_SOURCE (__chk_fail)"
		}
		if fn == "abort" || fn == "__GI_abort" {
			seenAbort = true
		}
		if seenAbort && !libcAbortPath[fn] && caller == "" {
			caller = frameLabel(&e.in.Frames[i])
		}
	}
	if !seenAbort && caller == "" {
		for i := range e.in.Frames {
			if !libcAbortPath[e.in.Frames[i].Function] {
				caller = frameLabel(&e.in.Frames[i])
				break
			}
		}
	}
	var b strings.Builder
	b.WriteString("The process aborted itself (SIGABRT)")
	if reason != "" {
		b.WriteString(": " + reason)
	}
	b.WriteString(".")
	if caller != "" {
		if seenAbort {
			fmt.Fprintf(&b, " abort() was called from %s.", caller)
		} else {
			fmt.Fprintf(&b, " SIGABRT was raised from %s.", caller)
		}
	}
	if e.in.Signal.Sent && e.in.Signal.SenderPID != 0 && !seenAbort && reason == "" {
		fmt.Fprintf(&b, " The signal came from process %d (uid %d).", e.in.Signal.SenderPID, e.in.Signal.SenderUID)
	}
	e.f.Explanation = b.String()
}

func (e *explainer) sent() {
	s := e.in.Signal
	e.f.Kind = crash.FaultSignalSent
	how := "kill()"
	switch s.CodeName {
	case "SI_TKILL":
		how = "tkill()/tgkill()"
	case "SI_QUEUE":
		how = "sigqueue()"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s was sent by process %d (uid %d) with %s: this was not a memory fault", s.Name, s.SenderPID, s.SenderUID, how)
	self := false
	if len(e.in.Frames) > 0 {
		for _, f := range e.in.Frames[:min(4, len(e.in.Frames))] {
			if f.Function == "kill" || f.Function == "raise" || f.Function == "tgkill" || f.Function == "pthread_kill" || strings.Contains(f.Function, "posix_kill") {
				self = true
			}
		}
	}
	if self {
		b.WriteString("; the process sent it to itself (it was inside ")
		b.WriteString(e.in.Frames[0].Function)
		for _, f := range e.in.Frames[1:min(6, len(e.in.Frames))] {
			if f.Function != "" && f.Function != e.in.Frames[0].Function {
				b.WriteString(", called from " + f.Function)
				break
			}
		}
		b.WriteString(")")
	} else {
		b.WriteString("; look for who sent it (an administrator, a supervisor or watchdog, the OOM killer's helpers, a deployment script)")
	}
	b.WriteString(".")
	e.f.Explanation = b.String()
}

func (e *explainer) illegal() {
	e.f.Kind = crash.FaultIllegalInstr
	if e.inst != nil && e.inst.Op == x86asm.UD2 {
		e.f.Explanation = fmt.Sprintf("The process executed ud2 %s: a deliberate trap, emitted by __builtin_trap(), by the compiler for code it proved unreachable, or by a failed runtime check.", e.where())
		return
	}
	rip, _ := e.reg("rip")
	if m := e.mapping(rip); m == nil || !m.Exec {
		e.f.Explanation = fmt.Sprintf("The process tried to execute an invalid instruction at %#x, outside executable code: a jump through a corrupted pointer.", rip)
		return
	}
	e.f.Explanation = fmt.Sprintf("The CPU refused the instruction at %#x %s (%s): code compiled for a newer CPU (AVX-512 on an older machine?) or a jump into the middle of an instruction.", rip, e.where(), orUnknown(e.f.Instruction))
}

func (e *explainer) arith() {
	e.f.Kind = crash.FaultArithmetic
	if e.inst != nil && (e.inst.Op == x86asm.DIV || e.inst.Op == x86asm.IDIV) {
		divisor := "the divisor"
		if r, ok := e.inst.Args[0].(x86asm.Reg); ok {
			name := strings.ToLower(r.String())
			if v, ok := e.reg(regName64(r)); ok {
				divisor = fmt.Sprintf("the divisor %s (= %#x)", name, v)
			}
		}
		e.f.Explanation = fmt.Sprintf("Integer division by zero (or an overflowing division) %s: %s is zero or the quotient does not fit.", e.where(), divisor)
		return
	}
	e.f.Explanation = fmt.Sprintf("An arithmetic exception (%s) %s.", e.in.Signal.CodeName, e.where())
}

func orUnknown(s string) string {
	if s == "" {
		return "undecodable"
	}
	return s
}

// shortPath returns the basename of a mapping path.
func shortPath(p string) string {
	if p == "" {
		return "anonymous memory"
	}
	return filepath.Base(p)
}
