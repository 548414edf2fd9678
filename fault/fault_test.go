package fault

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"debug/elf"

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
		kind     string
		contains []string
	}{
		{
			name: "null first argument at function start",
			in: Input{
				Signal:       segv(1, 0x20),
				Registers:    map[string]uint64{"rip": rip, "rdi": 0, "rsp": stackMap.End - 0x100},
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
				Registers:    map[string]uint64{"rip": rip, "rdi": 0, "rsp": stackMap.End - 0x100},
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
				Registers: map[string]uint64{"rip": rip, "rsp": stackMap.Start},
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
				Registers: map[string]uint64{"rip": rip, "rsp": stackMap.Start - 0x100, "rax": 1},
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
				Registers: map[string]uint64{"rip": 0, "rsp": stackMap.End - 0x100},
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
				Registers: map[string]uint64{"rip": roMap.Start + 8, "rsp": stackMap.End - 0x100},
				Mappings:  maps,
			},
			kind:     crash.FaultExecNonExec,
			contains: []string{"non-executable"},
		},
		{
			name: "general protection fault on a non-canonical pointer",
			in: Input{
				Signal:    crash.Signal{Number: 11, Name: "SIGSEGV", Code: 0x80, CodeName: "SI_KERNEL"},
				Registers: map[string]uint64{"rip": rip, "rax": 0xdead000000000000, "rsp": stackMap.End - 0x100},
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
				Registers: map[string]uint64{"rip": rip, "rbx": roMap.Start, "rsp": stackMap.End - 0x100},
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
				Registers: map[string]uint64{"rip": rip},
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
			in:       Input{Signal: crash.Signal{Number: 4, Name: "SIGILL"}, Registers: map[string]uint64{"rip": rip}, Code: []byte{0x0f, 0x0b}, Mappings: maps},
			kind:     crash.FaultIllegalInstr,
			contains: []string{"ud2"},
		},
		{
			name:     "division by zero",
			in:       Input{Signal: crash.Signal{Number: 8, Name: "SIGFPE"}, Registers: map[string]uint64{"rip": rip, "rcx": 0}, Code: []byte{0x48, 0xf7, 0xf1}, Mappings: maps},
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

// TestStillArgumentOnGCCCode compiles real functions with gcc and checks the
// argument-register analysis on their real instructions.
func TestStillArgumentOnGCCCode(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "f.c")
	os.WriteFile(src, []byte(`
struct s { long a, b, c; struct s *next; };
long first(struct s *p) { return p->c; }
long second(struct s *p) { return p->next->c; }
`), 0o644)
	obj := filepath.Join(dir, "f.so")
	if out, err := exec.Command("gcc", "-O2", "-shared", "-fPIC", "-o", obj, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	ef, err := elf.Open(obj)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, _ := ef.Symbols()
	text := ef.Section(".text")
	data, _ := text.Data()
	code := func(name string) []byte {
		for _, s := range syms {
			if s.Name == name {
				return data[s.Value-text.Addr : s.Value-text.Addr+s.Size]
			}
		}
		t.Fatalf("no symbol %s", name)
		return nil
	}
	// first: mov rax,[rdi+0x10] at offset 0 faults with rdi = NULL: argument 1.
	fc := code("first")
	f := Explain(Input{Signal: segv(1, 0x10), Registers: map[string]uint64{"rip": textMap.Start, "rdi": 0, "rsp": stackMap.End - 64},
		Code: fc, FunctionCode: fc, Mappings: maps, Frames: []crash.Frame{{Function: "first", Module: "f.so"}}})
	if f.Argument != 1 || f.Register != "rdi" {
		t.Errorf("first: register %q argument %d: %s", f.Register, f.Argument, f.Explanation)
	}
	// second: the fault is on the second load, after rdi was replaced by p->next
	// (gcc: mov rax,[rdi+0x18]; mov rax,[rax+0x10]): the base is rax, no argument.
	sc := code("second")
	var off uint64
	for off = 0; off < uint64(len(sc)); {
		if sc[off] == 0x48 && sc[off+1] == 0x8b && sc[off+2]&0xc7 == 0x40 && sc[off+2]&0x38 != 0x38 && off > 0 {
			break
		}
		off += 4
	}
	if off >= uint64(len(sc)) {
		t.Skipf("unexpected code for second: % x", sc)
	}
	f = Explain(Input{Signal: segv(1, 0x10), Registers: map[string]uint64{"rip": textMap.Start + off, "rax": 0, "rdi": 0x1000, "rsp": stackMap.End - 64},
		Code: sc[off:], FunctionCode: sc, Mappings: maps, Frames: []crash.Frame{{Function: "second", FunctionOffset: crash.Addr(off)}}})
	if f.Kind != crash.FaultNullDeref || f.Argument != 0 {
		t.Errorf("second: kind %s argument %d: %s", f.Kind, f.Argument, f.Explanation)
	}
}

func FuzzExplain(f *testing.F) {
	f.Add([]byte{0x48, 0x8b, 0x4f, 0x20}, uint64(0), uint64(0x20), 11, 1)
	f.Add([]byte{0x41, 0x56}, uint64(0x7ffc65c75000), uint64(0x7ffc65c74ff8), 11, 1)
	f.Add([]byte{0x0f, 0x0b}, uint64(1), uint64(0), 4, 2)
	f.Add([]byte{}, uint64(0), uint64(0), 6, -6)
	f.Fuzz(func(t *testing.T, code []byte, reg, addr uint64, sig, si int) {
		regs := map[string]uint64{"rip": textMap.Start + reg%0x1000, "rsp": reg, "rdi": reg, "rax": addr, "fs_base": reg}
		for _, fc := range [][]byte{nil, code} {
			Explain(Input{Signal: crash.Signal{Number: sig, Code: si, Address: crash.Addr(addr), Sent: si <= 0},
				Registers: regs, Code: code, FunctionCode: fc, Mappings: maps,
				Frames: []crash.Frame{{FunctionOffset: crash.Addr(reg % 64)}}})
		}
	})
}
