package x86sym

import (
	"golang.org/x/arch/x86/x86asm"
)

// step evaluates one instruction; it returns a second path to follow (a
// taken branch, the other outcome of a conditional move) and whether this
// path goes on (at s.pc, updated).
func (e *evaluator) step(s *state, inst x86asm.Inst, next uint64) (*state, bool) {
	pc := s.pc
	s.pc = next
	switch inst.Op {
	case x86asm.RET:
		e.addReturn(Return{PC: pc, Value: s.get(x86asm.RAX)})
		return nil, false
	case x86asm.JMP:
		target, ok := branchTarget(inst, next)
		if !ok {
			// a jump table, or a tail call through the GOT
			if m, isMem := inst.Args[0].(x86asm.Mem); isMem && m.Base == x86asm.RIP && m.Index == 0 {
				slot := uint64(int64(next) + m.Disp)
				if name := e.callName(slot); name != "" {
					e.addCall(s, pc, 0, name, true)
					e.addReturn(Return{PC: pc, Value: Value{Base: newNode(Node{Kind: CallResult, Name: name})}})
				}
			}
			return nil, false
		}
		if e.inside(target) {
			s.pc = target
			return nil, true
		}
		name := e.callName(target)
		e.addCall(s, pc, target, name, true)
		e.addReturn(Return{PC: pc, Value: Value{Base: newNode(Node{Kind: CallResult, Addr: target, Name: name})}})
		return nil, false
	case x86asm.CALL:
		target, _ := branchTarget(inst, next)
		name := e.callName(target)
		if m, ok := inst.Args[0].(x86asm.Mem); ok {
			e.access(s, pc, inst, m, false)
			if m.Base == x86asm.RIP && m.Index == 0 {
				name = e.callName(uint64(int64(next) + m.Disp))
			}
		}
		e.addCall(s, pc, target, name, false)
		for _, r := range callerSaved {
			s.set(r, unknown())
		}
		s.set(x86asm.RAX, Value{Base: newNode(Node{Kind: CallResult, Addr: target, Name: name})})
		return nil, true
	case x86asm.UD1, x86asm.UD2, x86asm.HLT, x86asm.INT:
		return nil, false
	}
	if isCondBranch(inst.Op) {
		target, ok := branchTarget(inst, next)
		if ok && e.inside(target) {
			f := s.clone()
			f.pc = target
			return f, true
		}
		return nil, true
	}
	if isCondMove(inst.Op) {
		return e.condMove(s, pc, inst), true
	}
	e.effect(s, pc, inst)
	return nil, true
}

// condMove evaluates a CMOVcc both ways: s keeps the destination, the
// returned path (at the next instruction) takes the source.
func (e *evaluator) condMove(s *state, pc uint64, inst x86asm.Inst) *state {
	dst, _ := inst.Args[0].(x86asm.Reg)
	var v Value
	switch src := inst.Args[1].(type) {
	case x86asm.Mem:
		v = e.load(s, pc, inst, src, inst.MemBytes, dst)
	case x86asm.Reg:
		v = s.getWidth(src)
	default:
		v = unknown()
	}
	if dst == 0 {
		return nil
	}
	if width(dst) == 4 {
		// a 32-bit cmov zero-extends its destination even when it does not move
		s.set(dst, s.getWidth(dst))
	}
	f := s.clone()
	f.set(dst, v)
	return f
}

// addr computes the address of a memory operand, or an unknown value.
func (s *state) addr(m x86asm.Mem, next uint64) Value {
	if m.Segment == x86asm.FS {
		if m.Index != 0 {
			return unknown()
		}
		if m.Base == 0 {
			return Value{Base: threadPointer(Value{}), Off: m.Disp}
		}
		off := s.get(full(m.Base))
		if !off.Known() {
			return unknown()
		}
		if off.IsConst() {
			return Value{Base: threadPointer(Value{}), Off: off.Off + m.Disp}
		}
		return Value{Base: threadPointer(off), Off: m.Disp}
	}
	if m.Segment != 0 && m.Segment != x86asm.DS && m.Segment != x86asm.SS && m.Segment != x86asm.ES {
		return unknown()
	}
	if m.Base == x86asm.RIP {
		if m.Index != 0 {
			return unknown()
		}
		return Value{Base: newNode(Node{Kind: Global, Addr: uint64(int64(next) + m.Disp)})}
	}
	var v Value
	switch {
	case m.Base == 0:
		v = Value{}
	case m.Base == x86asm.RSP:
		return unknown() // stack slots are handled by the callers
	default:
		v = s.get(full(m.Base))
	}
	if m.Index != 0 {
		idx := s.get(full(m.Index))
		if width(m.Index) < 8 {
			idx = s.getWidth(m.Index)
		}
		var shift uint8
		switch m.Scale {
		case 2:
			shift = 1
		case 4:
			shift = 2
		case 8:
			shift = 3
		}
		if !idx.Known() || !v.Known() {
			return unknown()
		}
		v = add(v, shl(idx, shift))
	}
	if !v.Known() {
		return unknown()
	}
	v.Off += m.Disp
	return v
}

// stackSlot returns the entry-rsp-relative offset of an [rsp+d] operand.
func (s *state) stackSlot(m x86asm.Mem) (int64, bool) {
	if m.Base != x86asm.RSP || m.Index != 0 || !s.spOK || (m.Segment != 0 && m.Segment != x86asm.SS) {
		return 0, false
	}
	return s.sp + m.Disp, true
}

// get returns the value of a 64-bit register (or of the family of r).
func (s *state) get(r x86asm.Reg) Value {
	f := full(r)
	if f == 0 {
		return unknown()
	}
	return s.regs[f-x86asm.RAX]
}

// getWidth returns the value of r at its own width: a 32-bit register
// holding a load of at most 4 bytes is that load, a constant is
// truncated, anything else narrower than 64 bits is unknown.
func (s *state) getWidth(r x86asm.Reg) Value {
	v := s.get(r)
	w := width(r)
	if w == 8 || !v.Known() {
		return v
	}
	if v.IsConst() {
		return Value{Off: int64(uint64(v.Off) & (1<<(8*uint(w)) - 1))}
	}
	if v.Off == 0 && v.Base.Kind == Load && v.Base.Size <= w {
		return v
	}
	if v.Off == 0 && v.Base.Kind == Arg && w == 4 {
		return v // a 32-bit argument is passed in the low half of its register
	}
	return unknown()
}

// set writes a register; 8- and 16-bit writes keep the upper bits, so the
// value becomes unknown.
func (s *state) set(r x86asm.Reg, v Value) {
	if full(r) == x86asm.RSP {
		s.spOK = false
		return
	}
	f := full(r)
	if f == 0 {
		return
	}
	if width(r) < 4 {
		v = unknown()
	}
	if width(r) == 4 && v.IsConst() {
		v.Off = int64(uint32(v.Off))
	}
	if v.Known() && v.depth() > maxExprDepth {
		v = unknown()
	}
	s.regs[f-x86asm.RAX] = v
}

// load reads memory symbolically; dest is the register the value goes to
// (0 for none).
func (e *evaluator) load(s *state, pc uint64, inst x86asm.Inst, m x86asm.Mem, size int, dest x86asm.Reg) Value {
	if slot, ok := s.stackSlot(m); ok {
		if v, ok := s.loadSlot(slot); ok {
			return v
		}
		return unknown()
	}
	a := s.addr(m, s.pc)
	if !a.Known() || m.Base == x86asm.RSP {
		return unknown()
	}
	var v Value
	switch g, off, isGlobal := a.GlobalOf(); {
	case a.Base != nil && a.Base.Kind == ThreadPointer && a.Base.From == nil && a.Off == 0 && size == 8:
		v = a // fs:0 holds the thread pointer itself (x86-64 TLS variant II)
	case isGlobal && size == 8 && e.f.Pointers != nil && e.f.Pointers[uint64(int64(g)+off)] != 0:
		v = Value{Base: newNode(Node{Kind: Global, Addr: e.f.Pointers[uint64(int64(g)+off)]})}
	default:
		v = Value{Base: newNode(Node{Kind: Load, From: &a, Size: size})}
	}
	acc := e.newAccess(s, pc, inst, a, false)
	acc.Value, acc.Dest = v, dest
	if dest != 0 {
		acc.Prior = s.get(dest)
	}
	e.record(acc)
	return v
}

// newAccess prepares the record of an access at address a.
func (e *evaluator) newAccess(s *state, pc uint64, inst x86asm.Inst, a Value, write bool) Access {
	acc := Access{PC: pc, Addr: a, Size: inst.MemBytes, Write: write, Op: inst.Op.String(), Value: unknown(), Other: unknown(), Prior: unknown()}
	for _, arg := range inst.Args {
		switch x := arg.(type) {
		case x86asm.Imm:
			acc.Imm, acc.HasImm = int64(x), true
		case x86asm.Reg:
			if inst.Op == x86asm.CMP || inst.Op == x86asm.TEST {
				acc.Other = s.getWidth(x)
			}
		}
	}
	return acc
}

// record keeps an access (deduplicated).
func (e *evaluator) record(acc Access) {
	kind := byte('M')
	if acc.Write {
		kind = 'W'
	}
	k := factKey{kind: kind, pc: acc.PC, a: acc.Addr.Key(), b: acc.Value.Key() + "," + acc.Other.Key(), n: acc.Imm, m: int64(acc.Size)}
	if len(e.facts.Accesses) < maxAccessKept && e.keep(k) {
		e.facts.Accesses = append(e.facts.Accesses, acc)
	}
}

// access records a memory access that is neither a load into a register
// nor a store of a known value, and returns its address.
func (e *evaluator) access(s *state, pc uint64, inst x86asm.Inst, m x86asm.Mem, write bool) Value {
	if _, ok := s.stackSlot(m); ok || m.Base == x86asm.RSP {
		return unknown()
	}
	a := s.addr(m, s.pc)
	if !a.Known() {
		return a
	}
	e.record(e.newAccess(s, pc, inst, a, write))
	return a
}

// effect applies a non-branch instruction to s.
func (e *evaluator) effect(s *state, pc uint64, inst x86asm.Inst) {
	args := inst.Args
	dst, _ := args[0].(x86asm.Reg)
	if dst != 0 && full(dst) == 0 {
		dst = 0 // vector and other registers are not modelled
	}
	dstMem, dstIsMem := args[0].(x86asm.Mem)
	switch inst.Op {
	case x86asm.NOP, x86asm.PREFETCHT0, x86asm.PREFETCHNTA, x86asm.LFENCE:
		return
	case x86asm.PUSH:
		if s.spOK {
			s.sp -= 8
			if r, ok := args[0].(x86asm.Reg); ok {
				s.storeSlot(s.sp, s.get(r))
			} else {
				s.storeSlot(s.sp, unknown())
			}
		}
		return
	case x86asm.POP:
		v := unknown()
		if s.spOK {
			if sv, ok := s.loadSlot(s.sp); ok {
				v = sv
			}
			s.sp += 8
		}
		if dst != 0 {
			s.set(dst, v)
		}
		return
	case x86asm.LEA:
		if m, ok := args[1].(x86asm.Mem); ok && dst != 0 {
			v := unknown()
			if m.Base != x86asm.RSP {
				v = s.addr(m, s.pc)
			}
			if width(dst) < 8 && !v.IsConst() {
				v = unknown()
			}
			if v.Known() && !v.IsConst() {
				e.addLea(Lea{PC: pc, Dest: dst, Value: v})
			}
			s.set(dst, v)
		}
		return
	case x86asm.MOV, x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD:
		e.move(s, pc, inst, dst, dstMem, dstIsMem)
		return
	case x86asm.ADD, x86asm.SUB:
		e.addSub(s, pc, inst, dst, dstMem, dstIsMem)
		return
	case x86asm.SHL:
		if dst != 0 {
			v := unknown()
			if imm, ok := args[1].(x86asm.Imm); ok && width(dst) == 8 {
				v = shl(s.get(dst), uint8(imm))
			}
			s.set(dst, v)
		} else if dstIsMem {
			e.access(s, pc, inst, dstMem, true)
		}
		return
	case x86asm.AND:
		e.and(s, pc, inst, dst, dstMem, dstIsMem)
		return
	case x86asm.XOR: // xor r,r is zero
		if r2, ok := args[1].(x86asm.Reg); ok && dst != 0 && full(r2) == full(dst) {
			s.set(dst, Value{})
			return
		}
	case x86asm.CMP, x86asm.TEST:
		if m, ok := args[0].(x86asm.Mem); ok {
			e.access(s, pc, inst, m, false)
			return
		}
		if m, ok := args[1].(x86asm.Mem); ok {
			e.access(s, pc, inst, m, false)
			return
		}
		c := Compare{PC: pc, Op: inst.Op.String(), A: unknown(), B: unknown()}
		if r, ok := args[0].(x86asm.Reg); ok {
			c.A = s.getWidth(r)
		}
		switch b := args[1].(type) {
		case x86asm.Reg:
			c.B = s.getWidth(b)
		case x86asm.Imm:
			c.Imm, c.HasImm = int64(b), true
		}
		if c.A.Known() && (c.B.Known() || c.HasImm) {
			e.addCompare(c)
		}
		return
	case x86asm.CMPSB:
		if hasRepeat(inst) {
			e.addCall(s, pc, 0, InlineCompare, false)
		}
	}
	// Anything else: record its memory operands, and its destination becomes unknown.
	for i, a := range args {
		if m, ok := a.(x86asm.Mem); ok {
			e.access(s, pc, inst, m, i == 0 && writesFirst(inst.Op))
		}
	}
	if dst != 0 {
		s.set(dst, opaqueAt(pc))
	}
	switch inst.Op {
	case x86asm.CDQE:
		s.set(x86asm.RAX, opaqueAt(pc))
	case x86asm.XCHG, x86asm.XADD, x86asm.CMPXCHG:
		if r, ok := args[1].(x86asm.Reg); ok {
			s.set(r, unknown())
		}
		s.set(x86asm.RAX, unknown())
	case x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV, x86asm.CQO, x86asm.CDQ, x86asm.CPUID, x86asm.RDTSC, x86asm.SYSCALL:
		for _, r := range []x86asm.Reg{x86asm.RAX, x86asm.RDX, x86asm.RCX, x86asm.RBX, x86asm.R11} {
			s.set(r, unknown())
		}
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ, x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ,
		x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ, x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ,
		x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ:
		for _, r := range []x86asm.Reg{x86asm.RSI, x86asm.RDI, x86asm.RCX, x86asm.RAX} {
			s.set(r, unknown())
		}
	}
}

// move evaluates MOV, MOVZX, MOVSX and MOVSXD.
func (e *evaluator) move(s *state, pc uint64, inst x86asm.Inst, dst x86asm.Reg, dstMem x86asm.Mem, dstIsMem bool) {
	if dstIsMem {
		e.store(s, pc, inst, dstMem, inst.Args[1])
		return
	}
	if dst == 0 {
		if m, ok := inst.Args[1].(x86asm.Mem); ok {
			e.access(s, pc, inst, m, false) // into a vector register: the access is still a fact
		}
		return
	}
	var v Value
	switch src := inst.Args[1].(type) {
	case x86asm.Reg:
		v = s.getWidth(src)
		if full(src) == x86asm.RSP || full(src) == 0 {
			v = unknown()
		}
	case x86asm.Mem:
		v = e.load(s, pc, inst, src, inst.MemBytes, dst)
	case x86asm.Imm:
		v = Value{Off: int64(src)}
	default:
		v = unknown()
	}
	if (inst.Op == x86asm.MOVSX || inst.Op == x86asm.MOVSXD) && !v.IsConst() {
		v = unknown()
	}
	s.set(dst, v)
}

// addSub evaluates ADD and SUB.
func (e *evaluator) addSub(s *state, pc uint64, inst x86asm.Inst, dst x86asm.Reg, dstMem x86asm.Mem, dstIsMem bool) {
	args := inst.Args
	if r, ok := args[0].(x86asm.Reg); ok && full(r) == x86asm.RSP {
		if imm, ok := args[1].(x86asm.Imm); ok && s.spOK && r == x86asm.RSP {
			if inst.Op == x86asm.ADD {
				s.sp += int64(imm)
			} else {
				s.sp -= int64(imm)
			}
			return
		}
		s.spOK = false
		return
	}
	if dstIsMem {
		e.access(s, pc, inst, dstMem, true)
		return
	}
	if dst == 0 {
		return
	}
	v := s.getWidth(dst)
	var d Value
	switch src := args[1].(type) {
	case x86asm.Imm:
		d = Value{Off: int64(src)}
		if v.Known() && !v.IsConst() {
			imm := int64(src)
			if inst.Op == x86asm.SUB {
				imm = -imm
			}
			e.addAdd(Add{PC: pc, Dest: dst, Before: v, Imm: imm})
		}
	case x86asm.Reg:
		d = s.getWidth(src)
	case x86asm.Mem:
		d = e.load(s, pc, inst, src, inst.MemBytes, 0)
	default:
		d = unknown()
	}
	switch {
	case !v.Known() || !d.Known():
		v = unknown()
	case inst.Op == x86asm.ADD:
		v = add(v, d)
	default:
		v = sub(v, d)
	}
	if width(dst) < 8 && !v.IsConst() {
		v = unknown()
	}
	s.set(dst, v)
}

// and evaluates AND: a mask applied to a value.
func (e *evaluator) and(s *state, pc uint64, inst x86asm.Inst, dst x86asm.Reg, dstMem x86asm.Mem, dstIsMem bool) {
	if dstIsMem {
		e.access(s, pc, inst, dstMem, true)
		return
	}
	if dst == 0 {
		return
	}
	v := unknown()
	cur := s.getWidth(dst)
	switch src := inst.Args[1].(type) {
	case x86asm.Imm:
		mask := uint64(int64(src))
		if width(dst) == 4 {
			mask &= 0xffffffff
		}
		if cur.Known() && width(dst) >= 4 {
			v = and(cur, mask)
		}
	case x86asm.Mem:
		loaded := e.load(s, pc, inst, src, inst.MemBytes, 0)
		if cur.IsConst() && loaded.Known() && width(dst) == 8 {
			v = and(loaded, uint64(cur.Off))
		}
	case x86asm.Reg:
		other := s.get(src)
		switch {
		case cur.IsConst() && other.Known() && width(dst) == 8:
			v = and(other, uint64(cur.Off))
		case other.IsConst() && cur.Known() && width(dst) == 8:
			v = and(cur, uint64(other.Off))
		}
	}
	s.set(dst, v)
}

// store records a store with its value and updates a stack slot.
func (e *evaluator) store(s *state, pc uint64, inst x86asm.Inst, m x86asm.Mem, src x86asm.Arg) {
	v := unknown()
	switch a := src.(type) {
	case x86asm.Reg:
		if full(a) != 0 {
			v = s.getWidth(a)
		}
	case x86asm.Imm:
		v = Value{Off: int64(a)}
	}
	if slot, ok := s.stackSlot(m); ok {
		s.storeSlot(slot, v)
		return
	}
	if m.Base == x86asm.RSP {
		return
	}
	a := s.addr(m, s.pc)
	if !a.Known() {
		return
	}
	acc := e.newAccess(s, pc, inst, a, true)
	acc.Value = v
	e.record(acc)
}

// writesFirst reports whether an instruction writes its first operand.
func writesFirst(op x86asm.Op) bool {
	switch op {
	case x86asm.BT, x86asm.UCOMISD, x86asm.UCOMISS, x86asm.COMISD, x86asm.COMISS, x86asm.PTEST:
		return false
	}
	return true
}

func branchTarget(inst x86asm.Inst, next uint64) (uint64, bool) {
	if r, ok := inst.Args[0].(x86asm.Rel); ok {
		return uint64(int64(next) + int64(r)), true
	}
	return 0, false
}

func isCondBranch(op x86asm.Op) bool {
	switch op {
	case x86asm.JA, x86asm.JAE, x86asm.JB, x86asm.JBE, x86asm.JE, x86asm.JG, x86asm.JGE, x86asm.JL, x86asm.JLE,
		x86asm.JNE, x86asm.JNO, x86asm.JNP, x86asm.JNS, x86asm.JO, x86asm.JP, x86asm.JS, x86asm.JCXZ, x86asm.JECXZ, x86asm.JRCXZ,
		x86asm.LOOP, x86asm.LOOPE, x86asm.LOOPNE:
		return true
	}
	return false
}

// hasRepeat reports whether inst has a REP/REPE or REPNE prefix.
func hasRepeat(inst x86asm.Inst) bool {
	for _, p := range inst.Prefix {
		if p == 0 {
			break
		}
		if b := p & 0xff; b == x86asm.PrefixREP || b == x86asm.PrefixREPN {
			return true
		}
	}
	return false
}

func isCondMove(op x86asm.Op) bool {
	switch op {
	case x86asm.CMOVA, x86asm.CMOVAE, x86asm.CMOVB, x86asm.CMOVBE, x86asm.CMOVE, x86asm.CMOVG, x86asm.CMOVGE,
		x86asm.CMOVL, x86asm.CMOVLE, x86asm.CMOVNE, x86asm.CMOVNO, x86asm.CMOVNP, x86asm.CMOVNS, x86asm.CMOVO,
		x86asm.CMOVP, x86asm.CMOVS:
		return true
	}
	return false
}

// full maps a general-purpose register to its 64-bit family (EAX -> RAX);
// 0 for others.
func full(r x86asm.Reg) x86asm.Reg {
	switch {
	case r >= x86asm.RAX && r <= x86asm.R15:
		return r
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return x86asm.RAX + (r - x86asm.EAX)
	case r >= x86asm.AX && r <= x86asm.R15W:
		return x86asm.RAX + (r - x86asm.AX)
	case r >= x86asm.AL && r <= x86asm.BL:
		return x86asm.RAX + (r - x86asm.AL)
	case r >= x86asm.AH && r <= x86asm.BH:
		return x86asm.RAX + (r - x86asm.AH)
	case r >= x86asm.SPB && r <= x86asm.R15B:
		return x86asm.RSP + (r - x86asm.SPB)
	}
	return 0
}

// width is the size of a register in bytes.
func width(r x86asm.Reg) int {
	switch {
	case r >= x86asm.RAX && r <= x86asm.R15:
		return 8
	case r >= x86asm.EAX && r <= x86asm.R15L:
		return 4
	case r >= x86asm.AX && r <= x86asm.R15W:
		return 2
	}
	return 1
}
