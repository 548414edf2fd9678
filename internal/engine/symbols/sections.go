package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// maxSectionSize bounds the decompressed size of one section.
const maxSectionSize = 1 << 30

// readSection returns the contents of a section, decompressing
// SHF_COMPRESSED sections (zlib or zstd) with faster decoders than
// debug/elf's.
func readSection(r io.ReaderAt, s *elf.Section) ([]byte, error) {
	if s == nil || s.Type == elf.SHT_NOBITS {
		return nil, nil
	}
	if s.Flags&elf.SHF_COMPRESSED == 0 {
		return s.Data()
	}
	if s.FileSize < 24 || s.FileSize > maxSectionSize {
		return nil, fmt.Errorf("section %s: implausible compressed size %d", s.Name, s.FileSize)
	}
	raw := make([]byte, s.FileSize)
	if _, err := r.ReadAt(raw, int64(s.Offset)); err != nil {
		return nil, fmt.Errorf("read section %s: %w", s.Name, err)
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

// sectionCache reads (and decompresses) each section of one ELF file at
// most once, for the line tables and .debug_info alike. It is safe for
// concurrent use; two callers wanting the same section wait for one read.
type sectionCache struct {
	r  io.ReaderAt
	ef *elf.File
	mu sync.Mutex
	m  map[string]*cachedSection
}

type cachedSection struct {
	once sync.Once
	b    []byte
}

func newSectionCache(r io.ReaderAt, ef *elf.File) *sectionCache {
	if ef == nil {
		return nil
	}
	return &sectionCache{r: r, ef: ef, m: map[string]*cachedSection{}}
}

// has reports whether the file has a section (without reading it).
func (c *sectionCache) has(name string) bool {
	return c != nil && c.ef.Section(name) != nil
}

// get returns the contents of a section, nil when it is absent or cannot
// be read.
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
			s.b, _ = readSection(c.r, sec)
		}
	})
	return s.b
}
