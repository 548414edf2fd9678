package php

import (
	"encoding/binary"
	"fmt"
)

// Bounds of the HashTable reader.
const (
	maxHashHeader = 64 // bytes of a HashTable header read (sizeof(HashTable) is 56)
	maxElemSize   = 64 // bytes of one element (a Bucket is 32)
)

// zval is one zval read from memory.
type zval struct {
	addr  uint64 // where it lives
	value uint64 // zend_value (pointer, long or double bits)
	typ   byte   // u1.v.type
	u2    uint32 // u2 (num_args for EX(This))
}

// decodeZval decodes a zval: the value is its first 8 bytes, the type the
// byte at typeOff, u2 the 4 bytes after u1 (typeOff + 4).
func decodeZval(b []byte, addr, typeOff uint64) zval {
	if uint64(len(b)) < typeOff+8 {
		return zval{addr: addr}
	}
	return zval{addr: addr, value: binary.LittleEndian.Uint64(b), typ: b[typeOff], u2: binary.LittleEndian.Uint32(b[typeOff+4:])}
}

// readZval reads the zval at addr.
func (m *mem) readZval(addr uint64) (zval, error) {
	var b [16]byte
	n := m.l.ZvalSize
	if n > uint64(len(b)) || n < m.l.ZvalType+8 {
		return zval{}, fmt.Errorf("zval of %d bytes (type at %d): not a layout coroner reads", n, m.l.ZvalType)
	}
	if err := m.read(b[:n], addr); err != nil {
		return zval{}, err
	}
	return decodeZval(b[:n], addr, m.l.ZvalType), nil
}

// hashEach calls fn for every used element of the HashTable at ht, with the
// address of its key (a zend_string, 0 for integer keys) and its zval. It
// reads at most maxHashUsed elements; fn returns false to stop.
func (m *mem) hashEach(ht uint64, fn func(key uint64, v zval) bool) error {
	l := m.l
	var hdr [maxHashHeader]byte
	if ht%8 != 0 {
		return fmt.Errorf("HashTable at %#x: %w", ht, errBadPointer)
	}
	hsize := max(l.HTFlags+4, l.HTData+8, l.HTUsed+4, l.HTCount+4, l.HTTableSize+4)
	if hsize > maxHashHeader || l.BucketSize > maxElemSize || l.BucketKey+8 > l.BucketSize || l.ZvalType+8 > l.ZvalSize {
		return fmt.Errorf("HashTable layout out of the bounds coroner reads")
	}
	if err := m.read(hdr[:hsize], ht); err != nil {
		return fmt.Errorf("HashTable at %#x: %w", ht, err)
	}
	le := binary.LittleEndian
	flags := le.Uint32(hdr[l.HTFlags:])
	data := le.Uint64(hdr[l.HTData:])
	used := le.Uint32(hdr[l.HTUsed:])
	count := le.Uint32(hdr[l.HTCount:])
	size := le.Uint32(hdr[l.HTTableSize:])
	if count > used || used > size || size > 1<<28 {
		return fmt.Errorf("HashTable at %#x: implausible sizes (used %d, count %d, table %d)", ht, used, count, size)
	}
	if used == 0 {
		return nil
	}
	if !validPtr(data) || data%8 != 0 {
		return fmt.Errorf("HashTable at %#x: data %#x: %w", ht, data, errBadPointer)
	}
	n := int(used)
	var trunc error
	if n > maxHashUsed {
		n = maxHashUsed
		trunc = fmt.Errorf("HashTable at %#x: read only %d of %d elements", ht, n, used)
	}
	elem := l.BucketSize
	packed := uint64(flags)&l.HTPackedFlag != 0 && l.packedZvals()
	if packed {
		elem = l.ZvalSize
	}
	if elem == 0 {
		return fmt.Errorf("HashTable at %#x: element size 0", ht)
	}
	var chunk [64 * maxElemSize]byte
	per := len(chunk) / int(elem)
	for i := 0; i < n; i += per {
		k := per
		if n-i < k {
			k = n - i
		}
		b := chunk[:k*int(elem)]
		base := data + uint64(i)*elem
		if err := m.read(b, base); err != nil {
			return fmt.Errorf("HashTable at %#x element %d: %w", ht, i, err)
		}
		for j := 0; j < k; j++ {
			e := b[j*int(elem) : (j+1)*int(elem)]
			v := decodeZval(e, base+uint64(j)*elem, l.ZvalType)
			if v.typ == isUndef {
				continue
			}
			var key uint64
			if !packed {
				key = le.Uint64(e[l.BucketKey:])
			}
			if !fn(key, v) {
				return nil
			}
		}
	}
	return trunc
}
