package fault

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"debug/elf"

	"golang.org/x/arch/x86/x86asm"

	"github.com/coroner-dev/coroner/crash"
)

var (
	stackMap = Mapping{Start: 0x7ffc65c75000, End: 0x7ffc66475000, Read: true, Write: true}
	textMap  = Mapping{Start: 0x7f0000000000, End: 0x7f0000100000, Read: true, Exec: true, Path: "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2"}
	roMap    = Mapping{Start: 0x7f0000200000, End: 0x7f0000201000, Read: true, Path: "/usr/sbin/php-fpm8.2"}
	maps     = []Mapping{textMap, roMap, stackMap}
)

func segv(code int, addr uint64) crash.Signal {
	return crash.Signal{Number: 11, Name: "SIGSEGV", Code: code, Address: crash.Addr(addr)}
}

func TestExplain(t *testing.T) {
	rip := textMap.Start + 0x51fe1
	cases := []struct {
		name     string
		in       Input
		kind     crash.FaultKind
		contains []string
	}{
		{
			name: "null first argument at function start",
			in: Input{
				Signal:       segv(1, 0x20),
				Registers:    regsOf(map[string]uint64{"rip": rip, "rdi": 0, "rsp": stackMap.End - 0x100}),
				Code:         []byte{0x48, 0x8b, 0x4f, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // mov rcx,[rdi+0x20]
				FunctionCode: []byte{0x48, 0x8b, 0x4f, 0x20},
				Mappings:     maps,
				Frames:       []crash.Frame{{Function: "pcre2_jit_match_8", Module: "libpcre2-8.so.0.11.2", FunctionOffset: 0}, {Function: "main", Module: "pn"}},
			},
			kind:     crash.FaultNullDeref,
			contains: []string{"rdi", "NULL", "first argument", "pcre2_jit_match_8", "main (pn)"},
		},
		{
			name: "null field read after the register was overwritten",
			in: Input{
				Signal:       segv(1, 0x10),
				Registers:    regsOf(map[string]uint64{"rip": rip, "rdi": 0, "rsp": stackMap.End - 0x100}),
				Code:         []byte{0x8b, 0x47, 0x10, 0x90},                   // mov eax,[rdi+0x10]
				FunctionCode: []byte{0x48, 0x8b, 0x7f, 0x08, 0x8b, 0x47, 0x10}, // mov rdi,[rdi+8]; mov eax,[rdi+0x10]
				Mappings:     maps,
				Frames:       []crash.Frame{{Function: "f", FunctionOffset: 4}},
			},
			kind:     crash.FaultNullDeref,
			contains: []string{"offset 0x10"},
		},
		{
			name: "push into the guard page",
			in: Input{
				Signal:    segv(1, stackMap.Start-8),
				Registers: regsOf(map[string]uint64{"rip": rip, "rsp": stackMap.Start}),
				Code:      []byte{0x41, 0x56, 0x90}, // push r14
				Mappings:  maps,
			},
			kind:     crash.FaultStackOverflow,
			contains: []string{"Stack overflow", "guard page"},
		},
		{
			name: "store above rsp after sub rsp moved it into the guard gap",
			in: Input{
				Signal:    segv(1, stackMap.Start-0x100+0x30),
				Registers: regsOf(map[string]uint64{"rip": rip, "rsp": stackMap.Start - 0x100, "rax": 1}),
				Code:      []byte{0x48, 0x89, 0x44, 0x24, 0x30}, // mov [rsp+0x30],rax
				Mappings:  maps,
			},
			kind:     crash.FaultStackOverflow,
			contains: []string{"Stack overflow"},
		},
		{
			name: "call through NULL function pointer",
			in: Input{
				Signal:    segv(1, 0),
				Registers: regsOf(map[string]uint64{"rip": 0, "rsp": stackMap.End - 0x100}),
				Mappings:  maps,
				Frames:    []crash.Frame{{PC: 0}, {Function: "zend_call_function", Module: "php-fpm8.2"}},
			},
			kind:     crash.FaultExecUnmapped,
			contains: []string{"NULL function pointer", "zend_call_function"},
		},
		{
			name: "execute data",
			in: Input{
				Signal:    segv(2, roMap.Start+8),
				Registers: regsOf(map[string]uint64{"rip": roMap.Start + 8, "rsp": stackMap.End - 0x100}),
				Mappings:  maps,
			},
			kind:     crash.FaultExecNonExec,
			contains: []string{"non-executable"},
		},
		{
			name: "general protection fault on a non-canonical pointer",
			in: Input{
				Signal:    crash.Signal{Number: 11, Name: "SIGSEGV", Code: 0x80, CodeName: "SI_KERNEL"},
				Registers: regsOf(map[string]uint64{"rip": rip, "rax": 0xdead000000000000, "rsp": stackMap.End - 0x100}),
				Code:      []byte{0x48, 0x8b, 0x50, 0x08}, // mov rdx,[rax+8]
				Mappings:  maps,
			},
			kind:     crash.FaultNonCanonical,
			contains: []string{"0xdead000000000008", "canonical", "rax"},
		},
		{
			name: "write to read-only mapping",
			in: Input{
				Signal:    segv(2, roMap.Start+0x10),
				Registers: regsOf(map[string]uint64{"rip": rip, "rbx": roMap.Start, "rsp": stackMap.End - 0x100}),
				Code:      []byte{0xc6, 0x43, 0x10, 0x00}, // mov byte [rbx+0x10],0
				Mappings:  maps,
			},
			kind:     crash.FaultWriteReadOnly,
			contains: []string{"read-only", "php-fpm8.2"},
		},
		{
			name: "kill from another process",
			in: Input{
				Signal:    crash.Signal{Number: 11, Name: "SIGSEGV", CodeName: "SI_USER", Sent: true, SenderPID: 4321, SenderUID: 0},
				Registers: regsOf(map[string]uint64{"rip": rip}),
				Mappings:  maps,
				Frames:    []crash.Frame{{Function: "epoll_wait"}},
			},
			kind:     crash.FaultSignalSent,
			contains: []string{"process 4321", "kill()", "not a memory fault"},
		},
		{
			name: "abort from assertion",
			in: Input{
				Signal: crash.Signal{Number: 6, Name: "SIGABRT", CodeName: "SI_TKILL", Sent: true, SenderPID: 10},
				Frames: []crash.Frame{{Function: "__pthread_kill_implementation"}, {Function: "raise"}, {Function: "abort"},
					{Function: "__assert_fail_base"}, {Function: "__assert_fail"}, {Function: "zend_mm_alloc_heap", Module: "php-fpm8.2"}},
			},
			kind:     crash.FaultAbort,
			contains: []string{"assertion", "zend_mm_alloc_heap"},
		},
		{
			name: "abort from heap corruption",
			in: Input{
				Signal: crash.Signal{Number: 6, Name: "SIGABRT", Sent: true},
				Frames: []crash.Frame{{Function: "__pthread_kill_implementation"}, {Function: "raise"}, {Function: "abort"},
					{Function: "__libc_message"}, {Function: "malloc_printerr"}, {Function: "_int_free"}, {Function: "efree", Module: "php-fpm8.2"}},
			},
			kind:     crash.FaultAbort,
			contains: []string{"heap corruption", "efree"},
		},
		{
			name:     "ud2",
			in:       Input{Signal: crash.Signal{Number: 4, Name: "SIGILL"}, Registers: regsOf(map[string]uint64{"rip": rip}), Code: []byte{0x0f, 0x0b}, Mappings: maps},
			kind:     crash.FaultIllegalInstr,
			contains: []string{"ud2"},
		},
		{
			name:     "division by zero",
			in:       Input{Signal: crash.Signal{Number: 8, Name: "SIGFPE"}, Registers: regsOf(map[string]uint64{"rip": rip, "rcx": 0}), Code: []byte{0x48, 0xf7, 0xf1}, Mappings: maps},
			kind:     crash.FaultArithmetic,
			contains: []string{"division by zero", "rcx"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := Explain(c.in)
			if f.Kind != c.kind {
				t.Errorf("kind %q, want %q (%s)", f.Kind, c.kind, f.Explanation)
			}
			for _, w := range c.contains {
				if !strings.Contains(f.Explanation, w) {
					t.Errorf("explanation %q lacks %q", f.Explanation, w)
				}
			}
		})
	}
}

// TestArgumentOnGCCCode compiles real functions with gcc -O2 and checks the
// argument analysis on their real instructions: the fault is put on the
// first instruction that dereferences the given register.
func TestArgumentOnGCCCode(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "f.c")
	if err := os.WriteFile(src, []byte(`
struct s { long a, b, c; struct s *next; };
void g(void);
long first(struct s *p) { return p->c; }
long third(long a, long b, struct s *p) { return p->c + a * b; }
long second(struct s *p) { return p->next->c; }
long after_call(struct s *p) { g(); return p->c; }
long sum(struct s *p) { long n = 0; while (p->a) { n += p->c; p = p->next; } return n; }
`), 0o644); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, "f.o")
	if out, err := exec.Command("gcc", "-O2", "-c", "-o", obj, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	ef, err := elf.Open(obj)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, err := ef.Symbols()
	if err != nil {
		t.Fatal(err)
	}
	text, err := ef.Section(".text").Data()
	if err != nil {
		t.Fatal(err)
	}
	code := func(name string) []byte {
		for _, s := range syms {
			if s.Name == name && elf.ST_TYPE(s.Info) == elf.STT_FUNC {
				return text[s.Value : s.Value+s.Size]
			}
		}
		t.Fatalf("no symbol %s", name)
		return nil
	}
	cases := []struct {
		fn    string
		reg   string // the register whose dereference faults
		nth   int    // which dereference of it (0 = first)
		arg   int
		words string
	}{
		{"first", "rdi", 0, 1, "the first argument (rdi) of first was NULL"},
		{"third", "rdx", 0, 3, "the third argument (rdx) of third was NULL"},
		{"second", "rax", 0, 0, "rax, which was NULL"},
		// after_call keeps p in a callee-saved register across the call:
		// it still is p, but a call in between is not trusted.
		{"after_call", "rbx", 0, 0, "rbx, which was NULL"},
		// sum: the second dereference of rdi is in the loop, after
		// p = p->next may have replaced it.
		{"sum", "rdi", 1, 0, "rdi, which was NULL"},
	}
	base := textMap.Start + 0x4000
	for _, c := range cases {
		fc := code(c.fn)
		off, seen := -1, 0
		for p := 0; p < len(fc); {
			inst, err := decode(fc[p:])
			if err != nil {
				break
			}
			for _, a := range inst.Args {
				if m, ok := a.(x86asm.Mem); ok && m.Base != 0 && gprOrNone(m.Base).String() == c.reg && inst.Op != x86asm.LEA {
					if seen == c.nth && off < 0 {
						off = p
					}
					seen++
				}
			}
			p += inst.Len
		}
		if off < 0 {
			t.Errorf("%s: no dereference #%d of %s in % x", c.fn, c.nth, c.reg, fc)
			continue
		}
		in := Input{Signal: segv(1, 0x10), Registers: regsOf(map[string]uint64{"rip": base + uint64(off), c.reg: 0, "rsp": stackMap.End - 64}),
			Code: fc[off:], FunctionCode: fc, Mappings: maps,
			Frames: []crash.Frame{{Function: c.fn, Module: "f.so", FunctionOffset: crash.Addr(off)}, {Function: "main", Module: "f.so"}}}
		f := Explain(in)
		if f.Kind != crash.FaultNullDeref || f.Register != c.reg || f.Argument != c.arg || !strings.Contains(f.Explanation, c.words) {
			t.Errorf("%s (+%#x %s): kind %s register %s argument %d, want %s %d %q: %s", c.fn, off, f.Instruction, f.Kind, f.Register, f.Argument, c.reg, c.arg, c.words, f.Explanation)
		}
	}
}

func FuzzExplain(f *testing.F) {
	f.Add([]byte{0x48, 0x8b, 0x4f, 0x20}, uint64(0), uint64(0x20), 11, 1, uint64(0))
	f.Add([]byte{0x41, 0x56}, uint64(0x7ffc65c75000), uint64(0x7ffc65c74ff8), 11, 1, uint64(3))
	f.Add([]byte{0x0f, 0x0b}, uint64(1), uint64(0), 4, 2, uint64(0))
	f.Add([]byte{}, uint64(0), uint64(0), 6, -6, uint64(7))
	f.Add([]byte{0xc3}, uint64(0x7ffc65c75000), uint64(0), 11, 0x80, uint64(0))
	f.Add([]byte{0x0f, 0x29, 0x07}, uint64(0x404128), uint64(0), 11, 0x80, uint64(5))
	f.Add([]byte{0xf7, 0xfe}, uint64(0xffffffff), uint64(0x401923), 8, 1, uint64(2))
	f.Add([]byte{0xf3, 0x0f, 0x1e, 0xfa, 0x53, 0x48, 0x89, 0xfb, 0x8b, 0x43, 0x10, 0xc3}, uint64(0), uint64(0x10), 11, 1, uint64(8))
	f.Add([]byte{0xf3, 0xa4}, uint64(0), uint64(0), 7, 2, uint64(0))
	f.Fuzz(func(t *testing.T, code []byte, reg, addr uint64, sig, si int, off uint64) {
		regs := regsOf(map[string]uint64{"rip": textMap.Start + reg%0x1000, "rsp": reg, "rdi": reg, "rsi": ^reg, "rax": addr,
			"rbx": addr >> 3, "rcx": reg ^ addr, "rbp": reg + 0x100, "fs_base": reg})
		frames := []crash.Frame{{Function: "f", FunctionOffset: crash.Addr(off % 64)}, {Module: "m"}}
		for _, fc := range [][]byte{nil, code} {
			for _, ms := range [][]Mapping{nil, maps} {
				Explain(Input{Signal: crash.Signal{Number: sig, Code: si, Address: crash.Addr(addr), Sent: si <= 0},
					Registers: regs, Code: code, FunctionCode: fc, Mappings: ms, Frames: frames})
			}
		}
		Explain(Input{Signal: crash.Signal{Number: sig, Code: si, Address: crash.Addr(addr)}, Code: code})
	})
}

// TestOperands checks the decoding and the address computation on real
// encodings, each as gcc or glibc emit them.
func TestOperands(t *testing.T) {
	rip := textMap.Start + 0x1000
	regs := regsOf(map[string]uint64{"rip": rip, "rsp": stackMap.End - 0x100, "rdi": 0x5000, "rax": 0x6000, "rcx": 3, "rdx": 0x7000, "fs_base": 0x7f00aa000000, "rsi": 0x8000})
	cases := []struct {
		code  []byte
		text  string
		addrs []uint64
		write bool
	}{
		{[]byte{0x8b, 0x47, 0x10}, "mov eax, dword ptr [rdi+0x10]", []uint64{0x5010}, false},
		{[]byte{0x48, 0x89, 0x04, 0x24}, "mov qword ptr [rsp], rax", []uint64{stackMap.End - 0x100}, true},
		{[]byte{0x48, 0x8b, 0x04, 0xc8}, "mov rax, qword ptr [rax+rcx*8]", []uint64{0x6018}, false},
		{[]byte{0x64, 0x48, 0x8b, 0x04, 0x25, 0x28, 0, 0, 0}, "mov rax, qword ptr fs:[0x28]", []uint64{0x7f00aa000028}, false},
		{[]byte{0x48, 0x8b, 0x05, 0x10, 0, 0, 0}, "mov rax, qword ptr [rip+0x10]", []uint64{rip + 7 + 0x10}, false},
		{[]byte{0x48, 0x8b, 0x47, 0xf8}, "mov rax, qword ptr [rdi-0x8]", []uint64{0x4ff8}, false},
		{[]byte{0x67, 0x8b, 0x47, 0x10}, "mov eax, dword ptr [edi+0x10]", []uint64{0x5010}, false},
		{[]byte{0xff, 0x50, 0x18}, "call qword ptr [rax+0x18]", []uint64{0x6018, stackMap.End - 0x108}, false},
		{[]byte{0xff, 0xd0}, "call rax", []uint64{stackMap.End - 0x108}, true},
		{[]byte{0x55}, "push rbp", []uint64{stackMap.End - 0x108}, true},
		{[]byte{0xc3}, "ret", []uint64{stackMap.End - 0x100}, false},
		{[]byte{0x83, 0x3f, 0x00}, "cmp dword ptr [rdi], 0x0", []uint64{0x5000}, false},
		{[]byte{0xf3, 0xa4}, "rep movsb byte ptr [rdi], byte ptr [rsi]", []uint64{0x8000, 0x5000}, false},
		{[]byte{0xc5, 0xfd, 0x74, 0x0f}, "vpcmpeqb ymm1, ymm0, ymmword ptr [rdi]", []uint64{0x5000}, false},
		{[]byte{0x0f, 0x0b}, "ud2", nil, false},
		{[]byte{0x48, 0x8d, 0x47, 0x10}, "lea rax, [rdi+0x10]", nil, false},
	}
	for _, c := range cases {
		e := &explainer{in: Input{Registers: regs, Code: c.code}}
		e.explain()
		if e.f.Instruction != c.text {
			t.Errorf("% x: %q, want %q", c.code, e.f.Instruction, c.text)
		}
		accs := e.accesses()
		var got []uint64
		for _, a := range accs {
			got = append(got, a.addr)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.addrs) {
			t.Errorf("% x (%s): addresses %x, want %x", c.code, c.text, got, c.addrs)
		}
		if len(accs) > 0 && accs[0].write != c.write {
			t.Errorf("% x (%s): write %v, want %v", c.code, c.text, accs[0].write, c.write)
		}
	}
}

// TestArgumentAnalysis checks when an argument register is trusted, on
// real encodings.
func TestArgumentAnalysis(t *testing.T) {
	base := textMap.Start + 0x2000
	cases := []struct {
		name string
		fn   []byte // the function from its start
		off  uint64 // the faulting instruction
		reg  string // its base register (NULL)
		arg  int
		via  string
	}{
		// push rbx; mov rbx, rdi; mov eax, [rbx+0x10]
		{"copy of rdi in rbx", []byte{0x53, 0x48, 0x89, 0xfb, 0x8b, 0x43, 0x10, 0xc3}, 4, "rbx", 1, "rbx"},
		// endbr64; mov eax, [rsi+8]
		{"endbr64 then second argument", []byte{0xf3, 0x0f, 0x1e, 0xfa, 0x8b, 0x46, 0x08, 0xc3}, 4, "rsi", 2, ""},
		// mov rdi, [rdi+8]; mov eax, [rdi+0x10]
		{"rdi overwritten", []byte{0x48, 0x8b, 0x7f, 0x08, 0x8b, 0x47, 0x10, 0xc3}, 4, "rdi", 0, ""},
		// xor eax, eax; L: mov edx, [rdi+0x10]; add rax, rdx; jne L
		{"loop head", []byte{0x31, 0xc0, 0x8b, 0x57, 0x10, 0x48, 0x01, 0xd0, 0x75, 0xf8, 0xc3}, 2, "rdi", 0, ""},
		// test rdi, rdi; je +1; ret; mov eax, [rdi]: a branch in the prefix
		{"branch before", []byte{0x48, 0x85, 0xff, 0x74, 0x01, 0xc3, 0x8b, 0x07, 0xc3}, 6, "rdi", 0, ""},
		// call f; mov eax, [rdi]: calls clobber argument registers
		{"call before", []byte{0xe8, 0, 0, 0, 0, 0x8b, 0x07, 0xc3}, 5, "rdi", 0, ""},
		// rep stosq; mov eax, [rcx]: string ops write rcx
		{"implicit write", []byte{0xf3, 0x48, 0xab, 0x8b, 0x01, 0xc3}, 3, "rcx", 0, ""},
		// nop padding; mov eax, [rdi]: an aligned loop head
		{"padding", []byte{0x31, 0xc0, 0x66, 0x90, 0x8b, 0x07, 0xc3}, 4, "rdi", 0, ""},
		// cqo; mov eax, [rdx]
		{"cqo writes rdx", []byte{0x48, 0x99, 0x8b, 0x02, 0xc3}, 2, "rdx", 0, ""},
		// the first instruction of the function
		{"offset 0", []byte{0x8b, 0x41, 0x10}, 0, "rcx", 4, ""},
		// mov r9d, 1 (a write of r9) ; mov eax, [r8]
		{"other register written", []byte{0x41, 0xb9, 1, 0, 0, 0, 0x41, 0x8b, 0x00, 0xc3}, 6, "r8", 5, ""},
	}
	for _, c := range cases {
		e := &explainer{in: Input{
			Registers:    regsOf(map[string]uint64{"rip": base + c.off}),
			FunctionCode: c.fn,
			Frames:       []crash.Frame{{Function: "f", FunctionOffset: crash.Addr(c.off)}},
		}}
		reg, _ := crash.ParseReg(c.reg)
		n, via := e.argument(reg)
		viaName := ""
		if via != noReg {
			viaName = via.String()
		}
		if n != c.arg || viaName != c.via {
			t.Errorf("%s: argument %d via %q, want %d via %q", c.name, n, viaName, c.arg, c.via)
		}
		// Without a known function start nothing is trusted.
		e.in.Frames[0].Function = ""
		if n, _ := e.argument(reg); n != 0 {
			t.Errorf("%s: argument %d without a function start", c.name, n)
		}
	}
	// Through Explain, with the copy.
	f := Explain(Input{
		Signal:       segv(1, 0x10),
		Registers:    regsOf(map[string]uint64{"rip": base + 4, "rbx": 0, "rdi": 0, "rsp": stackMap.End - 0x100}),
		Code:         []byte{0x8b, 0x43, 0x10, 0xc3},
		FunctionCode: []byte{0x53, 0x48, 0x89, 0xfb, 0x8b, 0x43, 0x10, 0xc3},
		Mappings:     maps,
		Frames:       []crash.Frame{{Function: "zend_hash_find", Module: "php-fpm8.2", FunctionOffset: 4}, {Function: "caller", Module: "php-fpm8.2"}},
	})
	if f.Argument != 1 || f.Register != "rbx" || !strings.Contains(f.Explanation, "the first argument (rdi) of zend_hash_find was NULL (rbx still held a copy of it)") {
		t.Errorf("%+v", f)
	}
}

// TestMoreKinds covers kinds decided on single real encodings.
func TestMoreKinds(t *testing.T) {
	rip := textMap.Start + 0x3000
	sp := stackMap.End - 0x100
	gp := crash.Signal{Number: 11, Name: "SIGSEGV", Code: 0x80, CodeName: "SI_KERNEL"}
	cases := []struct {
		name     string
		in       Input
		kind     crash.FaultKind
		register string
		contains []string
	}{
		{"ret to a smashed return address", Input{Signal: gp, Registers: regsOf(map[string]uint64{"rip": rip, "rsp": sp}), Code: []byte{0xc3}, Mappings: maps},
			crash.FaultNonCanonical, "rsp", []string{"return address", "stack buffer overflow"}},
		{"call through a non-canonical register", Input{Signal: gp, Registers: regsOf(map[string]uint64{"rip": rip, "rsp": sp, "rax": 0x4141414141414141}), Code: []byte{0xff, 0xd0}, Mappings: maps},
			crash.FaultNonCanonical, "rax", []string{"0x4141414141414141", "function pointer"}},
		{"call through a vtable slot", Input{Signal: gp, Registers: regsOf(map[string]uint64{"rip": rip, "rsp": sp, "rax": 0x55550000}), Code: []byte{0xff, 0x50, 0x18}, Mappings: maps},
			crash.FaultNonCanonical, "rax", []string{"0x55550018", "qword ptr [rax+0x18]"}},
		{"hlt in data", Input{Signal: gp, Registers: regsOf(map[string]uint64{"rip": rip, "rsp": sp}), Code: []byte{0xf4}, Mappings: maps},
			crash.FaultIllegalInstr, "", []string{"privileged", "hlt"}},
		{"movaps on a misaligned stack", Input{Signal: gp, Registers: regsOf(map[string]uint64{"rip": rip, "rsp": sp + 8}), Code: []byte{0x0f, 0x29, 0x44, 0x24, 0x10}, Mappings: maps},
			crash.FaultBadPointer, "rsp", []string{"16-byte", "stack is misaligned"}},
		{"mov to [rsp] below the stack", Input{Signal: segv(1, stackMap.Start-0x40), Registers: regsOf(map[string]uint64{"rip": rip, "rsp": stackMap.Start - 0x40, "rax": 1}), Code: []byte{0x48, 0x89, 0x04, 0x24}, Mappings: maps},
			crash.FaultStackOverflow, "rsp", []string{"Stack overflow"}},
		{"push rbp at the guard page", Input{Signal: segv(1, stackMap.Start-8), Registers: regsOf(map[string]uint64{"rip": rip, "rsp": stackMap.Start}), Code: []byte{0x55}, Mappings: maps},
			crash.FaultStackOverflow, "rsp", []string{"push", "guard page"}},
		{"idiv overflow", Input{Signal: crash.Signal{Number: 8, Name: "SIGFPE", Code: 1}, Registers: regsOf(map[string]uint64{"rip": rip, "rsi": 0xffffffff}), Code: []byte{0xf7, 0xfe}, Mappings: maps},
			crash.FaultArithmetic, "", []string{"overflow", "-1"}},
		{"SIGABRT from another process", Input{Signal: crash.Signal{Number: 6, Name: "SIGABRT", Code: 0, Sent: true, SenderPID: 77, SenderUID: 0},
			Frames: []crash.Frame{{Function: "epoll_wait", Module: "libc.so.6"}, {Function: "main", Module: "php-fpm8.2"}}},
			crash.FaultSignalSent, "", []string{"SIGABRT was sent by process 77", "who sent it"}},
		{"bus error fetching code", Input{Signal: crash.Signal{Number: 7, Name: "SIGBUS", Code: 2, Address: crash.Addr(rip)}, Registers: regsOf(map[string]uint64{"rip": rip}), Mappings: maps},
			crash.FaultBusError, "", []string{"truncated or overwritten"}},
		{"uncaught C++ exception", Input{Signal: crash.Signal{Number: 6, Name: "SIGABRT", Code: -6, Sent: true, SenderPID: 5},
			Frames: []crash.Frame{{Function: "__pthread_kill_implementation", Module: "libc.so.6"}, {Function: "raise", Module: "libc.so.6"}, {Function: "abort", Module: "libc.so.6"},
				{Module: "libstdc++.so.6"}, {Function: "std::terminate()", Module: "libstdc++.so.6"}, {Function: "__cxa_throw", Module: "libstdc++.so.6"}, {Function: "Foo::run()", Module: "libfoo.so"}}},
			crash.FaultAbort, "", []string{"uncaught C++ exception", "abort() was called from Foo::run() (libfoo.so)"}},
		{"nothing at all", Input{}, crash.FaultUnknown, "", []string{"records no signal", "is unknown"}},
		{"SIGSEGV without registers", Input{Signal: segv(1, 0x18)}, crash.FaultNullDeref, "", []string{"address 0x18"}},
		{"strlen(NULL)", Input{Signal: segv(1, 0), Registers: regsOf(map[string]uint64{"rip": rip, "rdi": 0, "rsp": sp}), Code: []byte{0x62, 0xb3, 0x7d, 0x20, 0x3f, 0x07, 0x00}, Mappings: maps,
			Frames: []crash.Frame{{Function: "__strlen_evex", Module: "libc.so.6", FunctionOffset: 0x1a}, {Function: "php_ffi_cdata_to_zval", Module: "ffi.so"}, {Function: "execute_ex", Module: "php-fpm8.2"}}},
			crash.FaultNullDeref, "rdi", []string{"rdi, which was NULL", "the C library's strlen()", "its caller, php_ffi_cdata_to_zval (ffi.so), passed it a NULL pointer"}},
	}
	for _, c := range cases {
		f := Explain(c.in)
		if f.Kind != c.kind || f.Register != c.register {
			t.Errorf("%s: kind %q register %q, want %q %q: %s", c.name, f.Kind, f.Register, c.kind, c.register, f.Explanation)
		}
		for _, w := range c.contains {
			if !strings.Contains(f.Explanation, w) {
				t.Errorf("%s: %q lacks %q", c.name, f.Explanation, w)
			}
		}
	}
}

// TestPCRE2JITMatchNull reads pcre2_jit_match_8 from the installed libpcre2
// and puts the fault where PHP's FFI NULL crash puts it: on the first
// dereference of rdi (pcre2_jit_match_8+0x41 in Debian 12's 10.42, after an
// 18-instruction prologue).
func TestPCRE2JITMatchNull(t *testing.T) {
	path := ""
	for _, p := range []string{"/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0", "/lib/x86_64-linux-gnu/libpcre2-8.so.0", "/usr/lib64/libpcre2-8.so.0"} {
		if _, err := os.Stat(p); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		t.Skip("libpcre2-8 is not installed")
	}
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, err := ef.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	var fc []byte
	for _, s := range syms {
		if s.Name != "pcre2_jit_match_8" {
			continue
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_LOAD && s.Value >= p.Vaddr && s.Value+s.Size <= p.Vaddr+p.Filesz {
				fc = make([]byte, s.Size)
				if _, err := p.ReadAt(fc, int64(s.Value-p.Vaddr)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if fc == nil {
		t.Skip("no pcre2_jit_match_8 in " + path)
	}
	off := -1
	for p := 0; p < len(fc) && off < 0; {
		inst, err := decode(fc[p:])
		if err != nil {
			break
		}
		if m, ok := inst.Args[1].(x86asm.Mem); ok && m.Base == x86asm.RDI && inst.Op == x86asm.MOV {
			off = p
		}
		p += inst.Len
	}
	if off < 0 {
		t.Skipf("no load through rdi in pcre2_jit_match_8 of %s", path)
	}
	rip := textMap.Start + 0x51fa0 + uint64(off)
	frames := []crash.Frame{{Function: "pcre2_jit_match_8", Module: "libpcre2-8.so.0.11.2", FunctionOffset: crash.Addr(off)},
		{Module: "libffi.so.8.1.2"}, {Function: "ffi_call", Module: "libffi.so.8.1.2"}, {Module: "ffi.so"}, {Function: "execute_ex", Module: "php-fpm8.2"}}
	for _, fcode := range [][]byte{fc, fc[:off+16]} {
		f := Explain(Input{Signal: segv(1, 0x20), Registers: regsOf(map[string]uint64{"rip": rip, "rdi": 0, "rsp": stackMap.End - 0x200}),
			Code: fc[off:min(off+16, len(fc))], FunctionCode: fcode, Mappings: maps, Frames: frames})
		if f.Kind != crash.FaultNullDeref || f.Argument != 1 || f.Register != "rdi" ||
			!strings.Contains(f.Explanation, "the first argument (rdi) of pcre2_jit_match_8 was NULL") ||
			!strings.Contains(f.Explanation, "Its caller, PHP's FFI extension (ffi.so), through libffi (a foreign-function call), passed") {
			t.Errorf("+%#x: %+v", off, f)
		}
	}
}

// regsOf builds a register set from register names.
func regsOf(m map[string]uint64) crash.Registers {
	var regs crash.Registers
	for name, v := range m {
		r, ok := crash.ParseReg(name)
		if !ok {
			panic("unknown register " + name)
		}
		regs.Set(r, v)
	}
	return regs
}

// TestStackExhaustedEverySignal: a thread whose stack pointer (or the
// stack access of its instruction) is in the guard gap under its stack has
// overflowed it, whatever the kernel reported: SI_KERNEL without an address
// (Apache's children, whose SIGSEGV handler had no room for its frame),
// SEGV_ACCERR, SIGBUS. The same instruction with the stack pointer inside
// its stack stays what it was (a general protection fault, a write to
// read-only memory).
func TestStackExhaustedEverySignal(t *testing.T) {
	rip := textMap.Start + 0x3000
	low := stackMap.Start - 0x3d40 // 0x3d40 bytes under the stack, as in the recursion core
	gp := crash.Signal{Number: 11, Name: "SIGSEGV", Code: 0x80, CodeName: "SI_KERNEL"}
	movRDX := []byte{0x48, 0x8b, 0x50, 0x08} // mov rdx,[rax+8]
	cases := []struct {
		name     string
		in       Input
		kind     crash.FaultKind
		register string
		contains []string
	}{
		{"SI_KERNEL, rsp under the stack", Input{Signal: gp, Registers: regsOf(map[string]uint64{"rip": rip, "rsp": low, "rax": roMap.Start}), Code: movRDX, Mappings: maps},
			crash.FaultStackOverflow, "rsp", []string{"Stack overflow", "0x3d40 bytes below the thread's stack mapping"}},
		{"SI_KERNEL, a call at the stack's lowest address", Input{Signal: gp, Registers: regsOf(map[string]uint64{"rip": rip, "rsp": stackMap.Start, "rax": rip}), Code: []byte{0xff, 0xd0}, Mappings: maps},
			crash.FaultStackOverflow, "rsp", []string{"Stack overflow", "could not write the stack"}},
		{"SEGV_ACCERR elsewhere, rsp under the stack", Input{Signal: segv(2, roMap.Start+0x10), Registers: regsOf(map[string]uint64{"rip": rip, "rsp": low, "rbx": roMap.Start}), Code: []byte{0xc6, 0x43, 0x10, 0x00}, Mappings: maps},
			crash.FaultStackOverflow, "rsp", []string{"Stack overflow", "below the thread's stack mapping"}},
		{"SIGBUS, rsp under the stack", Input{Signal: crash.Signal{Number: 7, Name: "SIGBUS", Code: 2, Address: crash.Addr(low - 8)}, Registers: regsOf(map[string]uint64{"rip": rip, "rsp": low}), Code: []byte{0x55}, Mappings: maps},
			crash.FaultStackOverflow, "rsp", []string{"Stack overflow"}},
		// the stack pointer inside the stack: not an overflow
		{"SI_KERNEL on a non-canonical pointer", Input{Signal: gp, Registers: regsOf(map[string]uint64{"rip": rip, "rsp": stackMap.End - 0x100, "rax": 0xdead000000000000}), Code: movRDX, Mappings: maps},
			crash.FaultNonCanonical, "rax", []string{"canonical"}},
		{"SEGV_ACCERR write to read-only memory", Input{Signal: segv(2, roMap.Start+0x10), Registers: regsOf(map[string]uint64{"rip": rip, "rsp": stackMap.End - 0x100, "rbx": roMap.Start}), Code: []byte{0xc6, 0x43, 0x10, 0x00}, Mappings: maps},
			crash.FaultWriteReadOnly, "rbx", []string{"read-only"}},
	}
	for _, c := range cases {
		f := Explain(c.in)
		if f.Kind != c.kind || f.Register != c.register {
			t.Errorf("%s: kind %q register %q, want %q %q: %s", c.name, f.Kind, f.Register, c.kind, c.register, f.Explanation)
		}
		for _, w := range c.contains {
			if !strings.Contains(f.Explanation, w) {
				t.Errorf("%s: %q lacks %q", c.name, f.Explanation, w)
			}
		}
	}
}
