package php

import (
	"cmp"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"slices"
	"strings"

	"github.com/coroner-dev/coroner/internal/regular"
)

// NamedFunction is a function of a PHP binary or extension named after
// the PHP function or method it implements.
type NamedFunction struct {
	// Name is the C name PHP's macros give the handler: zif_<function> for
	// functions (PHP_FUNCTION), zim_<Class>_<method> for methods (PHP_METHOD).
	Name string
	// Addr is the handler's link-time address.
	Addr uint64
}

// zend_function_entry (Zend/zend_API.h): fname, handler, arg_info,
// num_args (uint32), flags (uint32); PHP 8.4 appended
// frameless_function_infos and doc_comment (48 bytes instead of 32).
const (
	feHandler = 8
	feArgInfo = 16
	feNumArgs = 24
	feFlags   = 28
	// ZEND_ACC_PUBLIC | ZEND_ACC_PROTECTED | ZEND_ACC_PRIVATE
	accVisibility = 1 | 2 | 4
	maxSection    = 256 << 20
	maxRelocs     = 1 << 22
)

// image is the loaded data an ELF file needs for pointer chasing.
type image struct {
	f      *elf.File
	relocs map[uint64]uint64 // link-time address of a pointer -> its value
	secs   []imgSection
}

type imgSection struct {
	addr uint64
	data []byte
	exec bool
	name string
}

func (im *image) section(addr uint64) *imgSection {
	for i := range im.secs {
		s := &im.secs[i]
		if addr >= s.addr && addr-s.addr < uint64(len(s.data)) {
			return s
		}
	}
	return nil
}

// pointer returns the value of the pointer stored at link-time address a.
func (im *image) pointer(a uint64) uint64 {
	if v, ok := im.relocs[a]; ok {
		return v
	}
	s := im.section(a)
	if s == nil || a-s.addr+8 > uint64(len(s.data)) {
		return 0
	}
	return binary.LittleEndian.Uint64(s.data[a-s.addr:])
}

// identifier returns the identifier string at a, or "".
func (im *image) identifier(a uint64, allowBackslash bool) string {
	s := im.section(a)
	if s == nil || s.exec {
		return ""
	}
	b := s.data[a-s.addr:]
	for i := 0; i < len(b) && i < 128; i++ {
		c := b[i]
		if c == 0 {
			if i == 0 {
				return ""
			}
			return string(b[:i])
		}
		ok := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' ||
			allowBackslash && i > 0 && c == '\\'
		if !ok {
			return ""
		}
	}
	return ""
}

func loadImage(f *elf.File) *image {
	im := &image{f: f}
	for _, s := range f.Sections {
		if s.Flags&elf.SHF_ALLOC == 0 || s.Type == elf.SHT_NOBITS || s.Size == 0 || s.Size > maxSection {
			continue
		}
		if s.Type != elf.SHT_PROGBITS {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		im.secs = append(im.secs, imgSection{addr: s.Addr, data: data, exec: s.Flags&elf.SHF_EXECINSTR != 0, name: s.Name})
	}
	dsyms, _ := f.DynamicSymbols()
	// Sized at once: php-fpm has about 45,000 relocations, whose map
	// otherwise grew (and rehashed) a dozen times.
	relocs := uint64(0)
	for _, s := range f.Sections {
		if s.Type == elf.SHT_RELA && s.Size <= maxSection {
			relocs += s.Size / 24
		}
	}
	im.relocs = make(map[uint64]uint64, min(relocs, maxRelocs))
	for _, s := range f.Sections {
		if s.Type != elf.SHT_RELA || s.Size > maxSection {
			continue
		}
		data, err := s.Data()
		if err != nil {
			continue
		}
		for i := 0; i+24 <= len(data) && len(im.relocs) < maxRelocs; i += 24 {
			off := binary.LittleEndian.Uint64(data[i:])
			info := binary.LittleEndian.Uint64(data[i+8:])
			add := binary.LittleEndian.Uint64(data[i+16:])
			switch elf.R_X86_64(info & 0xffffffff) {
			case elf.R_X86_64_RELATIVE:
				im.relocs[off] = add
			case elf.R_X86_64_64:
				if sym := int(info >> 32); sym > 0 && sym <= len(dsyms) && dsyms[sym-1].Value != 0 {
					im.relocs[off] = dsyms[sym-1].Value + add
				}
			}
		}
	}
	return im
}

// entrySize finds the size of zend_function_entry in this object: where
// entries follow each other, the distance between them. An object (an
// extension .so) does not say which PHP it was built for, so the tables
// themselves decide.
func (im *image) entrySize() uint64 {
	votes := map[uint64]int{}
	for _, s := range im.secs {
		if s.exec || !(strings.HasPrefix(s.name, ".data") || s.name == ".rodata") {
			continue
		}
		for a := (s.addr + 7) &^ 7; a+entrySizes[0] <= s.addr+uint64(len(s.data)); a += 8 {
			if _, _, _, ok := im.entryAt(a); !ok {
				continue
			}
			for _, size := range entrySizes {
				if _, _, _, ok := im.entryAt(a + size); ok {
					votes[size]++
				}
			}
			if decided(votes) {
				break
			}
		}
		if decided(votes) {
			break
		}
	}
	best := entrySizes[0]
	for _, size := range entrySizes {
		if votes[size] > votes[best] {
			best = size
		}
	}
	return best
}

// decided reports whether the entry-size votes are clear enough to stop:
// 64 tables agree, with at most one in eight against.
func decided(votes map[uint64]int) bool {
	a, b := votes[entrySizes[0]], votes[entrySizes[1]]
	return max(a, b) >= 64 && min(a, b)*8 <= max(a, b)
}

// methodTable is a zend_function_entry table of methods (names without
// their class yet).
type methodTable struct {
	start   uint64
	methods []NamedFunction
}

// entrySizes are the sizes zend_function_entry has had (7.0-8.3, 8.4+).
var entrySizes = []uint64{32, 48}

// entryAt decodes a zend_function_entry at link-time address a.
func (im *image) entryAt(a uint64) (name string, handler uint64, flags uint32, ok bool) {
	s := im.section(a)
	if s == nil || s.exec || a-s.addr+entrySizes[0] > uint64(len(s.data)) {
		return "", 0, 0, false
	}
	raw := s.data[a-s.addr:]
	numArgs := binary.LittleEndian.Uint32(raw[feNumArgs:])
	flags = binary.LittleEndian.Uint32(raw[feFlags:])
	if numArgs > 128 {
		return "", 0, 0, false
	}
	handler = im.pointer(a + feHandler)
	hs := im.section(handler)
	if hs == nil || !hs.exec {
		return "", 0, 0, false
	}
	if ai := im.pointer(a + feArgInfo); ai != 0 {
		if as := im.section(ai); as == nil || as.exec {
			return "", 0, 0, false
		}
	}
	name = im.identifier(im.pointer(a), false)
	if name == "" {
		return "", 0, 0, false
	}
	return name, handler, flags, true
}

// FunctionEntries reads the zend_function_entry tables of a PHP binary or
// extension .so (found through relocations / pointers to name strings) and
// returns the handler functions with their PHP-facing names as C names:
// zif_<name> for functions, zim_<Class>_<method> for methods. Addresses are
// link-time. A handler implementing several PHP names (aliases) is listed
// once, under the first name found.
func FunctionEntries(path string) ([]NamedFunction, error) {
	f, err := regular.OpenELF(path)
	if err != nil {
		return nil, fmt.Errorf("function entries: %w", err)
	}
	defer f.Close()
	return functionEntries(f.File), nil
}

// functionEntries does the work of FunctionEntries on an open ELF file.
func functionEntries(f *elf.File) []NamedFunction {
	im := loadImage(f)
	feSize := im.entrySize()
	var out []NamedFunction
	var tables []methodTable
	seen := map[uint64]bool{}
	for _, s := range im.secs {
		if s.exec || !(strings.HasPrefix(s.name, ".data") || s.name == ".rodata") {
			continue
		}
		start := (s.addr + 7) &^ 7
		for a := start; a+feSize <= s.addr+uint64(len(s.data)); a += 8 {
			name, h, flags, ok := im.entryAt(a)
			if !ok {
				continue
			}
			// a table: consecutive entries from a
			t := methodTable{start: a}
			isMethods := flags&accVisibility != 0
			for ; ok; name, h, _, ok = im.entryAt(a) {
				if isMethods {
					t.methods = append(t.methods, NamedFunction{Name: name, Addr: h})
				} else if !seen[h] {
					seen[h] = true
					out = append(out, NamedFunction{Name: "zif_" + name, Addr: h})
				}
				a += feSize
			}
			if isMethods {
				tables = append(tables, t)
			}
			a -= 8 // the loop adds 8 back; a is at the terminator
		}
	}
	if len(tables) > 0 {
		classes := im.classNames(tables)
		for _, t := range tables {
			cls := classes[t.start]
			if cls == "" {
				continue
			}
			for _, m := range t.methods {
				if !seen[m.Addr] {
					seen[m.Addr] = true
					out = append(out, NamedFunction{Name: "zim_" + cls + "_" + m.Name, Addr: m.Addr})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b NamedFunction) int { return cmp.Compare(a.Addr, b.Addr) })
	return out
}

// classNames finds, for method tables, the class they are registered
// under: code registering a class (INIT_CLASS_ENTRY) loads the address of
// the class name string and of the method table close together, with
// RIP-relative LEA instructions. Tables without a clear class name are left
// out.
func (im *image) classNames(tables []methodTable) map[uint64]string {
	want := map[uint64]bool{}
	for _, t := range tables {
		want[t.start] = true
	}
	out := map[uint64]string{}
	const window = 160 // bytes of code searched on each side
	for _, s := range im.secs {
		if !s.exec {
			continue
		}
		d := s.data
		for i := 0; i+7 <= len(d); i++ {
			if (d[i] != 0x48 && d[i] != 0x4c) || d[i+1] != 0x8d || d[i+2]&0xc7 != 0x05 {
				continue
			}
			target := s.addr + uint64(i) + 7 + uint64(int64(int32(binary.LittleEndian.Uint32(d[i+3:]))))
			if !want[target] || out[target] != "" {
				continue
			}
			best, bestDist := "", 2*window+1
			lo, hi := i-window, i+window
			if lo < 0 {
				lo = 0
			}
			if hi > len(d)-7 {
				hi = len(d) - 7
			}
			for j := lo; j <= hi; j++ {
				if j == i || (d[j] != 0x48 && d[j] != 0x4c) || d[j+1] != 0x8d || d[j+2]&0xc7 != 0x05 {
					continue
				}
				t2 := s.addr + uint64(j) + 7 + uint64(int64(int32(binary.LittleEndian.Uint32(d[j+3:]))))
				name := im.identifier(t2, true)
				if name == "" || name[0] < 'A' || name[0] > 'Z' {
					continue // PHP class names of extensions start upper-case
				}
				dist := i - j
				if dist < 0 {
					// INIT_CLASS_ENTRY loads the name before the table; strings
					// after it are usually constants or properties
					dist = window - dist // any string before beats any after
				}
				if dist < bestDist {
					best, bestDist = name, dist
				}
			}
			if best != "" {
				out[target] = strings.ReplaceAll(best, `\`, "_")
			}
		}
	}
	return out
}
