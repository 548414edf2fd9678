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

// execCFA runs CFA instructions on r until the location passes pc.
func execCFA(c *cie, insns []byte, r *row, init *row, loc, pc uint64) error {
	rd := &reader{b: insns}
	var stack []row
	setReg := func(reg uint64, rule regRule) {
		if reg < NumRegs {
			r.regs[reg] = rule
		}
	}
	for n := 0; rd.pos < uint64(len(insns)); n++ {
		if n > maxCFIInsns {
			return fmt.Errorf("%w: too many instructions", errCFI)
		}
		op, _ := rd.u8()
		hi, lo := op&0xc0, uint64(op&0x3f)
		switch hi {
		case 0x40: // DW_CFA_advance_loc
			loc += lo * c.codeAlign
			if loc > pc {
				return nil
			}
			continue
		case 0x80: // DW_CFA_offset
			off, err := rd.uleb()
			if err != nil {
				return err
			}
			setReg(lo, regRule{kind: ruleOffset, off: int64(off) * c.dataAlign})
			continue
		case 0xc0: // DW_CFA_restore
			if init != nil && lo < NumRegs {
				r.regs[lo] = init.regs[lo]
			}
			continue
		}
		var err error
		switch op {
		case 0x00: // nop
		case 0x01: // set_loc
			var v uint64
			v, err = rd.encoded(c.fdeEnc)
			if err == nil {
				loc = v
				if loc > pc {
					return nil
				}
			}
		case 0x02, 0x03, 0x04: // advance_loc1/2/4
			var d uint64
			switch op {
			case 0x02:
				var b byte
				b, err = rd.u8()
				d = uint64(b)
			case 0x03:
				d, err = rd.u16()
			default:
				d, err = rd.u32()
			}
			if err == nil {
				loc += d * c.codeAlign
				if loc > pc {
					return nil
				}
			}
		case 0x05: // offset_extended
			var reg, off uint64
			if reg, err = rd.uleb(); err == nil {
				if off, err = rd.uleb(); err == nil {
					setReg(reg, regRule{kind: ruleOffset, off: int64(off) * c.dataAlign})
				}
			}
		case 0x06: // restore_extended
			var reg uint64
			if reg, err = rd.uleb(); err == nil && init != nil && reg < NumRegs {
				r.regs[reg] = init.regs[reg]
			}
		case 0x07, 0x08: // undefined, same_value
			var reg uint64
			if reg, err = rd.uleb(); err == nil {
				k := ruleUndefined
				if op == 0x08 {
					k = ruleSame
				}
				setReg(reg, regRule{kind: k})
			}
		case 0x09: // register
			var reg, reg2 uint64
			if reg, err = rd.uleb(); err == nil {
				if reg2, err = rd.uleb(); err == nil {
					setReg(reg, regRule{kind: ruleRegister, reg: reg2})
				}
			}
		case 0x0a: // remember_state
			if len(stack) >= maxStateStack {
				return fmt.Errorf("%w: remember_state nesting too deep", errCFI)
			}
			stack = append(stack, *r)
		case 0x0b: // restore_state
			if len(stack) == 0 {
				return fmt.Errorf("%w: restore_state without remember_state", errCFI)
			}
			saved := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			// The CFA is not part of the saved register state in practice
			// only for GCC's use; DWARF says the whole row is restored.
			*r = saved
		case 0x0c: // def_cfa
			var reg, off uint64
			if reg, err = rd.uleb(); err == nil {
				if off, err = rd.uleb(); err == nil {
					r.cfaReg, r.cfaOff, r.cfaExpr = reg, int64(off), nil
				}
			}
		case 0x0d: // def_cfa_register
			var reg uint64
			if reg, err = rd.uleb(); err == nil {
				r.cfaReg, r.cfaExpr = reg, nil
			}
		case 0x0e: // def_cfa_offset
			var off uint64
			if off, err = rd.uleb(); err == nil {
				r.cfaOff = int64(off)
			}
		case 0x0f: // def_cfa_expression
			var b []byte
			if b, err = block(rd); err == nil {
				r.cfaExpr = b
			}
		case 0x10, 0x16: // expression, val_expression
			var reg uint64
			if reg, err = rd.uleb(); err == nil {
				var b []byte
				if b, err = block(rd); err == nil {
					k := ruleExpr
					if op == 0x16 {
						k = ruleValExpr
					}
					setReg(reg, regRule{kind: k, expr: b})
				}
			}
		case 0x11, 0x14, 0x15: // offset_extended_sf, val_offset, val_offset_sf
			var reg uint64
			if reg, err = rd.uleb(); err == nil {
				var off int64
				if op == 0x14 {
					var u uint64
					u, err = rd.uleb()
					off = int64(u)
				} else {
					off, err = rd.sleb()
				}
				if err == nil {
					k := ruleOffset
					if op != 0x11 {
						k = ruleValOffset
					}
					setReg(reg, regRule{kind: k, off: off * c.dataAlign})
				}
			}
		case 0x12: // def_cfa_sf
			var reg uint64
			if reg, err = rd.uleb(); err == nil {
				var off int64
				if off, err = rd.sleb(); err == nil {
					r.cfaReg, r.cfaOff, r.cfaExpr = reg, off*c.dataAlign, nil
				}
			}
		case 0x13: // def_cfa_offset_sf
			var off int64
			if off, err = rd.sleb(); err == nil {
				r.cfaOff = off * c.dataAlign
			}
		case 0x2e: // GNU_args_size
			_, err = rd.uleb()
		case 0x2f: // GNU_negative_offset_extended
			var reg, off uint64
			if reg, err = rd.uleb(); err == nil {
				if off, err = rd.uleb(); err == nil {
					setReg(reg, regRule{kind: ruleOffset, off: -int64(off) * c.dataAlign})
				}
			}
		default:
			return fmt.Errorf("%w: unknown CFA instruction %#x", errCFI, op)
		}
		if err != nil {
			return err
		}
	}
	return nil
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
