// Package fault decodes the instruction a crashed x86-64 process died on
// and explains the fault in words a sysadmin can act on: a NULL pointer in
// which register (and which function argument), a stack overflow, a jump to
// unmapped or non-executable memory, a non-canonical address, a write to
// read-only memory, an abort and who called it, or a signal sent by another
// process. It is the "x/i $pc, info registers, think about the ABI" step of
// a manual gdb session, done for every crash.
//
// Explain never panics: every input (garbage code bytes, missing registers,
// no frames, no mappings) yields a Fault, of kind crash.FaultUnknown when
// nothing better can be said.
package fault

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"golang.org/x/arch/x86/x86asm"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// Input is what Explain needs to know about the crash.
type Input struct {
	// Signal is the signal that killed the process (from NT_SIGINFO):
	// number, si_code, si_addr, and the sender for signals sent by a process.
	Signal crash.Signal
	// Registers of the crashed thread at the fault.
	Registers crash.Registers
	// Code holds up to 16 bytes of memory at rip (nil when unreadable).
	Code []byte
	// FunctionCode optionally holds the bytes of the crashing function
	// from its start (rip - Frames[0].FunctionOffset) to at least rip+16;
	// more bytes past rip (up to the function's end) let Explain rule out
	// loops that re-enter the code before the fault. It is used to decide
	// whether an argument register still holds the argument at the fault.
	FunctionCode []byte
	// Mappings are the process's memory mappings.
	Mappings []Mapping
	// Frames is the crashed thread's stack, innermost first, symbolized.
	Frames []crash.Frame
	// PID is the crashed process's id (0 when unknown): a signal whose
	// sender is the process itself was raised by it.
	PID int
}

// Mapping is one memory mapping of the process.
type Mapping struct {
	Start, End        uint64
	Read, Write, Exec bool
	// Path is the mapped file, "" for anonymous memory, or a pseudo path
	// such as "[stack]" or "[heap]".
	Path string
}

// nullLimit is the size of the low region (vm.mmap_min_addr is 64 KiB on
// most distributions) where a fault is treated as a NULL (or NULL plus a
// field offset) dereference.
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

func (e *explainer) reg(r crash.Reg) (uint64, bool) { return e.in.Registers.Get(r) }

// signal returns the number of the signal that killed the process.
func (e *explainer) signal() signals.Signal { return signals.Signal(e.in.Signal.Number) }

// decode decodes one instruction; endbr64/endbr32, which x86asm does not
// know, are returned as a 4-byte NOP.
func decode(code []byte) (x86asm.Inst, error) {
	if len(code) >= 4 && code[0] == 0xf3 && code[1] == 0x0f && code[2] == 0x1e && (code[3] == 0xfa || code[3] == 0xfb) {
		return x86asm.Inst{Op: x86asm.NOP, Len: 4, Mode: 64}, nil
	}
	inst, err := x86asm.Decode(code, 64)
	if err == nil && (inst.Len <= 0 || inst.Op == 0) {
		return inst, fmt.Errorf("undecodable instruction")
	}
	return inst, err
}

func (e *explainer) explain() crash.Fault {
	rip, _ := e.reg(crash.RegRIP)
	e.f.PC = crash.Addr(rip)
	if len(e.in.Code) > 0 {
		if len(e.in.Code) >= 4 && e.in.Code[0] == 0xf3 && e.in.Code[1] == 0x0f && e.in.Code[2] == 0x1e && e.in.Code[3] == 0xfa {
			e.f.Instruction = "endbr64"
		} else if inst, err := decode(e.in.Code); err == nil {
			e.inst = &inst
			e.f.Instruction = gdbStyle(x86asm.IntelSyntax(inst, rip, nil))
		}
	}
	switch sig := e.signal(); {
	case sig == signals.SIGABRT:
		e.abort()
	case e.in.Signal.Sent && sig != signals.SIGQUIT:
		e.sent()
	case sig == signals.SIGSEGV || sig == signals.SIGBUS:
		e.memory()
	case sig == signals.SIGILL:
		e.illegal()
	case sig == signals.SIGFPE:
		e.arith()
	default:
		e.other()
	}
	if e.f.Kind == "" {
		e.f.Kind = crash.FaultUnknown
	}
	if e.f.Instruction == "" && len(e.in.Code) > 0 && e.f.Kind != crash.FaultAbort && e.f.Kind != crash.FaultSignalSent {
		e.detail("the bytes at rip (% x) do not decode as an x86-64 instruction", e.in.Code[:min(len(e.in.Code), 16)])
	}
	return e.f
}

// where names the crashing location with a leading space, " in
// pcre2_jit_match_8 (libpcre2-8.so.0)", or "" when there are no frames.
func (e *explainer) where() string {
	if len(e.in.Frames) == 0 {
		if rip, ok := e.reg(crash.RegRIP); ok {
			if m := e.mapping(rip); m != nil {
				return fmt.Sprintf(" in %s", mappingName(m))
			}
		}
		return ""
	}
	return " in " + frameLabel(&e.in.Frames[0])
}

// function returns the name of the crashing function, or "the crashing
// function".
func (e *explainer) function() string {
	if len(e.in.Frames) > 0 && e.in.Frames[0].Function != "" {
		return e.in.Frames[0].Function
	}
	return "the crashing function"
}

func frameLabel(f *crash.Frame) string {
	mod := filepath.Base(f.Module)
	switch {
	case f.Function != "" && f.Module != "":
		return fmt.Sprintf("%s (%s)", f.Function, mod)
	case f.Function != "":
		return f.Function
	case f.Module == "[php-jit]":
		return "PHP JIT-compiled code ([php-jit])"
	case f.Module == "[anon-exec]":
		return "anonymous executable memory ([anon-exec], e.g. PCRE2 JIT code)"
	case f.Module != "":
		return fmt.Sprintf("%s+%s", mod, f.ModuleOffset)
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

func perms(m *Mapping) string {
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
	return string(perm)
}

func mappingName(m *Mapping) string {
	if m.Path == "" {
		return "anonymous memory"
	}
	return filepath.Base(m.Path)
}

func describeMapping(m *Mapping) string {
	name := m.Path
	if name == "" {
		name = "anonymous"
	}
	return fmt.Sprintf("%#x-%#x %s %s", m.Start, m.End, perms(m), name)
}

func (e *explainer) detail(format string, args ...any) {
	e.f.Details = append(e.f.Details, fmt.Sprintf(format, args...))
}

// callerLabel names frames[i] as a caller. A call made through libffi is
// named after the first frame beyond libffi, the code that made the
// foreign call: "PHP's FFI extension (ffi.so), through libffi" for PHP's
// FFI, the ctypes module for python.
func callerLabel(frames []crash.Frame, i int) string {
	if i < 0 || i >= len(frames) {
		return ""
	}
	if !strings.HasPrefix(filepath.Base(frames[i].Module), "libffi") {
		return frameLabel(&frames[i])
	}
	j := i
	for j < len(frames) && strings.HasPrefix(filepath.Base(frames[j].Module), "libffi") {
		j++
	}
	const bridge = "libffi (a foreign-function call)"
	switch {
	case j == len(frames):
		return bridge
	case filepath.Base(frames[j].Module) == "ffi.so" && frames[j].Function == "":
		return "PHP's FFI extension (ffi.so), through " + bridge
	}
	return frameLabel(&frames[j]) + ", through " + bridge
}

// stringFuncs are the C library's string and memory functions: they only
// walk forward from the pointers they are given.
var stringFuncs = map[string]bool{
	"strlen": true, "strnlen": true, "strcmp": true, "strncmp": true, "strcpy": true, "strncpy": true, "strcat": true,
	"strncat": true, "strchr": true, "strrchr": true, "strstr": true, "strcasestr": true, "memcpy": true, "memmove": true,
	"memset": true, "memcmp": true, "bcmp": true, "memchr": true, "memrchr": true, "rawmemchr": true, "stpcpy": true,
	"stpncpy": true, "strcasecmp": true, "strncasecmp": true, "strchrnul": true, "strspn": true, "strcspn": true,
	"strpbrk": true, "wcslen": true, "wcsnlen": true, "wmemset": true, "wcscmp": true, "wcschr": true, "strdup": true,
	"strndup": true, "mempcpy": true,
}

// stringFunc returns the public name of a C-library string function frame
// ("__strlen_evex" -> "strlen"), or "".
func stringFunc(f *crash.Frame) string {
	name := f.Function
	if !isLibc(f.Module) && f.Module != "" {
		return ""
	}
	if stringFuncs[name] {
		return name
	}
	if !strings.HasPrefix(name, "__") {
		return ""
	}
	base, _, _ := strings.Cut(name[2:], "_")
	if stringFuncs[base] {
		return base
	}
	return ""
}

// isLibc reports whether a frame's module is the C library (or one of the
// libraries that used to be split from it).
func isLibc(module string) bool {
	b := filepath.Base(module)
	for _, p := range []string{"libc.so", "libc-2.", "libpthread", "libstdc++", "libgcc_s", "ld-linux"} {
		if strings.HasPrefix(b, p) {
			return true
		}
	}
	return false
}

// abortPath lists the functions between abort() and its real caller.
var abortPath = map[string]bool{
	"raise": true, "gsignal": true, "abort": true, "pthread_kill": true, "__pthread_kill": true,
	"__pthread_kill_implementation": true, "__pthread_kill_internal": true, "__GI_raise": true,
	"__GI_abort": true, "__libc_message": true, "__libc_message_impl": true, "malloc_printerr": true,
	"__assert_fail": true, "__assert_fail_base": true, "__assert_perror_fail": true, "__fortify_fail": true,
	"__chk_fail": true, "__stack_chk_fail": true, "__libc_fatal": true, "tgkill": true, "_int_malloc": true,
	"_int_free": true, "__libc_free": true, "__libc_malloc": true, "free": true, "malloc": true,
	"__libc_realloc": true, "realloc": true, "_int_realloc": true, "__libc_calloc": true, "calloc": true,
	"cfree": true, "unlink_chunk": true, "_int_free_merge_chunk": true, "_int_free_create_chunk": true,
	"__GI___libc_free": true, "tcache_double_free_verify": true, "__libc_start_call_main": true,
	"std::terminate()": true, "__cxa_throw": true, "__cxa_rethrow": true, "std::__terminate(void (*)())": true,
	"__gnu_cxx::__verbose_terminate_handler()": true,
}

// allocator lists glibc's allocator entry points: they abort only when they
// find the heap corrupted.
var allocator = map[string]bool{
	"free": true, "__libc_free": true, "cfree": true, "malloc": true, "__libc_malloc": true, "realloc": true,
	"__libc_realloc": true, "calloc": true, "__libc_calloc": true, "posix_memalign": true, "memalign": true,
	"aligned_alloc": true, "__libc_memalign": true, "malloc_trim": true,
}

// abortReason names why the process aborted from the functions on the path.
func abortReason(fn string) string {
	switch {
	case strings.Contains(fn, "__assert_fail") || strings.Contains(fn, "__assert_perror_fail"):
		return "an assertion failed (assert() called __assert_fail)"
	case fn == "malloc_printerr" || fn == "_int_free" || fn == "tcache_double_free_verify" || fn == "unlink_chunk":
		return "glibc's allocator detected heap corruption (a double free, a write past the end of a heap block, or a use after free)"
	case strings.Contains(fn, "__stack_chk_fail"):
		return "the stack protector detected a stack buffer overflow (__stack_chk_fail: \"stack smashing detected\")"
	case strings.Contains(fn, "__fortify_fail") || strings.Contains(fn, "__chk_fail"):
		return "_FORTIFY_SOURCE detected a buffer overflow (__chk_fail)"
	case strings.Contains(fn, "terminate"):
		return "an uncaught C++ exception (std::terminate)"
	}
	return ""
}

func (e *explainer) abort() {
	e.f.Kind = crash.FaultAbort
	frames := e.in.Frames
	reason, caller := "", -1
	seenAbort := false
	for i := range frames {
		fn := frames[i].Function
		if r := abortReason(fn); r != "" && reason == "" && caller < 0 {
			reason = r
		}
		if allocator[fn] && seenAbort && caller < 0 && reason == "" {
			reason = abortReason("malloc_printerr")
		}
		if fn == "abort" || fn == "__GI_abort" || fn == "raise" || fn == "gsignal" || fn == "__pthread_kill_implementation" || fn == "pthread_kill" {
			seenAbort = seenAbort || fn == "abort" || fn == "__GI_abort"
			continue
		}
		if seenAbort && caller < 0 && !abortPath[fn] && !isLibc(frames[i].Module) {
			caller = i
		}
	}
	// A SIGABRT sent by another process is not an abort.
	if e.in.Signal.Sent && !seenAbort && !e.selfSent() && len(frames) > 0 && reason == "" {
		e.sent()
		return
	}
	if caller < 0 {
		for i := range frames {
			if !abortPath[frames[i].Function] && !isLibc(frames[i].Module) {
				caller = i
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
	if caller >= 0 {
		c := callerLabel(frames, caller)
		switch {
		case seenAbort && caller > 0 && frames[caller-1].Function != "abort" && frames[caller-1].Function != "__GI_abort":
			fmt.Fprintf(&b, " abort() was called from %s (through %s).", c, libcChain(frames[:caller]))
		case seenAbort:
			fmt.Fprintf(&b, " abort() was called from %s.", c)
		default:
			fmt.Fprintf(&b, " SIGABRT was raised from %s.", c)
		}
		e.detail("first frame outside the C library: #%d %s", caller, frameLabel(&frames[caller]))
	} else if len(frames) == 0 {
		b.WriteString(" The stack is unknown, so the caller of abort() cannot be named.")
	}
	e.f.Explanation = b.String()
	if s := e.in.Signal; s.Sent && s.SenderPID != 0 {
		e.detail("sent with %s by pid %d (uid %d): the process itself, as abort() does", sentHow(s), s.SenderPID, s.SenderUID)
	}
}

// libcChain names the C-library functions between abort() and its caller,
// outermost first: "free, abort".
func libcChain(frames []crash.Frame) string {
	var names []string
	for i := len(frames) - 1; i >= 0; i-- {
		fn := frames[i].Function
		if fn == "" || fn == "raise" || fn == "gsignal" || strings.Contains(fn, "pthread_kill") {
			continue
		}
		if !abortPath[fn] && isLibc(frames[i].Module) {
			// Stripped C library: the nearest exported name may be wrong.
			continue
		}
		if len(names) == 0 || names[len(names)-1] != fn {
			names = append(names, fn)
		}
	}
	if len(names) == 0 {
		return "the C library"
	}
	return strings.Join(names, " -> ")
}

// selfSent reports whether the process signalled itself: the sender is the
// process, or the top frames are kill, raise, PHP's posix_kill...
func (e *explainer) selfSent() bool {
	if s := e.in.Signal; s.Sent && e.in.PID != 0 && s.SenderPID == e.in.PID {
		return true
	}
	for _, f := range e.in.Frames[:min(6, len(e.in.Frames))] {
		switch f.Function {
		case "kill", "raise", "gsignal", "tgkill", "pthread_kill", "__pthread_kill_implementation", "sigqueue", "abort":
			return true
		}
		if strings.Contains(f.Function, "posix_kill") {
			return true
		}
	}
	return false
}

func sentHow(s crash.Signal) string {
	switch {
	case s.CodeName == "SI_TKILL" || s.Code == signals.SI_TKILL:
		return "tkill()/tgkill()"
	case s.CodeName == "SI_QUEUE" || s.Code == signals.SI_QUEUE:
		return "sigqueue()"
	}
	return "kill()"
}

func (e *explainer) sent() {
	s := e.in.Signal
	e.f.Kind = crash.FaultSignalSent
	name := s.Name
	if name == "" {
		name = fmt.Sprintf("signal %d", s.Number)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s was sent by process %d (uid %d) with %s; this was not a memory fault", name, s.SenderPID, s.SenderUID, sentHow(s))
	if e.selfSent() {
		b.WriteString(": the process sent it to itself")
		for _, f := range e.in.Frames[:min(8, len(e.in.Frames))] {
			if f.Function != "" && !isLibc(f.Module) && !abortPath[f.Function] && f.Function != "kill" {
				fmt.Fprintf(&b, " (from %s)", frameLabel(&f))
				break
			}
		}
		b.WriteString(".")
	} else {
		b.WriteString(". Look for who sent it: an administrator, a supervisor or watchdog, a deployment script, or a test.")
	}
	e.f.Explanation = b.String()
	if len(e.in.Frames) > 0 {
		e.detail("the process was%s when the signal arrived", e.where())
	}
}

func (e *explainer) illegal() {
	e.f.Kind = crash.FaultIllegalInstr
	rip, _ := e.reg(crash.RegRIP)
	if e.inst != nil && e.inst.Op == x86asm.UD2 {
		e.f.Explanation = fmt.Sprintf("The process executed ud2%s: a deliberate trap, emitted by __builtin_trap() (often a failed assertion or a hardening check) or by the compiler for code it proved unreachable.", e.where())
		return
	}
	if m := e.mapping(rip); len(e.in.Mappings) > 0 && (m == nil || !m.Exec) {
		e.f.Explanation = fmt.Sprintf("The process tried to execute an invalid instruction at %#x, outside executable code: a jump through a corrupted pointer.", rip)
		return
	}
	e.f.Explanation = fmt.Sprintf("The CPU refused the instruction at %#x%s (%s): code built for a newer CPU (e.g. AVX-512 on an older machine), or a jump into the middle of an instruction.", rip, e.where(), orUnknown(e.f.Instruction))
}

func (e *explainer) arith() {
	e.f.Kind = crash.FaultArithmetic
	inst := e.inst
	if inst == nil || (inst.Op != x86asm.DIV && inst.Op != x86asm.IDIV) {
		what := "an arithmetic exception"
		switch e.in.Signal.Code {
		case 1:
			what = "an integer division by zero"
		case 2:
			what = "an integer overflow"
		case 3, 4, 5, 6, 7:
			what = "a floating-point exception"
		}
		e.f.Explanation = fmt.Sprintf("The process raised %s (SIGFPE)%s.", what, e.where())
		return
	}
	divisor, val, known := "the divisor", uint64(0), false
	mask := ^uint64(0)
	switch a := inst.Args[0].(type) {
	case x86asm.Reg:
		divisor = strings.ToLower(a.String())
		switch {
		case a >= x86asm.AL && a <= x86asm.R15B:
			mask = 0xff
		case a >= x86asm.AX && a <= x86asm.R15W:
			mask = 0xffff
		case a >= x86asm.EAX && a <= x86asm.R15L:
			mask = 0xffffffff
		}
		if v, ok := e.gpr(a); ok {
			val, known = v&mask, true
			if a >= x86asm.AH && a <= x86asm.BH {
				val = v >> 8 & 0xff
			}
		}
	case x86asm.Mem:
		if accs := e.accesses(); len(accs) > 0 {
			divisor = fmt.Sprintf("the divisor in memory at %#x", accs[0].addr)
		}
	}
	switch {
	case known && val == 0:
		e.f.Explanation = fmt.Sprintf("Integer division by zero%s: the divisor %s was 0.", e.where(), divisor)
	case known && inst.Op == x86asm.IDIV && val == mask:
		e.f.Explanation = fmt.Sprintf("Integer division overflow%s: the most negative integer was divided by -1 (%s), whose result does not fit.", e.where(), divisor)
	default:
		e.f.Explanation = fmt.Sprintf("Integer division error%s: %s is zero or the quotient does not fit in the result register.", e.where(), divisor)
	}
	e.f.Kind = crash.FaultArithmetic
	if known {
		e.detail("%s = %#x", divisor, val)
	}
}

func (e *explainer) other() {
	s := e.in.Signal
	name := s.Name
	if name == "" {
		name = fmt.Sprintf("signal %d", s.Number)
	}
	e.f.Kind = crash.FaultUnknown
	switch e.signal() {
	case signals.SIGTRAP:
		e.f.Explanation = fmt.Sprintf("The process stopped on a breakpoint or trace trap (SIGTRAP)%s: an int3 instruction (a debugger breakpoint or __builtin_debugtrap) with no debugger attached.", e.where())
	case signals.SIGQUIT:
		e.f.Explanation = fmt.Sprintf("The process was asked to quit and dump core (SIGQUIT)%s; this was not a memory fault.", sentBy(s))
	case signals.SIGXCPU:
		e.f.Explanation = "The process exceeded its CPU time limit (SIGXCPU, RLIMIT_CPU / ulimit -t); this was not a memory fault."
	case signals.SIGXFSZ:
		e.f.Explanation = "The process tried to grow a file beyond its file size limit (SIGXFSZ, RLIMIT_FSIZE / ulimit -f), e.g. a log file; this was not a memory fault."
	case signals.SIGSYS:
		e.f.Explanation = fmt.Sprintf("The process made a forbidden system call (SIGSYS, usually a seccomp filter such as systemd's SystemCallFilter=)%s.", e.where())
	case 0:
		e.f.Explanation = "The core records no signal (no NT_SIGINFO note, and the thread's current signal is 0: a dump of a live process, such as gdb's gcore, or damaged notes); what ended the process is unknown."
	default:
		e.f.Explanation = fmt.Sprintf("The process was killed by %s%s.", name, e.where())
	}
}

func sentBy(s crash.Signal) string {
	if s.Sent {
		return fmt.Sprintf(", sent by process %d (uid %d) with %s", s.SenderPID, s.SenderUID, sentHow(s))
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "undecodable"
	}
	return s
}

var scaledIndex = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\+([1248])\*([a-z0-9]+)`) })

// gdbStyle brings x86asm's Intel syntax closer to gdb's (intel flavour):
// "[rax+rcx*8]" rather than "[rax+8*rcx]", "lea rax, [rdi+0x10]" rather
// than "lea rax, ptr [rdi+0x10]".
func gdbStyle(s string) string {
	s = scaledIndex().ReplaceAllString(s, "+$2*$1")
	return strings.Replace(s, ", ptr [", ", [", 1)
}
