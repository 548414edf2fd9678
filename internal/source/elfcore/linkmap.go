package elfcore

import (
	"debug/elf"
	"encoding/binary"
	"fmt"

	"github.com/coroner-dev/coroner/internal/regular"
)

// Dynamic section tags and auxv keys used to find the link map.
const (
	dtNull   = 0
	dtDebug  = 21
	atPhnum  = 5
	ptDyn    = 2
	ptPhdr   = 6
	maxLinks = 4096
)

// filesFromLinkMap rebuilds the list of file mappings from the dynamic
// linker's link map (r_debug, found through DT_DEBUG of the executable),
// for cores without an NT_FILE note (gdb's gcore, some older kernels,
// notes cut by truncation). It is how debuggers find libraries.
func (c *File) filesFromLinkMap() ([]FileMapping, error) {
	le := binary.LittleEndian
	phdr, ok1 := c.auxv[AT_PHDR]
	phnum, ok2 := c.auxv[atPhnum]
	if !ok1 || !ok2 || phnum == 0 || phnum > 128 {
		return nil, fmt.Errorf("no AT_PHDR/AT_PHNUM in the auxiliary vector")
	}
	ph := make([]byte, 56*phnum)
	if _, err := c.ReadDumped(ph, phdr); err != nil {
		return nil, fmt.Errorf("read program headers at %#x: %w", phdr, err)
	}
	var bias, dyn uint64
	haveBias := false
	for i := uint64(0); i < phnum; i++ {
		p := ph[i*56:]
		switch le.Uint32(p) {
		case ptPhdr:
			bias = phdr - le.Uint64(p[16:])
			haveBias = true
		case ptDyn:
			dyn = le.Uint64(p[16:])
		}
	}
	if !haveBias || dyn == 0 {
		return nil, fmt.Errorf("executable has no PT_PHDR or PT_DYNAMIC (static binary?)")
	}
	var rdebug uint64
	entry := make([]byte, 16)
	for a := bias + dyn; ; a += 16 {
		if _, err := c.ReadDumped(entry, a); err != nil {
			return nil, fmt.Errorf("read dynamic section: %w", err)
		}
		tag := le.Uint64(entry)
		if tag == dtNull || a-(bias+dyn) > 1<<16 {
			break
		}
		if tag == dtDebug {
			rdebug = le.Uint64(entry[8:])
		}
	}
	if rdebug == 0 {
		return nil, fmt.Errorf("DT_DEBUG is not set")
	}
	lm, err := c.ReadUint64(rdebug + 8)
	if err != nil {
		return nil, fmt.Errorf("read r_debug.r_map: %w", err)
	}
	var out []FileMapping
	seen := map[uint64]bool{}
	for n := 0; lm != 0 && n < maxLinks && !seen[lm]; n++ {
		seen[lm] = true
		var l [32]byte
		if _, err := c.ReadAt(l[:], int64(lm)); err != nil {
			return out, fmt.Errorf("read link_map at %#x: %w", lm, err)
		}
		lAddr, lName, lNext := le.Uint64(l[0:]), le.Uint64(l[8:]), le.Uint64(l[24:])
		name := ""
		if lName != 0 {
			name = c.readCString(lName, 4096)
		}
		if n == 0 && name == "" {
			name = c.execFn()
			lAddr = bias
		}
		if name != "" {
			out = append(out, c.segmentsOf(name, lAddr)...)
		}
		lm = lNext
	}
	return out, nil
}

// segmentsOf returns the file mappings of the ELF file at path loaded with bias.
func (c *File) segmentsOf(path string, bias uint64) []FileMapping {
	f, err := regular.OpenELF(c.HostPath(path))
	if err != nil {
		c.warn("link map names %s, which cannot be read: %v", path, err)
		return nil
	}
	defer f.Close()
	var out []FileMapping
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD {
			continue
		}
		start := (bias + p.Vaddr) &^ 0xfff
		end := (bias + p.Vaddr + p.Memsz + 0xfff) &^ 0xfff
		out = append(out, FileMapping{Start: start, End: end, Offset: p.Off &^ 0xfff, Path: path})
	}
	return out
}

func (c *File) execFn() string {
	if p, ok := c.auxv[AT_EXECFN]; ok {
		return c.readCString(p, 4096)
	}
	return ""
}

func (c *File) readCString(addr uint64, max int) string {
	buf := make([]byte, 256)
	var s []byte
	for len(s) < max {
		n, _ := c.ReadAt(buf, int64(addr)+int64(len(s)))
		if n == 0 {
			break
		}
		for i := 0; i < n; i++ {
			if buf[i] == 0 {
				return string(append(s, buf[:i]...))
			}
		}
		s = append(s, buf[:n]...)
	}
	return string(s)
}
