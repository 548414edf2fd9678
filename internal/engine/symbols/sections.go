package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"

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
	// The header's size is a claim: grow the buffer with the data that
	// really arrives (from a guess of 8x the compressed size) instead of
	// allocating whatever the header says up front.
	buf := bytes.NewBuffer(make([]byte, 0, min(size, 8*uint64(len(raw)))))
	n, err := io.Copy(buf, io.LimitReader(dec, int64(size)))
	if err != nil {
		return nil, fmt.Errorf("decompress section %s: %w", s.Name, err)
	}
	if uint64(n) != size {
		return nil, fmt.Errorf("decompress section %s: %d of %d bytes", s.Name, n, size)
	}
	return buf.Bytes(), nil
}
