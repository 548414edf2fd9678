package unwind

import (
	"fmt"

	"github.com/coroner-dev/coroner/crash"
)

// ruleKind says how a register of the caller is recovered.
type ruleKind uint8

const (
	ruleUnspecified ruleKind = iota // callee-saved: same value; others: unknown
	ruleUndefined
	ruleSame
	ruleOffset    // saved at CFA+off
	ruleValOffset // value is CFA+off
	ruleRegister  // value is in register reg
	ruleExpr      // saved at the address computed by expr
	ruleValExpr   // value is computed by expr
)

type regRule struct {
	kind ruleKind
	off  int64
	reg  uint64
	expr []byte
}

// row is the unwind rule set at one pc.
type row struct {
	cfaReg      uint64
	cfaOff      int64
	cfaExpr     []byte
	regs        [NumRegs]regRule
	raReg       uint64
	signalFrame bool
}

// maxCFIInsns bounds how many instructions one FDE may execute.
const maxCFIInsns = 100000

// maxStateStack bounds DW_CFA_remember_state nesting.
const maxStateStack = 64

// rowAt computes the unwind row of fde at the link-time pc.
func (t *Table) rowAt(fde *FDE, pc uint64) (*row, error) {
	if r, ok := t.rowCache[pc]; ok {
		return r, nil
	}
	c := fde.cie
	if c.raReg >= NumRegs {
		return nil, fmt.Errorf("%w: return address register %d", errCFI, c.raReg)
	}
	init := &row{raReg: c.raReg, signalFrame: c.signalFrame}
	if err := execCFA(c, c.initial, init, nil, fde.Start, ^uint64(0)); err != nil {
		return nil, fmt.Errorf("CIE initial instructions: %w", err)
	}
	r := *init
	if err := execCFA(c, fde.insns, &r, init, fde.Start, pc); err != nil {
		return nil, fmt.Errorf("FDE %#x instructions: %w", fde.Start, err)
	}
	if len(t.rowCache) > 1<<16 {
		t.rowCache = map[uint64]*row{}
	}
	t.rowCache[pc] = &r
	return &r, nil
}

// execCFA runs CFA instructions on r until the location passes pc. init
// is the row after the CIE's initial instructions (what DW_CFA_restore
// goes back to); it is nil while those run.
func execCFA(c *cie, insns []byte, r *row, init *row, loc, pc uint64) error {
	p := &cfaProgram{c: c, rd: &reader{b: insns}, r: r, init: init, loc: loc}
	for n := 0; p.rd.pos < uint64(len(insns)); n++ {
		if n > maxCFIInsns {
			return fmt.Errorf("%w: too many instructions", errCFI)
		}
		op, _ := p.rd.u8()
		moved, err := p.step(op)
		if err != nil {
			return err
		}
		if moved && p.loc > pc {
			return nil
		}
	}
	return nil
}

// cfaProgram is the state of a running CFA program (DWARF 5, 6.4.2): the
// row being built, the location it applies from, and the rows saved by
// DW_CFA_remember_state.
type cfaProgram struct {
	c     *cie
	rd    *reader
	r     *row
	init  *row
	stack []row
	loc   uint64
}

// step executes one instruction; moved reports that the location advanced.
func (p *cfaProgram) step(op byte) (moved bool, err error) {
	// The primary opcodes carry an operand in their low 6 bits.
	switch hi, lo := op&0xc0, uint64(op&0x3f); hi {
	case 0x40: // DW_CFA_advance_loc
		p.loc += lo * p.c.codeAlign
		return true, nil
	case 0x80: // DW_CFA_offset
		off, err := p.factored(false)
		if err == nil {
			p.set(lo, regRule{kind: ruleOffset, off: off})
		}
		return false, err
	case 0xc0: // DW_CFA_restore
		p.restore(lo)
		return false, nil
	}
	switch op {
	case 0x00, 0x01, 0x02, 0x03, 0x04: // nop, set_loc, advance_loc1/2/4
		return p.location(op)
	case 0x0a, 0x0b: // remember_state, restore_state
		return false, p.state(op)
	case 0x0c, 0x0d, 0x0e, 0x0f, 0x12, 0x13: // def_cfa*
		return false, p.cfa(op)
	case 0x2e: // GNU_args_size: only for exception handling
		_, err := p.rd.uleb()
		return false, err
	}
	return false, p.register(op)
}

// location executes the instructions that move to the next row.
func (p *cfaProgram) location(op byte) (bool, error) {
	var d uint64
	var err error
	switch op {
	case 0x00: // nop
		return false, nil
	case 0x01: // set_loc
		v, err := p.rd.encoded(p.c.fdeEnc)
		if err != nil {
			return false, err
		}
		p.loc = v
		return true, nil
	case 0x02:
		var b byte
		b, err = p.rd.u8()
		d = uint64(b)
	case 0x03:
		d, err = p.rd.u16()
	default:
		d, err = p.rd.u32()
	}
	if err != nil {
		return false, err
	}
	p.loc += d * p.c.codeAlign
	return true, nil
}

// state executes remember_state and restore_state.
func (p *cfaProgram) state(op byte) error {
	if op == 0x0a {
		if len(p.stack) >= maxStateStack {
			return fmt.Errorf("%w: remember_state nesting too deep", errCFI)
		}
		p.stack = append(p.stack, *p.r)
		return nil
	}
	if len(p.stack) == 0 {
		return fmt.Errorf("%w: restore_state without remember_state", errCFI)
	}
	// DWARF says the whole row is restored, the CFA rule included.
	*p.r = p.stack[len(p.stack)-1]
	p.stack = p.stack[:len(p.stack)-1]
	return nil
}

// cfa executes the instructions that define the CFA rule.
func (p *cfaProgram) cfa(op byte) error {
	r := p.r
	switch op {
	case 0x0f: // def_cfa_expression
		b, err := block(p.rd)
		if err == nil {
			r.cfaExpr = b
		}
		return err
	case 0x0e, 0x13: // def_cfa_offset, def_cfa_offset_sf
		off, err := p.offset(op == 0x13)
		if err == nil {
			r.cfaOff = off
		}
		return err
	}
	reg, err := p.rd.uleb()
	if err != nil {
		return err
	}
	switch op {
	case 0x0d: // def_cfa_register
		r.cfaReg, r.cfaExpr = reg, nil
	default: // def_cfa, def_cfa_sf
		off, err := p.offset(op == 0x12)
		if err != nil {
			return err
		}
		r.cfaReg, r.cfaOff, r.cfaExpr = reg, off, nil
	}
	return nil
}

// register executes the instructions that set the rule of one register;
// all of them start with the register number.
func (p *cfaProgram) register(op byte) error {
	switch op {
	case 0x05, 0x06, 0x07, 0x08, 0x09, 0x10, 0x11, 0x14, 0x15, 0x16, 0x2f:
	default:
		return fmt.Errorf("%w: unknown CFA instruction %#x", errCFI, op)
	}
	reg, err := p.rd.uleb()
	if err != nil {
		return err
	}
	var rule regRule
	switch op {
	case 0x06: // restore_extended
		p.restore(reg)
		return nil
	case 0x07: // undefined
		rule.kind = ruleUndefined
	case 0x08: // same_value
		rule.kind = ruleSame
	case 0x09: // register
		rule.kind = ruleRegister
		rule.reg, err = p.rd.uleb()
	case 0x10, 0x16: // expression, val_expression
		rule.kind = ruleExpr
		if op == 0x16 {
			rule.kind = ruleValExpr
		}
		rule.expr, err = block(p.rd)
	case 0x05, 0x11: // offset_extended, offset_extended_sf
		rule.kind = ruleOffset
		rule.off, err = p.factored(op == 0x11)
	case 0x14, 0x15: // val_offset, val_offset_sf
		rule.kind = ruleValOffset
		rule.off, err = p.factored(op == 0x15)
	case 0x2f: // GNU_negative_offset_extended
		rule.kind = ruleOffset
		rule.off, err = p.factored(false)
		rule.off = -rule.off
	}
	if err != nil {
		return err
	}
	p.set(reg, rule)
	return nil
}

// factored reads an offset operand scaled by the data alignment factor.
func (p *cfaProgram) factored(signed bool) (int64, error) {
	var off int64
	if signed {
		v, err := p.rd.sleb()
		if err != nil {
			return 0, err
		}
		off = v
	} else {
		v, err := p.rd.uleb()
		if err != nil {
			return 0, err
		}
		off = int64(v)
	}
	return off * p.c.dataAlign, nil
}

// offset reads a CFA offset: unsigned and not factored (def_cfa,
// def_cfa_offset), or signed and factored (the _sf forms).
func (p *cfaProgram) offset(sf bool) (int64, error) {
	if sf {
		return p.factored(true)
	}
	v, err := p.rd.uleb()
	return int64(v), err
}

func (p *cfaProgram) set(reg uint64, rule regRule) {
	if reg < NumRegs {
		p.r.regs[reg] = rule
	}
}

// restore goes back to the rule the CIE's initial instructions gave reg.
func (p *cfaProgram) restore(reg uint64) {
	if p.init != nil && reg < NumRegs {
		p.r.regs[reg] = p.init.regs[reg]
	}
}

func block(rd *reader) ([]byte, error) {
	n, err := rd.uleb()
	if err != nil {
		return nil, err
	}
	return rd.fixed(n)
}

// maxExprSteps bounds DWARF expression evaluation.
const maxExprSteps = 1000

// evalExpr evaluates a DWARF location expression with an initial stack.
func evalExpr(expr []byte, regs *crash.Registers, mem Memory, initial ...uint64) (uint64, error) {
	stack := append(make([]uint64, 0, 16), initial...)
	rd := &reader{b: expr}
	pop := func() (uint64, error) {
		if len(stack) == 0 {
			return 0, fmt.Errorf("%w: expression stack underflow", errCFI)
		}
		v := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		return v, nil
	}
	for steps := 0; rd.pos < uint64(len(expr)); steps++ {
		if steps > maxExprSteps || len(stack) > 256 {
			return 0, fmt.Errorf("%w: expression too long", errCFI)
		}
		op, _ := rd.u8()
		switch {
		case op >= 0x30 && op <= 0x4f: // lit0..lit31
			stack = append(stack, uint64(op-0x30))
		case op >= 0x70 && op <= 0x8f: // breg0..breg31
			off, err := rd.sleb()
			if err != nil {
				return 0, err
			}
			reg := uint64(op - 0x70)
			v, ok := getReg(regs, reg)
			if !ok {
				return 0, fmt.Errorf("expression needs unknown register %d", reg)
			}
			stack = append(stack, v+uint64(off))
		case op >= 0x50 && op <= 0x6f: // reg0..reg31
			v, ok := getReg(regs, uint64(op-0x50))
			if !ok {
				return 0, fmt.Errorf("expression needs unknown register %d", op-0x50)
			}
			stack = append(stack, v)
		default:
			var err error
			switch op {
			case 0x06: // deref
				var a uint64
				if a, err = pop(); err == nil {
					var v uint64
					if v, err = mem.ReadUint64(a); err == nil {
						stack = append(stack, v)
					}
				}
			case 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11: // const*
				var v uint64
				switch op {
				case 0x08:
					var b byte
					b, err = rd.u8()
					v = uint64(b)
				case 0x09:
					var b byte
					b, err = rd.u8()
					v = uint64(int64(int8(b)))
				case 0x0a:
					v, err = rd.u16()
				case 0x0b:
					v, err = rd.u16()
					v = uint64(int64(int16(v)))
				case 0x0c:
					v, err = rd.u32()
				case 0x0d:
					v, err = rd.u32()
					v = uint64(int64(int32(v)))
				case 0x0e, 0x0f:
					v, err = rd.u64()
				case 0x10:
					v, err = rd.uleb()
				case 0x11:
					var s int64
					s, err = rd.sleb()
					v = uint64(s)
				}
				stack = append(stack, v)
			case 0x12: // dup
				if len(stack) == 0 {
					return 0, fmt.Errorf("%w: dup on empty stack", errCFI)
				}
				stack = append(stack, stack[len(stack)-1])
			case 0x13: // drop
				_, err = pop()
			case 0x16: // swap
				if len(stack) < 2 {
					return 0, fmt.Errorf("%w: swap needs two values", errCFI)
				}
				n := len(stack)
				stack[n-1], stack[n-2] = stack[n-2], stack[n-1]
			case 0x23: // plus_uconst
				var v, a uint64
				if v, err = rd.uleb(); err == nil {
					if a, err = pop(); err == nil {
						stack = append(stack, a+v)
					}
				}
			case 0x1a, 0x1c, 0x1e, 0x21, 0x22, 0x24, 0x25, 0x27, 0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e: // binary ops
				var b, a uint64
				if b, err = pop(); err == nil {
					if a, err = pop(); err == nil {
						stack = append(stack, binop(op, a, b))
					}
				}
			default:
				return 0, fmt.Errorf("%w: unsupported expression op %#x", errCFI, op)
			}
			if err != nil {
				return 0, err
			}
		}
	}
	if len(stack) == 0 {
		return 0, fmt.Errorf("%w: expression left no value", errCFI)
	}
	return stack[len(stack)-1], nil
}

func binop(op byte, a, b uint64) uint64 {
	bool2 := func(c bool) uint64 {
		if c {
			return 1
		}
		return 0
	}
	switch op {
	case 0x1a:
		return a & b
	case 0x1c:
		return a - b
	case 0x1e:
		return a * b
	case 0x21:
		return a | b
	case 0x22:
		return a + b
	case 0x24:
		return a << (b & 63)
	case 0x25:
		return a >> (b & 63)
	case 0x27:
		return a ^ b
	case 0x29:
		return bool2(a == b)
	case 0x2a:
		return bool2(int64(a) >= int64(b))
	case 0x2b:
		return bool2(int64(a) > int64(b))
	case 0x2c:
		return bool2(int64(a) <= int64(b))
	case 0x2d:
		return bool2(int64(a) < int64(b))
	case 0x2e:
		return bool2(a != b)
	}
	return 0
}
