package fault

import (
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/coroner-dev/coroner/crash"
)

// access is one memory access of the faulting instruction.
type access struct {
	addr  uint64
	write bool
	base  string // base register name ("rdi"), "" when none
	index string
	// baseVal is the base register's value.
	baseVal uint64
	// implicit is true for stack accesses of push/pop/call/ret.
	implicit bool
}

// accesses computes the memory addresses the decoded instruction touches.
func (e *explainer) accesses() []access {
	if e.inst == nil {
		return nil
	}
	inst := e.inst
	rip, _ := e.reg("rip")
	rsp, _ := e.reg("rsp")
	var out []access
	for i, a := range inst.Args {
		if a == nil {
			break
		}
		m, ok := a.(x86asm.Mem)
		if !ok {
			continue
		}
		if inst.Op == x86asm.LEA || inst.Op == x86asm.NOP {
			continue
		}
		acc := access{}
		var addr uint64
		if m.Base != 0 {
			if m.Base == x86asm.RIP {
				addr = rip + uint64(inst.Len)
				acc.base = "rip"
			} else {
				v, ok := e.reg(regName64(m.Base))
				if !ok {
					continue
				}
				addr = v
				acc.base = regName64(m.Base)
				acc.baseVal = v
			}
		}
		if m.Index != 0 {
			v, ok := e.reg(regName64(m.Index))
			if !ok {
				continue
			}
			addr += v * uint64(m.Scale)
			acc.index = regName64(m.Index)
		}
		addr += uint64(m.Disp)
		switch m.Segment {
		case x86asm.FS:
			if v, ok := e.reg("fs_base"); ok {
				addr += v
			}
		case x86asm.GS:
			if v, ok := e.reg("gs_base"); ok {
				addr += v
			}
		}
		acc.addr = addr
		acc.write = i == 0 && writesFirstOperand(inst.Op)
		out = append(out, acc)
	}
	switch inst.Op {
	case x86asm.PUSH, x86asm.CALL, x86asm.PUSHF, x86asm.PUSHFQ:
		out = append(out, access{addr: rsp - 8, write: true, base: "rsp", baseVal: rsp, implicit: true})
	case x86asm.POP, x86asm.RET, x86asm.POPF, x86asm.POPFQ, x86asm.LEAVE:
		out = append(out, access{addr: rsp, base: "rsp", baseVal: rsp, implicit: true})
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ, x86asm.CMPSB, x86asm.CMPSQ, x86asm.LODSB, x86asm.LODSQ:
		if v, ok := e.reg("rsi"); ok {
			out = append(out, access{addr: v, base: "rsi", baseVal: v})
		}
		if inst.Op == x86asm.MOVSB || inst.Op == x86asm.MOVSQ || inst.Op == x86asm.MOVSW || inst.Op == x86asm.MOVSD {
			if v, ok := e.reg("rdi"); ok {
				out = append(out, access{addr: v, write: true, base: "rdi", baseVal: v})
			}
		}
	case x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ, x86asm.SCASB, x86asm.SCASQ:
		if v, ok := e.reg("rdi"); ok {
			out = append(out, access{addr: v, write: strings.HasPrefix(inst.Op.String(), "STOS"), base: "rdi", baseVal: v})
		}
	}
	return out
}

// writesFirstOperand reports whether an instruction writes its first operand.
func writesFirstOperand(op x86asm.Op) bool {
	switch op {
	case x86asm.CMP, x86asm.TEST, x86asm.PUSH, x86asm.JMP, x86asm.CALL, x86asm.BT,
		x86asm.UCOMISS, x86asm.UCOMISD, x86asm.COMISS, x86asm.COMISD, x86asm.PTEST, x86asm.VPTEST,
		x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHNTA:
		return false
	}
	return true
}

// regName64 returns the lower-case name of the 64-bit register containing r.
func regName64(r x86asm.Reg) string {
	switch {
	case r >= x86asm.AL && r <= x86asm.R15B:
		return reg8[int(r-x86asm.AL)]
	case r >= x86asm.AX && r <= x86asm.R15W:
		return reg64[int(r-x86asm.AX)]
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return reg64[int(r-x86asm.EAX)]
	case r >= x86asm.RAX && r <= x86asm.R15:
		return reg64[int(r-x86asm.RAX)]
	case r == x86asm.RIP:
		return "rip"
	}
	return strings.ToLower(r.String())
}

// reg8 follows x86asm's order of byte registers: AL CL DL BL AH CH DH BH
// SPB BPB SIB DIB R8B..R15B.
var reg8 = []string{"rax", "rcx", "rdx", "rbx", "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}

var reg64 = []string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}

// argRegs are the System V AMD64 integer argument registers, in order.
var argRegs = []string{"rdi", "rsi", "rdx", "rcx", "r8", "r9"}

func argNumber(reg string) int {
	for i, r := range argRegs {
		if r == reg {
			return i + 1
		}
	}
	return 0
}

var ordinals = []string{"", "first", "second", "third", "fourth", "fifth", "sixth"}

// isCanonical reports whether addr is a canonical 48-bit x86-64 address.
func isCanonical(addr uint64) bool {
	return addr < 0x0000800000000000 || addr >= 0xffff800000000000
}

func (e *explainer) memory() {
	sig := e.in.Signal
	rip, _ := e.reg("rip")
	rsp, _ := e.reg("rsp")
	where := e.where()

	// Executing where there is no code.
	if m := e.mapping(rip); m == nil || !m.Exec || (sig.Code != siKernel && uint64(sig.Address) == rip) {
		e.execFault(rip, m)
		return
	}
	accs := e.accesses()
	var acc *access
	fault := uint64(sig.Address)
	known := sig.Code == segvMapErr || sig.Code == segvAccErr || sig.Number == sigBUS
	for i := range accs {
		if known && accs[i].addr>>12 == fault>>12 {
			acc = &accs[i]
			break
		}
	}
	if acc == nil && len(accs) > 0 {
		// General protection faults report address 0: pick the access
		// that is non-canonical, else the first one.
		acc = &accs[0]
		for i := range accs {
			if !isCanonical(accs[i].addr) {
				acc = &accs[i]
			}
		}
	}
	if !known && acc != nil {
		fault = acc.addr
	}
	e.f.Address = crash.Addr(fault)
	if acc != nil && acc.base != "" && acc.base != "rip" {
		e.f.Register = acc.base
	}
	verb := "reading"
	if acc != nil && acc.write {
		verb = "writing"
	}
	e.registerDetails(acc)

	// Stack overflow: the access is just below the stack pointer, in the
	// guard gap under the stack, or a push/call that faulted.
	stack := e.stackMapping()
	// The access may be above rsp (a store into the frame just allocated
	// with sub rsp) when rsp itself is already in the guard gap.
	nearSP := fault != 0 && fault <= rsp+64<<10 && (fault >= rsp || rsp-fault < 1<<20)
	belowStack := stack != nil && fault < stack.Start && stack.Start-fault <= 1<<20
	if (nearSP && e.mapping(fault) == nil) || belowStack || (acc != nil && acc.implicit && acc.write && e.mapping(fault) == nil) {
		e.f.Kind = crash.FaultStackOverflow
		e.f.Explanation = fmt.Sprintf("Stack overflow %s: %s address %#x, just below the stack pointer (rsp = %#x), ran into the guard page under the thread's stack.", where, verb, fault, rsp)
		if n := len(e.in.Frames); n > 1000 {
			e.f.Explanation += fmt.Sprintf(" The stack holds %d frames: runaway recursion.", n)
		}
		if stack != nil {
			e.detail("stack mapping %s (%d KiB)", describeMapping(stack), (stack.End-stack.Start)>>10)
		}
		return
	}
	if fault < nullLimit && (sig.Number == sigSEGV) {
		e.null(acc, fault, verb)
		return
	}
	if !isCanonical(fault) {
		e.f.Kind = crash.FaultNonCanonical
		e.f.Explanation = fmt.Sprintf("General protection fault %s: %s address %#x, which is not a canonical x86-64 address (no process can map it). The pointer%s is garbage: typically freed memory reused (use after free), an uninitialised variable, or a corrupted structure.", where, verb, fault, regSuffix(acc))
		return
	}
	m := e.mapping(fault)
	if m != nil && sig.Code == segvAccErr {
		if acc != nil && acc.write && !m.Write {
			e.f.Kind = crash.FaultWriteReadOnly
			e.f.Explanation = fmt.Sprintf("Write to read-only memory %s: address %#x lies in %s, mapped without write permission (a string literal, code, or memory protected on purpose such as OPcache's shared memory with opcache.protect_memory).", where, fault, shortPath(m.Path))
			e.detail("mapping %s", describeMapping(m))
			return
		}
		e.f.Kind = crash.FaultBadPointer
		e.f.Explanation = fmt.Sprintf("Access violation %s: %s address %#x in %s, which does not allow it.", where, verb, fault, shortPath(m.Path))
		e.detail("mapping %s", describeMapping(m))
		return
	}
	if sig.Number == sigBUS {
		e.f.Kind = crash.FaultBusError
		if m != nil && m.Path != "" {
			e.f.Explanation = fmt.Sprintf("Bus error %s: %s %#x in a mapping of %s past the end of the file: the file was truncated while mapped (e.g. an OPcache file cache or a log rotated in place).", where, verb, fault, shortPath(m.Path))
		} else {
			e.f.Explanation = fmt.Sprintf("Bus error %s %s address %#x (misaligned access, or memory the kernel could not provide).", where, verb, fault)
		}
		return
	}
	e.f.Kind = crash.FaultBadPointer
	e.f.Explanation = fmt.Sprintf("Invalid pointer %s: %s address %#x, which is not mapped%s. Typical of a dangling pointer (use after free) or a corrupted structure.", where, verb, fault, regSuffix(acc))
	if near := e.nearest(fault); near != "" {
		e.detail("nearest mapping: %s", near)
	}
}

func regSuffix(acc *access) string {
	if acc == nil || acc.base == "" || acc.base == "rip" {
		return ""
	}
	return fmt.Sprintf(" (from %s = %#x)", acc.base, acc.baseVal)
}

func (e *explainer) registerDetails(acc *access) {
	if acc == nil || acc.base == "" || acc.base == "rip" {
		return
	}
	d := fmt.Sprintf("%s = %#x", acc.base, acc.baseVal)
	if acc.index != "" {
		if v, ok := e.reg(acc.index); ok {
			d += fmt.Sprintf(", %s = %#x", acc.index, v)
		}
	}
	e.detail("%s; accessed address %#x", d, acc.addr)
}

func (e *explainer) nearest(addr uint64) string {
	var best *Mapping
	var dist uint64
	for i := range e.in.Mappings {
		m := &e.in.Mappings[i]
		var d uint64
		switch {
		case addr < m.Start:
			d = m.Start - addr
		case addr >= m.End:
			d = addr - m.End + 1
		}
		if best == nil || d < dist {
			best, dist = m, d
		}
	}
	if best == nil {
		return ""
	}
	return fmt.Sprintf("%s (%d bytes away)", describeMapping(best), dist)
}

func (e *explainer) null(acc *access, fault uint64, verb string) {
	e.f.Kind = crash.FaultNullDeref
	where := e.where()
	var b strings.Builder
	fmt.Fprintf(&b, "NULL pointer dereference %s: %s address %#x", where, verb, fault)
	if acc != nil && acc.base != "" && acc.base != "rip" {
		fmt.Fprintf(&b, " = %s (%#x) + %#x", acc.base, acc.baseVal, fault-acc.baseVal)
		if acc.baseVal == 0 {
			fmt.Fprintf(&b, ", so %s was NULL", acc.base)
		}
	}
	b.WriteString(".")
	if acc != nil && acc.baseVal < nullLimit {
		if n := argNumber(acc.base); n > 0 && e.stillArgument(acc.base) {
			e.f.Argument = n
			fn := "the crashing function"
			if len(e.in.Frames) > 0 && e.in.Frames[0].Function != "" {
				fn = e.in.Frames[0].Function
			}
			fmt.Fprintf(&b, " Under the System V x86-64 calling convention %s holds the %s argument of a function on entry, and %s has not changed it yet: the %s argument (%s) of %s was NULL, so its caller",
				acc.base, ordinals[n], fn, ordinals[n], acc.base, fn)
			if len(e.in.Frames) > 1 {
				fmt.Fprintf(&b, " (%s)", frameLabel(&e.in.Frames[1]))
			}
			b.WriteString(" passed a NULL pointer.")
		} else if fault > 0 {
			fmt.Fprintf(&b, " A field at offset %#x of a structure was read through a NULL pointer.", fault-acc.baseVal)
		}
	}
	e.f.Explanation = b.String()
}

// stillArgument reports whether an argument register has provably not been
// written between the start of the crashing function and the fault: then it
// still holds the argument the caller passed.
func (e *explainer) stillArgument(reg string) bool {
	if len(e.in.Frames) == 0 || e.in.FunctionCode == nil {
		return false
	}
	off := uint64(e.in.Frames[0].FunctionOffset)
	if off == 0 {
		return true
	}
	code := e.in.FunctionCode
	pos := uint64(0)
	for pos < off && pos < uint64(len(code)) {
		inst, err := x86asm.Decode(code[pos:], 64)
		if err != nil || inst.Len == 0 {
			return false
		}
		switch inst.Op {
		case x86asm.CALL, x86asm.JMP, x86asm.RET, x86asm.SYSCALL:
			return false // control flow or a call that clobbers argument registers
		}
		if inst.Op >= x86asm.JA && inst.Op <= x86asm.JS && inst.Op != x86asm.JMP {
			return false // a branch: the path to the fault is not this straight line
		}
		if r, ok := inst.Args[0].(x86asm.Reg); ok && regName64(r) == reg && writesFirstOperand(inst.Op) {
			return false
		}
		if inst.Op == x86asm.XCHG || inst.Op == x86asm.XADD || inst.Op == x86asm.CMPXCHG {
			if r, ok := inst.Args[1].(x86asm.Reg); ok && regName64(r) == reg {
				return false
			}
		}
		pos += uint64(inst.Len)
	}
	return pos == off
}

func (e *explainer) execFault(rip uint64, m *Mapping) {
	rsp, _ := e.reg("rsp")
	e.f.Address = crash.Addr(rip)
	caller := ""
	if len(e.in.Frames) > 1 {
		caller = " from " + frameLabel(&e.in.Frames[1])
	}
	switch {
	case rip < nullLimit:
		e.f.Kind = crash.FaultExecUnmapped
		e.f.Explanation = fmt.Sprintf("Jump to address %#x%s: a call through a NULL function pointer (a callback, a virtual method or a handler that was never set or was cleared).", rip, caller)
	case !isCanonical(rip):
		e.f.Kind = crash.FaultExecUnmapped
		e.f.Explanation = fmt.Sprintf("Jump to non-canonical address %#x%s: a corrupted function pointer or return address (stack corruption).", rip, caller)
	case m == nil:
		e.f.Kind = crash.FaultExecUnmapped
		e.f.Explanation = fmt.Sprintf("Jump to unmapped address %#x%s: a call through a dangling or corrupted function pointer, a corrupted return address, or code that was unmapped (a JIT buffer reset, an unloaded library).", rip, caller)
		if near := e.nearest(rip); near != "" {
			e.detail("nearest mapping: %s", near)
		}
	default:
		e.f.Kind = crash.FaultExecNonExec
		e.f.Explanation = fmt.Sprintf("Execution of non-executable memory at %#x (%s)%s: a corrupted function pointer or return address pointing into data.", rip, shortPath(m.Path), caller)
		e.detail("mapping %s", describeMapping(m))
	}
	e.detail("rsp = %#x", rsp)
}
