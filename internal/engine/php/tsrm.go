package php

import (
	"fmt"

	"github.com/coroner-dev/coroner/internal/engine/x86sym"
)

// tsrmAccess says how the code of a thread-safe (ZTS) PHP reaches the
// thread's TSRM block, the pointer EG and SG are offsets from
// (EG = block + executor_globals_offset): a thread-local variable
// (_tsrm_ls_cache) at a constant offset from the thread pointer (the
// executable's static TLS: "mov rax,-0x18; mov rdx,fs:[rax]"), or at an
// offset the loader wrote into a GOT slot (initial-exec TLS of a shared
// object: "mov rax,[rip+slot]; mov rdx,fs:[rax]").
type tsrmAccess struct {
	// tpOffset is the variable's offset from the thread pointer, when
	// constant; gotSlot the link-time address of the GOT slot holding it
	// otherwise.
	tpOffset int64
	gotSlot  uint64
	// anchor is the function whose code showed it.
	anchor string
}

// noteTSRM records how a ZTS anchor reads the TSRM block pointer v (the
// first such access wins; later ones must agree).
func (x *deriver) noteTSRM(v x86sym.Value) {
	from, ok := v.LoadedFrom()
	if !ok || from.Kind() != x86sym.ThreadPointer {
		return
	}
	t := &tsrmAccess{tpOffset: from.Off}
	if x.cur != nil {
		t.anchor = x.cur.name
	}
	if off := from.Base.From; off != nil {
		slot, ok := off.LoadedFrom()
		addr, k, isGlobal := slot.GlobalOf()
		if !ok || !isGlobal || off.Off != 0 {
			return
		}
		t.gotSlot = uint64(int64(addr) + k)
	}
	if x.d.tsrm == nil {
		x.d.tsrm = t
		return
	}
	if x.d.tsrm.tpOffset != t.tpOffset || x.d.tsrm.gotSlot != t.gotSlot {
		x.d.conflicts["tsrm"] = fmt.Sprintf("the TSRM block is read at fs:%d (slot %#x) and at fs:%d (slot %#x)",
			x.d.tsrm.tpOffset, x.d.tsrm.gotSlot, t.tpOffset, t.gotSlot)
	}
}

// describe says in words where the TSRM block pointer is.
func (t *tsrmAccess) describe() string {
	s := fmt.Sprintf("[fs_base%+#x] (static TLS)", t.tpOffset)
	if t.gotSlot != 0 {
		s = fmt.Sprintf("[fs_base + the offset in GOT slot %#x%+#x] (initial-exec TLS)", t.gotSlot, t.tpOffset)
	}
	if t.anchor != "" {
		s += ", as " + t.anchor + " reads it"
	}
	return s
}
