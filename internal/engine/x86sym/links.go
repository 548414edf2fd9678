package x86sym

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
)

// Bounds on what Links reads from one object.
const (
	maxRelocations = 1 << 22
	maxPLTBytes    = 4 << 20
)

// x86-64 relocation types (System V ABI, AMD64 supplement).
const (
	rX8664_64     = 1
	rX8664GlobDat = 6
	rX8664JumpSlt = 7
	relaEntrySize = 24
)

// Links is what an ELF object's dynamic linking tells about its code: the
// GOT slots that hold the addresses of its own globals, and the names of
// call targets (its exported functions, its PLT stubs, its GOT slots).
type Links struct {
	// Pointers maps the link-time address of a GOT slot to the link-time
	// address of the global defined in the object that the slot holds
	// once relocated (R_X86_64_GLOB_DAT, R_X86_64_64). See Func.Pointers.
	Pointers map[uint64]uint64
	// Callees maps function addresses, PLT stub addresses and GOT slot
	// addresses to the symbol called through them. See Func.Callees.
	Callees map[uint64]string
}

// ReadLinks reads the dynamic symbols, the relocations that name a symbol
// and the PLT of an x86-64 ELF object. R_X86_64_RELATIVE relocations are
// skipped: code reaches globals through symbol relocations. callee, when
// not nil, says which function names Callees keeps (the others stay
// unnamed); syms is f's .dynsym.
func ReadLinks(f *elf.File, syms []elf.Symbol, callee func(name string) bool) (*Links, error) {
	l := &Links{Pointers: map[uint64]uint64{}, Callees: map[uint64]string{}}
	if f.Machine != elf.EM_X86_64 || f.Class != elf.ELFCLASS64 {
		return l, nil
	}
	if callee == nil {
		callee = func(string) bool { return true }
	}
	for _, s := range syms {
		if !callee(s.Name) {
			continue
		}
		if s.Section != elf.SHN_UNDEF && s.Value != 0 && (elf.ST_TYPE(s.Info) == elf.STT_FUNC || elf.ST_TYPE(s.Info) == elf.STT_GNU_IFUNC) {
			l.Callees[s.Value] = s.Name
		}
	}
	slots := map[uint64]string{} // GOT slot -> symbol name (defined or not)
	buf := make([]byte, 64<<10/relaEntrySize*relaEntrySize)
	for _, sec := range f.Sections {
		if sec.Type != elf.SHT_RELA || sec.Link == 0 || int(sec.Link) >= len(f.Sections) || f.Sections[sec.Link].Type != elf.SHT_DYNSYM {
			continue
		}
		if sec.Size > maxRelocations*relaEntrySize {
			return nil, fmt.Errorf("%s: %d bytes of relocations is more than coroner reads", sec.Name, sec.Size)
		}
		// Read in chunks: .rela.dyn of a PHP binary is about a megabyte of
		// R_X86_64_RELATIVE entries that are skipped. The linker puts
		// them first and counts them (DT_RELACOUNT), as the dynamic
		// linker trusts too: past them, 20 entries of Debian's php-fpm
		// 8.2's 30,082 are left to read.
		r := sec.Open()
		done := relativePrefix(f, sec)
		if _, err := r.Seek(int64(done), io.SeekStart); err != nil {
			return nil, fmt.Errorf("read %s: %w", sec.Name, err)
		}
		for done < sec.Size {
			n := min(uint64(len(buf)), (sec.Size-done)/relaEntrySize*relaEntrySize)
			if n == 0 {
				break
			}
			data := buf[:n]
			if _, err := io.ReadFull(r, data); err != nil {
				return nil, fmt.Errorf("read %s: %w", sec.Name, err)
			}
			done += n
			for i := 0; i+relaEntrySize <= len(data); i += relaEntrySize {
				info := binary.LittleEndian.Uint64(data[i+8:])
				typ, sym := uint32(info), info>>32
				if typ != rX8664GlobDat && typ != rX8664_64 && typ != rX8664JumpSlt {
					continue
				}
				// .dynsym index 0 is the null symbol; DynamicSymbols drops it.
				if sym == 0 || sym > uint64(len(syms)) {
					continue
				}
				off := binary.LittleEndian.Uint64(data[i:])
				s := syms[sym-1]
				if callee(s.Name) {
					slots[off] = s.Name
					l.Callees[off] = s.Name
				}
				if typ != rX8664JumpSlt && s.Section != elf.SHN_UNDEF && s.Value != 0 {
					addend := int64(binary.LittleEndian.Uint64(data[i+16:]))
					l.Pointers[off] = uint64(int64(s.Value) + addend)
				}
			}
		}
	}
	for _, name := range []string{".plt", ".plt.sec", ".plt.got"} {
		if sec := f.Section(name); sec != nil {
			if err := pltStubs(sec, slots, l.Callees); err != nil {
				return nil, err
			}
		}
	}
	return l, nil
}

// rX8664Relative is R_X86_64_RELATIVE.
const rX8664Relative = 8

// relativePrefix returns how many bytes of the relocation section sec are
// R_X86_64_RELATIVE entries before any other: DT_RELACOUNT of f when sec
// is the section DT_RELA names and the last entry it counts is one (else
// 0: all of sec is read).
func relativePrefix(f *elf.File, sec *elf.Section) uint64 {
	rela, err := f.DynValue(elf.DT_RELA)
	if err != nil || len(rela) != 1 || rela[0] != sec.Addr {
		return 0
	}
	count, err := f.DynValue(elf.DT_RELACOUNT)
	if err != nil || len(count) != 1 || count[0] == 0 || count[0] > sec.Size/relaEntrySize {
		return 0
	}
	skip := count[0] * relaEntrySize
	var last [relaEntrySize]byte
	if _, err := sec.ReadAt(last[:], int64(skip-relaEntrySize)); err != nil || uint32(binary.LittleEndian.Uint64(last[8:])) != rX8664Relative {
		return 0
	}
	return skip
}

// pltStubs names the stubs of a PLT section: each entry (sh_entsize bytes)
// jumps through a GOT slot, "jmp [rip+d]" (ff 25 d32, maybe after endbr64
// and a bnd prefix), whose relocation names the symbol.
func pltStubs(sec *elf.Section, slots map[uint64]string, out map[uint64]string) error {
	if sec.Type != elf.SHT_PROGBITS || sec.Size > maxPLTBytes {
		return nil
	}
	data, err := sec.Data()
	if err != nil {
		return fmt.Errorf("read %s: %w", sec.Name, err)
	}
	ent := sec.Entsize
	if ent != 8 && ent != 16 {
		ent = 16
	}
	for start := uint64(0); start+ent <= uint64(len(data)); start += ent {
		b := data[start : start+ent]
		for off := 0; off+6 <= len(b); off++ {
			if b[off] != 0xff || b[off+1] != 0x25 {
				continue
			}
			next := sec.Addr + start + uint64(off+6)
			disp := int64(int32(binary.LittleEndian.Uint32(b[off+2:])))
			if name, ok := slots[uint64(int64(next)+disp)]; ok {
				out[sec.Addr+start] = name
			}
			break
		}
	}
	return nil
}
