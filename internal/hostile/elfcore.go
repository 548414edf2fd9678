package hostile

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"
)

// ELF and note constants of an x86-64 Linux core (include/uapi/linux/elf.h).
const (
	ntPRSTATUS = 1
	ntPRPSINFO = 3
	ntAUXV     = 6
	ntSIGINFO  = 0x53494749
	ntFILE     = 0x46494c45

	ptLOAD = 1
	ptNOTE = 4

	pfX = 1
	pfW = 2
	pfR = 4

	atPHDR  = 3
	atENTRY = 9
)

var le = binary.LittleEndian

// note is one ELF note of a core under construction.
type note struct {
	name string
	typ  uint32
	desc []byte
}

// segment is one PT_LOAD of a core under construction: data is what the
// core holds of it (may be shorter than memsz: not dumped); zeros, when
// set, are that many zero bytes written as a hole of the file (sparse).
type segment struct {
	vaddr, memsz uint64
	flags        uint32
	data         []byte
	zeros        int64
}

// core builds an ELF core file: notes in one PT_NOTE segment, then the
// PT_LOAD segments, in the order the kernel writes them.
type core struct {
	notes []note
	segs  []segment
	// noteZeros appends that many zero bytes (a hole) to the PT_NOTE
	// segment after the notes: the segment covers them.
	noteZeros int64
	// noteFilesz, when non-zero, overrides the PT_NOTE size written in the
	// program header (a size that lies).
	noteFilesz uint64
	// noNote leaves the PT_NOTE segment out (a note-less core).
	noNote bool
	// phnum, when non-zero, overrides e_phnum (headers that lie).
	phnum uint16
}

func (c *core) add(name string, typ uint32, desc []byte) {
	c.notes = append(c.notes, note{name: name, typ: typ, desc: desc})
}

func align4(n int) int { return (n + 3) &^ 3 }

func (c *core) noteBytes() []byte {
	var b []byte
	for _, n := range c.notes {
		var h [12]byte
		le.PutUint32(h[0:], uint32(len(n.name)+1))
		le.PutUint32(h[4:], uint32(len(n.desc)))
		le.PutUint32(h[8:], n.typ)
		b = append(b, h[:]...)
		name := append([]byte(n.name), 0)
		b = append(b, name...)
		b = append(b, make([]byte, align4(len(name))-len(name))...)
		b = append(b, n.desc...)
		b = append(b, make([]byte, align4(len(n.desc))-len(n.desc))...)
	}
	return b
}

// write writes the core to path.
func (c *core) write(path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if err := c.writeTo(f); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

// writeTo writes the core to f; holes are made by seeking, so a core with
// gigabytes of zeros takes little disk.
func (c *core) writeTo(f *os.File) error {
	nphdr := len(c.segs)
	if !c.noNote {
		nphdr++
	}
	notes := c.noteBytes()
	off := int64(64 + 56*nphdr)
	var ph []byte
	phdr := func(typ, flags uint32, off int64, vaddr, filesz, memsz, align uint64) {
		var p [56]byte
		le.PutUint32(p[0:], typ)
		le.PutUint32(p[4:], flags)
		le.PutUint64(p[8:], uint64(off))
		le.PutUint64(p[16:], vaddr)
		le.PutUint64(p[32:], filesz)
		le.PutUint64(p[40:], memsz)
		le.PutUint64(p[48:], align)
		ph = append(ph, p[:]...)
	}
	noteOff := off
	if !c.noNote {
		size := uint64(len(notes)) + uint64(c.noteZeros)
		if c.noteFilesz != 0 {
			size = c.noteFilesz
		}
		phdr(ptNOTE, 0, off, 0, size, 0, 4)
		off += int64(len(notes)) + c.noteZeros
	}
	off = (off + 4095) &^ 4095
	segOffs := make([]int64, len(c.segs))
	for i, s := range c.segs {
		segOffs[i] = off
		filesz := uint64(len(s.data)) + uint64(s.zeros)
		phdr(ptLOAD, s.flags, off, s.vaddr, filesz, s.memsz, 4096)
		off += int64(filesz)
		off = (off + 4095) &^ 4095
	}
	var h [64]byte
	copy(h[:], "\x7fELF\x02\x01\x01")
	le.PutUint16(h[16:], 4)  // ET_CORE
	le.PutUint16(h[18:], 62) // EM_X86_64
	le.PutUint32(h[20:], 1)
	le.PutUint64(h[32:], 64) // e_phoff
	le.PutUint16(h[52:], 64) // e_ehsize
	le.PutUint16(h[54:], 56) // e_phentsize
	n := uint16(nphdr)
	if c.phnum != 0 {
		n = c.phnum
	}
	le.PutUint16(h[56:], n)
	if _, err := f.Write(h[:]); err != nil {
		return err
	}
	if _, err := f.Write(ph); err != nil {
		return err
	}
	if !c.noNote {
		if _, err := f.WriteAt(notes, noteOff); err != nil {
			return err
		}
	}
	for i, s := range c.segs {
		if _, err := f.WriteAt(s.data, segOffs[i]); err != nil {
			return err
		}
	}
	// The file ends where the last segment (or the note's zeros) ends.
	return f.Truncate(off)
}

// regs are the registers of one NT_PRSTATUS (struct user_regs_struct).
type regs struct {
	rip, rsp, rbp, rdi uint64
}

// prstatus returns an NT_PRSTATUS descriptor (x86-64, 336 bytes).
func prstatus(tid int, sig int, r regs) []byte {
	d := make([]byte, 336)
	le.PutUint32(d[0:], uint32(sig))
	le.PutUint16(d[12:], uint16(sig))
	le.PutUint32(d[32:], uint32(tid))
	const reg = 112
	le.PutUint64(d[reg+4*8:], r.rbp)
	le.PutUint64(d[reg+14*8:], r.rdi)
	le.PutUint64(d[reg+16*8:], r.rip)
	le.PutUint64(d[reg+17*8:], 0x33) // cs
	le.PutUint64(d[reg+19*8:], r.rsp)
	le.PutUint64(d[reg+20*8:], 0x2b) // ss
	return d
}

// prpsinfo returns an NT_PRPSINFO descriptor (x86-64, 136 bytes); comm is
// cut at 16 bytes and args at 80, as the kernel does.
func prpsinfo(pid int, comm, args string) []byte {
	d := make([]byte, 136)
	d[1] = 'R'
	le.PutUint32(d[16:], 33)
	le.PutUint32(d[20:], 33)
	le.PutUint32(d[24:], uint32(pid))
	le.PutUint32(d[28:], 1)
	copy(d[40:56], comm)
	copy(d[56:136], args)
	return d
}

// siginfo returns an NT_SIGINFO descriptor for a fault at addr.
func siginfo(sig, code int, addr uint64) []byte {
	d := make([]byte, 128)
	le.PutUint32(d[0:], uint32(sig))
	le.PutUint32(d[8:], uint32(code))
	le.PutUint64(d[16:], addr)
	return d
}

// auxv returns an NT_AUXV descriptor from key, value pairs.
func auxv(kv ...uint64) []byte {
	d := make([]byte, 0, 8*len(kv)+16)
	for _, v := range kv {
		d = le.AppendUint64(d, v)
	}
	return append(d, make([]byte, 16)...)
}

// fileEntry is one NT_FILE entry.
type fileEntry struct {
	start, end, pgoff uint64
	path              string
}

// fileNote returns an NT_FILE descriptor.
func fileNote(entries []fileEntry) []byte {
	d := le.AppendUint64(nil, uint64(len(entries)))
	d = le.AppendUint64(d, 4096)
	for _, e := range entries {
		d = le.AppendUint64(d, e.start)
		d = le.AppendUint64(d, e.end)
		d = le.AppendUint64(d, e.pgoff)
	}
	for _, e := range entries {
		d = append(d, e.path...)
		d = append(d, 0)
	}
	return d
}

// writeFile writes b to path.
func writeFile(path string, b []byte) error { return os.WriteFile(path, b, 0o644) }

// copyFile copies src to dst, cut at n bytes when n >= 0.
func copyFile(dst, src string, n int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	var r io.Reader = in
	if n >= 0 {
		r = io.LimitReader(in, n)
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
