// Package x86sym evaluates a small x86-64 function symbolically: it follows
// every path through the function's machine code (bounded) and records each
// memory access as an expression over the values the function starts with
// (its argument registers, the thread pointer, addresses of globals) and over
// earlier loads. "mov rax,[rip+X]; mov rdx,[rax+0x18]" becomes two loads:
// [G+0] with G the global at X, then [[G+0]+0x18].
//
// It exists to read structure layouts out of the code that uses them (the PHP
// runtime's accessors, see package php), so it models what such accessors do:
// moves, address arithmetic with constants, shifts and masks, differences of
// pointers, loads and stores (with the value stored), compares (of memory and
// of registers), conditional moves, calls and tail calls named through the
// PLT and the GOT, inline string compares (repe cmpsb), and stack spills.
// Everything else makes the destination unknown; an unknown value never
// produces a fact, so a construct it does not model costs a derivation,
// never a wrong one.
//
// Each path runs every loop body once: a jump back to an instruction the path
// already executed ends the path. Paths that meet again after a branch are
// followed separately (a bounded number of times per instruction), so every
// value a shared return block can return is seen.
package x86sym

import (
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"
)

// Bounds of one evaluation: functions of interest are a few hundred
// instructions; these keep a hostile or huge input cheap.
const (
	maxCode       = 16 << 10 // bytes of code evaluated
	maxSteps      = 40000    // instructions evaluated over all paths
	maxVisits     = 3        // evaluations of one instruction (over all paths)
	maxPaths      = 512      // paths kept waiting
	maxExprDepth  = 8        // nesting of loads in one expression
	maxAccessKept = 4096     // accesses (and calls, compares...) recorded
)

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
	// Value is the value stored (Write) or the value loaded into Dest;
	// unknown otherwise.
	Value Value
	// Other is the register operand a CMP or TEST compares the memory
	// operand with; unknown otherwise.
	Other Value
	// Dest is the register a load writes (0 for none), and Prior the value
	// that register held before: "mov rax,[rax+0x30]" walks a list.
	Dest  x86asm.Reg
	Prior Value
}

// Compare is a CMP or TEST between registers, or a register and an
// immediate.
type Compare struct {
	PC uint64
	Op string
	// A and B are the two operands (B is unknown when the second operand
	// is an immediate).
	A, B Value
	// Imm is the immediate operand, when HasImm.
	Imm    int64
	HasImm bool
}

// Lea is an address computed with LEA.
type Lea struct {
	PC    uint64
	Dest  x86asm.Reg
	Value Value
}

// Add is an "add/sub register, immediate" on a register holding a known,
// non-constant value ("add rbx,0x20" stepping through an array).
type Add struct {
	PC     uint64
	Dest   x86asm.Reg
	Before Value
	Imm    int64
}

// Call is a call (or tail call) the function makes.
type Call struct {
	// PC is the address of the call instruction.
	PC uint64
	// Target is the called address (0 when indirect).
	Target uint64
	// Name is the callee's symbol (through the PLT or the GOT for calls
	// out of the object), "" when unknown. Inline string compares are
	// recorded as calls named InlineCompare.
	Name string
	// Args holds rdi, rsi, rdx, rcx, r8, r9 at the call.
	Args [6]Value
	// Tail is true for a jump out of the function.
	Tail bool
}

// InlineCompare is the Name of the Call recorded for "repe cmpsb" (an
// inlined strcmp or memcmp of [rsi] and [rdi], rcx bytes).
const InlineCompare = "repe cmpsb"

// Return is the value in rax at a ret.
type Return struct {
	PC    uint64
	Value Value
}

// Facts is what one evaluation found, over all paths (deduplicated).
type Facts struct {
	Accesses []Access
	Compares []Compare
	Leas     []Lea
	Adds     []Add
	Calls    []Call
	Returns  []Return
	// Steps is the number of instructions evaluated.
	Steps int
	// Truncated is true when a bound stopped the evaluation early.
	Truncated bool
}

// Loads returns the loads in f.
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
	// to the address it holds once relocated (see Links). A load from
	// such a slot is the address itself: position-independent code reaches
	// an exported global through the GOT.
	Pointers map[uint64]uint64
	// Callees names call targets: function addresses, PLT stubs and the
	// GOT slots of "call [rip+slot]" (see Links).
	Callees map[uint64]string
}

// argRegs are the System V integer argument registers, in order.
var argRegs = [6]x86asm.Reg{x86asm.RDI, x86asm.RSI, x86asm.RDX, x86asm.RCX, x86asm.R8, x86asm.R9}

// callerSaved are the registers a call may change.
var callerSaved = []x86asm.Reg{x86asm.RAX, x86asm.RCX, x86asm.RDX, x86asm.RSI, x86asm.RDI, x86asm.R8, x86asm.R9, x86asm.R10, x86asm.R11}

// state is the symbolic machine state on one path.
type state struct {
	pc    uint64
	regs  [16]Value // RAX..R15
	stack []slot    // rsp-relative slots written, relative to the entry rsp
	sp    int64     // rsp - entry rsp
	spOK  bool
	// seen marks the instructions this path executed (bit per code byte
	// offset): a jump to one of them is a loop's back edge.
	seen []uint64
}

// slot is a stack slot and the value stored there.
type slot struct {
	off int64
	v   Value
}

func (s *state) clone() *state {
	c := *s
	c.stack = append([]slot(nil), s.stack...)
	c.seen = append([]uint64(nil), s.seen...)
	return &c
}

// load returns the value stored in a stack slot.
func (s *state) loadSlot(off int64) (Value, bool) {
	for i := len(s.stack) - 1; i >= 0; i-- {
		if s.stack[i].off == off {
			return s.stack[i].v, true
		}
	}
	return Value{}, false
}

// storeSlot writes a stack slot.
func (s *state) storeSlot(off int64, v Value) {
	for i := range s.stack {
		if s.stack[i].off == off {
			s.stack[i].v = v
			return
		}
	}
	s.stack = append(s.stack, slot{off, v})
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
	e := &evaluator{f: Func{Code: code, Addr: f.Addr, Pointers: f.Pointers, Callees: f.Callees}, facts: &Facts{},
		seen: map[factKey]bool{}, visits: make([]uint8, len(code)), index: make([]int32, len(code)), decoded: make([]decoded, 0, len(code)/4+8)}
	if _, err := e.decode(f.Addr); err != nil {
		return nil, fmt.Errorf("x86sym: decode entry at %#x: %w", f.Addr, err)
	}
	entry := &state{pc: f.Addr, spOK: true, seen: make([]uint64, (len(code)+63)/64)}
	for i := range entry.regs {
		entry.regs[i] = unknown()
	}
	for _, r := range argRegs {
		entry.regs[r-x86asm.RAX] = Value{Base: newNode(Node{Kind: Arg, Reg: r})}
	}
	e.run(entry)
	return e.facts, nil
}

type decoded struct {
	inst x86asm.Inst
	err  error
}

// factKey deduplicates recorded facts.
type factKey struct {
	kind byte
	pc   uint64
	a, b string
	n, m int64
}

type evaluator struct {
	f      Func
	facts  *Facts
	seen   map[factKey]bool
	visits []uint8 // per code byte
	// index maps a code byte offset to 1 + its instruction in decoded
	// (0: not decoded yet).
	index   []int32
	decoded []decoded
}

var errOutside = fmt.Errorf("pc outside the function")

func (e *evaluator) decode(pc uint64) (x86asm.Inst, error) {
	if !e.inside(pc) {
		return x86asm.Inst{}, errOutside
	}
	if i := e.index[pc-e.f.Addr]; i > 0 {
		d := &e.decoded[i-1]
		return d.inst, d.err
	}
	e.decoded = append(e.decoded, decoded{})
	e.index[pc-e.f.Addr] = int32(len(e.decoded))
	d := &e.decoded[len(e.decoded)-1]
	if b := e.f.Code[pc-e.f.Addr:]; len(b) >= 4 && b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && (b[3] == 0xfa || b[3] == 0xfb) {
		d.inst = x86asm.Inst{Op: x86asm.NOP, Len: 4, Mode: 64} // endbr64/endbr32, which x86asm does not know
	} else {
		d.inst, d.err = x86asm.Decode(b, 64)
	}
	return d.inst, d.err
}

func (e *evaluator) inside(pc uint64) bool {
	return pc >= e.f.Addr && pc < e.f.Addr+uint64(len(e.f.Code))
}

// onPath reports whether the path of s executed pc already, and marks it.
func (e *evaluator) onPath(s *state, pc uint64) bool {
	i := pc - e.f.Addr
	w, bit := i/64, uint64(1)<<(i%64)
	if w >= uint64(len(s.seen)) {
		return false
	}
	was := s.seen[w]&bit != 0
	s.seen[w] |= bit
	return was
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
			if !e.inside(s.pc) || e.visits[s.pc-e.f.Addr] >= maxVisits {
				break
			}
			if e.onPath(s, s.pc) {
				break // a loop's back edge: each path runs a loop body once
			}
			e.visits[s.pc-e.f.Addr]++
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

func (e *evaluator) keep(k factKey) bool {
	if e.seen[k] {
		return false
	}
	e.seen[k] = true
	return true
}

func (e *evaluator) addReturn(r Return) {
	if len(e.facts.Returns) >= maxAccessKept || !e.keep(factKey{kind: 'R', pc: r.PC, a: r.Value.Key()}) {
		return
	}
	e.facts.Returns = append(e.facts.Returns, r)
}

func (e *evaluator) addCall(s *state, pc, target uint64, name string, tail bool) {
	c := Call{PC: pc, Target: target, Name: name, Tail: tail}
	var sb strings.Builder
	for i, r := range argRegs {
		c.Args[i] = s.get(r)
		sb.WriteString(c.Args[i].Key())
		sb.WriteByte(',')
	}
	if len(e.facts.Calls) >= maxAccessKept || !e.keep(factKey{kind: 'C', pc: pc, a: sb.String()}) {
		return
	}
	e.facts.Calls = append(e.facts.Calls, c)
}

func (e *evaluator) addCompare(c Compare) {
	if len(e.facts.Compares) >= maxAccessKept || !e.keep(factKey{kind: 'K', pc: c.PC, a: c.A.Key(), b: c.B.Key(), n: c.Imm}) {
		return
	}
	e.facts.Compares = append(e.facts.Compares, c)
}

func (e *evaluator) addLea(l Lea) {
	if len(e.facts.Leas) >= maxAccessKept || !e.keep(factKey{kind: 'L', pc: l.PC, a: l.Value.Key()}) {
		return
	}
	e.facts.Leas = append(e.facts.Leas, l)
}

func (e *evaluator) addAdd(a Add) {
	if len(e.facts.Adds) >= maxAccessKept || !e.keep(factKey{kind: 'D', pc: a.PC, a: a.Before.Key(), n: a.Imm}) {
		return
	}
	e.facts.Adds = append(e.facts.Adds, a)
}

// callName names the target of a direct call or the GOT slot of an
// indirect one.
func (e *evaluator) callName(addr uint64) string {
	if addr == 0 {
		return ""
	}
	return e.f.Callees[addr]
}
