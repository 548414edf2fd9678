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

// progressive is a section decompressed on demand from its start: a
// lookup in glibc's debug file needs the units of a few source files, and
// when they come early in .debug_info the rest (megabytes) is never
// decompressed. A section that is not compressed is whole from the start.
type progressive struct {
	mu sync.Mutex
	// buf[:have] is decompressed; buf grows (by doubling, up to total) as
	// more is asked for: a buffer of the whole section at once was zeroed
	// whole by the allocator, megabytes for the few units a lookup reads.
	buf   []byte
	have  int
	total int // the section's (decompressed) size
	dec   io.Reader
	close func()
	err   error
}

// progressiveChunk is the least that is decompressed at a time. A lookup
// in glibc's debug file wants the first 0.5-10 KB of four sections (128 KB
// of each was ~2 ms of zlib for a cold analysis), or, for frames in libc
// itself, megabytes: no more than asked for is decompressed then (growing
// by half of what was there decompressed 3.0 MB of .debug_info for 2.0
// wanted, a third of a cold analysis of an abort() core spent for
// nothing). The buffer still grows by doubling.
const progressiveChunk = 16 << 10

// wholeSection returns a progressive over bytes already in memory.
func wholeSection(b []byte) *progressive { return &progressive{buf: b, have: len(b), total: len(b)} }

// size is the section's (decompressed) size.
func (p *progressive) size() uint64 {
	if p == nil {
		return 0
	}
	return uint64(p.total)
}

// prefix returns the section's first n bytes (fewer when it is shorter or
// damaged).
func (p *progressive) prefix(n uint64) []byte {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if n > uint64(p.total) {
		n = uint64(p.total)
	}
	if uint64(p.have) < n && p.dec != nil {
		end := int(min(uint64(p.total), max(n, uint64(p.have)+progressiveChunk)))
		if end > cap(p.buf) {
			// Earlier prefixes keep the old array: what they hold does
			// not change.
			nb := make([]byte, p.have, min(p.total, max(end, 2*cap(p.buf))))
			copy(nb, p.buf[:p.have])
			p.buf = nb
		}
		m, err := io.ReadFull(p.dec, p.buf[p.have:end])
		p.have += m
		if err != nil || p.have == p.total {
			if err != nil {
				p.err = err
			}
			p.close()
			p.dec = nil
		}
	}
	return p.buf[:p.have]
}

// cstringAt returns the NUL-terminated string at off, as cstrAt on the
// whole section does ("" past the end or without a NUL), decompressing the
// section only up to the string's end: names in .debug_str are read one by
// one, and the whole section of glibc's debug file took ~1.7 ms to
// decompress for the few a lookup needs.
func (p *progressive) cstringAt(off uint64) string {
	if off >= p.size() {
		return ""
	}
	for want := off + 256; ; want = off + 2*(want-off) {
		b := p.prefix(want)
		if off >= uint64(len(b)) {
			return ""
		}
		if i := bytes.IndexByte(b[off:], 0); i >= 0 {
			return string(b[off : off+uint64(i)])
		}
		if uint64(len(b)) < want {
			return "" // the section (or what could be decompressed) ends first
		}
	}
}

// all returns the whole section.
func (p *progressive) all() []byte { return p.prefix(^uint64(0)) }

// openProgressive prepares section s (raw: its bytes as stored) for
// progressive reading; nil when it cannot be read.
func openProgressive(s *elf.Section, raw []byte) (*progressive, error) {
	if s.Flags&elf.SHF_COMPRESSED == 0 {
		return wholeSection(raw), nil
	}
	if len(raw) < 24 || uint64(len(raw)) > maxSectionSize {
		return nil, fmt.Errorf("section %s: implausible compressed size %d", s.Name, len(raw))
	}
	typ := binary.LittleEndian.Uint32(raw[0:])
	size := binary.LittleEndian.Uint64(raw[8:])
	// The header's size is a claim: trust it up to a ratio that real
	// debug sections stay far below (zlib cannot exceed about 1000:1).
	if size > maxSectionSize || size > 64*uint64(len(raw)) {
		return nil, fmt.Errorf("section %s: implausible decompressed size %d", s.Name, size)
	}
	p := &progressive{total: int(size)}
	switch elf.CompressionType(typ) {
	case elf.COMPRESS_ZLIB:
		zr, err := zlib.NewReader(bytes.NewReader(raw[24:]))
		if err != nil {
			return nil, fmt.Errorf("section %s: %w", s.Name, err)
		}
		p.dec, p.close = zr, func() { zr.Close() }
	case elf.COMPRESS_ZSTD:
		zr, err := zstd.NewReader(bytes.NewReader(raw[24:]), zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("section %s: %w", s.Name, err)
		}
		p.dec, p.close = zr, zr.Close
	default:
		return nil, fmt.Errorf("section %s: unknown compression %d", s.Name, typ)
	}
	return p, nil
}
