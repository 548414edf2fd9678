package php

import (
	"github.com/coroner-dev/coroner/internal/engine/x86sym"
)

// The rules of this file read the executor's call frames: where
// EG(current_execute_data) is and what a zend_execute_data holds. Each rule
// is a data-flow shape in an anchor's facts (docs/php-layouts.md lists them
// with the instructions they match in each release).

// zendHandleException is the opcode ZEND_HANDLE_EXCEPTION, which
// zend_get_executed_lineno compares the current opline's opcode with.
const zendHandleException = 0x95

// executorRules: zend_is_executing, zend_get_executed_filename_ex,
// zend_get_executed_lineno, zend_copy_parameters_array,
// zend_get_this_object, zend_get_called_scope.
func (x *deriver) executorRules() {
	// zend_is_executing: return EG(current_execute_data) != 0
	if a := x.anchorAt("zend_is_executing"); a.facts != nil {
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); acc.Op == "CMP" && acc.HasImm && acc.Imm == 0 && acc.Size == 8 && r == rootEG && c.Depth() == 0 {
				x.set("eg.current_execute_data", c.Final, a, acc.PC, "compared with NULL: EG(current_execute_data) != 0")
			}
		}
	}
	// zend_get_executed_filename_ex: returns ex->func->op_array.filename
	if a := x.anchorAt("zend_get_executed_filename_ex"); a.facts != nil {
		for _, ret := range a.facts.Returns {
			if r, c := x.chainOf(ret.Value); r == rootEG && c.Final == 0 && c.Depth() == 3 {
				const rule = "returns EG(current_execute_data)->func->op_array.filename"
				x.set("eg.current_execute_data", c.Offs[0], a, x.retPC(a, ret), rule)
				x.set("ex.func", c.Offs[1], a, x.retPC(a, ret), rule)
				x.set("oa.filename", c.Offs[2], a, x.retPC(a, ret), rule)
			}
		}
		x.frameWalk(a)
	}
	cur, haveCur := x.get("eg.current_execute_data")
	// zend_get_executed_lineno: returns ex->opline->lineno, or
	// ex->func->op_array.opcodes[0].lineno
	if a := x.anchorAt("zend_get_executed_lineno"); a.facts != nil && haveCur {
		for _, ret := range a.facts.Returns {
			r, c := x.chainOf(ret.Value)
			if r != rootEG || c.Final != 0 || c.Depth() == 0 || c.Offs[0] != cur {
				continue
			}
			switch c.Depth() {
			case 3:
				const rule = "returns EG(current_execute_data)->opline->lineno"
				x.set("ex.opline", c.Offs[1], a, x.retPC(a, ret), rule)
				x.set("op.lineno", c.Offs[2], a, x.retPC(a, ret), rule)
			case 4:
				const rule = "returns EG(current_execute_data)->func->op_array.opcodes[0].lineno"
				x.set("ex.func", c.Offs[1], a, x.retPC(a, ret), rule)
				x.set("oa.opcodes", c.Offs[2], a, x.retPC(a, ret), rule)
				x.set("op.lineno", c.Offs[3], a, x.retPC(a, ret), rule)
			}
		}
		opline, _ := x.get("ex.opline")
		for _, acc := range a.facts.Accesses {
			r, c := x.chainOf(acc.Addr)
			if acc.Op == "CMP" && acc.HasImm && acc.Imm&0xff == zendHandleException && acc.Size == 1 && r == rootEG && offsEq(c, cur, opline) {
				x.set("op.opcode", c.Final, a, acc.PC, "compared with ZEND_HANDLE_EXCEPTION (0x95)")
			}
		}
		// 7.4-8.4: lineno == 0 && opcode == ZEND_HANDLE_EXCEPTION as one
		// compare of a 40-bit masked qword read at the lineno offset.
		for _, cmp := range a.facts.Compares {
			masked, other := cmp.A, cmp.B
			if masked.Kind() != x86sym.Masked {
				masked, other = other, masked
			}
			if masked.Kind() != x86sym.Masked || masked.Base.Mask != 0xffffffffff || !other.IsConst() || other.Off != zendHandleException<<32 {
				continue
			}
			from, _, _ := masked.Operands()
			if r, c := x.chainOf(from); r == rootEG && c.Final == 0 && c.Depth() == 3 && c.Offs[0] == cur && c.Offs[1] == opline {
				x.set("op.opcode", c.Offs[2]+4, a, cmp.PC, "lineno and opcode compared as one masked qword with 0x95<<32: opcode follows lineno")
			}
		}
		x.frameWalk(a)
	}
	// zend_copy_parameters_array: ZEND_CALL_NUM_ARGS(ex) and ZEND_CALL_ARG(ex, 1)
	if a := x.anchorAt("zend_copy_parameters_array"); a.facts != nil && haveCur {
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); acc.Op == "CMP" && acc.Size == 4 && r == rootEG && offsEq(c, cur) {
				x.set("ex.this.u2.num_args", c.Final, a, acc.PC, "param_count compared with ZEND_CALL_NUM_ARGS(EG(current_execute_data))")
			}
		}
		for _, l := range a.facts.Leas {
			if r, c := x.chainOf(l.Value); r == rootEG && offsEq(c, cur) {
				x.set("args.offset", c.Final, a, l.PC, "ZEND_CALL_ARG(EG(current_execute_data), 1)")
			}
		}
	}
	// zend_get_this_object(ex): Z_TYPE(ex->This) == IS_OBJECT, returns Z_OBJ(ex->This)
	if a := x.anchorAt("zend_get_this_object"); a.facts != nil {
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); acc.Op == "CMP" && acc.Size == 1 && acc.HasImm && acc.Imm == isObject && r == "arg0" && c.Depth() == 0 && c.Final >= 8 {
				x.set("ex.this", c.Final-8, a, acc.PC, "Z_TYPE(ex->This) compared with IS_OBJECT (the type is at +8)")
			}
		}
		for _, ret := range a.facts.Returns {
			if r, c := x.chainOf(ret.Value); r == "arg0" && c.Depth() == 1 && c.Final == 0 {
				x.set("ex.this", c.Offs[0], a, x.retPC(a, ret), "returns Z_OBJ(ex->This)")
			}
		}
		x.frameWalk(a)
	}
	// zend_get_called_scope(ex): returns Z_OBJCE(ex->This) or func->common.scope
	if a := x.anchorAt("zend_get_called_scope"); a.facts != nil {
		this, haveThis := x.get("ex.this")
		fn, haveFn := x.get("ex.func")
		for _, ret := range a.facts.Returns {
			if r, c := x.chainOf(ret.Value); r == "arg0" && c.Depth() == 2 && c.Final == 0 && haveThis && c.Offs[0] == this {
				x.set("obj.ce", c.Offs[1], a, x.retPC(a, ret), "returns Z_OBJCE(ex->This)")
			}
		}
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); acc.Op == "CMP" && acc.Size == 8 && acc.HasImm && acc.Imm == 0 && r == "arg0" && haveFn && offsEq(c, fn) {
				x.set("fn.scope", c.Final, a, acc.PC, "ex->func->common.scope compared with NULL")
			}
		}
		x.frameWalk(a)
	}
}

// frameWalk finds, in a function that walks the frames from
// EG(current_execute_data) (or from its first argument), the step to the
// previous frame (a load that replaces the frame pointer with a field of
// the frame) and the test of the function's type (ZEND_USER_CODE:
// "type & 1" or "type == 1" on the byte at func+0).
func (x *deriver) frameWalk(a *anchor) {
	cur, haveCur := x.get("eg.current_execute_data")
	isFrame := func(v x86sym.Value) bool {
		r, c := x.chainOf(v)
		return (r == "arg0" && c.Depth() == 0 && c.Final == 0) || (haveCur && r == rootEG && offsEq(c, cur) && c.Final == 0)
	}
	fn, haveFn := x.get("ex.func")
	for _, acc := range a.facts.Accesses {
		if acc.Write || acc.Size != 8 || acc.Dest == 0 || !isFrame(acc.Prior) {
			continue
		}
		if base := (x86sym.Value{Base: acc.Addr.Base}); base.Equal(acc.Prior) && acc.Addr.Off != 0 && (!haveFn || acc.Addr.Off != fn) {
			x.set("ex.prev", acc.Addr.Off, a, acc.PC, "ex = ex->prev_execute_data (the frame pointer replaced by a field of its frame)")
		}
	}
	for _, acc := range a.facts.Accesses {
		if (acc.Op != "CMP" && acc.Op != "TEST") || acc.Size != 1 || !acc.HasImm || acc.Imm != 1 || acc.Addr.Off != 0 {
			continue
		}
		from, ok := (x86sym.Value{Base: acc.Addr.Base}).LoadedFrom()
		if !ok || !isFrame(x86sym.Value{Base: from.Base}) {
			continue
		}
		const rule = "ex->func->type tested against ZEND_INTERNAL_FUNCTION (1)"
		x.set("fn.type", 0, a, acc.PC, rule)
		x.set("ex.func", from.Off, a, acc.PC, rule)
	}
}

// functionRules: zend_get_call_trampoline_func, pass_two,
// zend_init_func_execute_data, get_function_arg_name,
// get_active_function_name, get_active_class_name.
func (x *deriver) functionRules() {
	x.trampolineRules()
	// pass_two: op_array->literals = (zval*)(op_array->opcodes + op_array->last)
	if a := x.anchorAt("pass_two"); a.facts != nil {
		for _, acc := range a.facts.Accesses {
			if !acc.Write || acc.Value.Kind() != x86sym.Sum || acc.Value.Off != 0 {
				continue
			}
			p, q, _ := acc.Value.Operands()
			if p.Kind() != x86sym.Scaled {
				p, q = q, p
			}
			if p.Kind() != x86sym.Scaled || p.Off != 0 {
				continue
			}
			last, _, _ := p.Operands()
			rl, cl := x.chainOf(last)
			rq, cq := x.chainOf(q)
			if rl == "arg0" && rq == "arg0" && cl.Depth() == 1 && cq.Depth() == 1 && cl.Sizes[0] == 4 && cq.Sizes[0] == 8 && cl.Final == 0 && cq.Final == 0 {
				const rule = "stores op_array->opcodes + op_array->last (last scaled by sizeof(zend_op))"
				x.set("oa.last", cl.Offs[0], a, acc.PC, rule)
				x.set("oa.opcodes", cq.Offs[0], a, acc.PC, rule)
				x.set("op.size", 1<<p.Base.Shift, a, acc.PC, rule)
			}
		}
	}
	// get_function_arg_name(func, arg_num) (8.0+): arg_num > func->common.num_args
	if a := x.anchorAt("get_function_arg_name"); a.facts != nil {
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); acc.Op == "CMP" && acc.Size == 4 && r == "arg0" && c.Depth() == 0 && x.isArg(acc.Other, 1) {
				x.set("fn.num_args", c.Final, a, acc.PC, "func->common.num_args compared with arg_num")
			}
		}
	}
	// zend_init_func_execute_data(ex, op_array, rv): EX_NUM_ARGS() > op_array->num_args
	// (a larger function: read only when get_function_arg_name, 8.0+, did not give it)
	if _, ok := x.get("fn.num_args"); !ok {
		if a := x.anchorAt("zend_init_func_execute_data"); a.facts != nil {
			for _, acc := range a.facts.Accesses {
				r, c := x.chainOf(acc.Addr)
				ro, co := x.chainOf(acc.Other)
				if acc.Op == "CMP" && acc.Size == 4 && r == "arg1" && c.Depth() == 0 && ro == "arg0" && co.Depth() == 1 && co.Final == 0 {
					const rule = "EX_NUM_ARGS() compared with op_array->num_args"
					x.set("fn.num_args", c.Final, a, acc.PC, rule)
					x.set("ex.this.u2.num_args", co.Offs[0], a, acc.PC, rule)
				}
			}
		}
	}
	// get_active_function_name: ZSTR_VAL(func->common.function_name)
	if a := x.anchorAt("get_active_function_name"); a.facts != nil {
		for _, ret := range a.facts.Returns {
			if r, c := x.chainOf(ret.Value); r == rootEG && c.Depth() == 3 {
				const rule = "returns ZSTR_VAL(EG(current_execute_data)->func->common.function_name)"
				x.set("fn.name", c.Offs[2], a, x.retPC(a, ret), rule)
				x.set("str.val", c.Final, a, x.retPC(a, ret), rule)
			}
		}
	}
	// get_active_class_name: ZSTR_VAL(func->common.scope->name)
	if a := x.anchorAt("get_active_class_name"); a.facts != nil {
		for _, ret := range a.facts.Returns {
			r, c := x.chainOf(ret.Value)
			const rule = "returns ZSTR_VAL(func->common.scope->name)"
			switch {
			case r == rootEG && c.Depth() == 4:
				x.set("fn.scope", c.Offs[2], a, x.retPC(a, ret), rule)
				x.set("ce.name", c.Offs[3], a, x.retPC(a, ret), rule)
				x.set("str.val", c.Final, a, x.retPC(a, ret), rule)
			case r == "call:zend_active_function_ex" && c.Depth() == 2: // 8.5
				x.set("fn.scope", c.Offs[0], a, x.retPC(a, ret), rule+" (func from zend_active_function_ex)")
				x.set("ce.name", c.Offs[1], a, x.retPC(a, ret), rule+" (func from zend_active_function_ex)")
				x.set("str.val", c.Final, a, x.retPC(a, ret), rule)
			}
		}
	}
}

// trampolineRules reads zend_get_call_trampoline_func, which fills a
// zend_op_array (EG(trampoline), or a new one from ecalloc) from the
// __call/__callStatic method fbc: it copies fbc->op_array.line_start and
// line_end, stores fbc->op_array.filename or ZSTR_EMPTY_ALLOC() as the
// filename, and &EG(call_trampoline_op) as the opcodes.
func (x *deriver) trampolineRules() {
	a := x.anchorAt("zend_get_call_trampoline_func")
	if a.facts == nil {
		return
	}
	type copy struct {
		root       string
		store, val int64
		size       int
		pc         uint64
	}
	var copies, empties, egPtrs []copy
	votes := map[string]map[int64]int{} // root -> (store - value offset) -> count
	for _, acc := range a.facts.Accesses {
		if !acc.Write || !acc.Value.Known() {
			continue
		}
		sr, sc := x.chainOf(acc.Addr)
		if sr == "" || sc.Depth() != 0 {
			continue
		}
		vr, vc := x.chainOf(acc.Value)
		switch {
		case vr == "arg0" && vc.Depth() == 2 && vc.Final == 0: // a field of fbc = arg0->__call
			copies = append(copies, copy{sr, sc.Final, vc.Offs[1], acc.Size, acc.PC})
			if votes[sr] == nil {
				votes[sr] = map[int64]int{}
			}
			votes[sr][sc.Final-vc.Offs[1]]++
		case vr == "global:zend_empty_string" && offsEq(vc, 0) && vc.Final == 0:
			empties = append(empties, copy{root: sr, store: sc.Final, size: acc.Size, pc: acc.PC})
		case vr == rootEG && vc.Depth() == 0 && acc.Size == 8:
			egPtrs = append(egPtrs, copy{root: sr, store: sc.Final, val: vc.Final, size: 8, pc: acc.PC})
		}
	}
	base := map[string]int64{} // where the new zend_op_array starts, per root
	for root, v := range votes {
		best, n := int64(0), 0
		for b, k := range v {
			if k > n || k == n && b < best {
				best, n = b, k
			}
		}
		base[root] = best
	}
	for _, e := range empties {
		b, ok := base[e.root]
		if !ok || e.size != 8 {
			continue
		}
		fn := e.store - b
		x.set("oa.filename", fn, a, e.pc, "filename = ZSTR_EMPTY_ALLOC() for a function that is not user code")
		for _, c := range copies {
			if c.root != e.root || c.size != 4 || c.store-b != c.val {
				continue
			}
			switch c.val {
			case fn + 8:
				x.set("oa.line_start", c.val, a, c.pc, "copies fbc->op_array.line_start (the uint32 after filename)")
			case fn + 12:
				x.set("oa.line_end", c.val, a, c.pc, "copies fbc->op_array.line_end")
			}
		}
	}
	for _, e := range egPtrs {
		if b, ok := base[e.root]; ok {
			x.set("oa.opcodes", e.store-b, a, e.pc, "opcodes = &EG(call_trampoline_op)")
		}
	}
	for _, c := range a.facts.Calls {
		if c.Name == "_ecalloc" && c.Args[1].IsConst() && c.Args[1].Off > 0 && c.Args[1].Off < 1<<16 {
			x.d.opArraySize = uint64(c.Args[1].Off)
		}
	}
	// if (strlen(ZSTR_VAL(method_name)) != ZSTR_LEN(method_name))
	isStrlen := func(v x86sym.Value) bool {
		return v.Kind() == x86sym.CallResult && v.Off == 0 && v.Base.Name == "strlen"
	}
	for _, acc := range a.facts.Accesses {
		if r, c := x.chainOf(acc.Addr); acc.Op == "CMP" && acc.Size == 8 && isStrlen(acc.Other) && r == "arg1" && c.Depth() == 0 {
			x.set("str.len", c.Final, a, acc.PC, "ZSTR_LEN(method_name) compared with strlen(ZSTR_VAL(method_name))")
		}
	}
	for _, cmp := range a.facts.Compares {
		p, q := cmp.A, cmp.B
		if !isStrlen(p) {
			p, q = q, p
		}
		if r, c := x.chainOf(q); isStrlen(p) && r == "arg1" && c.Depth() == 1 && c.Final == 0 {
			x.set("str.len", c.Offs[0], a, cmp.PC, "ZSTR_LEN(method_name) compared with strlen(ZSTR_VAL(method_name))")
		}
	}
}
