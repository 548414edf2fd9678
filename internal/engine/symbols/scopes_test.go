package symbols

import (
	"bufio"
	"bytes"
	"debug/dwarf"
	"debug/elf"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// buildProgram compiles one of analyze's crash programs (shared test
// sources) with the given compiler flags.
func buildProgram(t *testing.T, src string, flags ...string) string {
	t.Helper()
	cc := "gcc"
	if strings.HasSuffix(src, ".cpp") {
		cc = "g++"
	}
	if _, err := exec.LookPath(cc); err != nil {
		t.Skipf("%s not installed", cc)
	}
	bin := filepath.Join(t.TempDir(), strings.TrimSuffix(filepath.Base(src), filepath.Ext(src)))
	args := append(append([]string{}, flags...), "-o", bin, filepath.Join("..", "analyze", "testdata", src))
	if strings.HasSuffix(src, ".cpp") {
		args = append(args, "-pthread")
	}
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", cc, args, err, out)
	}
	return bin
}

// statementAddrs returns up to max addresses of statement rows of the
// line table (spread over the table).
func statementAddrs(t *testing.T, path string, max int) []uint64 {
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	d, err := ef.DWARF()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[uint64]bool{}
	var all []uint64
	r := d.Reader()
	for {
		e, err := r.Next()
		if err != nil || e == nil {
			break
		}
		if e.Tag != dwarf.TagCompileUnit {
			r.SkipChildren()
			continue
		}
		lr, err := d.LineReader(e)
		if err == nil && lr != nil {
			var le dwarf.LineEntry
			for lr.Next(&le) == nil {
				if le.IsStmt && !le.EndSequence && le.Address != 0 && !seen[le.Address] {
					seen[le.Address] = true
					all = append(all, le.Address)
				}
			}
		}
		r.SkipChildren()
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) <= max {
		return all
	}
	out := make([]uint64, 0, max)
	for i := 0; i < max; i++ {
		out = append(out, all[i*len(all)/max])
	}
	return out
}

// euFrame is one level of eu-addr2line -i output.
type euFrame struct {
	name string
	file string
	line int
}

// euAddr2line runs elfutils' eu-addr2line -a -i -f on addrs and returns
// the inline chain of each, innermost first.
func euAddr2line(t *testing.T, path string, addrs []uint64) map[uint64][]euFrame {
	args := []string{"-a", "-i", "-f", "-C", "-e", path}
	for _, a := range addrs {
		args = append(args, fmt.Sprintf("%#x", a))
	}
	out, err := exec.Command("eu-addr2line", args...).Output()
	if err != nil {
		t.Fatalf("eu-addr2line: %v", err)
	}
	res := map[uint64][]euFrame{}
	var cur uint64
	var pending *euFrame
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "0x"):
			cur, _ = strconv.ParseUint(line[2:], 16, 64)
			pending = nil
		case pending == nil:
			name, _, _ := strings.Cut(line, " inlined at ")
			pending = &euFrame{name: name}
		default:
			f := *pending
			pending = nil
			// file:line:column
			parts := strings.Split(line, ":")
			if len(parts) >= 3 {
				f.line, _ = strconv.Atoi(parts[len(parts)-2])
				f.file = strings.Join(parts[:len(parts)-2], ":")
			}
			res[cur] = append(res[cur], f)
		}
	}
	return res
}

// TestScopesMatchEUAddr2line: at every statement of programs built with
// inlining (C++ templates, lambdas, namespaces; C tail calls), in DWARF 4
// and 5, the chain of functions (inlined ones included) is elfutils'
// chain: same depth, same functions (coroner qualifies C++ names as gdb
// does, eu-addr2line prints the bare DW_AT_name), same call lines.
func TestScopesMatchEUAddr2line(t *testing.T) {
	if _, err := exec.LookPath("eu-addr2line"); err != nil {
		t.Skip("eu-addr2line (elfutils) not installed")
	}
	for _, src := range []string{"inlines.cpp", "tailcall.c"} {
		for _, dw := range []string{"-gdwarf-5", "-gdwarf-4"} {
			t.Run(src+dw, func(t *testing.T) {
				bin := buildProgram(t, src, "-O2", dw)
				compareScopes(t, bin, 600)
			})
		}
	}
}

// TestScopesLibcDebugInfo does the same on glibc's separate debug file
// (libc6-dbg): a large, compressed DWARF 5 file written by gcc and gas.
func TestScopesLibcDebugInfo(t *testing.T) {
	if _, err := exec.LookPath("eu-addr2line"); err != nil {
		t.Skip("eu-addr2line (elfutils) not installed")
	}
	o, err := Open("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Skip(err)
	}
	defer o.Close()
	if o.DebugFile() == "" {
		t.Skip("libc6-dbg is not installed")
	}
	compareScopes(t, o.DebugFile(), 1500)
}

func compareScopes(t *testing.T, path string, max int) {
	o, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	addrs := statementAddrs(t, path, max)
	want := euAddr2line(t, path, addrs)
	inlined, checked := 0, 0
	for _, a := range addrs {
		w := want[a]
		got := o.Scopes(a)
		if len(w) == 0 || w[0].name == "??" {
			continue // no function there for elfutils (padding, assembly without DIEs)
		}
		checked++
		if len(got) == 0 && len(w) == 1 {
			// No DIE covers the address (a function folded into another
			// has no code of its own): both fall back on the symbol table.
			if s, ok := o.Lookup(a); !ok || !hasAlias(o, s.Value, w[0].name) {
				t.Errorf("%#x: no scope and symbol %q, eu-addr2line %v", a, s.Name, w)
			}
			continue
		}
		if len(got) != len(w) {
			t.Errorf("%#x: %d scopes %v, eu-addr2line %d %v", a, len(got), got, len(w), w)
			continue
		}
		if len(got) > 1 {
			inlined++
		}
		for k := range w {
			name := stripParams(w[k].name) // a demangled linkage name has them
			g := got[k].Name
			if g != name && k == len(w)-1 && hasAlias(o, got[k].Entry, name) {
				// The assembler describes each alias of a function as a
				// subprogram of its own; gdb names the code by the last,
				// elfutils by the first (__memcpy_ssse3, __memmove_ssse3).
				continue
			}
			if g != name && !strings.HasSuffix(g, "::"+name) {
				t.Errorf("%#x level %d: %q, eu-addr2line %q", a, k, g, name)
			}
			if k > 0 && (got[k-1].CallLine != w[k].line || filepath.Base(got[k-1].CallFile) != filepath.Base(w[k].file)) {
				t.Errorf("%#x level %d: called from %s:%d, eu-addr2line %s:%d", a, k, got[k-1].CallFile, got[k-1].CallLine, w[k].file, w[k].line)
			}
		}
		if got[len(got)-1].Inlined || got[len(got)-1].Entry == 0 {
			t.Errorf("%#x: outermost scope %+v is not a concrete function", a, got[len(got)-1])
		}
	}
	t.Logf("%d addresses agree, %d of them in inlined code", checked, inlined)
	if checked < len(addrs)/2 || inlined == 0 {
		t.Errorf("only %d of %d addresses checked, %d inlined", checked, len(addrs), inlined)
	}
}

// TestTailCallChain: in tailcall.c, top() calls middle(), which jumps to
// leaf(). The call site in top() names middle(); the chain from middle()
// to leaf() is the one jump, whose return address (after the jmp) is what
// gdb prints for the synthesised frame.
func TestTailCallChain(t *testing.T) {
	for _, dw := range []string{"-gdwarf-5", "-gdwarf-4"} { // DW_TAG_call_site, DW_TAG_GNU_call_site
		t.Run(dw, func(t *testing.T) {
			bin := buildProgram(t, "tailcall.c", "-O2", dw)
			o, err := Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			top, _ := o.FunctionEntry("top")
			middle, _ := o.FunctionEntry("middle")
			leaf := o.Scopes(symbolStart(t, o, "leaf"))
			if top == 0 || middle == 0 || len(leaf) == 0 {
				t.Fatalf("top %#x middle %#x leaf %v", top, middle, leaf)
			}
			callRet := afterInsn(t, o, top, x86asm.CALL)
			jmpRet := afterInsn(t, o, middle, x86asm.JMP)
			entry, name, ok := o.CallTarget(callRet)
			if !ok || entry != middle || name != "middle" {
				t.Errorf("call site at %#x: %#x %q %v, want middle at %#x", callRet, entry, name, ok, middle)
			}
			chain := o.TailCallChain(middle, leaf[0].Entry)
			if len(chain) != 1 || chain[0] != jmpRet {
				t.Errorf("tail calls from middle to leaf: %#x, want [%#x]", chain, jmpRet)
			}
			if c := o.TailCallChain(top, leaf[0].Entry); len(c) != 0 {
				t.Errorf("top does not jump anywhere, got chain %#x", c)
			}
			if sc := o.Scopes(jmpRet - 1); len(sc) == 0 || sc[0].Name != "middle" {
				t.Errorf("the jump is in %v, want middle", sc)
			}
		})
	}
}

// stripParams removes the parameter list (and cv-qualifiers) that ends a
// demangled C++ name: "ns::f(int) const" is "ns::f", "S::operator()(int)"
// is "S::operator()".
func stripParams(name string) string {
	s := strings.TrimSpace(name)
	for _, q := range []string{" const", " volatile", " &&", " &"} {
		s = strings.TrimSuffix(s, q)
	}
	if !strings.HasSuffix(s, ")") {
		return name
	}
	depth := 0
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ')':
			depth++
		case '(':
			depth--
			if depth == 0 {
				if strings.HasSuffix(s[:i], "operator") {
					return s
				}
				return s[:i]
			}
		}
	}
	return name
}

func hasAlias(o *Object, addr uint64, name string) bool {
	for _, a := range o.Aliases(addr) {
		if a == name {
			return true
		}
	}
	return false
}

func symbolStart(t *testing.T, o *Object, name string) uint64 {
	for _, s := range o.Symbols() {
		if s.Name == name || strings.HasPrefix(s.Name, name+".") {
			return s.Value
		}
	}
	t.Fatalf("no symbol %s", name)
	return 0
}

// afterInsn returns the address after the first instruction op in the
// function at entry.
func afterInsn(t *testing.T, o *Object, entry uint64, op x86asm.Op) uint64 {
	text := o.ELF().Section(".text")
	b, err := text.Data()
	if err != nil {
		t.Fatal(err)
	}
	off := entry - text.Addr
	for n := 0; n < 64 && off < uint64(len(b)); n++ {
		inst, err := x86asm.Decode(b[off:], 64)
		if err != nil {
			break
		}
		off += uint64(inst.Len)
		if inst.Op == op {
			return text.Addr + off
		}
	}
	t.Fatalf("no %v in the function at %#x", op, entry)
	return 0
}

// FuzzDebugInfo: any .debug_info / .debug_abbrev content gives scopes or
// nothing, never a panic or a hang.
func FuzzDebugInfo(f *testing.F) {
	if bin, err := os.Executable(); err == nil {
		if ef, err := elf.Open(bin); err == nil {
			if si, sa := ef.Section(".debug_info"), ef.Section(".debug_abbrev"); si != nil && sa != nil {
				info, _ := si.Data()
				abbrev, _ := sa.Data()
				if len(info) > 4096 && len(abbrev) > 1024 {
					f.Add(info[:4096], abbrev[:1024], uint64(0x401000))
				}
			}
			ef.Close()
		}
	}
	// A DWARF 5 unit with one subprogram [0x1000, 0x1010) holding an
	// inlined subroutine and a tail call site.
	abbrev := []byte{
		1, 0x11, 1, 0x13, 0x0b, 0, 0, // compile_unit, children, language data1
		2, 0x2e, 1, 0x03, 0x08, 0x11, 0x01, 0x12, 0x0b, 0, 0, // subprogram: name string, low_pc addr, high_pc data1
		3, 0x1d, 0, 0x31, 0x13, 0x11, 0x01, 0x12, 0x0b, 0x58, 0x0b, 0x59, 0x0b, 0, 0, // inlined: origin ref4, low, high, call file, line
		4, 0x48, 0, 0x7d, 0x01, 0x82, 0x19, 0x7f, 0x13, 0, 0, // call_site: return_pc, tail flag, origin
		0,
	}
	info := []byte{0, 0, 0, 0, 5, 0, 1, 8, 0, 0, 0, 0,
		1, 0x0c,
		2, 'f', 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0x10,
		3, 14, 0, 0, 0, 4, 0x10, 0, 0, 0, 0, 0, 0, 4, 1, 7,
		4, 8, 0x10, 0, 0, 0, 0, 0, 0, 14, 0, 0, 0,
		0, 0}
	info[0] = byte(len(info) - 4)
	f.Add(info, abbrev, uint64(0x1005))
	f.Fuzz(func(t *testing.T, info, abbrev []byte, addr uint64) {
		d := newDWARFInfo(dwarfSections{info: wholeSection(info), abbrev: wholeSection(abbrev), line: wholeSection(nil), str: wholeSection(info), addr: wholeSection(info), rnglists: wholeSection(info), ranges: wholeSection(info), aranges: wholeSection(abbrev)})
		if d == nil {
			return
		}
		// An object whose .debug_info is d.
		fake := &elf.File{Sections: []*elf.Section{{SectionHeader: elf.SectionHeader{Name: ".debug_info"}}}}
		o := &Object{info: d, cache: newCacheRecord(), secs: &sectionCache{ef: fake}}
		o.infoOnce.Do(func() {})
		for _, a := range []uint64{addr, 0x1005, 0x1008} {
			o.Scopes(a)
			o.CallTarget(a)
			o.TailCallChain(a, a+1)
		}
	})
}

// FuzzMiniDebugInfo: any .gnu_debugdata content gives an ELF file or an
// error, never a panic.
func FuzzMiniDebugInfo(f *testing.F) {
	// An xz stream of an empty input, and of a truncated ELF header.
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 4, 0xe6, 0xd6, 0xb4, 0x46, 0, 0, 0, 0, 0x1c, 0xdf, 0x44, 0x21, 0x1f, 0xb6, 0xf3, 0x7d, 1, 0, 0, 0, 0, 4, 0x59, 0x5a})
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if ef, _, err := readMiniDebugInfo(bytes.NewReader(b), int64(len(b))); err == nil {
			ef.Symbols()
		}
	})
}

// TestXZDictionaryCheck: streams xz writes at every preset pass; a block
// announcing a 4 GiB dictionary (which the decoder would allocate) fails.
func TestXZDictionaryCheck(t *testing.T) {
	if _, err := exec.LookPath("xz"); err != nil {
		t.Skip("xz not installed")
	}
	for _, preset := range []string{"-0", "-6", "-9", "-9e"} {
		cmd := exec.Command("xz", preset, "--stdout")
		cmd.Stdin = strings.NewReader(strings.Repeat("MiniDebugInfo ", 1000))
		b, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		if err := checkXZDictionaries(b, maxXZDictionary); err != nil {
			t.Errorf("xz %s: %v", preset, err)
		}
		if preset == "-6" {
			bad := append([]byte(nil), b...)
			if bad[14] != 0x21 || bad[15] != 1 {
				t.Fatalf("unexpected block header % x", bad[12:20])
			}
			bad[16] = 40
			if err := checkXZDictionaries(bad, maxXZDictionary); err == nil {
				t.Error("a 4 GiB dictionary passed")
			}
			if err := checkXZDictionaries(b[:len(b)-1], maxXZDictionary); err == nil {
				t.Error("a truncated stream passed")
			}
		}
	}
}

// TestSubtreeEndMemoised: in a Go unit (the compiler writes no
// DW_AT_sibling) the ends of the subtrees a scope lookup skipped are kept,
// and each is where reading the subtree again ends; a second lookup finds
// the same scopes.
func TestSubtreeEndMemoised(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "main.go"), filepath.Join(dir, "prog")
	prog := "package main\n\nimport \"fmt\"\n\nfunc main() { fmt.Println(sum([]int{1, 2, 3})) }\n\n//go:noinline\nfunc sum(xs []int) (n int) {\n\tfor _, x := range xs {\n\t\tn += x\n\t}\n\treturn n\n}\n"
	if err := os.WriteFile(src, []byte(prog), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goBin, "build", "-o", bin, src)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GO111MODULE=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	syms, _ := ef.Symbols()
	ef.Close()
	var pc uint64
	for _, s := range syms {
		if s.Name == "fmt.(*pp).doPrintln" {
			pc = s.Value + 1
		}
	}
	if pc == 0 {
		t.Fatal("no fmt.(*pp).doPrintln in the program")
	}
	o, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	d := o.dwarf()
	if d == nil {
		t.Fatal("no DWARF in the program")
	}
	u, chain, _ := d.scopesAt(pc)
	if u == nil || len(chain) == 0 {
		t.Fatalf("no scope at %#x", pc)
	}
	u.endsMu.Lock()
	kept := maps.Clone(u.ends)
	u.endsMu.Unlock()
	if len(kept) == 0 {
		t.Fatal("no subtree end kept")
	}
	for off, end := range kept {
		x, err := u.readDIE(off)
		if err != nil {
			t.Fatal(err)
		}
		if want, err := u.walkSubtree(&x); err != nil || want != end {
			t.Fatalf("DIE %#x: kept end %#x, read %#x (%v)", off, end, want, err)
		}
	}
	_, again, _ := d.scopesAt(pc)
	if len(again) != len(chain) || again[len(again)-1].off != chain[len(chain)-1].off {
		t.Errorf("second lookup: %d scopes, want %d", len(again), len(chain))
	}
}
