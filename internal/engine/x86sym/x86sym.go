// Package x86sym evaluates a small x86-64 function symbolically: it follows
// every path through the function's machine code (bounded) and records each
// memory access as an expression over the values the function starts with
// (its argument registers, the thread pointer, addresses of globals) and over
// earlier loads. "mov rax,[rip+X]; mov rdx,[rax+0x18]" becomes two loads:
// [G+0] with G the global at X, then [[G+0]+0x18].
//
// It exists to read structure layouts out of the code that uses them (the PHP
// runtime's accessors, see package php), so it models what such accessors do:
// moves, address arithmetic with constants, loads, compares, calls and tail
// calls, and stack spills. Everything else makes the destination unknown; an
// unknown value never produces a fact, so a construct it does not model costs
// a derivation, never a wrong one.
package x86sym

import (
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// Bounds of one evaluation: functions of interest are a few dozen
// instructions; these keep a hostile or huge input cheap.
const (
	maxCode       = 16 << 10 // bytes of code evaluated
	maxSteps      = 20000    // instructions evaluated over all paths
	maxVisits     = 3        // evaluations of one instruction (loops run a few times)
	maxPaths      = 256      // paths kept waiting
	maxExprDepth  = 8        // nesting of loads in one expression
	maxAccessKept = 4096     // accesses recorded
)

// NodeKind says what a Node stands for.
type NodeKind uint8

// The kinds of Node.
const (
	// Unknown is a value the evaluator does not model.
	Unknown NodeKind = iota
	// Const is an absolute number (no base).
	Const
	// Global is the address of a global: Addr is its link-time address.
	Global
	// Arg is the value a register held when the function was entered.
	Arg
	// ThreadPointer is the fs segment base (the thread pointer on x86-64
	// Linux), plus the value From when From is set.
	ThreadPointer
	// Load is the value read from memory at Addr (Size bytes).
	Load
	// CallResult is what a call left in rax; Addr is the call's target.
	CallResult
	// Sum is From + Other: two values added ("add rax,[rip+offset]" with
	// rax the TLS block: the per-thread address of a ZTS global).
	Sum
)

// Node is the base of a symbolic value. Nodes are compared by Key.
type Node struct {
	Kind NodeKind
	// Addr is the global's address (Global), the call target (CallResult).
	Addr uint64
	// Reg is the argument register (Arg).
	Reg x86asm.Reg
	// From is the address loaded from (Load), or the variable offset added
	// to the thread pointer (ThreadPointer).
	From *Value
	// Other is the second term of a Sum.
	Other *Value
	// Size is the width of a load in bytes.
	Size int
	key  string
}

// Value is Base + Off. A nil Base is the constant Off; a Base of kind Unknown
// is an unknown value.
type Value struct {
	Base *Node
	Off  int64
}

func newNode(n Node) *Node {
	switch n.Kind {
	case Unknown:
		n.key = "?"
	case Global:
		n.key = "G" + strconv.FormatUint(n.Addr, 16)
	case Arg:
		n.key = "A" + n.Reg.String()
	case ThreadPointer:
		n.key = "TP"
		if n.From != nil {
			n.key = "TP+(" + n.From.Key() + ")"
		}
	case Load:
		n.key = "[" + n.From.Key() + "]" + strconv.Itoa(n.Size)
	case CallResult:
		n.key = "C" + strconv.FormatUint(n.Addr, 16)
	case Sum:
		a, b := n.From.Key(), n.Other.Key()
		if b < a {
			a, b = b, a
			n.From, n.Other = n.Other, n.From
		}
		n.key = "(" + a + "+" + b + ")"
	}
	return &n
}

var unknownNode = newNode(Node{Kind: Unknown})

// threadPointer is the thread pointer plus a variable offset (the zero
// Value for none): "mov rax,[rip+GOTTPOFF]; mov rdx,fs:[rax]" reads the
// thread pointer plus an offset the loader stored in the GOT.
func threadPointer(off Value) *Node {
	if off == (Value{}) {
		return newNode(Node{Kind: ThreadPointer})
	}
	return newNode(Node{Kind: ThreadPointer, From: &off})
}

// add returns a + b for known values.
func add(a, b Value) Value {
	switch {
	case a.IsConst():
		b.Off += a.Off
		return b
	case b.IsConst():
		a.Off += b.Off
		return a
	}
	x, y := Value{Base: a.Base}, Value{Base: b.Base}
	return Value{Base: newNode(Node{Kind: Sum, From: &x, Other: &y}), Off: a.Off + b.Off}
}

// unknown is a Value the evaluator cannot describe.
func unknown() Value { return Value{Base: unknownNode} }

// Known reports whether v is modelled.
func (v Value) Known() bool { return v.Base == nil || v.Base.Kind != Unknown }

// IsConst reports whether v is an absolute number.
func (v Value) IsConst() bool { return v.Base == nil }

// Key is a canonical text of v: equal values have equal keys.
func (v Value) Key() string {
	if v.Base == nil {
		return "#" + strconv.FormatInt(v.Off, 16)
	}
	if v.Off == 0 {
		return v.Base.key
	}
	return v.Base.key + "+" + strconv.FormatInt(v.Off, 16)
}

// String is Key, for messages.
func (v Value) String() string { return v.Key() }

// depth is the nesting of loads in v.
func (v Value) depth() int {
	d := 0
	for b := v.Base; b != nil && b.Kind == Load; b = b.From.Base {
		d++
	}
	return d
}

// IsLoadOf reports whether v is exactly a load (of any size) from addr.
func (v Value) IsLoadOf(addr Value) bool {
	return v.Off == 0 && v.Base != nil && v.Base.Kind == Load && v.Base.From.Key() == addr.Key()
}

// LoadedFrom returns the address v was loaded from, when v is a load.
func (v Value) LoadedFrom() (Value, bool) {
	if v.Off != 0 || v.Base == nil || v.Base.Kind != Load {
		return Value{}, false
	}
	return *v.Base.From, true
}

// GlobalOf returns the global's address and the offset when v is global+off.
func (v Value) GlobalOf() (addr uint64, off int64, ok bool) {
	if v.Base == nil || v.Base.Kind != Global {
		return 0, 0, false
	}
	return v.Base.Addr, v.Off, true
}

// Access is one memory access the function makes.
type Access struct {
	// PC is the address of the instruction.
	PC uint64
	// Addr is the address accessed.
	Addr Value
	// Size is the width in bytes (0 when the instruction does not say).
	Size int
	// Write is true for stores.
	Write bool
	// Op is the instruction's mnemonic ("MOV", "CMP", "MOVZX" ...).
	Op string
	// Imm is the immediate operand compared or stored, when there is one.
	Imm int64
	// HasImm says whether Imm is set.
	HasImm bool
}

// Call is a call (or tail call) the function makes.
type Call struct {
	// PC is the address of the call instruction.
	PC uint64
	// Target is the called address (0 when indirect).
	Target uint64
	// Args holds rdi, rsi, rdx, rcx, r8, r9 at the call.
	Args [6]Value
	// Tail is true for a jump out of the function.
	Tail bool
}

// Return is the value in rax at a ret.
type Return struct {
	PC    uint64
	Value Value
}

// Facts is what one evaluation found, over all paths (deduplicated).
type Facts struct {
	Accesses []Access
	Calls    []Call
	Returns  []Return
	// Steps is the number of instructions evaluated.
	Steps int
	// Truncated is true when a bound stopped the evaluation early.
	Truncated bool
}

// Loads returns the loads in f whose address has base b (compared by key).
func (f *Facts) Loads() []Access {
	var out []Access
	for _, a := range f.Accesses {
		if !a.Write {
			out = append(out, a)
		}
	}
	return out
}

// Func is a function to evaluate.
type Func struct {
	// Code is its machine code; Addr is the link-time address of Code[0].
	Code []byte
	Addr uint64
	// Pointers maps the link-time address of a pointer slot (a GOT entry)
	// to the address it holds once relocated (see Pointers). A load from
	// such a slot is the address itself: position-independent code reaches
	// an exported global through the GOT.
	Pointers map[uint64]uint64
}

// argRegs are the System V integer argument registers, in order.
var argRegs = [6]x86asm.Reg{x86asm.RDI, x86asm.RSI, x86asm.RDX, x86asm.RCX, x86asm.R8, x86asm.R9}

// callerSaved are the registers a call may change.
var callerSaved = []x86asm.Reg{x86asm.RAX, x86asm.RCX, x86asm.RDX, x86asm.RSI, x86asm.RDI, x86asm.R8, x86asm.R9, x86asm.R10, x86asm.R11}

// state is the symbolic machine state on one path.
type state struct {
	pc    uint64
	regs  map[x86asm.Reg]Value
	stack map[int64]Value // rsp-relative slots, relative to the entry rsp
	sp    int64           // rsp - entry rsp
	spOK  bool
}

func (s *state) clone() *state {
	c := &state{pc: s.pc, regs: make(map[x86asm.Reg]Value, len(s.regs)), stack: make(map[int64]Value, len(s.stack)), sp: s.sp, spOK: s.spOK}
	for k, v := range s.regs {
		c.regs[k] = v
	}
	for k, v := range s.stack {
		c.stack[k] = v
	}
	return c
}

// Evaluate runs f symbolically. An error means the code could not be
// decoded at its entry; later decoding failures end their path.
func Evaluate(f Func) (*Facts, error) {
	if len(f.Code) == 0 {
		return nil, fmt.Errorf("x86sym: no code at %#x", f.Addr)
	}
	code := f.Code
	if len(code) > maxCode {
		code = code[:maxCode]
	}
	if _, err := x86asm.Decode(code, 64); err != nil {
		return nil, fmt.Errorf("x86sym: decode entry at %#x: %w", f.Addr, err)
	}
	e := &evaluator{f: Func{Code: code, Addr: f.Addr, Pointers: f.Pointers}, facts: &Facts{}, seen: map[string]bool{}, visits: map[uint64]int{}, decoded: map[uint64]decoded{}}
	entry := &state{pc: f.Addr, regs: map[x86asm.Reg]Value{}, stack: map[int64]Value{}, spOK: true}
	for _, r := range []x86asm.Reg{x86asm.RDI, x86asm.RSI, x86asm.RDX, x86asm.RCX, x86asm.R8, x86asm.R9} {
		entry.regs[r] = Value{Base: newNode(Node{Kind: Arg, Reg: r})}
	}
	e.run(entry)
	return e.facts, nil
}

type decoded struct {
	inst x86asm.Inst
	err  error
}

type evaluator struct {
	f       Func
	facts   *Facts
	seen    map[string]bool
	visits  map[uint64]int
	decoded map[uint64]decoded
}

func (e *evaluator) decode(pc uint64) (x86asm.Inst, error) {
	if d, ok := e.decoded[pc]; ok {
		return d.inst, d.err
	}
	var d decoded
	if pc < e.f.Addr || pc >= e.f.Addr+uint64(len(e.f.Code)) {
		d.err = fmt.Errorf("pc %#x outside the function", pc)
	} else if b := e.f.Code[pc-e.f.Addr:]; len(b) >= 4 && b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && (b[3] == 0xfa || b[3] == 0xfb) {
		d.inst = x86asm.Inst{Op: x86asm.NOP, Len: 4, Mode: 64} // endbr64/endbr32, which x86asm does not know
	} else {
		d.inst, d.err = x86asm.Decode(b, 64)
	}
	e.decoded[pc] = d
	return d.inst, d.err
}

func (e *evaluator) inside(pc uint64) bool {
	return pc >= e.f.Addr && pc < e.f.Addr+uint64(len(e.f.Code))
}

func (e *evaluator) run(entry *state) {
	work := []*state{entry}
	for len(work) > 0 {
		s := work[len(work)-1]
		work = work[:len(work)-1]
		for {
			if e.facts.Steps >= maxSteps {
				e.facts.Truncated = true
				return
			}
			if e.visits[s.pc] >= maxVisits {
				break
			}
			e.visits[s.pc]++
			e.facts.Steps++
			inst, err := e.decode(s.pc)
			if err != nil {
				break
			}
			next := s.pc + uint64(inst.Len)
			fork, cont := e.step(s, inst, next)
			if fork != nil {
				if len(work) < maxPaths {
					work = append(work, fork)
				} else {
					e.facts.Truncated = true
				}
			}
			if !cont {
				break
			}
		}
	}
}

// step evaluates one instruction; it returns a second path to follow (a
// taken branch) and whether this path goes on (at s.pc, updated).
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
			return nil, false // indirect jump: a table or a tail call through a pointer
		}
		if e.inside(target) {
			s.pc = target
			return nil, true
		}
		e.addCall(s, pc, target, true)
		e.addReturn(Return{PC: pc, Value: Value{Base: newNode(Node{Kind: CallResult, Addr: target})}})
		return nil, false
	case x86asm.CALL:
		target, _ := branchTarget(inst, next)
		if m, ok := inst.Args[0].(x86asm.Mem); ok {
			e.access(s, pc, inst, m, false)
		}
		e.addCall(s, pc, target, false)
		for _, r := range callerSaved {
			delete(s.regs, r)
		}
		s.regs[x86asm.RAX] = Value{Base: newNode(Node{Kind: CallResult, Addr: target})}
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
	e.effect(s, pc, inst)
	return nil, true
}

func (e *evaluator) addReturn(r Return) {
	k := "R" + strconv.FormatUint(r.PC, 16) + r.Value.Key()
	if e.seen[k] || len(e.facts.Returns) >= maxAccessKept {
		return
	}
	e.seen[k] = true
	e.facts.Returns = append(e.facts.Returns, r)
}

func (e *evaluator) addCall(s *state, pc, target uint64, tail bool) {
	c := Call{PC: pc, Target: target, Tail: tail}
	var sb strings.Builder
	sb.WriteString("C" + strconv.FormatUint(pc, 16))
	for i, r := range argRegs {
		c.Args[i] = s.get(r)
		sb.WriteString("," + c.Args[i].Key())
	}
	if e.seen[sb.String()] || len(e.facts.Calls) >= maxAccessKept {
		return
	}
	e.seen[sb.String()] = true
	e.facts.Calls = append(e.facts.Calls, c)
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
	if m.Segment != 0 && m.Segment != x86asm.DS && m.Segment != x86asm.SS {
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
		switch {
		case !idx.Known() || !v.Known():
			return unknown()
		case idx.IsConst():
			v.Off += idx.Off * int64(m.Scale)
		case m.Scale != 1:
			return unknown()
		default:
			v = add(v, idx)
		}
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

func (s *state) get(r x86asm.Reg) Value {
	if v, ok := s.regs[r]; ok {
		return v
	}
	return unknown()
}

// set writes a register; 8- and 16-bit writes keep the upper bits, so the
// value becomes unknown.
func (s *state) set(r x86asm.Reg, v Value) {
	if r == x86asm.RSP {
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
	if v.Known() && v.depth() > maxExprDepth {
		v = unknown()
	}
	s.regs[f] = v
}

// load reads memory symbolically.
func (e *evaluator) load(s *state, pc uint64, inst x86asm.Inst, m x86asm.Mem, size int) Value {
	if slot, ok := s.stackSlot(m); ok {
		if v, ok := s.stack[slot]; ok {
			return v
		}
		return unknown()
	}
	a := e.access(s, pc, inst, m, false)
	if !a.Known() {
		return unknown()
	}
	if a.Base != nil && a.Base.Kind == ThreadPointer && a.Base.From == nil && a.Off == 0 && size == 8 {
		return a // fs:0 holds the thread pointer itself (x86-64 TLS variant II)
	}
	if g, off, ok := a.GlobalOf(); ok && size == 8 {
		if target, ok := e.f.Pointers[uint64(int64(g)+off)]; ok {
			return Value{Base: newNode(Node{Kind: Global, Addr: target})}
		}
	}
	return Value{Base: newNode(Node{Kind: Load, From: &a, Size: size})}
}

// access records a memory access and returns its address.
func (e *evaluator) access(s *state, pc uint64, inst x86asm.Inst, m x86asm.Mem, write bool) Value {
	if _, ok := s.stackSlot(m); ok || m.Base == x86asm.RSP {
		return unknown()
	}
	a := s.addr(m, s.pc)
	if !a.Known() {
		return a
	}
	acc := Access{PC: pc, Addr: a, Size: inst.MemBytes, Write: write, Op: inst.Op.String()}
	for _, arg := range inst.Args {
		if imm, ok := arg.(x86asm.Imm); ok {
			acc.Imm, acc.HasImm = int64(imm), true
		}
	}
	k := fmt.Sprintf("M%x%s%d%v%d", pc, a.Key(), acc.Size, write, acc.Imm)
	if !e.seen[k] && len(e.facts.Accesses) < maxAccessKept {
		e.seen[k] = true
		e.facts.Accesses = append(e.facts.Accesses, acc)
	}
	return a
}

// effect applies a non-branch instruction to s.
func (e *evaluator) effect(s *state, pc uint64, inst x86asm.Inst) {
	args := inst.Args
	dst, _ := args[0].(x86asm.Reg)
	dstMem, dstIsMem := args[0].(x86asm.Mem)
	switch inst.Op {
	case x86asm.NOP, x86asm.PREFETCHT0, x86asm.PREFETCHNTA, x86asm.LFENCE:
		return
	case x86asm.PUSH:
		if s.spOK {
			s.sp -= 8
			if r, ok := args[0].(x86asm.Reg); ok {
				s.stack[s.sp] = s.get(full(r))
			} else {
				s.stack[s.sp] = unknown()
			}
		}
		return
	case x86asm.POP:
		var v Value = unknown()
		if s.spOK {
			if sv, ok := s.stack[s.sp]; ok {
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
			if m.Base == x86asm.RSP {
				s.set(dst, unknown())
				return
			}
			s.set(dst, s.addr(m, s.pc))
		}
		return
	case x86asm.MOV, x86asm.MOVZX, x86asm.MOVSX, x86asm.MOVSXD:
		if dstIsMem {
			e.store(s, pc, inst, dstMem, args[1])
			return
		}
		if dst == 0 {
			return
		}
		if x86asm.X0 <= dst && dst <= x86asm.X31 || x86asm.M0 <= dst && dst <= x86asm.M7 {
			if m, ok := args[1].(x86asm.Mem); ok {
				e.access(s, pc, inst, m, false)
			}
			return
		}
		var v Value
		switch src := args[1].(type) {
		case x86asm.Reg:
			v = s.get(full(src))
			if width(src) < 8 && v.Known() && !v.IsConst() {
				v = unknown()
			}
			if full(src) == x86asm.RSP {
				v = unknown()
			}
		case x86asm.Mem:
			v = e.load(s, pc, inst, src, inst.MemBytes)
		case x86asm.Imm:
			v = Value{Off: int64(src)}
		default:
			v = unknown()
		}
		if inst.Op == x86asm.MOVSX || inst.Op == x86asm.MOVSXD {
			if !v.IsConst() {
				v = unknown()
			}
		}
		s.set(dst, v)
		return
	case x86asm.ADD, x86asm.SUB:
		if dst == x86asm.RSP {
			if imm, ok := args[1].(x86asm.Imm); ok && s.spOK {
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
		v := s.get(full(dst))
		var d Value
		switch src := args[1].(type) {
		case x86asm.Imm:
			d = Value{Off: int64(src)}
		case x86asm.Reg:
			d = s.get(full(src))
		case x86asm.Mem:
			d = e.load(s, pc, inst, src, inst.MemBytes)
		}
		switch {
		case d.IsConst() && v.Known():
			if inst.Op == x86asm.ADD {
				v.Off += d.Off
			} else {
				v.Off -= d.Off
			}
		case inst.Op == x86asm.ADD && v.Known() && d.Known():
			v = add(v, d)
		default:
			v = unknown()
		}
		if width(dst) < 8 && !v.IsConst() {
			v = unknown()
		}
		s.set(dst, v)
		return
	case x86asm.XOR: // xor r,r is zero
		if r2, ok := args[1].(x86asm.Reg); ok && dst != 0 && full(r2) == full(dst) {
			s.set(dst, Value{})
			return
		}
	case x86asm.CMP, x86asm.TEST:
		for _, a := range args {
			if m, ok := a.(x86asm.Mem); ok {
				e.access(s, pc, inst, m, false)
			}
		}
		return
	case x86asm.CMOVE, x86asm.CMOVNE, x86asm.CMOVA, x86asm.CMOVAE, x86asm.CMOVB, x86asm.CMOVBE,
		x86asm.CMOVG, x86asm.CMOVGE, x86asm.CMOVL, x86asm.CMOVLE, x86asm.CMOVS, x86asm.CMOVNS:
		if m, ok := args[1].(x86asm.Mem); ok {
			e.access(s, pc, inst, m, false)
		}
		if dst != 0 {
			s.set(dst, unknown())
		}
		return
	}
	// Anything else: record its memory reads, and its destination becomes unknown.
	for i, a := range args {
		if m, ok := a.(x86asm.Mem); ok {
			e.access(s, pc, inst, m, i == 0 && writesFirst(inst.Op))
		}
	}
	if dst != 0 {
		s.set(dst, unknown())
	}
	switch inst.Op {
	case x86asm.XCHG, x86asm.XADD, x86asm.CMPXCHG:
		if r, ok := args[1].(x86asm.Reg); ok {
			s.set(r, unknown())
		}
		s.set(x86asm.RAX, unknown())
	case x86asm.MUL, x86asm.IMUL, x86asm.DIV, x86asm.IDIV, x86asm.CQO, x86asm.CDQ, x86asm.CDQE, x86asm.CPUID, x86asm.RDTSC, x86asm.SYSCALL:
		s.set(x86asm.RAX, unknown())
		s.set(x86asm.RDX, unknown())
		s.set(x86asm.RCX, unknown())
		s.set(x86asm.RBX, unknown())
		s.set(x86asm.R11, unknown())
	case x86asm.MOVSB, x86asm.MOVSW, x86asm.MOVSD, x86asm.MOVSQ, x86asm.STOSB, x86asm.STOSW, x86asm.STOSD, x86asm.STOSQ,
		x86asm.LODSB, x86asm.LODSW, x86asm.LODSD, x86asm.LODSQ, x86asm.SCASB, x86asm.SCASW, x86asm.SCASD, x86asm.SCASQ,
		x86asm.CMPSB, x86asm.CMPSW, x86asm.CMPSD, x86asm.CMPSQ:
		for _, r := range []x86asm.Reg{x86asm.RSI, x86asm.RDI, x86asm.RCX, x86asm.RAX} {
			s.set(r, unknown())
		}
	}
}

// store records a store and updates a stack slot.
func (e *evaluator) store(s *state, pc uint64, inst x86asm.Inst, m x86asm.Mem, src x86asm.Arg) {
	var v Value
	switch a := src.(type) {
	case x86asm.Reg:
		v = s.get(full(a))
		if width(a) < 8 && !v.IsConst() {
			v = unknown()
		}
	case x86asm.Imm:
		v = Value{Off: int64(a)}
	default:
		v = unknown()
	}
	if slot, ok := s.stackSlot(m); ok {
		s.stack[slot] = v
		return
	}
	e.access(s, pc, inst, m, true)
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

// full maps a register to its 64-bit family (EAX -> RAX); 0 for others.
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
