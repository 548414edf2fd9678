package symbols

import (
	"bytes"
	"compress/zlib"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"testing"
)

// compressedSection is an ELF compressed section (Elf64_Chdr + zlib) of b.
func compressedSection(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	var hdr [24]byte
	binary.LittleEndian.PutUint32(hdr[0:], uint32(elf.COMPRESS_ZLIB))
	binary.LittleEndian.PutUint64(hdr[8:], uint64(len(b)))
	binary.LittleEndian.PutUint64(hdr[16:], 1)
	out.Write(hdr[:])
	zw := zlib.NewWriter(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestCStringAtLikeWholeSection reads every offset of a string section of
// 600 KB (longer than a decompression chunk) one string at a time, as
// .debug_str is read, and compares with cstrAt on the whole section:
// strings across chunk ends, a long one, an unterminated tail, offsets
// past the end.
func TestCStringAtLikeWholeSection(t *testing.T) {
	var sec bytes.Buffer
	for i := 0; sec.Len() < 600<<10; i++ {
		fmt.Fprintf(&sec, "_ZN%dfunction_name_%d", i%97, i)
		if i%1000 == 0 {
			sec.Write(bytes.Repeat([]byte("x"), 5000)) // longer than a first guess
		}
		sec.WriteByte(0)
	}
	sec.WriteString("unterminated tail")
	whole := sec.Bytes()
	s := &elf.Section{SectionHeader: elf.SectionHeader{Name: ".debug_str", Flags: elf.SHF_COMPRESSED}}
	raw := compressedSection(t, whole)
	for _, step := range []uint64{1, 4099, 65521} {
		p, err := openProgressive(s, raw)
		if err != nil {
			t.Fatal(err)
		}
		for off := uint64(0); off < uint64(len(whole))+10; off += step {
			if got, want := p.cstringAt(off), cstrAt(whole, off); got != want {
				t.Fatalf("step %d: cstringAt(%d) = %.40q, want %.40q", step, off, got, want)
			}
		}
	}
	p, err := openProgressive(s, raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := p.cstringAt(3); got == "" || p.have >= len(whole) {
		t.Errorf("cstringAt(3) = %q decompressed %d of %d bytes: want a prefix only", got, p.have, len(whole))
	}
	var nilSection *progressive
	if got := nilSection.cstringAt(0); got != "" {
		t.Errorf("nil section: %q", got)
	}
}
