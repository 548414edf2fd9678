package unwind

import (
	"debug/elf"
	"os"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// realObjects are ELF files present on every Debian/Ubuntu host the tests run on.
var realObjects = []string{
	"/lib/x86_64-linux-gnu/libc.so.6",
	"/usr/sbin/php-fpm8.2",
	"/lib/x86_64-linux-gnu/libpcre2-8.so.0",
}

func openTables(t testing.TB, path string) (*elf.File, *Table, *Table) {
	t.Helper()
	f, err := elf.Open(path)
	if err != nil {
		t.Skipf("%s not available: %v", path, err)
	}
	eh := f.Section(".eh_frame")
	hdr := f.Section(".eh_frame_hdr")
	if eh == nil || hdr == nil {
		t.Skipf("%s has no .eh_frame/.eh_frame_hdr", path)
	}
	ehData, err := eh.Data()
	if err != nil {
		t.Fatal(err)
	}
	hdrData, err := hdr.Data()
	if err != nil {
		t.Fatal(err)
	}
	return f, NewTable(ehData, eh.Addr, hdrData, hdr.Addr), NewTable(ehData, eh.Addr, nil, 0)
}

// TestFDEsCoverFunctionSymbols checks the CFI parser against the symbol
// tables of real objects: every sized function symbol must lie in an FDE
// (found both through .eh_frame_hdr and by a full scan), and the FDE must
// usually start exactly at the symbol.
func TestFDEsCoverFunctionSymbols(t *testing.T) {
	for _, path := range realObjects {
		t.Run(path, func(t *testing.T) {
			f, withHdr, scan := openTables(t, path)
			defer f.Close()
			syms, err := f.DynamicSymbols()
			if err != nil {
				t.Fatal(err)
			}
			checked, exact, missing := 0, 0, 0
			for _, s := range syms {
				if elf.ST_TYPE(s.Info) != elf.STT_FUNC || s.Size == 0 || s.Value == 0 {
					continue
				}
				checked++
				a, err1 := withHdr.FDEFor(s.Value)
				b, err2 := scan.FDEFor(s.Value)
				if (err1 == nil) != (err2 == nil) {
					t.Errorf("%s at %#x: hdr lookup: %v, scan lookup: %v", s.Name, s.Value, err1, err2)
				}
				if err1 != nil || err2 != nil {
					missing++ // hand-written assembly (e.g. boost.context's jump_fcontext) has no CFI
					continue
				}
				if a.Start != b.Start || a.End != b.End {
					t.Errorf("%s: hdr FDE %#x-%#x != scanned FDE %#x-%#x", s.Name, a.Start, a.End, b.Start, b.End)
				}
				if a.Start == s.Value {
					exact++
				}
				// The unwind row at the function's first instruction must be
				// the standard entry state: CFA = rsp+8, return address at CFA-8.
				r, err := withHdr.rowAt(a, s.Value)
				if err != nil {
					t.Errorf("%s: row at entry: %v", s.Name, err)
					continue
				}
				if r.regs[regRIP].kind == ruleUndefined {
					continue // the outermost function (_start) marks the return address undefined
				}
				if a.Start == s.Value && (r.cfaExpr != nil || r.cfaReg != regRSP || r.cfaOff != 8 || r.regs[regRIP].kind != ruleOffset || r.regs[regRIP].off != -8) {
					t.Errorf("%s: entry row CFA r%d%+d, rip rule %+v", s.Name, r.cfaReg, r.cfaOff, r.regs[regRIP])
				}
			}
			if checked < 50 {
				t.Fatalf("only %d function symbols checked", checked)
			}
			if float64(missing) > 0.01*float64(checked) {
				t.Errorf("%d of %d function symbols have no FDE", missing, checked)
			}
			if float64(exact) < 0.9*float64(checked) {
				t.Errorf("only %d of %d symbols start an FDE", exact, checked)
			}
			t.Logf("%d symbols, %d start an FDE", checked, exact)
		})
	}
}

func BenchmarkFDELookup(b *testing.B) {
	f, tab, _ := openTables(b, "/usr/sbin/php-fpm8.2")
	defer f.Close()
	syms, _ := f.DynamicSymbols()
	var pcs []uint64
	for _, s := range syms {
		if elf.ST_TYPE(s.Info) == elf.STT_FUNC && s.Size > 16 {
			pcs = append(pcs, s.Value+s.Size/2)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fde, err := tab.FDEFor(pcs[i%len(pcs)])
		if err == nil {
			_, _ = tab.rowAt(fde, pcs[i%len(pcs)])
		}
	}
}

func FuzzCFI(f *testing.F) {
	if data, err := os.ReadFile("/lib/x86_64-linux-gnu/libpcre2-8.so.0"); err == nil {
		if ef, err := elf.NewFile(bytesReaderAt(data)); err == nil {
			if s := ef.Section(".eh_frame"); s != nil {
				if b, err := s.Data(); err == nil && len(b) > 4096 {
					f.Add(b[:4096], uint64(0x1000))
				}
			}
		}
	}
	f.Add([]byte{0x14, 0, 0, 0, 0, 0, 0, 0, 1, 'z', 'R', 0, 1, 0x78, 0x10, 1, 0x1b, 0x0c, 7, 8, 0x90, 1, 0, 0}, uint64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 2, 3}, uint64(5))
	f.Fuzz(func(t *testing.T, data []byte, pc uint64) {
		tab := NewTable(data, 0x1000, nil, 0)
		fde, err := tab.FDEFor(pc)
		if err == nil {
			_, _ = tab.rowAt(fde, pc)
		}
		hdr := append([]byte{1, 0x1b, 0x03, 0x3b, 0, 0, 0, 0, 4, 0, 0, 0}, data...)
		tab2 := NewTable(data, 0x1000, hdr, 0x800)
		if fde, err := tab2.FDEFor(pc); err == nil {
			_, _ = tab2.rowAt(fde, pc)
		}
		dbg := NewDebugFrameTable(data)
		if fde, err := dbg.FDEFor(pc); err == nil {
			_, _ = dbg.rowAt(fde, pc)
		}
		var rs crash.Registers
		_, _ = evalExpr(data, &rs, zeroMem{}, pc)
	})
}

type bytesReaderAt []byte

func (b bytesReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= int64(len(b)) {
		return 0, os.ErrInvalid
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, os.ErrInvalid
	}
	return n, nil
}

type zeroMem struct{}

func (zeroMem) ReadUint64(uint64) (uint64, error) { return 0, nil }
func (zeroMem) ReadAt(p []byte, _ int64) (int, error) {
	clear(p)
	return len(p), nil
}

// TestSearchTableInPlace: the .eh_frame_hdr table searched where it lies
// finds the FDE the decoded table finds, for pcs all over real libraries.
func TestSearchTableInPlace(t *testing.T) {
	for _, lib := range []string{"/lib/x86_64-linux-gnu/libc.so.6", "/usr/sbin/php-fpm8.2"} {
		ef, err := elf.Open(lib)
		if err != nil {
			t.Logf("skip %s: %v", lib, err)
			continue
		}
		eh, hdr := ef.Section(".eh_frame"), ef.Section(".eh_frame_hdr")
		text := ef.Section(".text")
		ehb, _ := eh.Data()
		hdrb, _ := hdr.Data()
		if fastHdr(hdrb, hdr.Addr, eh.Addr, uint64(len(ehb))) == nil {
			t.Fatalf("%s: the search table is not read in place", lib)
		}
		fast := NewTable(ehb, eh.Addr, hdrb, hdr.Addr)
		slow := NewTable(ehb, eh.Addr, hdrb, hdr.Addr)
		slow.hdrPending = false
		slow.hdr = parseHdr(hdrb, hdr.Addr, eh.Addr, uint64(len(ehb)))
		n := 0
		for pc := text.Addr; pc < text.Addr+text.Size; pc += 997 {
			f1, err1 := fast.FDEFor(pc)
			f2, err2 := slow.FDEFor(pc)
			if (err1 == nil) != (err2 == nil) || (err1 == nil && (f1.Start != f2.Start || f1.End != f2.End)) {
				t.Fatalf("%s %#x: in place %+v %v, decoded %+v %v", lib, pc, f1, err1, f2, err2)
			}
			n++
		}
		ef.Close()
		t.Logf("%s: %d pcs agree", lib, n)
	}
}
