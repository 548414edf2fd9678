package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// progHeaderFiles lists real ELF files to compare the program header
// reader with debug/elf on: the system's libraries, their debug files
// (whose PT_NOTE segments are kept while most sections are emptied) and
// this test binary.
func progHeaderFiles() []string {
	paths, _ := filepath.Glob("/lib/x86_64-linux-gnu/lib*.so.*")
	debug, _ := filepath.Glob("/usr/lib/debug/.build-id/*/*.debug")
	if len(debug) > 200 {
		debug = debug[:200]
	}
	paths = append(paths, debug...)
	if bin, err := os.Executable(); err == nil {
		paths = append(paths, bin)
	}
	return paths
}

// TestProgHeadersMatchDebugELF: the ELF type, the program headers and the
// build-id read without the section headers are those debug/elf reads.
func TestProgHeadersMatchDebugELF(t *testing.T) {
	checked, withID := 0, 0
	for _, p := range progHeaderFiles() {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		ef, err := elf.NewFile(f)
		if err != nil {
			f.Close()
			continue
		}
		h, ok := readProgHeaders(f)
		if !ok {
			f.Close()
			continue
		}
		checked++
		if h.typ != ef.Type {
			t.Errorf("%s: type %v, debug/elf %v", p, h.typ, ef.Type)
		}
		var want []elf.ProgHeader
		for _, pr := range ef.Progs {
			want = append(want, pr.ProgHeader)
		}
		if !reflect.DeepEqual(h.progs, want) {
			t.Errorf("%s: program headers differ:\n%+v\n%+v", p, h.progs, want)
		}
		if id, ok := h.buildID(f); ok {
			withID++
			if rid := ReadBuildID(ef); id != rid {
				t.Errorf("%s: build-id %q, ReadBuildID %q", p, id, rid)
			}
		}
		f.Close()
	}
	if checked == 0 || withID == 0 {
		t.Fatalf("%d files checked, %d with a build-id in PT_NOTE", checked, withID)
	}
}

// TestSectionHeadersReadOnNeed: opening an object reads its program
// headers only; the first lookup (from several goroutines at once) parses
// the section headers, once, and the answers are those of an object whose
// headers were parsed at open.
func TestSectionHeadersReadOnNeed(t *testing.T) {
	bin := buildProgram(t, "tailcall.c", "-O2", "-g")
	o, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if o.elf != nil {
		t.Fatal("the section headers were parsed at open")
	}
	ef, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	if o.Type != ef.Type || o.BuildID != ReadBuildID(ef) || o.BuildID == "" {
		t.Errorf("type %v build-id %q, debug/elf: %v %q", o.Type, o.BuildID, ef.Type, ReadBuildID(ef))
	}
	var loads []elf.ProgHeader
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD {
			loads = append(loads, p.ProgHeader)
		}
	}
	if !reflect.DeepEqual(o.Loads(), loads) {
		t.Errorf("loads %+v, debug/elf %+v", o.Loads(), loads)
	}
	key := o.CacheKey()

	var wg sync.WaitGroup
	got := make([][]Symbol, 4)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, ok := o.Section(".eh_frame"); !ok {
				t.Error("no .eh_frame")
			}
			got[i] = o.Symbols()
			o.Lines([]uint64{got[i][0].Value})
		}()
	}
	wg.Wait()
	if o.elf == nil || o.ELF() == nil || len(o.ELF().Sections) == 0 {
		t.Fatal("the section headers were not parsed")
	}
	if w := o.Warnings(); len(w) != 0 {
		t.Errorf("warnings %q", w)
	}

	// The same object with its headers parsed at open (no build-id:
	// the fallback path) names the same functions.
	eager := &Object{Path: bin, file: o.file, cache: newCacheRecord()}
	eager.elfOnce.Do(func() { eager.elf = ef })
	eager.secs = newSectionCache(o.file, ef)
	defer eager.secs.close(true)
	eager.BuildID = o.BuildID
	for i := range got {
		if !reflect.DeepEqual(got[i], eager.Symbols()) {
			t.Errorf("goroutine %d: %d symbols, %d parsed at open", i, len(got[i]), len(eager.Symbols()))
		}
	}
	if eager.CacheKey() != key {
		t.Error("the cache key depends on when the headers are parsed")
	}
}

// TestDamagedSectionHeaders: an object whose section headers cannot be
// parsed opens (its type, segments and build-id come from the program
// headers) but names nothing, and says why in its warnings, naming the
// file; without a build-id in PT_NOTE the headers are parsed at open and
// the open fails, as before.
func TestDamagedSectionHeaders(t *testing.T) {
	for _, tc := range []struct {
		name    string
		flags   []string
		openErr bool
	}{
		{"build-id", []string{"-O2", "-g"}, false},
		{"no build-id", []string{"-O2", "-g", "-Wl,--build-id=none"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := buildProgram(t, "tailcall.c", tc.flags...)
			good, err := Open(bin)
			if err != nil {
				t.Fatal(err)
			}
			defer good.Close()
			b, err := os.ReadFile(bin)
			if err != nil {
				t.Fatal(err)
			}
			// e_shstrndx past the section headers: debug/elf refuses the file.
			binary.LittleEndian.PutUint16(b[62:], 0xfff0)
			if _, err := elf.NewFile(bytes.NewReader(b)); err == nil {
				t.Fatal("debug/elf reads the damaged file")
			}
			bad := filepath.Join(t.TempDir(), "damaged")
			if err := os.WriteFile(bad, b, 0o755); err != nil {
				t.Fatal(err)
			}
			o, err := Open(bad)
			if tc.openErr {
				if err == nil || !strings.Contains(err.Error(), "read ELF "+bad) {
					o.Close()
					t.Fatalf("open: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			if o.BuildID != good.BuildID || o.Type != good.Type || !reflect.DeepEqual(o.Loads(), good.Loads()) {
				t.Errorf("build-id %q type %v loads %+v, undamaged %q %v %+v", o.BuildID, o.Type, o.Loads(), good.BuildID, good.Type, good.Loads())
			}
			main := symbolStart(t, good, "main")
			if s, ok := o.Lookup(main); ok {
				t.Errorf("lookup in the damaged file: %+v", s)
			}
			if _, _, ok := o.Section(".eh_frame"); ok {
				t.Error("a section of the damaged file was read")
			}
			if o.ELF() != nil || o.SymbolSource() != "none" || len(o.Lines([]uint64{main})) != 0 {
				t.Errorf("ELF %v, symbol source %q", o.ELF(), o.SymbolSource())
			}
			w := o.Warnings()
			if len(w) != 1 || !strings.Contains(w[0], "cannot read "+bad+": read ELF "+bad+": ") || !strings.Contains(w[0], "shstrndx") {
				t.Errorf("warnings %q", w)
			}
		})
	}
}

// FuzzProgHeaders: the program header reader never panics, and what it
// reads of a file debug/elf also reads is what debug/elf reads.
func FuzzProgHeaders(f *testing.F) {
	if bin, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(bin); err == nil && len(b) > 4096 {
			f.Add(b[:4096])
		}
	}
	hdr := make([]byte, 64+2*56+32)
	copy(hdr, "\x7fELF\x02\x01\x01")
	hdr[16], hdr[20] = 3, 1 // ET_DYN, EV_CURRENT
	hdr[32], hdr[54], hdr[56] = 64, 56, 2
	hdr[64] = 1 // PT_LOAD
	hdr[64+32], hdr[64+40] = 0xd0, 0xd0
	hdr[120] = 4 // PT_NOTE
	hdr[120+8] = 176
	hdr[120+32] = 32
	copy(hdr[176:], "\x04\x00\x00\x00\x10\x00\x00\x00\x03\x00\x00\x00GNU\x00")
	f.Add(hdr)
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		h, ok := readProgHeaders(r)
		if !ok {
			return
		}
		id, idOK := h.buildID(r)
		if idOK && id == "" {
			t.Error("an empty build-id")
		}
		ef, err := elf.NewFile(r)
		if err != nil {
			return
		}
		var want []elf.ProgHeader
		for _, p := range ef.Progs {
			want = append(want, p.ProgHeader)
		}
		if h.typ != ef.Type || !reflect.DeepEqual(h.progs, want) {
			t.Errorf("type %v progs %+v, debug/elf %v %+v", h.typ, h.progs, ef.Type, want)
		}
	})
}
