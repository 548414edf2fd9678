package php

import (
	"fmt"
	"strings"

	"golang.org/x/arch/x86/x86asm"

	"github.com/coroner-dev/coroner/internal/engine/x86sym"
)

// An anchor is an exported function of the PHP binary whose machine code
// reads fields coroner needs: its symbolic evaluation (package x86sym) is
// the raw material of the derivation rules.
type anchor struct {
	name  string
	fn    x86sym.Func
	facts *x86sym.Facts
	// err says why the anchor gave nothing (not exported, undecodable).
	err error
	// data names the exported data symbols, for printing instructions.
	data map[uint64]string
}

// anchorAt evaluates an exported function once per derivation.
func (x *deriver) anchorAt(name string) *anchor {
	if a, ok := x.anchors[name]; ok {
		x.cur = a
		return a
	}
	a := x.evaluate(name)
	x.anchors[name] = a
	x.cur = a
	return a
}

// evaluate reads and evaluates one anchor.
func (x *deriver) evaluate(name string) *anchor {
	a := &anchor{name: name, data: x.dataSymbols}
	fn, err := x.o.function(name)
	if err != nil {
		a.err = err
		return a
	}
	a.fn = fn
	facts, err := x86sym.Evaluate(fn)
	if err != nil {
		a.err = fmt.Errorf("%s: %w", name, err)
		return a
	}
	a.facts = facts
	return a
}

// instruction returns the Intel syntax of the anchor's instruction at pc.
func (a *anchor) instruction(pc uint64) string {
	if a == nil || pc < a.fn.Addr || pc >= a.fn.Addr+uint64(len(a.fn.Code)) {
		return ""
	}
	b := a.fn.Code[pc-a.fn.Addr:]
	if len(b) >= 4 && b[0] == 0xf3 && b[1] == 0x0f && b[2] == 0x1e && b[3] == 0xfa {
		return "endbr64"
	}
	inst, err := x86asm.Decode(b, 64)
	if err != nil {
		return ""
	}
	symname := func(addr uint64) (string, uint64) {
		if n := a.fn.Callees[addr]; n != "" {
			return n, addr
		}
		if n := a.data[addr]; n != "" {
			return n, addr
		}
		return "", 0
	}
	return strings.ToLower(x86asm.IntelSyntax(inst, pc, symname))
}

// Roots of the expressions the rules look at.
const (
	rootEG = "EG" // &executor_globals (NTS), or TSRM base + executor_globals_offset (ZTS)
	rootSG = "SG" // &sapi_globals, the same way
)

// root names the base of a chain: rootEG, rootSG, "arg0".."arg5" for the
// argument registers, "call:NAME" for a call's result ("call:" when the
// call was indirect), "global:NAME" for another exported global, else "".
func (x *deriver) root(v x86sym.Value) string {
	switch v.Kind() {
	case x86sym.Global:
		addr, off, _ := v.GlobalOf()
		if off != 0 {
			return ""
		}
		switch addr {
		case x.sym.eg:
			if x.sym.eg != 0 {
				return rootEG
			}
		case x.sym.sg:
			if x.sym.sg != 0 {
				return rootSG
			}
		}
		if n := x.dataSymbols[addr]; n != "" {
			return "global:" + n
		}
	case x86sym.Arg:
		reg, off, _ := v.ArgOf()
		if off != 0 {
			return ""
		}
		for i, r := range []x86asm.Reg{x86asm.RDI, x86asm.RSI, x86asm.RDX, x86asm.RCX, x86asm.R8, x86asm.R9} {
			if r == reg {
				return fmt.Sprintf("arg%d", i)
			}
		}
	case x86sym.CallResult:
		if v.Off == 0 {
			return "call:" + v.Base.Name
		}
	case x86sym.Sum:
		return x.tsrmRoot(v)
	}
	return ""
}

// tsrmRoot recognises a ZTS global reached through TSRM: the thread's TSRM
// block (a thread-local pointer) plus the value of executor_globals_offset
// (or sapi_globals_offset).
func (x *deriver) tsrmRoot(v x86sym.Value) string {
	if v.Off != 0 {
		return ""
	}
	a, b, ok := v.Operands()
	if !ok {
		return ""
	}
	for _, pair := range [][2]x86sym.Value{{a, b}, {b, a}} {
		from, ok := pair[0].LoadedFrom()
		if !ok {
			continue
		}
		addr, off, ok := from.GlobalOf()
		if !ok || off != 0 || !x.isThreadValue(pair[1]) {
			continue
		}
		switch x.dataSymbols[addr] {
		case "executor_globals_offset":
			x.noteTSRM(pair[1])
			return rootEG
		case "sapi_globals_offset":
			x.noteTSRM(pair[1])
			return rootSG
		}
	}
	return ""
}

// isThreadValue reports whether v is read through the thread pointer (the
// TSRM cache variable, or the result of tsrm_get_ls_cache()).
func (x *deriver) isThreadValue(v x86sym.Value) bool {
	if v.Kind() == x86sym.CallResult {
		return v.Base.Name == "tsrm_get_ls_cache"
	}
	for v.Kind() == x86sym.Load {
		from, _ := v.LoadedFrom()
		v = from
	}
	return v.Kind() == x86sym.ThreadPointer
}

// chainOf decomposes v and names its root.
func (x *deriver) chainOf(v x86sym.Value) (string, x86sym.Chain) {
	if !v.Known() || v.IsConst() {
		return "", x86sym.Chain{}
	}
	c := v.Chain()
	return x.root(c.Root), c
}

// isArg reports whether v is exactly argument register n at entry.
func (x *deriver) isArg(v x86sym.Value, n int) bool {
	return v.Kind() == x86sym.Arg && x.root(v) == fmt.Sprintf("arg%d", n)
}

// stringAt returns the string constant a value points to ("" if none).
func (x *deriver) stringAt(v x86sym.Value) string {
	addr, off, ok := v.GlobalOf()
	if !ok {
		return ""
	}
	return x.o.cstring(uint64(int64(addr) + off))
}

// offsEq reports whether a chain's offsets are exactly want.
func offsEq(c x86sym.Chain, want ...int64) bool {
	if len(c.Offs) != len(want) {
		return false
	}
	for i := range want {
		if c.Offs[i] != want[i] {
			return false
		}
	}
	return true
}

// retPC is the address to show for a returned value: the load that read
// it, when the facts have it (the ret itself says little).
func (x *deriver) retPC(a *anchor, ret x86sym.Return) uint64 {
	want := x86sym.Value{Base: ret.Value.Base}
	for _, acc := range a.facts.Accesses {
		if !acc.Write && acc.Dest != 0 && acc.Value.Equal(want) && acc.PC < ret.PC {
			return acc.PC
		}
	}
	for _, acc := range a.facts.Accesses {
		if !acc.Write && acc.Dest != 0 && acc.Value.Equal(want) {
			return acc.PC
		}
	}
	return ret.PC
}
