package spool

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
)

// A segment file is a sequence of records, each a 16-byte header and a
// payload:
//
//	off  size  field
//	0    4     magic "CSP1"
//	4    1     kind (1..255; 0 is invalid)
//	5    3     reserved, zero
//	8    4     payload length, little endian (at most Options.MaxRecord)
//	12   4     CRC-32C of bytes 4..11 and of the payload
//	16   n     payload
//
// A record is appended with one write and made durable with fsync before
// Append returns. The magic lets a reader find the next record after a
// damaged region; the checksum tells a record from bytes that only look
// like one.
const (
	headerSize = 16
	magic      = "CSP1"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// header builds the header of a record.
func header(kind byte, payload []byte) [headerSize]byte {
	var h [headerSize]byte
	copy(h[:4], magic)
	h[4] = kind
	binary.LittleEndian.PutUint32(h[8:12], uint32(len(payload)))
	crc := crc32.Update(0, castagnoli, h[4:12])
	crc = crc32.Update(crc, castagnoli, payload)
	binary.LittleEndian.PutUint32(h[12:16], crc)
	return h
}

// record is a valid record found in a segment.
type record struct {
	off  int64 // of its header
	kind byte
	n    int // payload length
}

// end is the offset just past the record.
func (r record) end() int64 { return r.off + headerSize + int64(r.n) }

// chunk bounds the buffers used to check payloads and to search for the
// next record: memory never depends on a length read from the file.
const chunk = 64 << 10

// check validates the record whose header starts at off in a segment of
// size bytes: magic, kind, reserved bytes, a length within maxRecord and
// the file, and the checksum (the payload is read in bounded chunks). It
// returns the record or why it is not one.
func check(r io.ReaderAt, size int64, off int64, maxRecord int) (record, error) {
	if size-off < headerSize {
		return record{}, fmt.Errorf("truncated header (%d of %d bytes)", size-off, headerSize)
	}
	var h [headerSize]byte
	if _, err := r.ReadAt(h[:], off); err != nil {
		return record{}, fmt.Errorf("read header: %w", err)
	}
	if string(h[:4]) != magic {
		return record{}, fmt.Errorf("bad magic %q", h[:4])
	}
	if h[4] == 0 || h[5] != 0 || h[6] != 0 || h[7] != 0 {
		return record{}, fmt.Errorf("bad kind/reserved bytes % x", h[4:8])
	}
	n := int64(binary.LittleEndian.Uint32(h[8:12]))
	if n > int64(maxRecord) {
		return record{}, fmt.Errorf("record length %d exceeds the limit %d", n, maxRecord)
	}
	if n > size-off-headerSize {
		return record{}, fmt.Errorf("truncated record (length %d, %d bytes left)", n, size-off-headerSize)
	}
	crc := crc32.Update(0, castagnoli, h[4:12])
	buf := make([]byte, min(n, chunk))
	for done := int64(0); done < n; {
		m := min(n-done, int64(len(buf)))
		if _, err := r.ReadAt(buf[:m], off+headerSize+done); err != nil {
			return record{}, fmt.Errorf("read payload: %w", err)
		}
		crc = crc32.Update(crc, castagnoli, buf[:m])
		done += m
	}
	if crc != binary.LittleEndian.Uint32(h[12:16]) {
		return record{}, errors.New("checksum mismatch")
	}
	return record{off: off, kind: h[4], n: int(n)}, nil
}

// resync returns the offset of the first valid record after off, or size
// when there is none.
func resync(r io.ReaderAt, size, off int64, maxRecord int) int64 {
	buf := make([]byte, chunk+len(magic)-1)
	for pos := off + 1; pos < size; pos += chunk {
		m := min(int64(len(buf)), size-pos)
		if _, err := r.ReadAt(buf[:m], pos); err != nil && !errors.Is(err, io.EOF) {
			return size
		}
		for i := 0; ; {
			j := bytes.Index(buf[i:m], []byte(magic))
			if j < 0 || int64(i+j) >= chunk {
				break
			}
			cand := pos + int64(i+j)
			if _, err := check(r, size, cand, maxRecord); err == nil {
				return cand
			}
			i += j + 1
		}
	}
	return size
}

// scan reads a segment of size bytes from its start: visit is called for
// every valid record in order, bad for every damaged region (its offset,
// length and why), after which scanning resumes at the next valid record.
// It never panics and allocates at most two chunk-sized buffers at a time,
// whatever the file holds.
func scan(r io.ReaderAt, size int64, maxRecord int, visit func(record), bad func(off, n int64, why error)) {
	for off := int64(0); off < size; {
		rec, err := check(r, size, off, maxRecord)
		if err == nil {
			visit(rec)
			off = rec.end()
			continue
		}
		next := resync(r, size, off, maxRecord)
		bad(off, next-off, err)
		off = next
	}
}
