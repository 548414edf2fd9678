package x86sym

import (
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// FuzzEvaluate runs the evaluator on arbitrary bytes: it must end, within
// its step bound, without panicking.
func FuzzEvaluate(f *testing.F) {
	f.Add([]byte{0x48, 0x8d, 0x0d, 0x99, 0x00, 0x2a, 0x00, 0x48, 0x8b, 0x81, 0xe8, 0x01, 0x00, 0x00, 0xc3}) // lea; mov; ret
	f.Add([]byte{0xeb, 0xfe})                                                                               // jmp self
	f.Add([]byte{0x48, 0x8b, 0x40, 0x30, 0x48, 0x85, 0xc0, 0x75, 0xf7, 0xc3})                               // a list walk
	f.Add([]byte{0x64, 0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x00, 0x00, 0x48, 0x03, 0x05, 0x10, 0, 0, 0, 0xc3})
	f.Add([]byte{0xf3, 0x0f, 0x1e, 0xfa, 0x50, 0x58, 0xff, 0xe0})
	f.Fuzz(func(t *testing.T, code []byte) {
		facts, err := Evaluate(Func{Code: code, Addr: 0x1000, Pointers: map[uint64]uint64{0x2000: 0x3000}})
		if err != nil {
			return
		}
		if facts.Steps > maxSteps {
			t.Fatalf("%d steps", facts.Steps)
		}
		for _, a := range facts.Accesses {
			_ = a.Addr.Key()
		}
	})
}

// TestLoopsEnd checks that a loop without exit, and a long chain of
// branches, end within the bounds and say so.
func TestLoopsEnd(t *testing.T) {
	// 0: mov rax,[rax+0x30]; test rax,rax; jne 0; jmp 0
	code := []byte{0x48, 0x8b, 0x40, 0x30, 0x48, 0x85, 0xc0, 0x75, 0xf7, 0xeb, 0xf5}
	facts, err := Evaluate(Func{Code: code, Addr: 0x1000})
	if err != nil {
		t.Fatal(err)
	}
	if facts.Steps == 0 || facts.Steps > 100 {
		t.Errorf("steps %d", facts.Steps)
	}
	// rax is not an argument: its loads are unknown and recorded nowhere.
	if len(facts.Accesses) != 0 {
		t.Errorf("accesses through an unknown register: %+v", facts.Accesses)
	}
	// 0: mov rdi,[rdi+0x30]; test rdi,rdi; jne 0; ret: a list walk from the first argument.
	code = []byte{0x48, 0x8b, 0x7f, 0x30, 0x48, 0x85, 0xff, 0x75, 0xf7, 0xc3}
	facts, err = Evaluate(Func{Code: code, Addr: 0x1000})
	if err != nil {
		t.Fatal(err)
	}
	// Each path runs the loop body once; the load says it replaces the
	// pointer it was read through (p = p->next).
	if len(facts.Accesses) != 1 {
		t.Fatalf("accesses %+v", facts.Accesses)
	}
	a := facts.Accesses[0]
	if a.Addr.Key() != "ARDI+30" || a.Size != 8 || a.Write || a.Dest != x86asm.RDI || a.Prior.Key() != "ARDI" || a.Value.Key() != "[ARDI+30]8" {
		t.Errorf("access %+v, want a load of [ARDI+30] into rdi, which held ARDI", a)
	}
	if len(facts.Returns) != 1 || facts.Returns[0].Value.Known() {
		t.Errorf("returns %+v, want one unknown rax", facts.Returns)
	}
	if _, err := Evaluate(Func{Addr: 0x1000}); err == nil {
		t.Error("no code: no error")
	}
}
