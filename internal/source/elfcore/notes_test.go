package elfcore

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

func note(name string, typ uint32, desc []byte) []byte {
	le := binary.LittleEndian
	b := make([]byte, 12)
	le.PutUint32(b[0:], uint32(len(name)+1))
	le.PutUint32(b[4:], uint32(len(desc)))
	le.PutUint32(b[8:], typ)
	n := append([]byte(name), 0)
	for len(n)%4 != 0 {
		n = append(n, 0)
	}
	b = append(b, n...)
	d := append([]byte(nil), desc...)
	for len(d)%4 != 0 {
		d = append(d, 0)
	}
	return append(b, d...)
}

func TestDecodeFileNote(t *testing.T) {
	le := binary.LittleEndian
	d := make([]byte, 16+2*24)
	le.PutUint64(d[0:], 2)
	le.PutUint64(d[8:], 4096)
	le.PutUint64(d[16:], 0x1000)
	le.PutUint64(d[24:], 0x3000)
	le.PutUint64(d[32:], 2)
	le.PutUint64(d[40:], 0x5000)
	le.PutUint64(d[48:], 0x6000)
	le.PutUint64(d[56:], 0)
	d = append(d, "/usr/lib/a.so\x00/usr/lib/b.so (deleted)\x00"...)
	maps, err := DecodeFileNote(d)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 2 || maps[0].Offset != 0x2000 || maps[1].Path != "/usr/lib/b.so (deleted)" {
		t.Fatalf("got %+v", maps)
	}
	// A count that does not fit is an error, not an allocation.
	le.PutUint64(d[0:], 1<<60)
	if _, err := DecodeFileNote(d); err == nil {
		t.Fatal("huge count accepted")
	}
}

func TestParseNotesMalformed(t *testing.T) {
	good := note("CORE", NT_PRPSINFO, make([]byte, prpsinfoSize))
	bad := append(append([]byte(nil), good...), 0xff, 0xff, 0xff, 0x7f, 0, 0, 0, 0, 1, 0, 0, 0)
	notes, err := ParseNotes(bad)
	if err == nil || len(notes) != 1 {
		t.Fatalf("notes %d, err %v", len(notes), err)
	}
}

func TestDecodeSiginfoSentByProcess(t *testing.T) {
	d := make([]byte, siginfoSize)
	binary.LittleEndian.PutUint32(d[0:], 11)
	binary.LittleEndian.PutUint32(d[8:], 0) // SI_USER
	binary.LittleEndian.PutUint32(d[16:], 4321)
	binary.LittleEndian.PutUint32(d[20:], 33)
	si, err := DecodeSiginfo(d)
	if err != nil || si.PID != 4321 || si.UID != 33 || si.Addr != 0 {
		t.Fatalf("%+v %v", si, err)
	}
}

func FuzzParseNotes(f *testing.F) {
	f.Add(note("CORE", NT_PRSTATUS, make([]byte, prstatusSize)))
	f.Add(note("CORE", NT_FILE, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0}))
	f.Add(note("LINUX", NT_SIGINFO, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, b []byte) {
		notes, _ := ParseNotes(b)
		c := &File{backing: map[string]*backingFile{}}
		for _, n := range notes {
			c.decodeNote(n)
			_, _ = DecodeFileNote(n.Desc)
			_, _ = DecodePrstatus(n.Desc)
			_, _ = DecodePrpsinfo(n.Desc)
			_, _ = DecodeSiginfo(n.Desc)
			DecodeAuxv(n.Desc)
		}
	})
}

// FuzzOpen feeds whole files to Open: it must return an error or a File,
// never panic, whatever the program headers claim.
func FuzzOpen(f *testing.F) {
	hdr := make([]byte, 64)
	copy(hdr, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(hdr[16:], 4)  // ET_CORE
	binary.LittleEndian.PutUint16(hdr[18:], 62) // EM_X86_64
	binary.LittleEndian.PutUint32(hdr[20:], 1)
	binary.LittleEndian.PutUint64(hdr[32:], 64) // phoff
	binary.LittleEndian.PutUint16(hdr[52:], 64)
	binary.LittleEndian.PutUint16(hdr[54:], 56)
	binary.LittleEndian.PutUint16(hdr[56:], 2)
	ph := make([]byte, 112)
	binary.LittleEndian.PutUint32(ph[0:], 4) // PT_NOTE
	binary.LittleEndian.PutUint64(ph[8:], 176)
	binary.LittleEndian.PutUint64(ph[32:], 200)
	binary.LittleEndian.PutUint32(ph[56:], 1) // PT_LOAD
	binary.LittleEndian.PutUint64(ph[56+8:], 376)
	binary.LittleEndian.PutUint64(ph[56+16:], 0x400000)
	binary.LittleEndian.PutUint64(ph[56+32:], 4096)
	binary.LittleEndian.PutUint64(ph[56+40:], 8192)
	seed := append(hdr, ph...)
	seed = append(seed, note("CORE", NT_PRSTATUS, make([]byte, prstatusSize))...)
	f.Add(seed)
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(dir, "core")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Open(p)
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		for _, m := range c.Mappings() {
			_, _ = c.ReadAt(buf, int64(m.Start))
			_, _ = c.ReadDumped(buf, m.Start)
			_, _ = c.ReadUint64(m.End - 4)
		}
		_ = c.Crashed()
		_ = c.Signal()
	})
}
