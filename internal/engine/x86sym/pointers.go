package x86sym

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// maxRelocations bounds the relocations read from one object.
const maxRelocations = 1 << 22

// x86-64 relocation types (System V ABI, AMD64 supplement).
const (
	rX8664_64      = 1
	rX8664GlobDat  = 6
	rX8664Relative = 8
	relaEntrySize  = 24
)

// Pointers returns the pointer slots an x86-64 ELF object's dynamic
// relocations fill at load time, as link-time slot address -> link-time
// target address, for targets defined in the object itself (GOT entries of
// its own exported globals, R_X86_64_RELATIVE slots). Slots that point
// into other objects are left out.
func Pointers(f *elf.File) (map[uint64]uint64, error) {
	out := map[uint64]uint64{}
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return out, nil
	}
	syms, err := f.DynamicSymbols()
	if err != nil && err != elf.ErrNoSymbols {
		return nil, fmt.Errorf("read .dynsym: %w", err)
	}
	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_RELA || sec.Link == 0 || int(sec.Link) >= len(f.Sections) || f.Sections[sec.Link].Type != elf.SHT_DYNSYM {
			continue
		}
		if sec.Size > maxRelocations*relaEntrySize {
			return nil, fmt.Errorf("%s: %d bytes of relocations is more than coroner reads", sec.Name, sec.Size)
		}
		data, err := sec.Data()
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", sec.Name, err)
		}
		for i := 0; i+relaEntrySize <= len(data); i += relaEntrySize {
			off := binary.LittleEndian.Uint64(data[i:])
			info := binary.LittleEndian.Uint64(data[i+8:])
			addend := int64(binary.LittleEndian.Uint64(data[i+16:]))
			typ, sym := uint32(info), info>>32
			switch typ {
			case rX8664Relative:
				out[off] = uint64(addend)
			case rX8664GlobDat, rX8664_64:
				// .dynsym index 0 is the null symbol; DynamicSymbols drops it.
				if sym == 0 || sym > uint64(len(syms)) {
					continue
				}
				s := syms[sym-1]
				if s.Section == elf.SHN_UNDEF || s.Value == 0 {
					continue
				}
				out[off] = uint64(int64(s.Value) + addend)
			}
		}
	}
	return out, nil
}
