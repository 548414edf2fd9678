package fault

import (
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// access is one memory access of the faulting instruction.
type access struct {
	addr  uint64
	size  uint64
	write bool
	// base is the base register (crash.RegRIP for rip-relative operands),
	// noReg when there is none; index likewise.
	base  crash.Reg
	index crash.Reg
	// baseVal is the base register's value.
	baseVal uint64
	// implicit is true for stack accesses of push/pop/call/ret.
	implicit bool
	// operand is the memory operand as written ("qword ptr [rdi+0x10]").
	operand string
}

// stringOp reports whether op is a string instruction (movs, stos, ...).
func stringOp(op x86asm.Op) bool {
	switch op {
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ, x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ,
		x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ, x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ,
		x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ:
		return true
	}
	return false
}

// accesses computes the memory addresses the decoded instruction touches.
func (e *explainer) accesses() []access {
	if e.inst == nil {
		return nil
	}
	inst := e.inst
	rip, _ := e.reg(crash.RegRIP)
	rsp, hasSP := e.reg(crash.RegRSP)
	var out []access
	if inst.Op != x86asm.LEA && inst.Op != x86asm.NOP && !stringOp(inst.Op) {
		for i, a := range inst.Args {
			if a == nil {
				break
			}
			m, ok := a.(x86asm.Mem)
			if !ok {
				continue
			}
			acc := access{size: uint64(max(inst.MemBytes, 1)), base: noReg, index: noReg}
			var addr uint64
			if m.Base != 0 {
				if m.Base == x86asm.RIP {
					addr = rip + uint64(inst.Len)
					acc.base = crash.RegRIP
				} else {
					r, ok := gpr(m.Base)
					v, known := e.reg(r)
					if !ok || !known {
						continue
					}
					addr = v
					acc.base = r
					acc.baseVal = v
				}
			}
			if m.Index != 0 {
				r, ok := gpr(m.Index)
				v, known := e.reg(r)
				if !ok || !known {
					continue
				}
				addr += v * uint64(m.Scale)
				acc.index = r
			}
			addr += uint64(m.Disp)
			if inst.AddrSize == 32 {
				addr &= 0xffffffff
			}
			switch m.Segment {
			case x86asm.FS:
				if v, ok := e.reg(crash.RegFSBase); ok {
					addr += v
				}
			case x86asm.GS:
				if v, ok := e.reg(crash.RegGSBase); ok {
					addr += v
				}
			}
			acc.addr = addr
			acc.write = i == 0 && writesFirstOperand(inst.Op)
			acc.operand = operandText(inst, rip, i)
			out = append(out, acc)
		}
	}
	switch inst.Op {
	case x86asm.PUSH, x86asm.CALL, x86asm.PUSHF, x86asm.PUSHFQ, x86asm.ENTER:
		if hasSP {
			out = append(out, access{addr: rsp - 8, size: 8, write: true, base: crash.RegRSP, index: noReg, baseVal: rsp, implicit: true})
		}
	case x86asm.POP, x86asm.RET, x86asm.POPF, x86asm.POPFQ:
		if hasSP {
			out = append(out, access{addr: rsp, size: 8, base: crash.RegRSP, index: noReg, baseVal: rsp, implicit: true})
		}
	case x86asm.LEAVE:
		if v, ok := e.reg(crash.RegRBP); ok {
			out = append(out, access{addr: v, size: 8, base: crash.RegRBP, index: noReg, baseVal: v, implicit: true})
		}
	}
	if stringOp(inst.Op) {
		name := inst.Op.String()
		size := uint64(max(inst.MemBytes, 1))
		if strings.HasPrefix(name, "MOVS") || strings.HasPrefix(name, "CMPS") || strings.HasPrefix(name, "LODS") {
			if v, ok := e.reg(crash.RegRSI); ok {
				out = append(out, access{addr: v, size: size, base: crash.RegRSI, index: noReg, baseVal: v})
			}
		}
		if !strings.HasPrefix(name, "LODS") {
			if v, ok := e.reg(crash.RegRDI); ok {
				w := strings.HasPrefix(name, "MOVS") || strings.HasPrefix(name, "STOS")
				out = append(out, access{addr: v, size: size, write: w, base: crash.RegRDI, index: noReg, baseVal: v})
			}
		}
	}
	return out
}

// operandText renders argument i of inst alone in Intel syntax.
func operandText(inst *x86asm.Inst, pc uint64, i int) string {
	s := x86asm.IntelSyntax(*inst, pc, nil)
	// The operands follow the mnemonic (and prefixes) separated by ", ".
	if j := strings.IndexByte(s, ' '); j >= 0 {
		parts := strings.Split(s[j+1:], ", ")
		for _, p := range parts {
			if strings.Contains(p, "[") {
				return p
			}
		}
	}
	return ""
}

// writesFirstOperand reports whether an instruction writes its first operand.
// Unknown instructions count as writing: that is the conservative answer for
// the argument-register analysis.
func writesFirstOperand(op x86asm.Op) bool {
	switch op {
	case x86asm.CMP, x86asm.TEST, x86asm.PUSH, x86asm.JMP, x86asm.CALL, x86asm.BT,
		x86asm.UCOMISS, x86asm.UCOMISD, x86asm.COMISS, x86asm.COMISD, x86asm.PTEST, x86asm.VPTEST,
		x86asm.PREFETCHT0, x86asm.PREFETCHT1, x86asm.PREFETCHT2, x86asm.PREFETCHNTA, x86asm.PREFETCHW,
		x86asm.NOP, x86asm.FLDCW, x86asm.FLDENV, x86asm.FRSTOR, x86asm.FXRSTOR, x86asm.FXRSTOR64,
		x86asm.LDMXCSR, x86asm.XRSTOR, x86asm.XRSTOR64, x86asm.CLFLUSH:
		return false
	}
	return true
}

// noReg marks an operand without a base or index register.
const noReg = crash.NumRegs

// gpr returns the 64-bit general-purpose register that contains r (rax for
// al, ah, ax and eax), and false for other registers (segment, vector).
func gpr(r x86asm.Reg) (crash.Reg, bool) {
	switch {
	case r >= x86asm.AL && r <= x86asm.R15B:
		return reg8[int(r-x86asm.AL)], true
	case r >= x86asm.AX && r <= x86asm.R15W:
		return reg64[int(r-x86asm.AX)], true
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return reg64[int(r-x86asm.EAX)], true
	case r >= x86asm.RAX && r <= x86asm.R15:
		return reg64[int(r-x86asm.RAX)], true
	case r == x86asm.RIP:
		return crash.RegRIP, true
	}
	return noReg, false
}

// gprOrNone is gpr, with noReg for registers that are not general-purpose.
func gprOrNone(r x86asm.Reg) crash.Reg {
	g, _ := gpr(r)
	return g
}

// gpr returns the value of the general-purpose register containing r.
func (e *explainer) gpr(r x86asm.Reg) (uint64, bool) {
	g, ok := gpr(r)
	if !ok {
		return 0, false
	}
	return e.reg(g)
}

// reg8 follows x86asm's order of byte registers: AL CL DL BL AH CH DH BH
// SPB BPB SIB DIB R8B..R15B.
var reg8 = []crash.Reg{crash.RegRAX, crash.RegRCX, crash.RegRDX, crash.RegRBX, crash.RegRAX, crash.RegRCX,
	crash.RegRDX, crash.RegRBX, crash.RegRSP, crash.RegRBP, crash.RegRSI, crash.RegRDI,
	crash.RegR8, crash.RegR9, crash.RegR10, crash.RegR11, crash.RegR12, crash.RegR13, crash.RegR14, crash.RegR15}

// reg64 follows x86asm's order of the 16-, 32- and 64-bit registers.
var reg64 = []crash.Reg{crash.RegRAX, crash.RegRCX, crash.RegRDX, crash.RegRBX, crash.RegRSP, crash.RegRBP,
	crash.RegRSI, crash.RegRDI, crash.RegR8, crash.RegR9, crash.RegR10, crash.RegR11, crash.RegR12, crash.RegR13,
	crash.RegR14, crash.RegR15}

var ordinals = []string{"", "first", "second", "third", "fourth", "fifth", "sixth"}

// isCanonical reports whether addr is a canonical 48-bit x86-64 address.
func isCanonical(addr uint64) bool {
	return addr < 0x0000800000000000 || addr >= 0xffff800000000000
}

// stackGap is how far below the stack mapping (or below rsp) an access still
// counts as hitting the stack guard: Linux keeps stack_guard_gap (256 pages
// = 1 MiB) free under a growing stack.
const stackGap = 1<<20 + 64<<10

// nearSP is how far below rsp an access counts as a stack access.
const nearSP = 64 << 10

func (e *explainer) memory() {
	sig := e.in.Signal
	rip, ripOK := e.reg(crash.RegRIP)
	fault := uint64(sig.Address)
	haveMaps := len(e.in.Mappings) > 0 && ripOK

	// SIGBUS on fetching the instruction itself: the code's file shrank.
	if e.signal() == signals.SIGBUS && ripOK && fault == rip && sig.Code != signals.SI_KERNEL {
		e.f.Kind = crash.FaultBusError
		e.f.Address = crash.Addr(fault)
		e.f.Explanation = fmt.Sprintf("Bus error fetching the code at %#x%s: the executable or library file was truncated or overwritten in place while the process ran (e.g. a package upgrade or a deployment that rewrote it instead of replacing it).", rip, e.where())
		if m := e.mapping(rip); m != nil {
			e.detail("mapping %s", describeMapping(m))
		}
		return
	}
	// Executing where there is no code.
	m := e.mapping(rip)
	if ripOK && ((haveMaps && (m == nil || !m.Exec)) || (!haveMaps && e.inst == nil && rip < nullLimit) ||
		(sig.Code != signals.SI_KERNEL && sig.Code > 0 && fault == rip && (m == nil || !m.Exec || sig.Code == signals.SEGV_ACCERR))) {
		e.execFault(rip, m)
		return
	}
	accs := e.accesses()
	if sig.Code == signals.SI_KERNEL {
		if e.stackExhausted(accs) {
			return
		}
		e.generalProtection(accs)
		return
	}
	acc := matchAccess(accs, fault)
	if acc == nil && len(accs) > 0 {
		e.detail("the decoded operand address %#x does not match the fault address %#x", accs[0].addr, fault)
	}
	e.f.Address = crash.Addr(fault)
	if acc != nil && acc.base != noReg && acc.base != crash.RegRIP {
		e.f.Register = acc.base.String()
	}
	verb := "accessing"
	if acc != nil {
		verb = "reading"
		if acc.write {
			verb = "writing"
		}
	}
	e.registerDetails(acc)

	if e.signal() == signals.SIGBUS {
		if e.stackExhausted(accs) {
			return
		}
		e.busError(fault, verb)
		return
	}
	if e.stackOverflow(fault, acc, verb) || (fault >= nullLimit && e.stackExhausted(accs)) {
		return
	}
	if fault < nullLimit {
		e.null(acc, fault, verb)
		return
	}
	if !isCanonical(fault) {
		e.f.Kind = crash.FaultNonCanonical
		e.f.Explanation = fmt.Sprintf("Invalid pointer%s: %s address %#x, which is not a canonical x86-64 address%s.", e.where(), verb, fault, regSuffix(acc))
		return
	}
	fm := e.mapping(fault)
	if fm != nil && (sig.Code == signals.SEGV_ACCERR || (acc != nil && acc.write && !fm.Write)) {
		if acc != nil && acc.write && !fm.Write {
			e.f.Kind = crash.FaultWriteReadOnly
			what := "memory mapped without write permission"
			switch {
			case fm.Path != "" && !strings.HasPrefix(fm.Path, "["):
				what = fmt.Sprintf("a read-only mapping of %s (constants such as string literals, or relocated data made read-only after start-up)", mappingName(fm))
			case fm.Path == "" && !fm.Read:
				what = "anonymous memory with no access at all (a guard page, or memory protected on purpose)"
			case fm.Path == "":
				what = "read-only anonymous memory (memory protected on purpose, such as OPcache's shared memory with opcache.protect_memory=1)"
			}
			e.f.Explanation = fmt.Sprintf("Write to read-only memory%s: the instruction wrote to %#x%s, in %s.", e.where(), fault, regSuffix(acc), what)
			e.detail("mapping %s", describeMapping(fm))
			return
		}
		e.f.Kind = crash.FaultBadPointer
		e.f.Explanation = fmt.Sprintf("Access violation%s: %s address %#x%s in %s, whose permissions (%s) do not allow it.", e.where(), verb, fault, regSuffix(acc), mappingName(fm), perms(fm))
		e.detail("mapping %s", describeMapping(fm))
		return
	}
	e.f.Kind = crash.FaultBadPointer
	if fm != nil {
		e.f.Explanation = fmt.Sprintf("Invalid memory access%s: %s address %#x%s in %s.", e.where(), verb, fault, regSuffix(acc), mappingName(fm))
		e.detail("mapping %s", describeMapping(fm))
		return
	}
	e.f.Explanation = fmt.Sprintf("Invalid pointer%s: %s address %#x%s, where nothing is mapped: typical of a dangling pointer (use after free), an uninitialised pointer, or a corrupted structure.", e.where(), verb, fault, regSuffix(acc))
	if near := e.nearest(fault); near != "" {
		e.detail("nearest mapping: %s", near)
	}
}

// matchAccess returns the access whose bytes (or page) hold the fault address.
func matchAccess(accs []access, fault uint64) *access {
	for i := range accs {
		a := &accs[i]
		if fault >= a.addr && fault-a.addr < a.size {
			return a
		}
	}
	for i := range accs {
		a := &accs[i]
		if a.addr>>12 == fault>>12 || (a.addr+a.size-1)>>12 == fault>>12 {
			return a
		}
	}
	return nil
}

// generalProtection explains a #GP fault: the kernel reports SIGSEGV (or
// SIGBUS) with si_code SI_KERNEL and address 0, so the cause has to be
// found in the instruction.
func (e *explainer) generalProtection(accs []access) {
	inst := e.inst
	where := e.where()
	if inst == nil {
		e.f.Kind = crash.FaultUnknown
		e.f.Explanation = fmt.Sprintf("General protection fault%s (the kernel gives no address; the instruction could not be read): usually a non-canonical pointer.", where)
		return
	}
	if privileged(inst.Op) {
		e.f.Kind = crash.FaultIllegalInstr
		e.f.Explanation = fmt.Sprintf("The process executed a privileged instruction (%s)%s: it jumped into data or into the middle of an instruction.", e.f.Instruction, where)
		return
	}
	for i := range accs {
		a := &accs[i]
		if isCanonical(a.addr) && (a.size <= 1 || isCanonical(a.addr+a.size-1)) {
			continue
		}
		e.f.Kind = crash.FaultNonCanonical
		e.f.Address = crash.Addr(a.addr)
		verb := "reading"
		if a.write {
			verb = "writing"
		}
		if a.base != noReg && a.base != crash.RegRIP {
			e.f.Register = a.base.String()
		}
		e.f.Explanation = fmt.Sprintf("General protection fault%s: %s address %#x%s, which is not a canonical x86-64 address (no process can map it). The pointer is garbage: typically freed memory that was reused (use after free), an uninitialised variable, or a corrupted structure.", where, verb, a.addr, regSuffix(a))
		e.registerDetails(a)
		return
	}
	// A jump, call or return to a non-canonical target faults on the
	// branch itself.
	switch inst.Op {
	case x86asm.RET:
		rsp, _ := e.reg(crash.RegRSP)
		e.f.Kind = crash.FaultNonCanonical
		e.f.Register = crash.RegRSP.String()
		e.f.Explanation = fmt.Sprintf("General protection fault on ret%s: the return address on the stack (at rsp = %#x) is not a canonical address. The stack was overwritten: a stack buffer overflow or a write through a dangling pointer to a stack variable.", where, rsp)
		return
	case x86asm.JMP, x86asm.CALL:
		switch a := inst.Args[0].(type) {
		case x86asm.Reg:
			r, _ := gpr(a)
			if v, ok := e.reg(r); ok && !isCanonical(v) {
				name := r.String()
				e.f.Kind = crash.FaultNonCanonical
				e.f.Register = name
				e.f.Address = crash.Addr(v)
				e.f.Explanation = fmt.Sprintf("General protection fault%s: %s to %s = %#x, which is not a canonical address: a corrupted function pointer (use after free, or a corrupted object or vtable).", where, strings.ToLower(inst.Op.String()), name, v)
				return
			}
		case x86asm.Mem:
			if len(accs) > 0 {
				a := &accs[0]
				e.f.Kind = crash.FaultNonCanonical
				if a.base != noReg && a.base != crash.RegRIP {
					e.f.Register = a.base.String()
				}
				e.f.Explanation = fmt.Sprintf("General protection fault%s: %s through the function pointer stored at %#x (%s), which is not a canonical address: a corrupted object or vtable, typically after a use after free.", where, strings.ToLower(inst.Op.String()), a.addr, a.operand)
				e.registerDetails(a)
				return
			}
		}
	}
	if align := alignment(inst.Op); align > 0 {
		for i := range accs {
			a := &accs[i]
			if a.addr%align == 0 {
				continue
			}
			e.f.Kind = crash.FaultBadPointer
			e.f.Address = crash.Addr(a.addr)
			if a.base != noReg && a.base != crash.RegRIP {
				e.f.Register = a.base.String()
			}
			cause := "the pointer is misaligned (a corrupted pointer, or a structure packed or allocated without the required alignment)"
			if a.base == crash.RegRSP || a.base == crash.RegRBP {
				cause = "the stack is misaligned: some caller broke the System V ABI's 16-byte stack alignment (typical of hand-written assembly, JIT-generated code or a corrupted stack)"
			}
			e.f.Explanation = fmt.Sprintf("General protection fault%s: %s needs a %d-byte aligned address, but %s = %#x is not; %s.", where, strings.ToLower(inst.Op.String()), align, a.operand, a.addr, cause)
			e.registerDetails(a)
			return
		}
	}
	e.f.Kind = crash.FaultUnknown
	e.f.Explanation = fmt.Sprintf("General protection fault%s on %s; the kernel gives no address and the operands look valid (a corrupted segment or an instruction not allowed here).", where, orUnknown(e.f.Instruction))
	for i := range accs {
		e.registerDetails(&accs[i])
	}
}

// privileged reports whether op faults with #GP in user mode.
func privileged(op x86asm.Op) bool {
	switch op {
	case x86asm.HLT, x86asm.CLI, x86asm.STI, x86asm.IN, x86asm.INSB, x86asm.INSW, x86asm.INSD, x86asm.OUT,
		x86asm.OUTSB, x86asm.OUTSW, x86asm.OUTSD, x86asm.LGDT, x86asm.LIDT, x86asm.LLDT, x86asm.LTR,
		x86asm.LMSW, x86asm.CLTS, x86asm.INVD, x86asm.WBINVD, x86asm.INVLPG, x86asm.RDMSR, x86asm.WRMSR,
		x86asm.IRET, x86asm.IRETD, x86asm.IRETQ, x86asm.SYSRET, x86asm.SYSEXIT, x86asm.SWAPGS, x86asm.INT, x86asm.INTO:
		return true
	}
	return false
}

// alignment returns the alignment an SSE/AVX instruction requires of its
// memory operand, or 0.
func alignment(op x86asm.Op) uint64 {
	switch op {
	case x86asm.MOVAPS, x86asm.MOVAPD, x86asm.MOVDQA, x86asm.MOVNTPS, x86asm.MOVNTPD, x86asm.MOVNTDQ,
		x86asm.MOVNTDQA, x86asm.FXSAVE, x86asm.FXRSTOR, x86asm.FXSAVE64, x86asm.FXRSTOR64:
		return 16
	case x86asm.VMOVAPS, x86asm.VMOVAPD, x86asm.VMOVDQA, x86asm.VMOVNTPS, x86asm.VMOVNTPD, x86asm.VMOVNTDQ, x86asm.VMOVNTDQA:
		return 16 // at least; 32 for ymm operands
	}
	return 0
}

// stackRegion returns the writable mapping holding rsp (the thread's stack).
func (e *explainer) stackRegion() *Mapping {
	rsp, ok := e.reg(crash.RegRSP)
	if !ok {
		return nil
	}
	if m := e.mapping(rsp); m != nil && m.Write {
		return m
	}
	return nil
}

// guardLike reports whether addr is unmapped or in a mapping without any
// access (a guard page).
func (e *explainer) guardLike(addr uint64) bool {
	m := e.mapping(addr)
	return m == nil || (!m.Read && !m.Write && !m.Exec)
}

// stackOverflow decides whether the fault is a stack overflow and explains it.
func (e *explainer) stackOverflow(fault uint64, acc *access, verb string) bool {
	rsp, ok := e.reg(crash.RegRSP)
	if !ok || fault == 0 || len(e.in.Mappings) == 0 {
		return false
	}
	stack := e.stackRegion()
	guard := e.guardLike(fault)
	why := ""
	switch {
	case acc != nil && acc.implicit && acc.write && guard && rsp-fault <= 4096:
		why = fmt.Sprintf("the %s instruction could not store to the stack at %#x (rsp = %#x): it hit the guard page under the thread's stack", strings.ToLower(e.inst.Op.String()), fault, rsp)
	case fault < rsp && rsp-fault <= nearSP && guard:
		why = fmt.Sprintf("%s address %#x, %d bytes below the stack pointer (rsp = %#x), ran into the guard gap under the thread's stack", verb, fault, rsp-fault, rsp)
	case stack != nil && fault < stack.Start && stack.Start-fault <= stackGap && guard:
		why = fmt.Sprintf("%s address %#x, %d bytes below the bottom of the stack mapping, hit the guard gap under it", verb, fault, stack.Start-fault)
	case stack == nil && e.stackAbove(rsp) && guard && (fault >= rsp && fault-rsp <= nearSP || fault < rsp && rsp-fault <= nearSP):
		why = fmt.Sprintf("the stack pointer (rsp = %#x) has moved below the thread's stack into the guard gap, and %s address %#x failed", rsp, verb, fault)
	}
	if why == "" && e.recursion() != "" && guard && (fault <= rsp && rsp-fault <= stackGap || fault > rsp && fault-rsp <= nearSP) {
		why = fmt.Sprintf("%s address %#x near the stack pointer (rsp = %#x) failed", verb, fault, rsp)
	}
	if why == "" {
		return false
	}
	e.overflow(why, rsp, stack)
	return true
}

// stackExhausted decides, whatever the signal and its code, whether the
// stack pointer or a stack access of the faulting instruction lies in the
// guard gap under a thread's stack. The kernel reports such a fault as
// SEGV_MAPERR at the address, but also as SI_KERNEL without an address
// (when it could not push the frame of the process's SIGSEGV handler on
// the exhausted stack, as under Apache), as SEGV_ACCERR (a guard page
// mapped without access) or as SIGBUS.
func (e *explainer) stackExhausted(accs []access) bool {
	rsp, ok := e.reg(crash.RegRSP)
	if !ok || len(e.in.Mappings) == 0 {
		return false
	}
	why := ""
	var stack *Mapping
	if top := e.stackOver(rsp); top != nil {
		stack = top
		why = fmt.Sprintf("the stack pointer (rsp = %#x) is %#x bytes below the thread's stack mapping, in the guard gap under it", rsp, top.Start-rsp)
		e.f.Address = crash.Addr(rsp)
		e.f.Register = crash.RegRSP.String()
	} else {
		for i := range accs {
			a := &accs[i]
			if !a.implicit && a.base != crash.RegRSP && a.base != crash.RegRBP {
				continue
			}
			top := e.stackOver(a.addr)
			if top == nil {
				continue
			}
			verb := "read"
			if a.write {
				verb = "write"
			}
			what := "the instruction"
			if e.inst != nil {
				what = "the " + strings.ToLower(e.inst.Op.String()) + " instruction"
			}
			why = fmt.Sprintf("%s could not %s the stack at %#x (rsp = %#x), %#x bytes below the thread's stack mapping, in the guard gap under it", what, verb, a.addr, rsp, top.Start-a.addr)
			e.f.Address = crash.Addr(a.addr)
			e.f.Register = a.base.String()
			stack = top
			break
		}
	}
	if why == "" {
		return false
	}
	e.overflow(why, rsp, stack)
	return true
}

// stackOver returns the writable mapping that starts within stackGap above
// addr when addr itself is unmapped or in a guard page: the stack whose
// guard gap addr is in; nil otherwise.
func (e *explainer) stackOver(addr uint64) *Mapping {
	if !e.guardLike(addr) {
		return nil
	}
	var best *Mapping
	for i := range e.in.Mappings {
		m := &e.in.Mappings[i]
		if m.Write && m.Start > addr && m.Start-addr <= stackGap && (best == nil || m.Start < best.Start) {
			best = m
		}
	}
	return best
}

// overflow explains a stack overflow: why the access failed, then what
// filled the stack.
func (e *explainer) overflow(why string, rsp uint64, stack *Mapping) {
	e.f.Kind = crash.FaultStackOverflow
	e.f.Explanation = fmt.Sprintf("Stack overflow%s: %s.", e.where(), why)
	if rec := e.recursion(); rec != "" {
		e.f.Explanation += " " + rec
	} else if n := len(e.in.Frames); n > 200 {
		e.f.Explanation += fmt.Sprintf(" The stack holds %d frames: deep or runaway recursion.", n)
	} else {
		e.f.Explanation += " The thread used up its stack: deep recursion, or very large local variables."
	}
	if stack != nil {
		e.detail("stack mapping %s (%d KiB)", describeMapping(stack), (stack.End-stack.Start)>>10)
	} else if m := e.mapping(rsp); m != nil {
		e.detail("rsp = %#x lies in the guard mapping %s", rsp, describeMapping(m))
	} else if near := e.nearest(rsp); near != "" {
		e.detail("rsp = %#x is outside any writable mapping; nearest mapping: %s", rsp, near)
	}
}

// stackAbove reports whether a writable mapping starts within stackGap
// above addr: addr is in the guard gap of a downward-growing stack.
func (e *explainer) stackAbove(addr uint64) bool {
	for i := range e.in.Mappings {
		m := &e.in.Mappings[i]
		if m.Write && m.Start > addr && m.Start-addr <= stackGap {
			return true
		}
	}
	return false
}

// recursion describes runaway recursion in the frames: a function that
// repeats many times, or a very deep stack. "" when there is none.
func (e *explainer) recursion() string {
	frames := e.in.Frames
	if len(frames) < 100 {
		return ""
	}
	counts := map[string]int{}
	best, bestN := "", 0
	for i := range frames {
		f := &frames[i]
		key := f.Function
		if key == "" {
			continue
		}
		counts[key]++
		if counts[key] > bestN {
			best, bestN = key, counts[key]
		}
	}
	if bestN >= 50 {
		return fmt.Sprintf("The stack holds %d frames and %s appears %d times in them: runaway recursion.", len(frames), best, bestN)
	}
	if len(frames) >= 1000 {
		return fmt.Sprintf("The stack holds %d frames: runaway recursion.", len(frames))
	}
	return ""
}

func (e *explainer) busError(fault uint64, verb string) {
	e.f.Kind = crash.FaultBusError
	m := e.mapping(fault)
	switch {
	case e.in.Signal.Code == signals.BUS_MCEERR_AR || e.in.Signal.Code == 5:
		e.f.Explanation = fmt.Sprintf("Bus error%s: the hardware reported an uncorrectable memory error at %#x (machine check); check the kernel log and the RAM.", e.where(), fault)
	case m != nil && m.Path != "" && !strings.HasPrefix(m.Path, "["):
		e.f.Explanation = fmt.Sprintf("Bus error%s: %s %#x in a mapping of %s beyond the end of the file: the file was truncated while mapped (e.g. rewritten in place, an OPcache file cache or a shared-memory file that shrank).", e.where(), verb, fault, mappingName(m))
		e.detail("mapping %s", describeMapping(m))
	case m != nil && (m.Path == "" || strings.HasPrefix(m.Path, "/dev/shm")):
		e.f.Explanation = fmt.Sprintf("Bus error%s: %s %#x in shared or anonymous memory the kernel could not provide (a shared memory file that shrank, or /dev/shm or hugepages full).", e.where(), verb, fault)
		e.detail("mapping %s", describeMapping(m))
	case e.in.Signal.Code == signals.BUS_ADRALN:
		e.f.Explanation = fmt.Sprintf("Bus error%s: misaligned access to %#x.", e.where(), fault)
	default:
		e.f.Explanation = fmt.Sprintf("Bus error%s: %s address %#x failed (memory the kernel could not provide, e.g. a truncated mapped file).", e.where(), verb, fault)
	}
}

func regSuffix(acc *access) string {
	if acc == nil || acc.base == noReg || acc.base == crash.RegRIP {
		return ""
	}
	if acc.index != noReg || acc.addr != acc.baseVal {
		return fmt.Sprintf(" (%s = %#x, operand %s)", acc.base, acc.baseVal, acc.operand)
	}
	return fmt.Sprintf(" (%s = %#x)", acc.base, acc.baseVal)
}

func (e *explainer) registerDetails(acc *access) {
	if acc == nil || acc.base == noReg {
		return
	}
	if acc.base == crash.RegRIP {
		e.detail("rip-relative operand %s; accessed address %#x", acc.operand, acc.addr)
		return
	}
	d := fmt.Sprintf("%s = %#x", acc.base, acc.baseVal)
	if acc.index != noReg {
		if v, ok := e.reg(acc.index); ok {
			d += fmt.Sprintf(", %s = %#x", acc.index, v)
		}
	}
	for _, s := range e.f.Details {
		if strings.HasPrefix(s, d+";") {
			return
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
	if dist == 0 {
		return fmt.Sprintf("%s (holds the address)", describeMapping(best))
	}
	if addr < best.Start {
		return fmt.Sprintf("%s (%#x bytes above the address)", describeMapping(best), dist)
	}
	return fmt.Sprintf("%s (%#x bytes below the address)", describeMapping(best), dist)
}

func (e *explainer) null(acc *access, fault uint64, verb string) {
	e.f.Kind = crash.FaultNullDeref
	where := e.where()
	if acc == nil || acc.base == noReg || acc.base == crash.RegRIP {
		e.f.Explanation = fmt.Sprintf("NULL pointer dereference%s: %s address %#x, in the first 64 KiB where nothing is ever mapped: a NULL pointer (plus a field offset) was used.", where, verb, fault)
		return
	}
	off := fault - acc.baseVal
	field := ""
	if acc.baseVal <= fault && off > 0 {
		field = fmt.Sprintf(" the field at offset %#x of", off)
	}
	what := fmt.Sprintf("%s = %#x", acc.base, acc.baseVal)
	if acc.baseVal == 0 {
		what = fmt.Sprintf("%s, which was NULL", acc.base)
	} else if acc.baseVal >= nullLimit {
		// The index made it small: unusual, say it as it is.
		e.f.Explanation = fmt.Sprintf("NULL pointer dereference%s: %s address %#x (operand %s).", where, verb, fault, acc.operand)
		return
	}
	n, via := 0, noReg
	if acc.baseVal < nullLimit {
		n, via = e.argument(acc.base)
	}
	if n > 0 {
		e.f.Argument = n
		fn := e.function()
		arg := fmt.Sprintf("the %s argument (%s) of %s", ordinals[n], crash.ArgRegs[n-1], fn)
		var b strings.Builder
		fmt.Fprintf(&b, "NULL pointer dereference%s: %s was ", where, arg)
		if acc.baseVal == 0 {
			b.WriteString("NULL")
		} else {
			fmt.Fprintf(&b, "%#x, not a valid pointer", acc.baseVal)
		}
		if via != noReg {
			fmt.Fprintf(&b, " (%s still held a copy of it)", via)
		}
		if field != "" {
			fmt.Fprintf(&b, ", and the function tried to %s%s it (address %#x).", infinitive(verb), field, fault)
		} else {
			fmt.Fprintf(&b, ", and the function tried to %s memory through it (address %#x).", infinitive(verb), fault)
		}
		if len(e.in.Frames) > 1 {
			fmt.Fprintf(&b, " Its caller, %s, passed the NULL pointer.", callerLabel(e.in.Frames, 1))
		}
		e.f.Explanation = b.String()
		e.detail("System V x86-64 ABI: rdi, rsi, rdx, rcx, r8, r9 carry the first six integer or pointer arguments, and %s had not changed %s before the fault", fn, acc.base)
		return
	}
	if field != "" {
		e.f.Explanation = fmt.Sprintf("NULL pointer dereference%s: %s%s a structure through %s (address %#x).", where, verb, field, what, fault)
	} else {
		e.f.Explanation = fmt.Sprintf("NULL pointer dereference%s: %s address %#x through %s.", where, verb, fault, what)
	}
	if len(e.in.Frames) > 0 {
		if sf := stringFunc(&e.in.Frames[0]); sf != "" {
			caller := "its caller"
			if len(e.in.Frames) > 1 {
				caller = "its caller, " + callerLabel(e.in.Frames, 1) + ","
			}
			e.f.Explanation += fmt.Sprintf(" %s is the C library's %s(), which only reads and writes through the pointers it is given: %s passed it a NULL pointer.", e.function(), sf, caller)
		}
	}
}

// maxPrefix is how many instructions from the function start the argument
// analysis follows: the fault must be within the function's first
// instructions (its prologue and the first uses of the arguments; the
// pcre2_jit_match_8 NULL fault is the 19th) for an argument register to be
// trusted.
const maxPrefix = 48

// argument reports which System V argument reg holds at the fault, when that
// can be proven: the fault is at the first instruction of the crashing
// function, or every instruction from the function's start to the fault is
// straight-line code (at most maxPrefix instructions, no branch, call or
// alignment padding) that does not write reg, and none of the code after
// the fault that FunctionCode shows branches back to it. A register that
// received a plain copy of an argument register ("mov rbx, rdi") counts,
// and via names it.
func (e *explainer) argument(reg crash.Reg) (n int, via crash.Reg) {
	if len(e.in.Frames) == 0 {
		return 0, noReg
	}
	f0 := &e.in.Frames[0]
	if f0.Function == "" && f0.FunctionSource == "" {
		return 0, noReg // the function's start is unknown
	}
	holds := map[crash.Reg]int{}
	for i, r := range crash.ArgRegs {
		holds[r] = i + 1
	}
	off := uint64(f0.FunctionOffset)
	if off == 0 {
		return holds[reg], noReg
	}
	code := e.in.FunctionCode
	if uint64(len(code)) < off {
		return 0, noReg
	}
	pos, count := uint64(0), 0
	for pos < off {
		inst, err := decode(code[pos:])
		if err != nil {
			return 0, noReg
		}
		count++
		if count > maxPrefix || branches(inst.Op) {
			return 0, noReg
		}
		if inst.Op == x86asm.NOP && !(pos == 0 && inst.Len == 4) {
			return 0, noReg // alignment padding: the fault may be a loop head
		}
		if inst.Op == x86asm.MOV && inst.DataSize == 64 {
			dst, ok1 := inst.Args[0].(x86asm.Reg)
			src, ok2 := inst.Args[1].(x86asm.Reg)
			if ok1 && ok2 && dst >= x86asm.RAX && dst <= x86asm.R15 && src >= x86asm.RAX && src <= x86asm.R15 {
				d, _ := gpr(dst)
				if a, ok := holds[gprOrNone(src)]; ok {
					holds[d] = a
				} else {
					delete(holds, d)
				}
				pos += uint64(inst.Len)
				continue
			}
		}
		for _, w := range written(&inst) {
			delete(holds, w)
		}
		pos += uint64(inst.Len)
	}
	if pos != off {
		return 0, noReg // the fault is not on an instruction boundary of this decoding
	}
	a, ok := holds[reg]
	if !ok {
		return 0, noReg
	}
	// Code after the fault that jumps back to or before it makes the fault a
	// loop head: the register may have been rewritten in a later iteration.
	for p, steps := off, 0; p < uint64(len(code)) && steps < 2048; steps++ {
		inst, err := decode(code[p:])
		if err != nil {
			break
		}
		if rel, ok := inst.Args[0].(x86asm.Rel); ok && branches(inst.Op) {
			target := int64(p) + int64(inst.Len) + int64(rel)
			if target >= 0 && uint64(target) <= off {
				return 0, noReg
			}
		}
		p += uint64(inst.Len)
	}
	via = noReg
	if reg != crash.ArgRegs[a-1] {
		via = reg
	}
	return a, via
}

// branches reports whether op transfers control (jumps, calls, returns,
// system calls, traps).
func branches(op x86asm.Op) bool {
	switch op {
	case x86asm.JMP, x86asm.CALL, x86asm.RET, x86asm.LRET, x86asm.SYSCALL, x86asm.SYSENTER, x86asm.INT, x86asm.UD2,
		x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE, x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ, x86asm.IRETQ:
		return true
	}
	return op >= x86asm.JA && op <= x86asm.JS
}

// written returns the 64-bit registers an instruction writes, explicitly or
// implicitly (conservatively: when in doubt, a register counts as written).
func written(inst *x86asm.Inst) []crash.Reg {
	var out []crash.Reg
	if r, ok := inst.Args[0].(x86asm.Reg); ok && writesFirstOperand(inst.Op) {
		out = append(out, gprOrNone(r))
	}
	switch inst.Op {
	case x86asm.XCHG, x86asm.XADD, x86asm.MULX:
		if r, ok := inst.Args[1].(x86asm.Reg); ok {
			out = append(out, gprOrNone(r))
		}
	case x86asm.CMPXCHG, x86asm.CBW, x86asm.CWDE, x86asm.CDQE, x86asm.LAHF:
		out = append(out, crash.RegRAX)
	case x86asm.MUL, x86asm.DIV, x86asm.IDIV, x86asm.RDTSC, x86asm.XGETBV, x86asm.CMPXCHG8B, x86asm.CMPXCHG16B, x86asm.RDPMC:
		out = append(out, crash.RegRAX, crash.RegRDX)
	case x86asm.IMUL:
		if inst.Args[1] == nil {
			out = append(out, crash.RegRAX, crash.RegRDX)
		}
	case x86asm.CWD, x86asm.CDQ, x86asm.CQO:
		out = append(out, crash.RegRDX)
	case x86asm.RDTSCP:
		out = append(out, crash.RegRAX, crash.RegRDX, crash.RegRCX)
	case x86asm.CPUID:
		out = append(out, crash.RegRAX, crash.RegRBX, crash.RegRCX, crash.RegRDX)
	case x86asm.SYSCALL:
		out = append(out, crash.RegRAX, crash.RegRCX, crash.RegR11)
	}
	if stringOp(inst.Op) {
		out = append(out, crash.RegRSI, crash.RegRDI, crash.RegRCX, crash.RegRAX)
	}
	return out
}

func (e *explainer) execFault(rip uint64, m *Mapping) {
	e.f.Address = crash.Addr(rip)
	caller := ""
	if len(e.in.Frames) > 1 {
		caller = " from " + callerLabel(e.in.Frames, 1)
	}
	switch {
	case rip < nullLimit:
		e.f.Kind = crash.FaultExecUnmapped
		e.f.Explanation = fmt.Sprintf("The process jumped to address %#x%s: a call through a NULL function pointer (a callback, method or handler that was never set or was cleared).", rip, caller)
	case m == nil:
		e.f.Kind = crash.FaultExecUnmapped
		e.f.Explanation = fmt.Sprintf("The process jumped to unmapped address %#x%s: a call through a dangling or corrupted function pointer, a corrupted return address, or code that was unmapped (a JIT buffer reset, an unloaded library).", rip, caller)
		if near := e.nearest(rip); near != "" {
			e.detail("nearest mapping: %s", near)
		}
	default:
		e.f.Kind = crash.FaultExecNonExec
		e.f.Explanation = fmt.Sprintf("The process tried to execute non-executable memory at %#x (%s)%s: a corrupted function pointer or return address pointing into data.", rip, mappingName(m), caller)
		e.detail("mapping %s", describeMapping(m))
	}
	if rsp, ok := e.reg(crash.RegRSP); ok {
		e.detail("rsp = %#x; the return address of the call that jumped there is usually at [rsp]", rsp)
	}
}

// infinitive turns "reading" into "read".
func infinitive(verb string) string {
	switch verb {
	case "reading":
		return "read"
	case "writing":
		return "write"
	}
	return "access"
}
