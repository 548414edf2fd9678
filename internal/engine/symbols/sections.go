package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// maxSectionSize bounds the decompressed size of one section.
const maxSectionSize = 1 << 30

// readSection returns the contents of a section, decompressing
// SHF_COMPRESSED sections (zlib or zstd) with faster decoders than
// debug/elf's. mapped, when not nil, is the whole file in memory.
func readSection(r io.ReaderAt, mapped []byte, s *elf.Section) ([]byte, error) {
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	if s.Flags&elf.SHF_COMPRESSED == 0 {
		if b, ok := mappedSection(mapped, s.Offset, s.Size); ok {
			return b, nil
		}
		return s.Data()
	}
	if s.FileSize < 24 || s.FileSize > maxSectionSize {
		return nil, fmt.Errorf("section %s: implausible compressed size %d", s.Name, s.FileSize)
	}
	raw, ok := mappedSection(mapped, s.Offset, s.FileSize)
	if !ok {
		raw = make([]byte, s.FileSize)
		if _, err := r.ReadAt(raw, int64(s.Offset)); err != nil {
			return nil, fmt.Errorf("read section %s: %w", s.Name, err)
		}
	}
	typ := binary.LittleEndian.Uint32(raw[0:])
	size := binary.LittleEndian.Uint64(raw[8:])
	if size > maxSectionSize {
		return nil, fmt.Errorf("section %s: decompressed size %d too large", s.Name, size)
	}
	var dec io.Reader
	switch elf.CompressionType(typ) {
	case elf.COMPRESS_ZLIB:
		zr, err := zlib.NewReader(bytes.NewReader(raw[24:]))
		if err != nil {
			return nil, fmt.Errorf("section %s: %w", s.Name, err)
		}
		defer zr.Close()
		dec = zr
	case elf.COMPRESS_ZSTD:
		zr, err := zstd.NewReader(bytes.NewReader(raw[24:]), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("section %s: %w", s.Name, err)
		}
		defer zr.Close()
		dec = zr
	default:
		return s.Data()
	}
	// The header's size is a claim: trust it up to a ratio that real
	// debug sections stay far below (zlib cannot exceed about 1000:1),
	// else grow the buffer with the data that really arrives.
	if size <= 64*uint64(len(raw)) {
		out := make([]byte, size)
		if _, err := io.ReadFull(dec, out); err != nil {
			return nil, fmt.Errorf("decompress section %s: %w", s.Name, err)
		}
		return out, nil
	}
	buf := bytes.NewBuffer(make([]byte, 0, 8*uint64(len(raw))))
	n, err := io.Copy(buf, io.LimitReader(dec, int64(size)))
	if err != nil {
		return nil, fmt.Errorf("decompress section %s: %w", s.Name, err)
	}
	if uint64(n) != size {
		return nil, fmt.Errorf("decompress section %s: %d of %d bytes", s.Name, n, size)
	}
	return buf.Bytes(), nil
}

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
	r  io.ReaderAt
	ef *elf.File
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
	b    []byte
}

// newSectionCache reads the sections of ef, the ELF file f; f is mapped
// into memory when it can be.
func newSectionCache(f *os.File, ef *elf.File) *sectionCache {
	if ef == nil {
		return nil
	}
	return &sectionCache{r: f, ef: ef, f: f, m: map[string]*cachedSection{}}
}

// newSectionCacheBytes reads the sections of ef, whose bytes are b.
func newSectionCacheBytes(b []byte, ef *elf.File) *sectionCache {
	c := &sectionCache{r: bytes.NewReader(b), ef: ef, mapped: b, m: map[string]*cachedSection{}}
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

// close unmaps the file; no section read from it may be used after.
func (c *sectionCache) close() {
	if c == nil {
		return
	}
	c.mapOnce.Do(func() {}) // no mapping after this
	if c.unmap {
		_ = syscall.Munmap(c.mapped)
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
	return c != nil && c.ef.Section(name) != nil
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
func (c *sectionCache) get(name string) []byte {
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
		if sec := c.ef.Section(name); sec != nil {
			s.b, _ = readSection(c.r, c.data(), sec)
		}
	})
	return s.b
}
