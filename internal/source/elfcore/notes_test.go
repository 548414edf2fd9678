package elfcore

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/hostile"
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

// TestHostileBounds: what a crafted core claims does not choose what the
// reader allocates or how long it loops; each bound it hits is a warning.
func TestHostileBounds(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		name     string
		warning  string
		check    func(*File) string
		maxAlloc uint64
	}{
		{"zero-note-256m", "more than 131072 notes", func(c *File) string {
			if len(c.Threads()) != 1 {
				return fmt.Sprintf("%d threads", len(c.Threads()))
			}
			return ""
		}, 16 << 20},
		{"note-size-1t", "note segment has", nil, 16 << 20},
		{"note-counts-lie", "do not fit", nil, 16 << 20},
		{"threads-100k", "core has 100000 threads; only the first 4096", func(c *File) string {
			if len(c.Threads()) != MaxThreads || c.Crashed().TID != 4242 {
				return fmt.Sprintf("%d threads, crashed %d", len(c.Threads()), c.Crashed().TID)
			}
			return ""
		}, 32 << 20},
		{"nt-file-300k", "300000 entries; only the first 262144", func(c *File) string {
			if len(c.Files()) != MaxFileEntries {
				return fmt.Sprintf("%d files", len(c.Files()))
			}
			return ""
		}, 256 << 20},
		{"segments-65k", "", func(c *File) string {
			if len(c.Mappings()) < 65000 {
				return fmt.Sprintf("%d mappings", len(c.Mappings()))
			}
			return ""
		}, 64 << 20},
	} {
		t.Run(c.name, func(t *testing.T) {
			cs, err := hostile.Make(dir, c.name)
			if err != nil {
				t.Fatal(err)
			}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			f, err := Open(cs.Path)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > c.maxAlloc {
				t.Errorf("opening allocated %d bytes, want at most %d", alloc, c.maxAlloc)
			}
			if c.warning != "" && !strings.Contains(strings.Join(f.Warnings(), "\n"), c.warning) {
				t.Errorf("no warning %q in %q", c.warning, f.Warnings())
			}
			if c.check != nil {
				if msg := c.check(f); msg != "" {
					t.Error(msg)
				}
			}
		})
	}
}

// TestBackingFiles: a core naming a FIFO, devices and /proc files as
// mapped files opens at once, and reading that memory fails instead of
// blocking; a private file that is not ELF is not read on behalf of a core.
func TestBackingFiles(t *testing.T) {
	dir := t.TempDir()
	cs, err := hostile.Make(dir, "nt-file-devices")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(cs.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 16)
	for _, fm := range f.Files() {
		_, err := f.ReadAt(buf, int64(fm.Start))
		if err == nil {
			t.Errorf("read %s through the core", fm.Path)
		}
		if fm.Path == "/etc/shadow" && !strings.Contains(fmt.Sprint(err), "not read on behalf of a core") {
			t.Errorf("/etc/shadow: %v", err)
		}
	}
}
