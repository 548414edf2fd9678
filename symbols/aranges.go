package symbols

import (
	"encoding/binary"
	"sort"
)

// arange maps an address range to the offset of its compilation unit in
// .debug_info.
type arange struct {
	start, end uint64
	cu         uint64
}

// maxAranges bounds how many ranges are kept from .debug_aranges.
const maxAranges = 1 << 22

// parseAranges reads .debug_aranges (DWARF 2-5, 32- and 64-bit formats).
// It returns the ranges sorted by start; malformed sets end the parse.
func parseAranges(b []byte) []arange {
	le := binary.LittleEndian
	var out []arange
	for off := 0; off+4 <= len(b) && len(out) < maxAranges; {
		length := uint64(le.Uint32(b[off:]))
		hdr := 4
		offSize := 4
		if length == 0xffffffff {
			if off+12 > len(b) {
				break
			}
			length = le.Uint64(b[off+4:])
			hdr, offSize = 12, 8
		}
		end := uint64(off) + uint64(hdr) + length
		if length == 0 || end > uint64(len(b)) {
			break
		}
		p := off + hdr
		if p+2+offSize+2 > int(end) {
			break
		}
		p += 2 // version
		var cu uint64
		if offSize == 8 {
			cu = le.Uint64(b[p:])
		} else {
			cu = uint64(le.Uint32(b[p:]))
		}
		p += offSize
		addrSize, segSize := int(b[p]), int(b[p+1])
		p += 2
		if addrSize != 8 || segSize != 0 {
			off = int(end)
			continue
		}
		tuple := 16
		if rem := (p - off) % tuple; rem != 0 {
			p += tuple - rem
		}
		for ; p+16 <= int(end); p += 16 {
			a, l := le.Uint64(b[p:]), le.Uint64(b[p+8:])
			if a == 0 && l == 0 {
				break
			}
			out = append(out, arange{start: a, end: a + l, cu: cu})
		}
		off = int(end)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	return out
}

func findArange(rs []arange, addr uint64) (uint64, bool) {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].start > addr }) - 1
	for k := i; k >= 0 && k > i-4; k-- {
		if addr >= rs[k].start && addr < rs[k].end {
			return rs[k].cu, true
		}
	}
	return 0, false
}
