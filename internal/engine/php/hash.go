package php

import (
	"encoding/binary"
	"fmt"
)

// zval is one zval read from memory.
type zval struct {
	addr  uint64 // where it lives
	value uint64 // zend_value (pointer, long or double bits)
	typ   byte   // u1.v.type
	u2    uint32 // u2 (num_args for EX(This))
}

func decodeZval(b []byte, addr uint64) zval {
	return zval{addr: addr, value: binary.LittleEndian.Uint64(b), typ: b[8], u2: binary.LittleEndian.Uint32(b[12:])}
}

// readZval reads the zval at addr.
func (m *mem) readZval(addr uint64) (zval, error) {
	var b [16]byte
	if err := m.read(b[:], addr); err != nil {
		return zval{}, err
	}
	return decodeZval(b[:], addr), nil
}

// hashEach calls fn for every used element of the HashTable at ht, with the
// address of its key (a zend_string, 0 for integer keys) and its zval. It
// reads at most maxHashUsed elements; fn returns false to stop.
func (m *mem) hashEach(ht uint64, packedZvals bool, fn func(key uint64, v zval) bool) error {
	var hdr [htSize]byte
	if ht%8 != 0 {
		return fmt.Errorf("HashTable at %#x: %w", ht, errBadPointer)
	}
	if err := m.read(hdr[:], ht); err != nil {
		return fmt.Errorf("HashTable at %#x: %w", ht, err)
	}
	le := binary.LittleEndian
	flags := le.Uint32(hdr[htFlags:])
	data := le.Uint64(hdr[htData:])
	used := le.Uint32(hdr[htUsed:])
	count := le.Uint32(hdr[htCount:])
	size := le.Uint32(hdr[htTable:])
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
	elem := uint64(bucketSize)
	packed := packedZvals && flags&hashFlagPacked != 0
	if packed {
		elem = zvalSize
	}
	var chunk [64 * bucketSize]byte
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
			e := b[j*int(elem):]
			v := decodeZval(e, base+uint64(j)*elem)
			if v.typ == isUndef {
				continue
			}
			var key uint64
			if !packed {
				key = le.Uint64(e[bucketKey:])
			}
			if !fn(key, v) {
				return nil
			}
		}
	}
	return trunc
}
