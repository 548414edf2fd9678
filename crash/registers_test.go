package crash

import (
	"encoding/json"
	"testing"
)

func TestRegNames(t *testing.T) {
	for r := Reg(0); r < NumRegs; r++ {
		back, ok := ParseReg(r.String())
		if !ok || back != r {
			t.Errorf("%d: %q parses as %d, %v", r, r.String(), back, ok)
		}
	}
	// DWARF numbering of the general-purpose registers and rip.
	for n, name := range []string{"rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip"} {
		if Reg(n).String() != name {
			t.Errorf("DWARF register %d is %s, want %s", n, Reg(n), name)
		}
	}
	if _, ok := ParseReg("xmm0"); ok {
		t.Error("xmm0 parsed")
	}
}

// TestRegistersJSON: the JSON form is the object of known registers that the
// schema describes (a map from name to hex string), and it round-trips.
func TestRegistersJSON(t *testing.T) {
	var s Registers
	if !s.IsZero() {
		t.Fatal("zero value knows registers")
	}
	s.Set(RegRIP, 0x401000)
	s.Set(RegRAX, 0)
	s.Set(RegFSBase, 0x7f0011223344)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"fs_base":"0x7f0011223344","rax":"0x0","rip":"0x401000"}`
	if string(b) != want {
		t.Errorf("got %s, want %s", b, want)
	}
	// Same bytes as the map the schema documents.
	m, _ := json.Marshal(map[string]Addr{"rip": 0x401000, "rax": 0, "fs_base": 0x7f0011223344})
	if string(m) != string(b) {
		t.Errorf("map form %s differs from %s", m, b)
	}
	var back Registers
	if err := json.Unmarshal(b, &back); err != nil || back != s {
		t.Errorf("round trip: %+v, %v", back, err)
	}
	if v, ok := back.Get(RegRAX); !ok || v != 0 {
		t.Errorf("rax: %#x %v", v, ok)
	}
	if _, ok := back.Get(RegRBX); ok {
		t.Error("rbx known")
	}
	back.Clear(RegRAX)
	if back.Len() != 2 {
		t.Errorf("Len %d", back.Len())
	}
	// A thread without registers has no registers field.
	th, _ := json.Marshal(Thread{TID: 1})
	var doc map[string]any
	_ = json.Unmarshal(th, &doc)
	if _, ok := doc["registers"]; ok {
		t.Errorf("empty registers in JSON: %s", th)
	}
	if err := json.Unmarshal([]byte(`{"rip":"nope"}`), &back); err == nil {
		t.Error("bad value accepted")
	}
}
