package symbols

import (
	"debug/elf"
	"encoding/binary"
	"io"
)

// Bounds of the program header reader: real objects have a dozen program
// headers and a build-id note of a few dozen bytes.
const (
	maxFastPhnum   = 256
	maxFastNoteLen = 64 << 10
	maxFastOffset  = 1 << 40
)

// progHeaders is what the ELF header and the program headers of a
// little-endian 64-bit ELF file say, read without the section headers.
type progHeaders struct {
	typ   elf.Type
	progs []elf.ProgHeader
}

// readProgHeaders reads the ELF header and program headers of a
// little-endian 64-bit ELF file with two small reads (debug/elf.NewFile
// also reads every section header and the section name table). ok is
// false when the file is not such an ELF file or its headers are not
// ones debug/elf would accept, or are implausible (more than 256 program
// headers, offsets past 1 TiB): the caller then parses the file with
// debug/elf.
func readProgHeaders(r io.ReaderAt) (progHeaders, bool) {
	var hdr [64]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return progHeaders{}, false
	}
	le := binary.LittleEndian
	// ELFCLASS64, ELFDATA2LSB, EV_CURRENT (in e_ident and e_version).
	if string(hdr[:4]) != elf.ELFMAG || hdr[4] != 2 || hdr[5] != 1 || hdr[6] != 1 || le.Uint32(hdr[20:]) != 1 {
		return progHeaders{}, false
	}
	phoff := le.Uint64(hdr[32:])
	shoff := le.Uint64(hdr[40:])
	phentsize := int(le.Uint16(hdr[54:]))
	phnum := int(le.Uint16(hdr[56:]))
	if phentsize != 56 || phnum == 0 || phnum > maxFastPhnum || phoff > maxFastOffset || shoff > 1<<63-1 {
		return progHeaders{}, false
	}
	ph := make([]byte, 56*phnum)
	if _, err := r.ReadAt(ph, int64(phoff)); err != nil {
		return progHeaders{}, false
	}
	h := progHeaders{typ: elf.Type(le.Uint16(hdr[16:])), progs: make([]elf.ProgHeader, phnum)}
	for i := range h.progs {
		p := ph[i*56 : (i+1)*56]
		h.progs[i] = elf.ProgHeader{
			Type:   elf.ProgType(le.Uint32(p[0:])),
			Flags:  elf.ProgFlag(le.Uint32(p[4:])),
			Off:    le.Uint64(p[8:]),
			Vaddr:  le.Uint64(p[16:]),
			Paddr:  le.Uint64(p[24:]),
			Filesz: le.Uint64(p[32:]),
			Memsz:  le.Uint64(p[40:]),
			Align:  le.Uint64(p[48:]),
		}
		if h.progs[i].Off > 1<<63-1 || h.progs[i].Filesz > 1<<63-1 {
			return progHeaders{}, false // debug/elf refuses these
		}
	}
	return h, true
}

// buildID reads the GNU build-id from the PT_NOTE segments (ok false when
// none holds one).
func (h progHeaders) buildID(r io.ReaderAt) (string, bool) {
	for _, p := range h.progs {
		if p.Type != elf.PT_NOTE || p.Filesz == 0 || p.Filesz > maxFastNoteLen || p.Off > maxFastOffset {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := r.ReadAt(b, int64(p.Off)); err != nil {
			continue
		}
		if id := buildIDFromNotes(b); id != "" {
			return id, true
		}
	}
	return "", false
}

// loads returns the PT_LOAD headers.
func (h progHeaders) loads() []elf.ProgHeader {
	var out []elf.ProgHeader
	for _, p := range h.progs {
		if p.Type == elf.PT_LOAD {
			out = append(out, p)
		}
	}
	return out
}

// ProgramBuildID reads the GNU build-id of a little-endian 64-bit ELF
// file from its PT_NOTE segments, with three small reads instead of
// parsing every header as debug/elf.NewFile does. ok is false when the
// file is not such an ELF file or no PT_NOTE holds a build-id: the caller
// then falls back to ReadBuildID, which also reads note sections.
func ProgramBuildID(r io.ReaderAt) (id string, ok bool) {
	r = newHeadReader(r)
	h, ok := readProgHeaders(r)
	if !ok {
		return "", false
	}
	return h.buildID(r)
}

// headSize is how much of a file headReader reads at once: the ELF header,
// the program headers and the build-id note of an ordinary object are in
// its first page.
const headSize = 4096

// headReader reads a file's first headSize bytes with one read and serves
// the reads within them from memory: the ELF header, program headers and
// build-id of an object took three or four reads (system calls, ~2 us
// each on a VM) for each of the ~50 objects of a php-fpm core.
type headReader struct {
	r    io.ReaderAt
	head []byte
}

func newHeadReader(r io.ReaderAt) *headReader {
	if h, ok := r.(*headReader); ok {
		return h
	}
	h := &headReader{r: r, head: make([]byte, headSize)}
	n, _ := r.ReadAt(h.head, 0)
	h.head = h.head[:n]
	return h
}

// ReadAt reads from the first page kept in memory when the whole range is
// in it, else from the file.
func (h *headReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= 0 && off <= int64(len(h.head)) && int64(len(p)) <= int64(len(h.head))-off {
		return copy(p, h.head[off:]), nil
	}
	return h.r.ReadAt(p, off)
}
