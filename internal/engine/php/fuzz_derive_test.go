package php

import (
	"debug/elf"
	"testing"

	"github.com/coroner-dev/coroner/internal/engine/x86sym"
)

// anchorNames lists every function the rules read.
func anchorNames() []string {
	seen := map[string]bool{"zend_jit_status": true, "php_version": true}
	for _, fns := range fieldAnchors {
		for _, f := range fns {
			seen[f] = true
		}
	}
	out := make([]string, 0, len(seen))
	for f := range seen {
		out = append(out, f)
	}
	return out
}

// FuzzDeriveRules gives every anchor the same arbitrary machine code and
// runs all the rules on what it evaluates to: whatever the code of a
// binary, the derivation must end without panicking, and a value it gives
// must be in the bounds set() enforces.
func FuzzDeriveRules(f *testing.F) {
	f.Add([]byte{0x48, 0x8d, 0x05, 0x10, 0, 0, 0, 0x48, 0x83, 0xb8, 0xe8, 0x01, 0, 0, 0, 0x0f, 0x95, 0xc0, 0xc3}) // lea; cmp qword [rax+0x1e8],0; setne; ret
	f.Add([]byte{0x48, 0x8b, 0x47, 0x18, 0x80, 0x38, 0x01, 0x75, 0x04, 0x48, 0x8b, 0x7f, 0x30, 0xc3})             // func type test, prev
	f.Add([]byte{0x8b, 0x47, 0x3c, 0x48, 0xc1, 0xe0, 0x05, 0x48, 0x03, 0x47, 0x40, 0x48, 0x89, 0x87, 0xa8, 0, 0, 0, 0xc3})
	f.Add([]byte{0x64, 0x48, 0x8b, 0x04, 0x25, 0xe8, 0xff, 0xff, 0xff, 0x48, 0x03, 0x05, 0x10, 0, 0, 0, 0xc3})
	f.Fuzz(func(t *testing.T, code []byte) {
		if len(code) == 0 || len(code) > 4096 {
			return
		}
		fn := x86sym.Func{Code: code, Addr: 0x1000, Callees: map[uint64]string{0x2000: "zend_hash_find", 0x3000: "strcmp"}}
		facts, err := x86sym.Evaluate(fn)
		d := &derivation{fields: map[string]derived{}, conflicts: map[string]string{}, anchorErrs: map[string]string{}}
		x := &deriver{o: &object{byName: map[string]elf.Symbol{}}, sym: engineSymbols{eg: 0x1017, sg: 0x1100, egSize: 1800},
			d: d, anchors: map[string]*anchor{}, dataSymbols: map[uint64]string{0x1017: "executor_globals"}}
		for _, name := range anchorNames() {
			a := &anchor{name: name, fn: fn, facts: facts, err: err}
			if err != nil {
				a.facts = nil
			}
			x.anchors[name] = a
		}
		x.run()
		for id, v := range d.fields {
			if id != "zend_api" && v.value >= 1<<16 {
				t.Fatalf("%s = %d", id, v.value)
			}
		}
	})
}
