package php

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Bounds on what is read from a core: a damaged or hostile core can hold
// any value in a length field, so every length is capped before use.
const (
	maxName      = 1024    // function, class, INI and module names
	maxPath      = 4096    // file names
	maxValue     = 8192    // INI values, request parameters
	maxHashUsed  = 1 << 16 // buckets read from one HashTable
	maxFrames    = 2000000 // PHP frames walked
	maxFCGIParam = 1024    // FastCGI parameters read
)

var errBadPointer = errors.New("bad pointer")

// mem reads the dumped process's memory with validation, with the layout
// of the PHP structures it reads (zend_string, HashTable, zval).
type mem struct {
	r   io.ReaderAt
	l   *Layout
	buf [64]byte
}

// validPtr reports whether p can be a user-space pointer to data.
func validPtr(p uint64) bool {
	return p >= 0x1000 && p < 0x0000800000000000
}

// read fills b from addr.
func (m *mem) read(b []byte, addr uint64) error {
	if !validPtr(addr) || addr+uint64(len(b)) < addr || addr+uint64(len(b)) > 0x0000800000000000 {
		return fmt.Errorf("read %#x: %w", addr, errBadPointer)
	}
	n, err := m.r.ReadAt(b, int64(addr))
	if n == len(b) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read %d bytes at %#x: %w", len(b), addr, err)
}

// u64 reads a little-endian 64-bit word.
func (m *mem) u64(addr uint64) (uint64, error) {
	if err := m.read(m.buf[:8], addr); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(m.buf[:8]), nil
}

// u32 reads a little-endian 32-bit word.
func (m *mem) u32(addr uint64) (uint32, error) {
	if err := m.read(m.buf[:4], addr); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(m.buf[:4]), nil
}

// ptr reads a pointer at addr; zero is returned as is, any other value
// must be a plausible, align-aligned user-space address.
func (m *mem) ptr(addr uint64, align uint64) (uint64, error) {
	p, err := m.u64(addr)
	if err != nil || p == 0 {
		return p, err
	}
	if !validPtr(p) || (align > 1 && p%align != 0) {
		return 0, fmt.Errorf("pointer %#x at %#x: %w", p, addr, errBadPointer)
	}
	return p, nil
}

// cstring reads a NUL-terminated string of at most max bytes; a longer one
// is truncated.
func (m *mem) cstring(addr uint64, max int) (string, error) {
	if addr == 0 {
		return "", nil
	}
	var out []byte
	var chunk [64]byte
	for len(out) < max {
		n := len(chunk)
		// do not cross a page boundary needlessly: the next page may be unmapped
		if rem := 4096 - int(addr%4096); rem < n {
			n = rem
		}
		if err := m.read(chunk[:n], addr); err != nil {
			if len(out) > 0 {
				return string(out), nil
			}
			return "", err
		}
		for i := 0; i < n; i++ {
			if chunk[i] == 0 {
				return string(append(out, chunk[:i]...)), nil
			}
		}
		out = append(out, chunk[:n]...)
		addr += uint64(n)
	}
	return string(out[:max]), nil
}

// zstr reads a zend_string. Strings longer than max are truncated (the
// second result is the full length).
func (m *mem) zstr(addr uint64, max int) (string, uint64, error) {
	if addr == 0 {
		return "", 0, nil
	}
	if addr%8 != 0 {
		return "", 0, fmt.Errorf("zend_string at %#x: %w", addr, errBadPointer)
	}
	n, err := m.u64(addr + m.l.StrLen)
	if err != nil {
		return "", 0, fmt.Errorf("zend_string at %#x: %w", addr, err)
	}
	if n > 1<<40 {
		return "", 0, fmt.Errorf("zend_string at %#x: implausible length %d", addr, n)
	}
	k := n
	if k > uint64(max) {
		k = uint64(max)
	}
	b := make([]byte, k)
	if err := m.read(b, addr+m.l.StrVal); err != nil {
		return "", 0, fmt.Errorf("zend_string at %#x: %w", addr, err)
	}
	return string(b), n, nil
}

// name reads a zend_string that must be a printable identifier-like name
// (function, class, INI or file name).
func (m *mem) name(addr uint64, max int) (string, error) {
	s, n, err := m.zstr(addr, max)
	if err != nil {
		return "", err
	}
	if n > uint64(max) {
		return "", fmt.Errorf("zend_string at %#x: name of %d bytes", addr, n)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] == 0x7f {
			return "", fmt.Errorf("zend_string at %#x: not a name", addr)
		}
	}
	return s, nil
}
