package coredumps

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Bounds of the journal export format parser (`journalctl -o export`): a
// field name is at most 64 bytes in the journal; a text value longer than
// maxExportText is skipped (not kept); a binary value is only streamed to
// the visitor (the core).
const (
	maxExportName = 64
	maxExportText = 1 << 20
	// maxExportSize bounds the length field of a binary value: larger
	// values are a broken stream (journald keeps fields far smaller).
	maxExportSize = 1 << 40
)

// ExportField is one field of an entry of the journal export format.
type ExportField struct {
	// Entry counts the entries of the stream, from 0.
	Entry int
	Name  string
	// Value is the value of a text field; nil when it was too long to
	// keep (over 1 MiB).
	Value []byte
	// Binary is set for a field in binary form (a value with newlines or
	// non-printable bytes); Size is its length, and Data reads it, once,
	// while the visitor runs (nil for text fields).
	Binary bool
	Size   int64
	Data   io.Reader
}

// errStopExport ends ReadExport without error when a visitor returns it.
var errStopExport = errors.New("stop reading the export stream")

// ReadExport reads the journal export format from r and calls visit for
// every field, then with a zero-named field at the end of each entry. A
// text field is "NAME=value\n"; a binary field is "NAME\n", a 64-bit
// little-endian length, the value and "\n"; an empty line ends an entry.
// The value of a binary field is never held in memory: the visitor streams
// it from Data (what it leaves is skipped). visit
// returning an error stops reading (errStopExport: without error).
func ReadExport(r io.Reader, visit func(f *ExportField) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	entry, fields, line := 0, 0, 0
	for {
		head, long, err := readExportLine(br, maxExportText+maxExportName+1)
		if err != nil {
			if errors.Is(err, io.EOF) && len(head) == 0 && !long {
				if fields > 0 { // a last entry without its empty line
					if verr := visit(&ExportField{Entry: entry}); verr != nil && !errors.Is(verr, errStopExport) {
						return verr
					}
				}
				return nil
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("export entry %d, line %d: %w", entry, line+1, err)
		}
		line++
		if len(head) == 0 && !long {
			if fields > 0 {
				if verr := visit(&ExportField{Entry: entry}); verr != nil {
					return stopped(verr)
				}
				entry++
				fields = 0
			}
			continue
		}
		fields++
		name, value, text := bytes.Cut(head, []byte("="))
		if len(name) == 0 || len(name) > maxExportName || !exportName(name) {
			return fmt.Errorf("export entry %d, line %d: not a field name", entry, line)
		}
		f := &ExportField{Entry: entry, Name: string(name)}
		if text {
			f.Size = int64(len(value))
			if !long {
				f.Value = value
			}
			if verr := visit(f); verr != nil {
				return stopped(verr)
			}
			continue
		}
		if long {
			return fmt.Errorf("export entry %d, line %d: field name too long", entry, line)
		}
		var lenb [8]byte
		if _, err := io.ReadFull(br, lenb[:]); err != nil {
			return fmt.Errorf("export entry %d: field %s: length: %w", entry, f.Name, noEOF(err))
		}
		size := binary.LittleEndian.Uint64(lenb[:])
		if size > maxExportSize {
			return fmt.Errorf("export entry %d: field %s: length %d is not believable", entry, f.Name, size)
		}
		f.Binary, f.Size = true, int64(size)
		lr := &io.LimitedReader{R: br, N: f.Size}
		f.Data = lr
		verr := visit(f)
		f.Data = nil
		if verr != nil {
			return stopped(verr)
		}
		if lr.N > 0 {
			if _, err := io.CopyN(io.Discard, br, lr.N); err != nil {
				return fmt.Errorf("export entry %d: field %s: %w", entry, f.Name, noEOF(err))
			}
		}
		if b, err := br.ReadByte(); err != nil || b != '\n' {
			if err == nil {
				err = fmt.Errorf("byte %#x after the value instead of a newline", b)
			}
			return fmt.Errorf("export entry %d: field %s: %w", entry, f.Name, noEOF(err))
		}
	}
}

func stopped(err error) error {
	if errors.Is(err, errStopExport) {
		return nil
	}
	return err
}

func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// exportName reports whether b is a journal field name (upper-case
// letters, digits and underscores; "__CURSOR" and the like included).
func exportName(b []byte) bool {
	for _, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// readExportLine returns the next line without its newline; a line longer
// than max is consumed and returned cut to max with long set.
func readExportLine(br *bufio.Reader, max int) ([]byte, bool, error) {
	var buf []byte
	long := false
	for {
		frag, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if !long {
				if len(buf)+len(frag) > max {
					buf = append(buf, frag[:max-len(buf)]...)
					long = true
				} else {
					buf = append(buf, frag...)
				}
			}
			continue
		case err != nil:
			if !long {
				buf = append(buf, frag...)
			}
			return buf, long, err
		}
		frag = frag[:len(frag)-1]
		if !long {
			if len(buf)+len(frag) > max {
				buf = append(buf, frag[:max-len(buf)]...)
				long = true
			} else if buf == nil {
				// A copy: the reader's buffer is reused by the next read.
				buf = append([]byte(nil), frag...)
			} else {
				buf = append(buf, frag...)
			}
		}
		return buf, long, nil
	}
}
