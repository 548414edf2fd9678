package symbols

import (
	"encoding/binary"
	"io"
)

// Bounds of ProgramBuildID: real objects have a dozen program headers and
// a build-id note of a few dozen bytes.
const (
	maxFastPhnum   = 256
	maxFastNoteLen = 64 << 10
)

// ProgramBuildID reads the GNU build-id of a little-endian 64-bit ELF
// file from its PT_NOTE segments, with three small reads instead of
// parsing every header as debug/elf.NewFile does. ok is false when the
// file is not such an ELF file or no PT_NOTE holds a build-id: the caller
// then falls back to ReadBuildID, which also reads note sections.
func ProgramBuildID(r io.ReaderAt) (id string, ok bool) {
	var hdr [64]byte
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return "", false
	}
	// ELFCLASS64, ELFDATA2LSB, EV_CURRENT.
	if string(hdr[:4]) != "\x7fELF" || hdr[4] != 2 || hdr[5] != 1 || hdr[6] != 1 {
		return "", false
	}
	le := binary.LittleEndian
	phoff := le.Uint64(hdr[32:])
	phentsize := int(le.Uint16(hdr[54:]))
	phnum := int(le.Uint16(hdr[56:]))
	if phentsize != 56 || phnum == 0 || phnum > maxFastPhnum || phoff > 1<<40 {
		return "", false
	}
	ph := make([]byte, 56*phnum)
	if _, err := r.ReadAt(ph, int64(phoff)); err != nil {
		return "", false
	}
	for i := 0; i < phnum; i++ {
		p := ph[i*56 : (i+1)*56]
		if le.Uint32(p) != 4 { // PT_NOTE
			continue
		}
		off, size := le.Uint64(p[8:]), le.Uint64(p[32:])
		if size == 0 || size > maxFastNoteLen || off > 1<<40 {
			continue
		}
		b := make([]byte, size)
		if _, err := r.ReadAt(b, int64(off)); err != nil {
			continue
		}
		if id := buildIDFromNotes(b); id != "" {
			return id, true
		}
	}
	return "", false
}
