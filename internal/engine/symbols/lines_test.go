package symbols

import (
	"debug/dwarf"
	"debug/elf"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestLineTableMatchesDebugDWARF compares the own .debug_line decoder with
// the standard library's DWARF line reader on a program gcc compiles now
// (DWARF 5, Debian 12's default) and in DWARF 4, at every row address.
func TestLineTableMatchesDebugDWARF(t *testing.T) {
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc not installed")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	os.WriteFile(src, []byte(`#include <stdio.h>
#include "h.h"
static int helper(int x) {
	int y = x * 2;
	return y + inl(x);
}
int main(int argc, char **argv) {
	printf("%d\n", helper(argc));
	return 0;
}
`), 0o644)
	os.WriteFile(filepath.Join(dir, "h.h"), []byte("static inline int inl(int v) {\n\treturn v + 3;\n}\n"), 0o644)
	for _, dw := range []string{"-gdwarf-5", "-gdwarf-4"} {
		bin := filepath.Join(dir, "p"+dw)
		if out, err := exec.Command("gcc", dw, "-O1", "-o", bin, src).CombinedOutput(); err != nil {
			t.Fatalf("gcc: %v\n%s", err, out)
		}
		t.Run(dw, func(t *testing.T) { compareLines(t, bin, 0) })
	}
}

// TestLineTableLibcDebugInfo does the same on glibc's separate debug file
// when libc6-dbg is installed (a large, real, compressed DWARF 5 file).
func TestLineTableLibcDebugInfo(t *testing.T) {
	o, err := Open("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Skip(err)
	}
	defer o.Close()
	if o.DebugFile() == "" {
		t.Skip("libc6-dbg is not installed")
	}
	compareLines(t, o.DebugFile(), 2000)
}

func compareLines(t *testing.T, path string, limit int) {
	ef, err := elf.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	d, err := ef.DWARF()
	if err != nil {
		t.Fatal(err)
	}
	o, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	r := d.Reader()
	checked := 0
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
		if err != nil || lr == nil {
			continue
		}
		// Rows at one address form a group; the row that names it is
		// gdb's: the last one, or when it is not a statement the last
		// statement row of the group.
		var le dwarf.LineEntry
		var group []dwarf.LineEntry
		flush := func() bool {
			if len(group) == 0 {
				return false
			}
			want := group[len(group)-1]
			if !want.IsStmt {
				for k := len(group) - 1; k >= 0; k-- {
					if group[k].IsStmt {
						want = group[k]
						break
					}
				}
			}
			group = group[:0]
			if want.EndSequence || want.Line == 0 {
				return false
			}
			file, line, err := o.Line(want.Address)
			if err != nil {
				t.Fatalf("%#x: %v", want.Address, err)
			}
			if filepath.Base(file) != filepath.Base(want.File.Name) || line != want.Line {
				t.Errorf("%#x: got %s:%d, debug/dwarf %s:%d", want.Address, file, line, want.File.Name, want.Line)
			}
			checked++
			return limit > 0 && checked >= limit
		}
		for lr.Next(&le) == nil {
			if len(group) > 0 && (le.Address != group[0].Address || group[len(group)-1].EndSequence) {
				if flush() {
					return
				}
			}
			if !le.EndSequence {
				group = append(group, le)
			} else {
				group = group[:0]
			}
		}
		flush()
		r.SkipChildren()
	}
	if checked == 0 {
		t.Fatal("no line rows checked")
	}
	t.Logf("%d rows agree", checked)
}

// TestLinesBatchMatchesFullTable: the filtered one-pass lookup gives the
// same answers as the full table.
func TestLinesBatchMatchesFullTable(t *testing.T) {
	o, err := Open("/lib/x86_64-linux-gnu/libc.so.6")
	if err != nil {
		t.Skip(err)
	}
	defer o.Close()
	if o.DebugFile() == "" {
		t.Skip("libc6-dbg is not installed")
	}
	var addrs []uint64
	for _, s := range o.Symbols() {
		if s.Size > 8 && len(addrs) < 300 {
			addrs = append(addrs, s.Value+s.Size/2)
		}
	}
	got := o.Lines(addrs)
	for _, a := range addrs {
		file, line, err := o.Line(a)
		p, ok := got[a]
		if (err == nil) != ok || (ok && (p.File != file || p.Line != line)) {
			t.Errorf("%#x: batch %v %v, full %s:%d %v", a, p, ok, file, line, err)
		}
	}
	if len(got) < len(addrs)/2 {
		t.Errorf("only %d of %d addresses have lines", len(got), len(addrs))
	}
}

// TestSymbolByName compares the in-place symbol search with debug/elf.
func TestSymbolByName(t *testing.T) {
	for path, names := range map[string][]string{
		"/lib/x86_64-linux-gnu/libc.so.6": {"malloc", "abort", "__libc_start_main"},
		"/usr/sbin/php-fpm8.2":            {"executor_globals", "execute_ex", "zend_call_function"},
	} {
		o, err := Open(path)
		if err != nil {
			t.Logf("skip %s: %v", path, err)
			continue
		}
		ef, _ := elf.Open(path)
		dyn, _ := ef.DynamicSymbols()
		for _, name := range names {
			got, ok := o.SymbolByName(name)
			if !ok {
				t.Errorf("%s: %s not found", path, name)
				continue
			}
			found := false
			for _, s := range dyn {
				if s.Name == name && s.Value == got.Value && s.Section != elf.SHN_UNDEF {
					found = true
				}
			}
			if !found {
				t.Errorf("%s: %s at %#x not in debug/elf's table", path, name, got.Value)
			}
		}
		if _, ok := o.SymbolByName("no_such_symbol_here"); ok {
			t.Errorf("%s: found a symbol that does not exist", path)
		}
		ef.Close()
		o.Close()
	}
}

// FuzzLineTable: any .debug_line content gives a table or an error, never
// a panic, with and without an address filter.
func FuzzLineTable(f *testing.F) {
	if o, err := Open("/lib/x86_64-linux-gnu/libpcre2-8.so.0"); err == nil {
		if src := o.lineSources(); len(src) > 0 && len(src[0].line) > 2048 {
			f.Add(src[0].line[:2048], uint64(0x1000))
		}
		o.Close()
	}
	f.Add([]byte{0x30, 0, 0, 0, 5, 0, 8, 0, 0x20, 0, 0, 0, 1, 1, 1, 0xfb, 14, 13}, uint64(0))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 4, 0}, uint64(7))
	f.Fuzz(func(t *testing.T, b []byte, addr uint64) {
		str := func() []byte { return b }
		for _, want := range [][]uint64{nil, {addr}} {
			lt, err := parseLineTable(b, b, str, want)
			if err == nil {
				lt.lookup(addr)
			}
		}
	})
}
