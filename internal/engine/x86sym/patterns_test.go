package x86sym

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestCompiledPatterns compiles C functions shaped like the PHP anchors
// the layout rules read (gcc -O2, a shared object: calls go through the
// PLT) and checks the facts the rules need: stored values, scaled indexes,
// register compares, LEA results, calls named through the PLT with their
// arguments.
func TestCompiledPatterns(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	os.WriteFile(src, []byte(`
#include <string.h>
struct op { char pad[24]; unsigned lineno; unsigned char opcode; };
struct oa { char pad[60]; unsigned last; struct op *opcodes; char pad2[64]; void *literals; };
void two(struct oa *a) { a->literals = (char *)a->opcodes + (unsigned long)a->last * 32; }
struct sg { void *ctx; const char *method; };
struct sg sapi_globals;
int is_head(void) { return sapi_globals.method && !strcmp(sapi_globals.method, "HEAD"); }
struct zv { long v; unsigned char type; };
struct ht { char pad[8]; unsigned char flags; char pad2[7]; struct zv *data; unsigned used; };
struct zv *index_find(struct ht *h, unsigned long k) {
	if (h->flags & 4) { if (k < h->used && h->data[k].type) return &h->data[k]; }
	return 0;
}
struct ex { char pad[80]; };
struct zv *first_arg(struct ex *e) { return (struct zv *)((char *)e + 80); }
`), 0o644)
	so := filepath.Join(dir, "p.so")
	if out, err := exec.Command(gcc, "-O2", "-fPIC", "-shared", "-o", so, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}

	// two: a store of (L4(a+60) << 5) + L8(a+64) at a+136.
	facts := mustEvaluate(t, so, "two")
	found := false
	for _, a := range facts.Accesses {
		if !a.Write || a.Addr.Key() != "ARDI+88" || a.Value.Kind() != Sum {
			continue
		}
		p, q, _ := a.Value.Operands()
		if p.Kind() != Scaled {
			p, q = q, p
		}
		last, _, _ := p.Operands()
		found = p.Base.Shift == 5 && last.Key() == "[ARDI+3c]4" && q.Key() == "[ARDI+40]8"
	}
	if !found {
		t.Errorf("two: no store of (last<<5)+opcodes:\n%s", dump(t, facts))
	}

	// is_head: strcmp through the PLT, named, with [SG+8] and the string.
	facts = mustEvaluate(t, so, "is_head")
	found = false
	for _, c := range facts.Calls {
		if c.Name == "strcmp" && strings.HasPrefix(c.Args[0].Key(), "[G") && strings.HasSuffix(c.Args[0].Key(), "+8]8") && c.Args[1].Kind() == Global {
			found = true
		}
	}
	if !found {
		t.Errorf("is_head: no strcmp([sapi_globals+8], \"HEAD\") call in %+v", facts.Calls)
	}

	// index_find: h compared with a 4-byte field (a register compare) and
	// the element at [h+16] + (k << 4), its type byte at +8.
	facts = mustEvaluate(t, so, "index_find")
	cmp := false
	for _, c := range facts.Compares {
		for _, pq := range [][2]Value{{c.A, c.B}, {c.B, c.A}} {
			cmp = cmp || pq[0].Key() == "ARSI" && pq[1].Key() == "[ARDI+18]4"
		}
	}
	elem := false
	for _, a := range facts.Accesses {
		elem = elem || a.Addr.Key() == "(([ARDI+10]8)+(ARSI<<4))+8" || a.Addr.Key() == "((ARSI<<4)+[ARDI+10]8)+8"
	}
	if !cmp || !elem {
		t.Errorf("index_find: compare of k with used %v, element type access %v:\n%s", cmp, elem, dump(t, facts))
	}

	// first_arg: a LEA (or an add) of the argument plus 80, returned.
	facts = mustEvaluate(t, so, "first_arg")
	if len(facts.Returns) != 1 || facts.Returns[0].Value.Key() != "ARDI+50" {
		t.Errorf("first_arg: returns %+v", facts.Returns)
	}
}

func mustEvaluate(t *testing.T, path, name string) *Facts {
	t.Helper()
	facts, err := Evaluate(elfFunc(t, path, name))
	if err != nil {
		t.Fatal(err)
	}
	return facts
}

// TestHandWritten checks constructs compilers emit in the PHP anchors but
// that a small C file does not reliably produce.
func TestHandWritten(t *testing.T) {
	tests := []struct {
		name  string
		code  []byte
		check func(f *Facts) bool
	}{
		{"repe cmpsb is an inline string compare", []byte{
			0x48, 0x8b, 0x77, 0x08, // mov rsi,[rdi+8]
			0xb9, 0x05, 0, 0, 0, // mov ecx,5
			0x48, 0x8d, 0x3d, 0x10, 0, 0, 0, // lea rdi,[rip+0x10]
			0xf3, 0xa6, // repz cmpsb
			0xc3,
		}, func(f *Facts) bool {
			return len(f.Calls) == 1 && f.Calls[0].Name == InlineCompare && f.Calls[0].Args[1].Key() == "[ARDI+8]8" && f.Calls[0].Args[3].Key() == "#5"
		}},
		{"cmov follows both outcomes", []byte{
			0x48, 0x8b, 0x47, 0x10, // mov rax,[rdi+0x10]
			0x48, 0x85, 0xf6, // test rsi,rsi
			0x48, 0x0f, 0x44, 0x47, 0x18, // cmove rax,[rdi+0x18]
			0xc3,
		}, func(f *Facts) bool {
			keys := map[string]bool{}
			for _, r := range f.Returns {
				keys[r.Value.Key()] = true
			}
			return keys["[ARDI+10]8"] && keys["[ARDI+18]8"]
		}},
		{"masked qword compare", []byte{
			0x48, 0x8b, 0x17, // mov rdx,[rdi]
			0x48, 0xb8, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, // movabs rax,0xffffffffff
			0x48, 0x23, 0x42, 0x18, // and rax,[rdx+0x18]
			0x48, 0xbe, 0, 0, 0, 0, 0x95, 0, 0, 0, // movabs rsi,0x9500000000
			0x48, 0x39, 0xf0, // cmp rax,rsi
			0xc3,
		}, func(f *Facts) bool {
			for _, c := range f.Compares {
				if c.A.Kind() == Masked && c.A.Base.Mask == 0xffffffffff && c.B.IsConst() && c.B.Off == 0x95<<32 {
					from, _, _ := c.A.Operands()
					return from.Key() == "[[ARDI]8+18]8"
				}
			}
			return false
		}},
		{"difference of two loads", []byte{
			0x48, 0x8b, 0x05, 0x10, 0, 0, 0, // mov rax,[rip+0x10]
			0x48, 0x8b, 0x0d, 0x11, 0, 0, 0, // mov rcx,[rip+0x11]
			0x48, 0x29, 0xc1, // sub rcx,rax
			0x48, 0x89, 0xc8, // mov rax,rcx
			0xc3,
		}, func(f *Facts) bool {
			return len(f.Returns) == 1 && f.Returns[0].Value.Kind() == Diff
		}},
		{"an add on a pointer argument is recorded", []byte{
			0x48, 0x89, 0xfb, // mov rbx,rdi
			0x48, 0x83, 0xc3, 0x30, // add rbx,0x30
			0x48, 0x8b, 0x3b, // mov rdi,[rbx]
			0xc3,
		}, func(f *Facts) bool {
			return len(f.Adds) == 1 && f.Adds[0].Before.Key() == "ARDI" && f.Adds[0].Imm == 0x30 && f.Adds[0].Dest == x86asm.RBX
		}},
		{"an unmodelled index keeps the other terms", []byte{
			0x8b, 0x47, 0x0c, // mov eax,[rdi+0xc]
			0x48, 0x8b, 0x57, 0x10, // mov rdx,[rdi+0x10]
			0x09, 0xf0, // or eax,esi
			0x48, 0x98, // cdqe
			0x8b, 0x04, 0x82, // mov eax,[rdx+rax*4]
			0x48, 0xc1, 0xe0, 0x05, // shl rax,5
			0x48, 0x01, 0xd0, // add rax,rdx
			0x48, 0x3b, 0x70, 0x10, // cmp rsi,[rax+0x10]
			0xc3,
		}, func(f *Facts) bool {
			for _, a := range f.Accesses {
				if a.Op == "CMP" && a.Other.Key() == "ARSI" && a.Addr.Kind() == Sum && a.Addr.Off == 0x10 {
					return true
				}
			}
			return false
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Evaluate(Func{Code: tc.code, Addr: 0x1000})
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(f) {
				t.Errorf("facts:\n%s\ncompares %+v\ncalls %+v\nreturns %+v\nadds %+v", dump(t, f), f.Compares, f.Calls, f.Returns, f.Adds)
			}
		})
	}
}

// TestReadLinks checks that ReadLinks names PLT stubs and GOT slots of a
// shared object, and maps the GOT slot of an exported global to it.
func TestReadLinks(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "l.c")
	os.WriteFile(src, []byte(`
#include <string.h>
int shared_global;
int get(void) { return shared_global; }
unsigned long len(const char *s) { return strlen(s); }
`), 0o644)
	so := filepath.Join(dir, "l.so")
	if out, err := exec.Command(gcc, "-O2", "-fPIC", "-shared", "-o", so, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	f, err := elf.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.DynamicSymbols()
	l, err := ReadLinks(f, syms, nil)
	if err != nil {
		t.Fatal(err)
	}
	var global uint64
	for _, s := range syms {
		if s.Name == "shared_global" {
			global = s.Value
		}
	}
	gotSlot := false
	for _, target := range l.Pointers {
		gotSlot = gotSlot || target == global
	}
	named := map[string]bool{}
	for _, n := range l.Callees {
		named[n] = true
	}
	if !gotSlot || !named["strlen"] || !named["get"] {
		t.Errorf("pointers %v (want a slot holding %#x), callees %v", l.Pointers, global, named)
	}
	// get() reads shared_global through its GOT slot: the load is of the global.
	facts := mustEvaluate(t, so, "get")
	ok := false
	for _, a := range facts.Accesses {
		if g, off, isG := a.Addr.GlobalOf(); isG && g == global && off == 0 {
			ok = true
		}
	}
	if !ok {
		t.Errorf("get: no access to shared_global (%#x):\n%s", global, dump(t, facts))
	}
	filtered, _ := ReadLinks(f, syms, func(n string) bool { return n == "strlen" })
	for _, n := range filtered.Callees {
		if n != "strlen" {
			t.Errorf("filtered callees hold %s", n)
		}
	}
}
