package php

import (
	"github.com/coroner-dev/coroner/internal/engine/x86sym"
)

// jitSymbols locates the OPcache JIT buffer's bookkeeping in the object
// that holds the JIT (opcache.so in PHP 8.0-8.4, the PHP binary from 8.5):
// the static variables dasm_buf and dasm_end bound the buffer, dasm_ptr
// points at its first free byte. Addresses are link-time.
type jitSymbols struct {
	path                      string
	dasmBuf, dasmEnd, dasmPtr uint64
	// anchor, pc and instr say where they were read (zend_jit_status).
	anchor string
	pc     uint64
	instr  string
}

// jitFromCode reads zend_jit_status(zval *ret), which reports
// "buffer_size" as dasm_end - dasm_buf and "buffer_free" as
// dasm_end - *dasm_ptr through add_assoc_long_ex(&stats, key, len, value).
func jitFromCode(x *deriver) *jitSymbols {
	a := x.anchorAt("zend_jit_status")
	if a.facts == nil {
		return nil
	}
	j := &jitSymbols{path: x.o.path, anchor: a.name}
	global := func(v x86sym.Value) (uint64, bool) {
		from, ok := v.LoadedFrom()
		if !ok {
			return 0, false
		}
		addr, off, ok := from.GlobalOf()
		return uint64(int64(addr) + off), ok
	}
	for _, c := range a.facts.Calls {
		if c.Name != "add_assoc_long_ex" || c.Args[3].Kind() != x86sym.Diff || c.Args[3].Off != 0 {
			continue
		}
		end, sub, _ := c.Args[3].Operands()
		switch x.stringAt(c.Args[1]) {
		case "buffer_size":
			e, ok1 := global(end)
			b, ok2 := global(sub)
			if ok1 && ok2 {
				j.dasmEnd, j.dasmBuf, j.pc, j.instr = e, b, c.PC, a.instruction(c.PC)
			}
		case "buffer_free":
			if from, ok := sub.LoadedFrom(); ok {
				if p, ok := global(x86sym.Value{Base: from.Base}); ok && from.Off == 0 {
					j.dasmPtr = p
				}
			}
		}
	}
	if j.dasmBuf == 0 || j.dasmEnd == 0 || j.dasmBuf == j.dasmEnd {
		return nil
	}
	return j
}
