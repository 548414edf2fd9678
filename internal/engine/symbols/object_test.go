package symbols

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// TestAddSymbolsConcurrentWithLookups: the analysis names PHP's internals
// (AddSymbols) in one goroutine while others look up symbols and decode
// line tables of the same object. Run with -race: the symbol list must not
// be mutated under the readers, and every reader must see either the old
// or the new list, sorted.
func TestAddSymbolsConcurrentWithLookups(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	var code string
	for i := 0; i < 40; i++ {
		code += fmt.Sprintf("int f%d(int x) { return x * %d + 1; }\n", i, i+2)
	}
	code += "int main(int argc, char **argv) { return f1(argc) + f2(argc); }\n"
	os.WriteFile(src, []byte(code), 0o644)
	bin := filepath.Join(dir, "p")
	if out, err := exec.Command("gcc", "-g", "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	o, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	before := append([]Symbol(nil), o.Symbols()...)
	var addrs []uint64
	for _, s := range before {
		if len(s.Name) > 1 && s.Name[0] == 'f' {
			addrs = append(addrs, s.Value)
		}
	}
	if len(addrs) < 40 {
		t.Fatalf("%d function symbols", len(addrs))
	}
	want := o.Lines(addrs)
	// Names for addresses past the end of the text, where no symbol starts.
	last := before[len(before)-1]
	base := last.Value + last.Size + 0x1000
	var extra [][]Symbol
	for i := 0; i < 50; i++ {
		extra = append(extra, []Symbol{{Name: fmt.Sprintf("zif_extra_%d", i), Value: base + uint64(i)*0x100, Size: 0x80, Source: "zend-function-entry"}})
	}

	var wg sync.WaitGroup
	start := make(chan struct{})
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for k := 0; k < 200; k++ {
				for _, a := range addrs {
					if s, ok := o.Lookup(a + 1); !ok || s.Value != a {
						t.Errorf("lookup %#x: %+v %v", a+1, s, ok)
						return
					}
				}
				syms := o.Symbols()
				for i := 1; i < len(syms); i++ {
					if syms[i-1].Value > syms[i].Value {
						t.Errorf("symbols out of order at %d", i)
						return
					}
				}
				if k%50 == 0 {
					if got := o.Lines(addrs); len(got) != len(want) {
						t.Errorf("lines: %d positions, want %d", len(got), len(want))
						return
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-start
		for _, e := range extra {
			o.AddSymbols(e)
		}
	}()
	close(start)
	wg.Wait()

	for i, e := range extra {
		if s, ok := o.Lookup(e[0].Value + 4); !ok || s.Name != e[0].Name {
			t.Errorf("extra %d: lookup gave %+v %v", i, s, ok)
		}
	}
	// A name is only added where no symbol starts: f0 keeps its name.
	o.AddSymbols([]Symbol{{Name: "other", Value: addrs[0], Size: 4}})
	if s, _ := o.Lookup(addrs[0]); s.Name == "other" {
		t.Errorf("AddSymbols replaced %+v", s)
	}
	if n := len(o.Symbols()); n != len(before)+len(extra) {
		t.Errorf("%d symbols, want %d", n, len(before)+len(extra))
	}
	// The list a caller got before is not changed by later additions.
	for i := range before {
		if before[i] != o.Symbols()[i] && before[i].Value < base {
			t.Errorf("symbol %d changed: %+v", i, before[i])
			break
		}
	}
}

// TestProgramBuildID compares the PT_NOTE reader with ReadBuildID on the
// system's libraries and this test binary.
func TestProgramBuildID(t *testing.T) {
	paths, _ := filepath.Glob("/lib/x86_64-linux-gnu/lib*.so.*")
	if bin, err := os.Executable(); err == nil {
		paths = append(paths, bin)
	}
	checked := 0
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		ef, err := elf.NewFile(f)
		if err != nil {
			f.Close()
			continue
		}
		want := ReadBuildID(ef)
		got, ok := ProgramBuildID(f)
		f.Close()
		if ok && got != want {
			t.Errorf("%s: ProgramBuildID %q, ReadBuildID %q", p, got, want)
		}
		if want != "" && ok {
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("no object with a build-id in PT_NOTE found")
	}
}

func FuzzProgramBuildID(f *testing.F) {
	if bin, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(bin); err == nil && len(b) > 4096 {
			f.Add(b[:4096])
		}
	}
	hdr := make([]byte, 64+56+32)
	copy(hdr, "\x7fELF\x02\x01\x01")
	hdr[32], hdr[54], hdr[56] = 64, 56, 1
	hdr[64] = 4
	hdr[64+8] = 120
	hdr[64+32] = 32
	copy(hdr[120:], "\x04\x00\x00\x00\x10\x00\x00\x00\x03\x00\x00\x00GNU\x00")
	f.Add(hdr)
	f.Fuzz(func(t *testing.T, b []byte) {
		ProgramBuildID(bytes.NewReader(b))
	})
}
