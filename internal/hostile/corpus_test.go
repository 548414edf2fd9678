package hostile

import (
	"debug/elf"
	"os"
	"testing"
)

// TestGenerate: every case is made, the names the steps declare are the
// names they make, and the crafted cores are ELF cores as far as Go's own
// reader can tell (so they test coroner's bounds, not its ELF header check).
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	c, err := Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	made := map[string]bool{}
	for _, cs := range c.Cases {
		if made[cs.Name] {
			t.Errorf("case %s made twice", cs.Name)
		}
		made[cs.Name] = true
		if _, err := os.Lstat(cs.Path); err != nil {
			t.Errorf("%s: %v", cs.Name, err)
		}
	}
	for _, s := range steps {
		for _, n := range s.names {
			if !made[n] {
				t.Errorf("step declares %s, which was not made", n)
			}
			delete(made, n)
		}
	}
	for n := range made {
		t.Errorf("case %s is not declared by its step", n)
	}
	for _, name := range []string{"threads-100k", "nt-file-300k", "escapes", "stack-loop", "nt-file-devices"} {
		f, err := elf.Open(dir + "/" + name)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if f.Type != elf.ET_CORE || f.Machine != elf.EM_X86_64 {
			t.Errorf("%s: %v %v", name, f.Type, f.Machine)
		}
		f.Close()
	}
	if c.Disk > 128<<20 {
		t.Errorf("the corpus takes %d bytes of disk", c.Disk)
	}
	t.Logf("%d cases, %d bytes (%d on disk)", len(c.Cases), c.Bytes, c.Disk)
}

// TestZstdFrames: the hand-made zstd frames decode, with the stock decoder,
// to what they were made from.
func TestZstdFrames(t *testing.T) {
	dir := t.TempDir()
	cs, err := Make(dir, "zero-note-256m.zst")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := os.ReadFile(dir + "/zero-note-256m")
	if err != nil {
		t.Fatal(err)
	}
	got := decodeZstd(t, cs.Path)
	if len(got) != len(plain) || string(got) != string(plain) {
		t.Fatalf("decoded %d bytes, want %d", len(got), len(plain))
	}
}

// TestDeepCores: the real deep core has one thread 80,000 frames deep (as
// debug/elf and the note layout tell), and its copy 4,096 such threads.
func TestDeepCores(t *testing.T) {
	valid, many, err := DeepCores(t.TempDir())
	if err == ErrNoTools {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	count := func(path string) int {
		f, err := elf.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		n := 0
		for _, p := range f.Progs {
			if p.Type != elf.PT_NOTE {
				continue
			}
			b := make([]byte, p.Filesz)
			if _, err := p.ReadAt(b, 0); err != nil {
				t.Fatal(err)
			}
			for off := 0; off+12 <= len(b); {
				namesz, descsz := int(le.Uint32(b[off:])), int(le.Uint32(b[off+4:]))
				if le.Uint32(b[off+8:]) == ntPRSTATUS {
					n++
				}
				off += 12 + align4(namesz) + align4(descsz)
			}
		}
		return n
	}
	if n := count(valid.Path); n != 1 {
		t.Errorf("valid core: %d threads", n)
	}
	if n := count(many.Path); n != 4096 {
		t.Errorf("multiplied core: %d threads", n)
	}
}
