package x86sym

import (
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// elfFunc returns the code of a defined symbol of an ELF file.
func elfFunc(t *testing.T, path, name string) Func {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	syms, _ := f.Symbols()
	dyn, _ := f.DynamicSymbols()
	for _, s := range append(syms, dyn...) {
		if s.Name != name || s.Size == 0 || elf.ST_TYPE(s.Info) != elf.STT_FUNC {
			continue
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_LOAD && s.Value >= p.Vaddr && s.Value+s.Size <= p.Vaddr+p.Filesz {
				b := make([]byte, s.Size)
				if _, err := p.ReadAt(b, int64(s.Value-p.Vaddr)); err != nil {
					t.Fatal(err)
				}
				links, err := ReadLinks(f, dyn, nil)
				if err != nil {
					t.Fatal(err)
				}
				return Func{Code: b, Addr: s.Value, Pointers: links.Pointers, Callees: links.Callees}
			}
		}
	}
	t.Fatalf("%s: no function %s", path, name)
	return Func{}
}

func dump(t *testing.T, f *Facts) string {
	var sb strings.Builder
	for _, a := range f.Accesses {
		sb.WriteString(a.Op + " " + a.Addr.Key())
		if a.Write {
			sb.WriteString(" W")
		}
		sb.WriteString("\n")
	}
	for _, c := range f.Calls {
		sb.WriteString("call " + c.Args[0].Key() + "\n")
	}
	for _, r := range f.Returns {
		sb.WriteString("ret " + r.Value.Key() + "\n")
	}
	return sb.String()
}

// TestCompiledAccessors compiles small accessors like PHP's with gcc -O2
// and checks that every field offset and global comes out of the code.
func TestCompiledAccessors(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "acc.c")
	os.WriteFile(src, []byte(`
struct str { long refc; long h; unsigned long len; char val[1]; };
struct fn { unsigned char type; char pad[7]; struct str *name; void *scope; char pad2[128]; struct str *filename; };
struct ex { void *opline; void *call; void *ret; struct fn *func; char this_[16]; struct ex *prev; };
struct eg { char pad[488]; struct ex *current; char pad2[1200]; const char *override; };
struct eg executor_globals;
__thread void *tls_cache __attribute__((tls_model("initial-exec")));
long executor_globals_offset;

const char *filename(void) {
	struct ex *ex;
	if (executor_globals.override) return executor_globals.override;
	for (ex = executor_globals.current; ex; ex = ex->prev)
		if (ex->func && ex->func->type != 1) return ex->func->filename->val;
	return 0;
}
void *scope(void) {
	struct ex *ex = executor_globals.current;
	while (ex) { if (ex->func && (ex->func->type != 1 || ex->func->scope)) return ex->func->scope; ex = ex->prev; }
	return 0;
}
extern long lookup(void *ht, const char *name, unsigned long len);
long ini(const char *name, unsigned long len) { return lookup(*(void **)((char *)&executor_globals + 816), name, len); }
struct ex *zts_current(void) {
	return ((struct eg *)((char *)tls_cache + executor_globals_offset))->current;
}
`), 0o644)
	so := filepath.Join(dir, "acc.so")
	if out, err := exec.Command(gcc, "-O2", "-fPIC", "-shared", "-o", so, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	ef, _ := elf.Open(so)
	var eg uint64
	syms, _ := ef.DynamicSymbols()
	for _, s := range syms {
		if s.Name == "executor_globals" {
			eg = s.Value
		}
	}
	ef.Close()
	egKey := Value{Base: newNode(Node{Kind: Global, Addr: eg})}

	facts, err := Evaluate(elfFunc(t, so, "filename"))
	if err != nil {
		t.Fatal(err)
	}
	d := dump(t, facts)
	cur := Value{Base: newNode(Node{Kind: Load, From: &Value{Base: egKey.Base, Off: 488}, Size: 8})}
	fn := Value{Base: newNode(Node{Kind: Load, From: &Value{Base: cur.Base, Off: 24}, Size: 8})}
	wantLoads := map[string]bool{
		Value{Base: egKey.Base, Off: 488}.Key(): false,
		Value{Base: cur.Base, Off: 24}.Key():    false,
		Value{Base: cur.Base, Off: 48}.Key():    false,
		Value{Base: fn.Base, Off: 0}.Key():      false,
	}
	for _, a := range facts.Accesses {
		if _, ok := wantLoads[a.Addr.Key()]; ok {
			wantLoads[a.Addr.Key()] = true
		}
	}
	for k, ok := range wantLoads {
		if !ok {
			t.Errorf("filename: no access to %s in\n%s", k, d)
		}
	}
	if !strings.Contains(d, "+98]") && !strings.Contains(d, "+98]8") {
		t.Errorf("filename: no load of func+0x98 (filename) in\n%s", d)
	}
	t.Logf("filename:\n%s", d)

	facts, err = Evaluate(elfFunc(t, so, "ini"))
	if err != nil {
		t.Fatal(err)
	}
	d = dump(t, facts)
	if len(facts.Calls) != 1 || facts.Calls[0].Args[0].Key() != (Value{Base: newNode(Node{Kind: Load, From: &Value{Base: egKey.Base, Off: 816}, Size: 8})}).Key() {
		t.Errorf("ini: want a (tail) call with rdi = [EG+0x330]:\n%s", d)
	}
	facts, err = Evaluate(elfFunc(t, so, "zts_current"))
	if err != nil {
		t.Fatal(err)
	}
	d = dump(t, facts)
	// ((char *)tls_cache + executor_globals_offset)->current: a load at
	// ([executor_globals_offset] + [TP + tpoff slot]) + 488.
	var egoff uint64
	ef, _ = elf.Open(so)
	syms, _ = ef.DynamicSymbols()
	for _, s := range syms {
		if s.Name == "executor_globals_offset" {
			egoff = s.Value
		}
	}
	ef.Close()
	found := false
	for _, a := range facts.Accesses {
		if a.Addr.Off != 488 || a.Addr.Base == nil || a.Addr.Base.Kind != Sum {
			continue
		}
		terms := []*Value{a.Addr.Base.From, a.Addr.Base.Other}
		var tp, off bool
		for _, v := range terms {
			if from, ok := v.LoadedFrom(); ok {
				if g, o, ok := from.GlobalOf(); ok && g == egoff && o == 0 {
					off = true
				}
				if from.Base != nil && from.Base.Kind == ThreadPointer {
					tp = true
				}
			}
		}
		found = found || tp && off
	}
	if !found {
		t.Errorf("zts_current: no load at ([executor_globals_offset] + [TP+x]) + 488 in\n%s", d)
	}
}
