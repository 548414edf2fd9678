package fault

import (
	"bufio"
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// The tests in this file crash real programs (testdata/crashers.c, compiled
// with gcc at test time) and feed Explain what the kernel really delivered:
// the siginfo, the registers of the faulting context, the code at rip, the
// stack as glibc's backtrace() unwound it and /proc/self/maps.

var (
	crashersOnce sync.Once
	crashersPath string
	crashersErr  error
	crashersDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if crashersDir != "" {
		os.RemoveAll(crashersDir)
	}
	os.Exit(code)
}

func crashers(t *testing.T) string {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed")
	}
	crashersOnce.Do(func() {
		crashersDir, crashersErr = os.MkdirTemp("", "fault-crashers-")
		if crashersErr != nil {
			return
		}
		crashersPath = filepath.Join(crashersDir, "crashers")
		out, err := exec.Command("gcc", "-O2", "-no-pie", "-rdynamic", "-fno-omit-frame-pointer", "-pthread",
			"-o", crashersPath, "testdata/crashers.c").CombinedOutput()
		if err != nil {
			crashersErr = fmt.Errorf("gcc: %v\n%s", err, out)
		}
	})
	if crashersErr != nil {
		t.Fatal(crashersErr)
	}
	return crashersPath
}

// realCrash is what one run of the crashers program reported.
type realCrash struct {
	in       Input
	pcs      []uint64 // backtrace() after the handler and the trampoline
	fullCode []byte   // the whole crashing function, when known
}

var signalNames = map[int]string{4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT", 7: "SIGBUS", 8: "SIGFPE", 11: "SIGSEGV"}

func runCrash(t *testing.T, scenario string) *realCrash {
	t.Helper()
	bin := crashers(t)
	out, err := exec.Command(bin, scenario).Output()
	if err != nil {
		t.Fatalf("crashers %s: %v\n%s", scenario, err, out)
	}
	rc := &realCrash{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		switch {
		case line == "frames" || line == "maps":
			section = line
			continue
		case strings.HasPrefix(line, "end "):
			section = ""
			continue
		}
		switch section {
		case "frames":
			if i := strings.LastIndex(line, "[0x"); i >= 0 {
				pc, err := strconv.ParseUint(strings.TrimSuffix(line[i+3:], "]"), 16, 64)
				if err == nil {
					rc.pcs = append(rc.pcs, pc)
				}
			}
			continue
		case "maps":
			if len(f) < 5 {
				continue
			}
			se := strings.SplitN(f[0], "-", 2)
			start, _ := strconv.ParseUint(se[0], 16, 64)
			end, _ := strconv.ParseUint(se[1], 16, 64)
			m := Mapping{Start: start, End: end, Read: f[1][0] == 'r', Write: f[1][1] == 'w', Exec: f[1][2] == 'x'}
			if len(f) >= 6 {
				m.Path = strings.Join(f[5:], " ")
			}
			rc.in.Mappings = append(rc.in.Mappings, m)
			continue
		}
		switch {
		case len(f) == 6 && f[0] == "signal":
			n, _ := strconv.Atoi(f[1])
			code, _ := strconv.Atoi(f[2])
			addr, _ := strconv.ParseUint(f[3], 16, 64)
			s := crash.Signal{Number: n, Name: signalNames[n], Code: code, Address: crash.Addr(addr)}
			if code <= 0 { // SI_USER, SI_TKILL, SI_QUEUE: sent by a process
				s.Sent = true
				s.SenderPID, _ = strconv.Atoi(f[4])
				s.SenderUID, _ = strconv.Atoi(f[5])
				s.Address = 0
			}
			rc.in.Signal = s
		case len(f) == 3 && f[0] == "reg":
			v, _ := strconv.ParseUint(f[2], 16, 64)
			if r, ok := crash.ParseReg(f[1]); ok {
				rc.in.Registers.Set(r, v)
			}
		case len(f) == 17 && f[0] == "code":
			for _, h := range f[1:] {
				b, _ := strconv.ParseUint(h, 16, 8)
				rc.in.Code = append(rc.in.Code, byte(b))
			}
		}
	}
	if len(rc.pcs) > 2 {
		rc.pcs = rc.pcs[2:] // the handler and the signal trampoline
	}
	// Frame 0 is the interrupted pc itself (rip), the rest return addresses.
	for i, pc := range rc.pcs {
		lookup := pc
		if i > 0 {
			lookup--
		}
		fr := crash.Frame{Index: i, PC: crash.Addr(pc), Trust: crash.TrustCFI}
		if i == 0 {
			fr.Trust = crash.TrustContext
		}
		if m := rc.mappingOf(lookup); m != nil {
			fr.Module = filepath.Base(m.Path)
			fr.ModuleOffset = crash.Addr(pc - m.Start)
			if sym, start, code := rc.symbolize(t, m.Path, lookup); sym != "" {
				fr.Function, fr.FunctionOffset, fr.FunctionSource = sym, crash.Addr(pc-start), "symtab"
				if i == 0 {
					rc.fullCode = code
				}
			}
		}
		rc.in.Frames = append(rc.in.Frames, fr)
	}
	if len(rc.in.Frames) == 0 || uint64(rc.in.Frames[0].PC) != rc.in.Registers.Value(crash.RegRIP) {
		// backtrace() cannot unwind from some states (rip = 0): no stack
		// rather than a wrong one.
		t.Logf("backtrace does not start at rip %#x: %x", rc.in.Registers.Value(crash.RegRIP), rc.pcs)
		rc.in.Frames = nil
	}
	return rc
}

func (rc *realCrash) mappingOf(addr uint64) *Mapping {
	for i := range rc.in.Mappings {
		m := &rc.in.Mappings[i]
		if addr >= m.Start && addr < m.End && strings.HasPrefix(m.Path, "/") {
			return m
		}
	}
	return nil
}

// symbolize finds the function of path that contains the runtime address
// addr and returns its name, runtime start and code.
func (rc *realCrash) symbolize(t *testing.T, path string, addr uint64) (string, uint64, []byte) {
	ef, err := elf.Open(path)
	if err != nil {
		return "", 0, nil
	}
	defer ef.Close()
	bias := uint64(0)
	if ef.Type == elf.ET_DYN {
		bias = ^uint64(0)
		for _, m := range rc.in.Mappings {
			if m.Path == path && m.Start < bias {
				bias = m.Start
			}
		}
	}
	link := addr - bias
	syms, _ := ef.Symbols()
	dyn, _ := ef.DynamicSymbols()
	for _, s := range append(syms, dyn...) {
		if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Value == 0 || link < s.Value || link >= s.Value+s.Size {
			continue
		}
		var code []byte
		for _, p := range ef.Progs {
			if p.Type == elf.PT_LOAD && s.Value >= p.Vaddr && s.Value+s.Size <= p.Vaddr+p.Filesz {
				code = make([]byte, s.Size)
				if _, err := p.ReadAt(code, int64(s.Value-p.Vaddr)); err != nil {
					code = nil
				}
			}
		}
		return s.Name, s.Value + bias, code
	}
	return "", 0, nil
}

// analyzeLike returns the input as coroner's analyze driver builds it: the
// function's bytes from its start up to rip+16.
func (rc *realCrash) analyzeLike() Input {
	in := rc.in
	if len(in.Frames) > 0 && rc.fullCode != nil {
		end := min(uint64(in.Frames[0].FunctionOffset)+16, uint64(len(rc.fullCode)))
		in.FunctionCode = rc.fullCode[:end]
	}
	return in
}

// whole returns the input with the whole crashing function's code.
func (rc *realCrash) whole() Input {
	in := rc.in
	in.FunctionCode = rc.fullCode
	return in
}

func TestRealCrashes(t *testing.T) {
	cases := []struct {
		scenario    string
		kind        crash.FaultKind
		instruction string
		register    string
		argument    int
		address     string // hex, "" = do not check
		contains    []string
	}{
		{"null-arg", crash.FaultNullDeref, "mov eax, dword ptr [rdi+0x10]", "rdi", 1, "0x10",
			[]string{"the first argument (rdi) of null_arg was NULL", "offset 0x10", "Its caller, main (crashers)"}},
		{"null-walk", crash.FaultNullDeref, "mov edx, dword ptr [rdi+0x10]", "rdi", 0, "0x10",
			[]string{"rdi, which was NULL", "offset 0x10", "in walk (crashers)"}},
		{"rodata", crash.FaultWriteReadOnly, "mov byte ptr [rdi+0x1], 0x58", "rdi", 0, "",
			[]string{"Write to read-only memory in write_rodata", "crashers"}},
		{"wild", crash.FaultBadPointer, "mov rax, qword ptr [rdi]", "rdi", 0, "0x7e0000001000",
			[]string{"nothing is mapped", "rdi = 0x7e0000001000"}},
		{"noncanonical", crash.FaultNonCanonical, "mov rax, qword ptr [rdi]", "rdi", 0, "0xdead00000000beef",
			[]string{"not a canonical", "0xdead00000000beef", "in deref (crashers)"}},
		// Where the recursion hits the guard depends on the randomised stack
		// top: on the call (rsp) or on the store to the local (rbp).
		{"stack", crash.FaultStackOverflow, "", "*", 0, "",
			[]string{"Stack overflow in recurse (crashers)"}},
		{"thread-stack", crash.FaultStackOverflow, "", "*", 0, "",
			[]string{"Stack overflow in recurse (crashers)"}},
		{"divide", crash.FaultArithmetic, "idiv esi", "", 0, "",
			[]string{"division by zero in divide", "esi was 0"}},
		{"abort", crash.FaultAbort, "", "", 0, "",
			[]string{"assertion failed", "abort() was called from check (crashers)"}},
		{"free", crash.FaultAbort, "", "", 0, "",
			[]string{"heap corruption", "abort() was called from main (crashers)"}},
		{"trap", crash.FaultIllegalInstr, "ud2", "", 0, "",
			[]string{"ud2 in trap.cold (crashers)", "__builtin_trap"}},
		{"null-call", crash.FaultExecUnmapped, "", "", 0, "0x0",
			[]string{"NULL function pointer"}},
		{"exec-data", crash.FaultExecNonExec, "ret", "", 0, "",
			[]string{"non-executable memory", "crashers"}},
		{"kill", crash.FaultSignalSent, "", "", 0, "",
			[]string{"SIGSEGV was sent by process", "not a memory fault", "sent it to itself"}},
		{"misaligned", crash.FaultBadPointer, "movaps xmmword ptr [rdi], xmm0", "rdi", 0, "",
			[]string{"General protection fault in aligned_store", "16-byte aligned", "misaligned"}},
		{"sigbus", crash.FaultBusError, "movsx eax, byte ptr [r12+0x1000]", "r12", 0, "",
			[]string{"Bus error in main (crashers)", "truncated"}},
	}
	for _, c := range cases {
		t.Run(c.scenario, func(t *testing.T) {
			rc := runCrash(t, c.scenario)
			for name, in := range map[string]Input{"bare": rc.in, "analyze": rc.analyzeLike(), "whole": rc.whole()} {
				f := Explain(in)
				ctx := fmt.Sprintf("%s/%s: %+v", c.scenario, name, f)
				if name == "analyze" {
					t.Logf("%s: %s\n  %s\n  %s", f.Kind, f.Instruction, f.Explanation, strings.Join(f.Details, "\n  "))
				}
				if f.Kind != c.kind {
					t.Errorf("kind %q, want %q\n%s", f.Kind, c.kind, ctx)
				}
				if c.instruction != "" && f.Instruction != c.instruction {
					t.Errorf("instruction %q, want %q\n%s", f.Instruction, c.instruction, ctx)
				}
				if c.register != "*" && f.Register != c.register {
					t.Errorf("register %q, want %q\n%s", f.Register, c.register, ctx)
				}
				if f.Argument != c.argument {
					t.Errorf("argument %d, want %d\n%s", f.Argument, c.argument, ctx)
				}
				if c.address != "" && f.Address.String() != c.address {
					t.Errorf("address %s, want %s\n%s", f.Address, c.address, ctx)
				}
				for _, w := range c.contains {
					if !strings.Contains(f.Explanation, w) {
						t.Errorf("explanation lacks %q\n%s", w, ctx)
					}
				}
				if uint64(f.PC) != rc.in.Registers.Value(crash.RegRIP) {
					t.Errorf("pc %s, want rip %#x", f.PC, rc.in.Registers.Value(crash.RegRIP))
				}
			}
		})
	}
}

// TestRealStackOverflowManyFrames gives the real stack-overflow state the
// deep recursive stack an unwinder reports (backtrace() stops at 64 frames):
// the explanation names the recursing function.
func TestRealStackOverflowManyFrames(t *testing.T) {
	rc := runCrash(t, "stack")
	in := rc.in
	if len(in.Frames) < 2 {
		t.Fatalf("no frames: %x", rc.pcs)
	}
	for len(in.Frames) < 5000 {
		in.Frames = append(in.Frames, in.Frames[1])
	}
	f := Explain(in)
	if f.Kind != crash.FaultStackOverflow || !strings.Contains(f.Explanation, "recurse appears") {
		t.Errorf("%+v", f)
	}
}
