package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sort"

	"github.com/coroner-dev/coroner/crash"
)

// DWARF register numbers on x86-64: crash.Reg numbers the general-purpose
// registers and rip the way DWARF does.
const (
	regRAX = uint64(crash.RegRAX)
	regRDX = uint64(crash.RegRDX)
	regRCX = uint64(crash.RegRCX)
	regRBX = uint64(crash.RegRBX)
	regRSI = uint64(crash.RegRSI)
	regRDI = uint64(crash.RegRDI)
	regRBP = uint64(crash.RegRBP)
	regRSP = uint64(crash.RegRSP)
	regR12 = uint64(crash.RegR12)
	regR13 = uint64(crash.RegR13)
	regR14 = uint64(crash.RegR14)
	regR15 = uint64(crash.RegR15)
	regRIP = uint64(crash.RegRIP)
	// NumRegs is the number of registers CFI rules are tracked for: the
	// DWARF registers 0-16 (rax..r15 and rip).
	NumRegs = regRIP + 1
)

// getReg returns DWARF register n of s when it is known.
func getReg(s *crash.Registers, n uint64) (uint64, bool) {
	if n >= NumRegs {
		return 0, false
	}
	return s.Get(crash.Reg(n))
}

// setReg sets DWARF register n of s (registers CFI does not track are
// ignored).
func setReg(s *crash.Registers, n, v uint64) {
	if n < NumRegs {
		s.Set(crash.Reg(n), v)
	}
}

// Pointer encodings of .eh_frame (DW_EH_PE_*).
const (
	peAbsptr  = 0x00
	peUleb128 = 0x01
	peUdata2  = 0x02
	peUdata4  = 0x03
	peUdata8  = 0x04
	peSleb128 = 0x09
	peSdata2  = 0x0a
	peSdata4  = 0x0b
	peSdata8  = 0x0c
	pePcrel   = 0x10
	peDatarel = 0x30
	peIndir   = 0x80
	peOmit    = 0xff
)

// errCFI is wrapped by every CFI parse error.
var errCFI = errors.New("malformed call frame information")

// cie is a Common Information Entry.
type cie struct {
	codeAlign   uint64
	dataAlign   int64
	raReg       uint64
	fdeEnc      byte
	signalFrame bool
	augZ        bool
	initial     []byte
}

// FDE is a Frame Description Entry: the unwind rules of one function.
type FDE struct {
	// Start and End are the link-time bounds of the function.
	Start, End uint64
	cie        *cie
	insns      []byte
}

// Table is the parsed call frame information of one ELF object.
type Table struct {
	data     []byte // .eh_frame or .debug_frame
	addr     uint64 // link-time address of data
	isDebug  bool   // .debug_frame format
	cies     map[uint64]*cie
	fdes     []*FDE // sorted by Start, built lazily when no search table exists
	hdr      []hdrEntry
	rowCache map[uint64]*row
	scanned  bool
	// the .eh_frame_hdr search table, decoded on first use
	hdrRaw     []byte
	hdrAddr    uint64
	hdrPending bool
	// fast is the search table read in place when it has the usual
	// encoding (sorted pairs of 4-byte offsets from .eh_frame_hdr).
	fast *hdrTable
}

// hdrTable is an .eh_frame_hdr search table of DW_EH_PE_datarel |
// DW_EH_PE_sdata4 pairs, searched where it lies instead of decoded.
type hdrTable struct {
	b     []byte // the pairs
	n     int
	base  uint64 // the .eh_frame_hdr's address, which the offsets are from
	ehLen uint64
	eh    uint64
}

func (h *hdrTable) start(i int) uint64 {
	return h.base + uint64(int64(int32(binary.LittleEndian.Uint32(h.b[8*i:]))))
}

func (h *hdrTable) fde(i int) uint64 {
	return h.base + uint64(int64(int32(binary.LittleEndian.Uint32(h.b[8*i+4:]))))
}

// fastHdr returns the search table of b when it can be searched in place
// (datarel|sdata4 entries, sorted), else nil.
func fastHdr(b []byte, hdrAddr, ehAddr, ehLen uint64) *hdrTable {
	const datarelSdata4 = peDatarel | peSdata4
	if len(b) < 4 || b[0] != 1 || b[3] != datarelSdata4 {
		return nil
	}
	r := &reader{b: b, pos: 4, base: hdrAddr}
	if _, err := r.encoded(b[1]); err != nil || b[2] == peOmit {
		return nil
	}
	count, err := r.encoded(b[2])
	if err != nil || r.pos > uint64(len(b)) || count > (uint64(len(b))-r.pos)/8 {
		return nil
	}
	h := &hdrTable{b: b[r.pos : r.pos+count*8], n: int(count), base: hdrAddr, eh: ehAddr, ehLen: ehLen}
	for i := 1; i < h.n; i++ { // sorted, as the format requires: else decode and sort
		if h.start(i) < h.start(i-1) {
			return nil
		}
	}
	return h
}

type hdrEntry struct {
	start  uint64
	fdeOff uint64 // offset of the FDE within data
}

// NewTable builds a CFI table from .eh_frame (ehFrame at link-time address
// ehAddr) and, when present, its .eh_frame_hdr search table (hdr at hdrAddr).
// When hdr is nil every FDE is parsed and sorted once.
func NewTable(ehFrame []byte, ehAddr uint64, hdr []byte, hdrAddr uint64) *Table {
	t := &Table{data: ehFrame, addr: ehAddr, cies: map[uint64]*cie{}, rowCache: map[uint64]*row{}}
	if hdr != nil {
		t.hdrRaw, t.hdrAddr, t.hdrPending = hdr, hdrAddr, true
	}
	return t
}

// NewDebugFrameTable builds a CFI table from a .debug_frame section.
func NewDebugFrameTable(debugFrame []byte) *Table {
	return &Table{data: debugFrame, isDebug: true, cies: map[uint64]*cie{}, rowCache: map[uint64]*row{}}
}

func parseHdr(b []byte, hdrAddr, ehAddr, ehLen uint64) []hdrEntry {
	if len(b) < 4 || b[0] != 1 {
		return nil
	}
	r := &reader{b: b, pos: 4, base: hdrAddr}
	ehPtrEnc, countEnc, tableEnc := b[1], b[2], b[3]
	if _, err := r.encoded(ehPtrEnc); err != nil {
		return nil
	}
	count, err := r.encoded(countEnc)
	if err != nil || tableEnc == peOmit || countEnc == peOmit {
		return nil
	}
	// Each entry is at least 2 bytes: bound count by the data present.
	if count > uint64(len(b))/2 {
		return nil
	}
	out := make([]hdrEntry, 0, count)
	for i := uint64(0); i < count; i++ {
		start, err1 := r.encoded(tableEnc)
		fde, err2 := r.encoded(tableEnc)
		if err1 != nil || err2 != nil {
			return nil
		}
		if fde < ehAddr || fde-ehAddr >= ehLen {
			return nil
		}
		out = append(out, hdrEntry{start: start, fdeOff: fde - ehAddr})
	}
	if !sort.SliceIsSorted(out, func(i, j int) bool { return out[i].start < out[j].start }) {
		sort.Slice(out, func(i, j int) bool { return out[i].start < out[j].start })
	}
	return out
}

// FDEFor returns the FDE covering the link-time pc.
func (t *Table) FDEFor(pc uint64) (*FDE, error) {
	if t.hdrPending {
		t.hdrPending = false
		if t.fast = fastHdr(t.hdrRaw, t.hdrAddr, t.addr, uint64(len(t.data))); t.fast == nil {
			t.hdr = parseHdr(t.hdrRaw, t.hdrAddr, t.addr, uint64(len(t.data)))
		}
	}
	if h := t.fast; h != nil {
		i := sort.Search(h.n, func(i int) bool { return h.start(i) > pc }) - 1
		if i < 0 {
			return nil, fmt.Errorf("no FDE for %#x", pc)
		}
		fde := h.fde(i)
		if fde < h.eh || fde-h.eh >= h.ehLen {
			return nil, fmt.Errorf("%w: search table entry %d points outside .eh_frame", errCFI, i)
		}
		f, err := t.parseFDEAt(fde - h.eh)
		if err != nil {
			return nil, err
		}
		if pc < f.Start || pc >= f.End {
			return nil, fmt.Errorf("no FDE for %#x", pc)
		}
		return f, nil
	}
	if t.hdr != nil {
		i := sort.Search(len(t.hdr), func(i int) bool { return t.hdr[i].start > pc }) - 1
		if i < 0 {
			return nil, fmt.Errorf("no FDE for %#x", pc)
		}
		f, err := t.parseFDEAt(t.hdr[i].fdeOff)
		if err != nil {
			return nil, err
		}
		if pc < f.Start || pc >= f.End {
			return nil, fmt.Errorf("no FDE for %#x", pc)
		}
		return f, nil
	}
	if !t.scanned {
		t.scanAll()
	}
	i := sort.Search(len(t.fdes), func(i int) bool { return t.fdes[i].Start > pc }) - 1
	if i < 0 || pc >= t.fdes[i].End {
		return nil, fmt.Errorf("no FDE for %#x", pc)
	}
	return t.fdes[i], nil
}

// scanAll parses every entry once (no search table available).
func (t *Table) scanAll() {
	t.scanned = true
	off := uint64(0)
	for off+4 <= uint64(len(t.data)) {
		length, hdrLen, ok := entryLength(t.data, off)
		if !ok || length == 0 {
			break
		}
		end := off + hdrLen + length
		if end > uint64(len(t.data)) || end <= off {
			break
		}
		if !t.isCIE(off, hdrLen) {
			if f, err := t.parseFDEAt(off); err == nil && f.End > f.Start {
				t.fdes = append(t.fdes, f)
			}
		}
		off = end
	}
	sort.Slice(t.fdes, func(i, j int) bool { return t.fdes[i].Start < t.fdes[j].Start })
}

func entryLength(b []byte, off uint64) (length, hdrLen uint64, ok bool) {
	if off+4 > uint64(len(b)) {
		return 0, 0, false
	}
	l := uint64(binary.LittleEndian.Uint32(b[off:]))
	if l == 0xffffffff {
		if off+12 > uint64(len(b)) {
			return 0, 0, false
		}
		return binary.LittleEndian.Uint64(b[off+4:]), 12, true
	}
	return l, 4, true
}

func (t *Table) isCIE(off, hdrLen uint64) bool {
	p := off + hdrLen
	if p+4 > uint64(len(t.data)) {
		return false
	}
	id := binary.LittleEndian.Uint32(t.data[p:])
	if t.isDebug {
		return id == 0xffffffff
	}
	return id == 0
}

func (t *Table) parseFDEAt(off uint64) (*FDE, error) {
	length, hdrLen, ok := entryLength(t.data, off)
	if !ok || hdrLen != 4 && hdrLen != 12 {
		return nil, fmt.Errorf("%w: bad entry length at %#x", errCFI, off)
	}
	end := off + hdrLen + length
	if end > uint64(len(t.data)) || end < off {
		return nil, fmt.Errorf("%w: entry at %#x runs past the section", errCFI, off)
	}
	p := off + hdrLen
	if p+4 > end {
		return nil, fmt.Errorf("%w: short entry at %#x", errCFI, off)
	}
	var ciePtr uint64
	if t.isDebug {
		ciePtr = uint64(binary.LittleEndian.Uint32(t.data[p:]))
		if ciePtr == 0xffffffff {
			return nil, fmt.Errorf("%w: entry at %#x is a CIE", errCFI, off)
		}
	} else {
		id := uint64(binary.LittleEndian.Uint32(t.data[p:]))
		if id == 0 || id > p {
			return nil, fmt.Errorf("%w: entry at %#x is a CIE or has a bad CIE pointer", errCFI, off)
		}
		ciePtr = p - id
	}
	c, err := t.parseCIE(ciePtr)
	if err != nil {
		return nil, err
	}
	r := &reader{b: t.data[:end], pos: p + 4, base: t.addr}
	var start, rng uint64
	if t.isDebug {
		start, err = r.u64()
		if err == nil {
			rng, err = r.u64()
		}
	} else {
		start, err = r.encoded(c.fdeEnc)
		if err == nil {
			rng, err = r.encoded(c.fdeEnc & 0x0f)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%w: FDE at %#x: %v", errCFI, off, err)
	}
	if c.augZ {
		augLen, err := r.uleb()
		if err != nil || augLen > end-r.pos {
			return nil, fmt.Errorf("%w: FDE at %#x: bad augmentation length", errCFI, off)
		}
		r.pos += augLen
	}
	return &FDE{Start: start, End: start + rng, cie: c, insns: t.data[r.pos:end]}, nil
}

func (t *Table) parseCIE(off uint64) (*cie, error) {
	if c, ok := t.cies[off]; ok {
		if c == nil {
			return nil, fmt.Errorf("%w: bad CIE at %#x", errCFI, off)
		}
		return c, nil
	}
	c, err := t.parseCIEUncached(off)
	t.cies[off] = c
	return c, err
}

func (t *Table) parseCIEUncached(off uint64) (*cie, error) {
	length, hdrLen, ok := entryLength(t.data, off)
	if !ok {
		return nil, fmt.Errorf("%w: bad CIE length at %#x", errCFI, off)
	}
	end := off + hdrLen + length
	if end > uint64(len(t.data)) || end < off || !t.isCIE(off, hdrLen) {
		return nil, fmt.Errorf("%w: no CIE at %#x", errCFI, off)
	}
	r := &reader{b: t.data[:end], pos: off + hdrLen + 4, base: t.addr}
	version, err := r.u8()
	if err != nil {
		return nil, err
	}
	aug, err := r.cstr()
	if err != nil {
		return nil, err
	}
	if version == 4 {
		r.pos += 2 // address_size, segment_selector_size
	}
	c := &cie{fdeEnc: peAbsptr}
	if c.codeAlign, err = r.uleb(); err != nil {
		return nil, err
	}
	if c.dataAlign, err = r.sleb(); err != nil {
		return nil, err
	}
	if version == 1 {
		b, err := r.u8()
		if err != nil {
			return nil, err
		}
		c.raReg = uint64(b)
	} else if c.raReg, err = r.uleb(); err != nil {
		return nil, err
	}
	if len(aug) > 0 && aug[0] == 'z' {
		c.augZ = true
		augLen, err := r.uleb()
		if err != nil || augLen > end-r.pos {
			return nil, fmt.Errorf("%w: CIE at %#x: bad augmentation length", errCFI, off)
		}
		augEnd := r.pos + augLen
		for _, ch := range aug[1:] {
			switch ch {
			case 'R':
				if c.fdeEnc, err = r.u8(); err != nil {
					return nil, err
				}
			case 'L':
				if _, err = r.u8(); err != nil {
					return nil, err
				}
			case 'P':
				enc, err := r.u8()
				if err != nil {
					return nil, err
				}
				if _, err = r.encoded(enc &^ peIndir); err != nil {
					return nil, err
				}
			case 'S':
				c.signalFrame = true
			}
		}
		r.pos = augEnd
	} else {
		for _, ch := range aug {
			if ch == 'S' {
				c.signalFrame = true
			}
		}
	}
	if r.pos > end {
		return nil, fmt.Errorf("%w: CIE at %#x overruns", errCFI, off)
	}
	c.initial = t.data[r.pos:end]
	return c, nil
}

// reader decodes DWARF primitives with bounds checks.
type reader struct {
	b    []byte
	pos  uint64
	base uint64
}

var errShort = fmt.Errorf("%w: truncated", errCFI)

func (r *reader) u8() (byte, error) {
	if r.pos >= uint64(len(r.b)) {
		return 0, errShort
	}
	v := r.b[r.pos]
	r.pos++
	return v, nil
}

func (r *reader) fixed(n uint64) ([]byte, error) {
	if r.pos+n > uint64(len(r.b)) || r.pos+n < r.pos {
		return nil, errShort
	}
	v := r.b[r.pos : r.pos+n]
	r.pos += n
	return v, nil
}

func (r *reader) u16() (uint64, error) {
	b, err := r.fixed(2)
	if err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint16(b)), nil
}

func (r *reader) u32() (uint64, error) {
	b, err := r.fixed(4)
	if err != nil {
		return 0, err
	}
	return uint64(binary.LittleEndian.Uint32(b)), nil
}

func (r *reader) u64() (uint64, error) {
	b, err := r.fixed(8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

func (r *reader) uleb() (uint64, error) {
	var v uint64
	var shift uint
	for {
		b, err := r.u8()
		if err != nil {
			return 0, err
		}
		if shift < 64 {
			v |= uint64(b&0x7f) << shift
		}
		shift += 7
		if b&0x80 == 0 {
			return v, nil
		}
	}
}

func (r *reader) sleb() (int64, error) {
	var v int64
	var shift uint
	var b byte
	var err error
	for {
		b, err = r.u8()
		if err != nil {
			return 0, err
		}
		if shift < 64 {
			v |= int64(b&0x7f) << shift
		}
		shift += 7
		if b&0x80 == 0 {
			break
		}
	}
	if shift < 64 && b&0x40 != 0 {
		v |= -1 << shift
	}
	return v, nil
}

func (r *reader) cstr() (string, error) {
	start := r.pos
	for r.pos < uint64(len(r.b)) {
		if r.b[r.pos] == 0 {
			s := string(r.b[start:r.pos])
			r.pos++
			return s, nil
		}
		r.pos++
	}
	return "", errShort
}

// encoded reads a pointer in DW_EH_PE encoding enc (pc-relative values are
// relative to the field's own address, base+pos). Indirect pointers are not followed
// (they only appear for personality routines, which are skipped).
func (r *reader) encoded(enc byte) (uint64, error) {
	if enc == peOmit {
		return 0, nil
	}
	pc := r.base + r.pos
	var v uint64
	var err error
	switch enc & 0x0f {
	case peAbsptr, peUdata8, peSdata8:
		v, err = r.u64()
	case peUleb128:
		v, err = r.uleb()
	case peUdata2:
		v, err = r.u16()
	case peUdata4:
		v, err = r.u32()
	case peSleb128:
		var s int64
		s, err = r.sleb()
		v = uint64(s)
	case peSdata2:
		v, err = r.u16()
		v = uint64(int64(int16(v)))
	case peSdata4:
		v, err = r.u32()
		v = uint64(int64(int32(v)))
	default:
		return 0, fmt.Errorf("%w: unknown pointer encoding %#x", errCFI, enc)
	}
	if err != nil {
		return 0, err
	}
	switch enc & 0x70 {
	case 0:
	case pePcrel:
		v += pc
	case peDatarel:
		v += r.base
	default:
		return 0, fmt.Errorf("%w: unsupported pointer application %#x", errCFI, enc)
	}
	return v, nil
}
