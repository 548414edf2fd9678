package symbols

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// maxSectionSize bounds the decompressed size of one section.
const maxSectionSize = 1 << 30

// mappedSection returns the bytes [off, off+size) of a mapped file.
func mappedSection(mapped []byte, off, size uint64) ([]byte, bool) {
	if mapped == nil || off > uint64(len(mapped)) || size > uint64(len(mapped))-off {
		return nil, false
	}
	return mapped[off : off+size : off+size], true
}

// sectionCache reads (and decompresses) each section of one ELF file at
// most once, for the symbol tables, the CFI, the line tables and
// .debug_info alike. The file is memory-mapped when it can be: a section
// that is not compressed is then read in place, and only the pages used
// (a binary search of .eh_frame_hdr touches a few) are read at all. It is
// safe for concurrent use; two callers wanting the same section wait for
// one read.
type sectionCache struct {
	r io.ReaderAt
	// ef is the parsed file: load makes it on first need (elfFile).
	efOnce sync.Once
	ef     *elf.File
	load   func() *elf.File
	// f is mapped on first use: mapped is the whole file (nil when it
	// could not be mapped), unmap says it is an mmap to undo on close.
	f       *os.File
	mapOnce sync.Once
	mapped  []byte
	unmap   bool
	mu      sync.Mutex
	m       map[string]*cachedSection
}

type cachedSection struct {
	once sync.Once
	p    *progressive
}

// newSectionCache reads the sections of ef, the ELF file f; f is mapped
// into memory when it can be.
func newSectionCache(f *os.File, ef *elf.File) *sectionCache {
	if ef == nil {
		return nil
	}
	c := &sectionCache{r: f, ef: ef, f: f, m: map[string]*cachedSection{}}
	c.efOnce.Do(func() {})
	return c
}

// newLazySectionCache reads the sections of the ELF file f, whose headers
// load parses (the first time they are needed; it never returns nil).
func newLazySectionCache(f *os.File, load func() *elf.File) *sectionCache {
	return &sectionCache{r: f, load: load, f: f, m: map[string]*cachedSection{}}
}

// elfFile returns the parsed file, parsing it the first time.
func (c *sectionCache) elfFile() *elf.File {
	c.efOnce.Do(func() {
		if c.load != nil {
			c.ef, c.load = c.load(), nil
		}
	})
	return c.ef
}

// newSectionCacheBytes reads the sections of ef, whose bytes are b.
func newSectionCacheBytes(b []byte, ef *elf.File) *sectionCache {
	c := &sectionCache{r: bytes.NewReader(b), ef: ef, mapped: b, m: map[string]*cachedSection{}}
	c.efOnce.Do(func() {})
	c.mapOnce.Do(func() {})
	return c
}

// data returns the mapped file (mapping it the first time), or nil.
func (c *sectionCache) data() []byte {
	c.mapOnce.Do(func() {
		if c.f != nil {
			if b, err := mmapFile(c.f); err == nil {
				c.mapped, c.unmap = b, true
			}
		}
	})
	return c.mapped
}

// close unmaps the file (unmap false: leaves it mapped until the process
// exits); no section read from it may be used after.
func (c *sectionCache) close(unmap bool) {
	if c == nil {
		return
	}
	c.mapOnce.Do(func() {}) // no mapping after this
	if c.unmap {
		if unmap {
			_ = syscall.Munmap(c.mapped)
		}
		c.mapped, c.unmap = nil, false
	}
}

// maxMapped bounds the files that are memory-mapped.
const maxMapped = 1 << 34

func mmapFile(f *os.File) ([]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	if size <= 0 || size > maxMapped || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not mapped: %d bytes", size)
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_PRIVATE)
}

// has reports whether the file has a section (without reading it).
func (c *sectionCache) has(name string) bool {
	return c != nil && c.elfFile().Section(name) != nil
}

// raw returns the contents of section s of this file as stored (nil when
// it is absent, empty, larger than max, or cannot be read): in place when
// the file is mapped.
func (c *sectionCache) raw(s *elf.Section, max uint64) []byte {
	if c == nil || s == nil || s.Type == elf.SHT_NOBITS || s.Size > max {
		return nil
	}
	if s.Flags&elf.SHF_COMPRESSED == 0 {
		if b, ok := mappedSection(c.data(), s.Offset, s.Size); ok {
			return b
		}
	}
	return sectionData(s, max)
}

// get returns the contents of a section, decompressed, nil when it is
// absent or cannot be read.
func (c *sectionCache) get(name string) []byte { return c.progressive(name).all() }

// progressive returns a section to decompress as far as it is needed,
// nil when it is absent or cannot be read.
func (c *sectionCache) progressive(name string) *progressive {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	s := c.m[name]
	if s == nil {
		s = &cachedSection{}
		c.m[name] = s
	}
	c.mu.Unlock()
	s.once.Do(func() {
		sec := c.elfFile().Section(name)
		if sec == nil || sec.Type == elf.SHT_NOBITS {
			return
		}
		size := sec.Size
		if sec.Flags&elf.SHF_COMPRESSED != 0 {
			size = sec.FileSize
		}
		raw, ok := mappedSection(c.data(), sec.Offset, size)
		if !ok {
			if sec.Flags&elf.SHF_COMPRESSED == 0 {
				b, err := sec.Data()
				if err == nil {
					s.p = wholeSection(b)
				}
				return
			}
			if size > maxSectionSize {
				return
			}
			raw = make([]byte, size)
			if _, err := c.r.ReadAt(raw, int64(sec.Offset)); err != nil {
				return
			}
		}
		s.p, _ = openProgressive(sec, raw)
	})
	return s.p
}
