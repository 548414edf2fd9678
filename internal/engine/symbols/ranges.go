package symbols

import (
	"cmp"
	"encoding/binary"
	"slices"
	"sort"
)

// pcRange is a half-open address range.
type pcRange struct{ lo, hi uint64 }

// maxRanges bounds the ranges read for one DIE.
const maxRanges = 1 << 16

// rangesOf returns the address ranges of a DIE (low/high pc or a range
// list), nil when it has none.
func (u *unit) rangesOf(d *die) []pcRange {
	if d.hasLow && d.highKind != 0 {
		lo, ok := u.addr(d.lowPC, d.lowIsIndex)
		if !ok {
			return nil
		}
		hi := lo + d.highPC
		if d.highKind == 1 {
			if hi, ok = u.addr(d.highPC, d.highIsIndex); !ok {
				return nil
			}
		}
		if hi <= lo {
			return nil
		}
		return []pcRange{{lo, hi}}
	}
	switch d.rangesKind {
	case 1:
		if u.version >= 5 {
			return u.rnglist(d.ranges)
		}
		return u.debugRanges(d.ranges)
	case 2:
		r := &infoReader{b: u.d.sec.rnglists.all(), pos: u.rngBase + d.ranges*uint64(u.offSize)}
		off := r.fixed(uint64(u.offSize))
		if r.err != nil {
			return nil
		}
		return u.rnglist(u.rngBase + off)
	}
	return nil
}

// debugRanges reads a DWARF 2-4 range list.
func (u *unit) debugRanges(off uint64) []pcRange {
	r := &infoReader{b: u.d.sec.ranges.all(), pos: off}
	base := u.base
	n := uint64(u.addrSize)
	maxAddr := ^uint64(0) >> (64 - 8*n)
	var out []pcRange
	for len(out) < maxRanges {
		lo, hi := r.fixed(n), r.fixed(n)
		if r.err != nil || (lo == 0 && hi == 0) {
			break
		}
		if lo == maxAddr {
			base = hi
			continue
		}
		if hi > lo {
			out = append(out, pcRange{base + lo, base + hi})
		}
	}
	return out
}

// rnglist reads a DWARF 5 range list at off in .debug_rnglists.
func (u *unit) rnglist(off uint64) []pcRange {
	r := &infoReader{b: u.d.sec.rnglists.all(), pos: off}
	base := u.base
	n := uint64(u.addrSize)
	var out []pcRange
	add := func(lo, hi uint64) {
		if hi > lo {
			out = append(out, pcRange{lo, hi})
		}
	}
	ax := func(i uint64) uint64 { a, _ := u.addr(i, true); return a }
	for len(out) < maxRanges {
		kind := r.u8()
		if r.err != nil {
			break
		}
		switch kind {
		case 0: // end_of_list
			return out
		case 1: // base_addressx
			base = ax(r.uleb())
		case 2: // startx_endx
			lo, hi := ax(r.uleb()), ax(r.uleb())
			add(lo, hi)
		case 3: // startx_length
			lo := ax(r.uleb())
			add(lo, lo+r.uleb())
		case 4: // offset_pair
			lo, hi := r.uleb(), r.uleb()
			add(base+lo, base+hi)
		case 5: // base_address
			base = r.fixed(n)
		case 6: // start_end
			lo, hi := r.fixed(n), r.fixed(n)
			add(lo, hi)
		case 7: // start_length
			lo := r.fixed(n)
			add(lo, lo+r.uleb())
		default:
			return out
		}
	}
	return out
}

func contains(rs []pcRange, a uint64) bool {
	for _, r := range rs {
		if a >= r.lo && a < r.hi {
			return true
		}
	}
	return false
}

// subtreeEnd returns the offset just past d and its children.
func (u *unit) subtreeEnd(d *die) (uint64, error) {
	if !d.children {
		return d.next, nil
	}
	if d.sibling > d.off && d.sibling <= u.end {
		return d.sibling, nil
	}
	u.endsMu.Lock()
	end, ok := u.ends[d.off]
	u.endsMu.Unlock()
	if ok {
		return end, nil
	}
	end, err := u.walkSubtree(d)
	if err != nil {
		return 0, err
	}
	u.endsMu.Lock()
	if u.ends == nil {
		u.ends = map[uint64]uint64{}
	}
	u.ends[d.off] = end
	u.endsMu.Unlock()
	return end, nil
}

// walkSubtree finds where the children of d end by reading them.
func (u *unit) walkSubtree(d *die) (uint64, error) {
	off := d.next
	for depth := 1; depth > 0; {
		c, err := u.readDIE(off)
		if err != nil {
			return 0, err
		}
		switch {
		case c.tag == 0:
			depth--
			off = c.next
		case c.children && c.sibling > c.off && c.sibling <= u.end:
			off = c.sibling
		case c.children:
			depth++
			off = c.next
		default:
			off = c.next
		}
		if depth > 1<<16 {
			return 0, errInfo
		}
	}
	return off, nil
}

// unitFor returns the unit whose code covers the address a.
func (d *dwarfInfo) unitFor(a uint64) *unit {
	d.mu.Lock()
	byAddr, indexed := d.byAddr, d.indexed
	d.mu.Unlock()
	if byAddr == nil {
		byAddr = d.parseAranges()
		d.mu.Lock()
		if d.byAddr == nil {
			d.byAddr = byAddr
		}
		byAddr, indexed = d.byAddr, d.indexed
		d.mu.Unlock()
	}
	if off, ok := searchUnits(byAddr, a); ok || indexed {
		if !ok {
			return nil
		}
		return d.unitStarting(off)
	}
	// Not every producer writes .debug_aranges (clang does not): index
	// the units' own ranges once.
	var idx []unitRange
	for _, u := range d.allUnits() {
		if u.load() != nil || (u.root.tag != tagCompileUnit && u.root.tag != tagSkeletonUnit) {
			continue
		}
		for _, r := range u.rangesOf(&u.root) {
			idx = append(idx, unitRange{r.lo, r.hi, u.off})
		}
	}
	slices.SortFunc(idx, byRangeLo)
	d.mu.Lock()
	d.byAddr, d.indexed = idx, true
	d.mu.Unlock()
	if off, ok := searchUnits(idx, a); ok {
		return d.unitStarting(off)
	}
	return nil
}

// searchUnits returns the offset of the unit whose range holds a.
func searchUnits(rs []unitRange, a uint64) (uint64, bool) {
	i := sort.Search(len(rs), func(i int) bool { return rs[i].lo > a }) - 1
	// Ranges of different units do not overlap in practice, but a few
	// nested or zero-based ones (discarded code) may: look back a little.
	for k := i; k >= 0 && k > i-8; k-- {
		if a >= rs[k].lo && a < rs[k].hi {
			return rs[k].off, true
		}
	}
	return 0, false
}

// parseAranges reads .debug_aranges into ranges sorted by address.
func (d *dwarfInfo) parseAranges() []unitRange {
	b := d.sec.aranges.all()
	out := make([]unitRange, 0, len(b)/16) // a tuple takes 16 bytes
	le := binary.LittleEndian
	for off := uint64(0); off+16 <= uint64(len(b)); {
		length := uint64(le.Uint32(b[off:]))
		hdr := uint64(4)
		offSize := uint64(4)
		if length == 0xffffffff {
			if off+12 > uint64(len(b)) {
				break
			}
			length, hdr, offSize = le.Uint64(b[off+4:]), 12, 8
		}
		end := off + hdr + length
		if end > uint64(len(b)) || end < off {
			break
		}
		r := &infoReader{b: b[:end], pos: off + hdr}
		r.fixed(2) // version
		infoOff := r.fixed(offSize)
		addrSize := uint64(r.u8())
		r.u8() // segment selector size
		if r.err != nil || (addrSize != 4 && addrSize != 8) {
			break
		}
		// Tuples are aligned to twice the address size from the set's start.
		if rem := (r.pos - off) % (2 * addrSize); rem != 0 {
			r.skip(2*addrSize - rem)
		}
		for r.err == nil && r.pos+2*addrSize <= end {
			lo, n := r.fixed(addrSize), r.fixed(addrSize)
			if lo == 0 && n == 0 {
				break
			}
			if n > 0 && lo+n > lo {
				out = append(out, unitRange{lo, lo + n, infoOff})
			}
		}
		off = end
	}
	slices.SortFunc(out, byRangeLo)
	return out
}

// byRangeLo orders unit ranges by their start (slices.SortFunc: sort.Slice's
// reflection took ~0.5 ms of the thousands of ranges of glibc's debug file).
func byRangeLo(a, b unitRange) int { return cmp.Compare(a.lo, b.lo) }
