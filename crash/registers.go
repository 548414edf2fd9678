package crash

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
)

// Reg is an x86-64 register. The general-purpose registers and rip are
// numbered as in the System V ABI's DWARF register mapping (rax 0, rdx 1,
// rcx 2, rbx 3, rsi 4, rdi 5, rbp 6, rsp 7, r8-r15 8-15, rip 16), so call
// frame information can index a Registers directly; the others follow.
type Reg uint8

// Registers.
const (
	RegRAX Reg = iota
	RegRDX
	RegRCX
	RegRBX
	RegRSI
	RegRDI
	RegRBP
	RegRSP
	RegR8
	RegR9
	RegR10
	RegR11
	RegR12
	RegR13
	RegR14
	RegR15
	RegRIP
	RegEflags
	RegFSBase
	RegGSBase
	RegOrigRAX
	// NumRegs is the number of registers; it is not a register.
	NumRegs
)

var regNames = [NumRegs]string{"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
	"r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip", "eflags", "fs_base", "gs_base", "orig_rax"}

// String returns the register's lower-case name ("rip", "fs_base").
func (r Reg) String() string {
	if r < NumRegs {
		return regNames[r]
	}
	return fmt.Sprintf("reg%d", uint8(r))
}

// ParseReg returns the register named name ("rsp").
func ParseReg(name string) (Reg, bool) {
	for i, n := range regNames {
		if n == name {
			return Reg(i), true
		}
	}
	return 0, false
}

// ArgRegs are the System V x86-64 integer argument registers, in order.
var ArgRegs = [6]Reg{RegRDI, RegRSI, RegRDX, RegRCX, RegR8, RegR9}

// Registers is a set of register values, each known or not. The zero value
// knows no register. Its JSON form is an object from register name to
// "0x..." value holding the known registers.
type Registers struct {
	vals  [NumRegs]uint64
	valid uint32
}

// Get returns register r when it is known.
func (s *Registers) Get(r Reg) (uint64, bool) {
	if r >= NumRegs || s.valid&(1<<r) == 0 {
		return 0, false
	}
	return s.vals[r], true
}

// Value returns register r, or 0 when it is not known.
func (s *Registers) Value(r Reg) uint64 {
	v, _ := s.Get(r)
	return v
}

// Set makes r known with value v.
func (s *Registers) Set(r Reg, v uint64) {
	if r < NumRegs {
		s.vals[r] = v
		s.valid |= 1 << r
	}
}

// Clear forgets r.
func (s *Registers) Clear(r Reg) {
	if r < NumRegs {
		s.valid &^= 1 << r
	}
}

// IsZero reports whether no register is known (the JSON field is then
// omitted).
func (s Registers) IsZero() bool { return s.valid == 0 }

// Len returns how many registers are known.
func (s *Registers) Len() int {
	n := 0
	for r := Reg(0); r < NumRegs; r++ {
		if s.valid&(1<<r) != 0 {
			n++
		}
	}
	return n
}

// MarshalJSON writes the known registers as {"name": "0x...", ...}, names
// sorted.
func (s Registers) MarshalJSON() ([]byte, error) {
	var known []Reg
	for r := Reg(0); r < NumRegs; r++ {
		if s.valid&(1<<r) != 0 {
			known = append(known, r)
		}
	}
	sort.Slice(known, func(i, j int) bool { return regNames[known[i]] < regNames[known[j]] })
	var b bytes.Buffer
	b.WriteByte('{')
	for i, r := range known {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%q", regNames[r], Addr(s.vals[r]).String())
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads the object MarshalJSON writes; names it does not know
// are ignored.
func (s *Registers) UnmarshalJSON(b []byte) error {
	var m map[string]Addr
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("registers: %w", err)
	}
	*s = Registers{}
	for name, v := range m {
		if r, ok := ParseReg(name); ok {
			s.Set(r, uint64(v))
		}
	}
	return nil
}
