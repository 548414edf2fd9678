package symbols

import (
	"errors"
	"fmt"
	"sort"
	"sync"
)

// This file decodes .debug_info (DWARF 2-5, with GNU extensions and dwz
// supplementary files) as far as naming frames needs: which functions,
// inlined ones included, contain an address, what gdb calls them, and the
// call sites they hold. It reads one unit's DIEs at a time and skips every
// subtree that cannot contain the address (by DW_AT_sibling when the
// producer wrote it), so a lookup costs little more than the path from the
// unit's root to the function. debug/dwarf would decode every attribute of
// every DIE it passes and needs .debug_loclists decompressed, the largest
// section of a glibc debug file.

// DWARF tags used here.
const (
	tagClassType       = 0x02
	tagLexicalBlock    = 0x0b
	tagCompileUnit     = 0x11
	tagStructType      = 0x13
	tagUnionType       = 0x17
	tagInlinedSub      = 0x1d
	tagModule          = 0x1e
	tagSubprogram      = 0x2e
	tagInterfaceType   = 0x38
	tagNamespace       = 0x39
	tagPartialUnit     = 0x3c
	tagCallSite        = 0x48
	tagSkeletonUnit    = 0x4a
	tagGNUCallSite     = 0x4109
	maxAbbrevAttrs     = 256
	maxAbbrevsPerTable = 1 << 20
)

// DWARF attributes used here.
const (
	atSibling        = 0x01
	atName           = 0x03
	atLowPC          = 0x11
	atHighPC         = 0x12
	atLanguage       = 0x13
	atAbstractOrigin = 0x31
	atDeclaration    = 0x3c
	atSpecification  = 0x47
	atRanges         = 0x55
	atCallFile       = 0x58
	atCallLine       = 0x59
	atLinkageName    = 0x6e
	atStrOffsetsBase = 0x72
	atAddrBase       = 0x73
	atRnglistsBase   = 0x74
	atStmtList       = 0x10
	atCallReturnPC   = 0x7d
	atCallOrigin     = 0x7f
	atCallTailCall   = 0x82
	atCallTarget     = 0x83
	atMIPSLinkage    = 0x2007
	atGNUCallTarget  = 0x2113
	atGNUTailCall    = 0x2115
)

// DWARF forms.
const (
	formAddr          = 0x01
	formBlock2        = 0x03
	formBlock4        = 0x04
	formFlag          = 0x0c
	formSdata         = 0x0d
	formRefAddr       = 0x10
	formRef1          = 0x11
	formRef2          = 0x12
	formRef4          = 0x13
	formRef8          = 0x14
	formRefUdata      = 0x15
	formIndirect      = 0x16
	formSecOffset     = 0x17
	formExprloc       = 0x18
	formFlagPresent   = 0x19
	formStrx          = 0x1a
	formAddrx         = 0x1b
	formRefSup4       = 0x1c
	formStrpSup       = 0x1d
	formRefSig8       = 0x20
	formImplicitConst = 0x21
	formLoclistx      = 0x22
	formRnglistx      = 0x23
	formRefSup8       = 0x24
	formStrx1         = 0x25
	formStrx2         = 0x26
	formStrx3         = 0x27
	formStrx4         = 0x28
	formAddrx1        = 0x29
	formAddrx2        = 0x2a
	formAddrx3        = 0x2b
	formAddrx4        = 0x2c
	formGNUAddrIndex  = 0x1f01
	formGNUStrIndex   = 0x1f02
	formGNURefAlt     = 0x1f20
	formGNUStrpAlt    = 0x1f21
)

var errInfo = errors.New("malformed .debug_info")

// dwarfSections are the sections .debug_info lookups need: the three
// large ones decompressed as far as lookups reach, the others whole.
type dwarfSections struct {
	// Each is decompressed when first read, and only as far as it is
	// read for info, abbrev and line (.debug_str, .debug_rnglists and the
	// others of a compressed debug file took 5% of a cold analysis when
	// they were decompressed up front).
	info, abbrev, line                                        *progressive
	str, lineStr, addr, strOffsets, ranges, rnglists, aranges *progressive
}

// dwarfInfo is the .debug_info of one file, decoded lazily. Its methods
// are safe for concurrent use.
type dwarfInfo struct {
	sec dwarfSections
	// alt is the dwz supplementary file (.gnu_debugaltlink), or nil.
	alt *dwarfInfo

	mu sync.Mutex
	// units are the units read so far, by the offset of their header;
	// seq holds those read in order from the start, to seqEnd.
	units   map[uint64]*unit
	seq     []*unit
	seqEnd  uint64
	seqDone bool
	byAddr  []unitRange
	// indexed is true once byAddr holds the units' own ranges (not only
	// .debug_aranges').
	indexed bool
	names   map[dieKey]string
	// fileTables and lineTables are the decoded file tables and line
	// programs, by offset in .debug_line.
	fileTables map[uint64][]fileName
	lineTables map[uint64]*lineTable
}

type dieKey struct {
	off  uint64
	lang uint16
}

// unitRange is an address range of a unit (at the offset off: units are
// read only when an address in them is looked up).
type unitRange struct {
	lo, hi uint64
	off    uint64
}

// unit is one unit header and what its root DIE says about the others.
type unit struct {
	d        *dwarfInfo
	off      uint64 // of the header
	dieOff   uint64 // first DIE
	end      uint64
	data     []byte // .debug_info up to end (set by load)
	version  uint16
	addrSize uint8
	offSize  uint8
	abbrevAt uint64

	rootOnce sync.Once
	abbrevs  *abbrevTable
	root     die
	rootErr  error
	lang     uint16
	base     uint64 // DW_AT_low_pc of the unit: base of range lists
	addrBase uint64
	strBase  uint64
	rngBase  uint64

	// ends memoises subtreeEnd for the DIEs with children and no
	// DW_AT_sibling (Go's compiler writes none): a scope lookup walks the
	// unit's top-level DIEs, and without it each lookup in a Go
	// package's unit (thousands of functions) parsed every DIE of every
	// function before the one it looked for again.
	endsMu sync.Mutex
	ends   map[uint64]uint64
}

// abbrevTable maps abbreviation codes to their declarations.
type abbrevTable struct {
	dense []*abbrev // by code, when codes are small
	other map[uint64]*abbrev
}

func (t *abbrevTable) get(code uint64) *abbrev {
	if code < uint64(len(t.dense)) {
		return t.dense[code]
	}
	return t.other[code]
}

type abbrev struct {
	tag      uint32
	children bool
	attrs    []attrSpec
}

type attrSpec struct {
	attr, form uint32
	implicit   int64
}

// refKind says where a DIE reference points.
type refKind uint8

const (
	refNone refKind = iota
	refInfo         // an offset in this file's .debug_info
	refAlt          // an offset in the supplementary file's .debug_info
)

type dieRef struct {
	kind refKind
	off  uint64
}

// strVal is a string attribute, resolved only when needed.
type strVal struct {
	form uint32
	val  uint64 // offset or index; for inline strings, the offset in .debug_info
}

// die is a decoded DIE with the attributes frames need.
type die struct {
	u        *unit
	off      uint64
	tag      uint32
	children bool
	next     uint64 // offset after the attributes
	sibling  uint64

	name, linkage strVal
	lowPC         uint64
	highPC        uint64
	hasLow        bool
	highKind      uint8 // 0 none, 1 address, 2 offset from low_pc
	ranges        uint64
	rangesKind    uint8 // 0 none, 1 section offset, 2 rnglistx index
	origin, spec  dieRef
	callFile      uint64
	callLine      uint64
	declaration   bool
	// call sites
	tailCall    bool
	returnPC    uint64
	hasReturnPC bool
	callOrigin  dieRef
	callTarget  []byte
	lang        uint16
	addrBase    uint64
	strBase     uint64
	rngBase     uint64
	hasAddrBase bool
	hasStrBase  bool
	hasRngBase  bool
	lowIsIndex  bool
	highIsIndex bool
	returnIsIdx bool
	stmtList    uint64
	hasStmtList bool
}

// newDWARFInfo returns a lazily decoded .debug_info, or nil when there is none.
func newDWARFInfo(sec dwarfSections) *dwarfInfo {
	if sec.info.size() == 0 || sec.abbrev.size() == 0 {
		return nil
	}
	return &dwarfInfo{sec: sec, names: map[dieKey]string{}, units: map[uint64]*unit{}}
}

// infoReader reads little-endian DWARF values; an out-of-bounds read sets
// err and returns zeros.
type infoReader struct {
	b   []byte
	pos uint64
	err error
}

func (r *infoReader) fail() {
	if r.err == nil {
		r.err = errInfo
	}
	r.pos = uint64(len(r.b))
}

func (r *infoReader) u8() uint8 {
	if r.pos >= uint64(len(r.b)) {
		r.fail()
		return 0
	}
	v := r.b[r.pos]
	r.pos++
	return v
}

func (r *infoReader) fixed(n uint64) uint64 {
	if n > 8 || r.pos+n > uint64(len(r.b)) || r.pos+n < r.pos {
		r.fail()
		return 0
	}
	var v uint64
	for i := uint64(0); i < n; i++ {
		v |= uint64(r.b[r.pos+i]) << (8 * i)
	}
	r.pos += n
	return v
}

func (r *infoReader) skip(n uint64) {
	if r.pos+n > uint64(len(r.b)) || r.pos+n < r.pos {
		r.fail()
		return
	}
	r.pos += n
}

func (r *infoReader) uleb() uint64 {
	var v uint64
	var shift uint
	for {
		c := r.u8()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			return v
		}
	}
}

func (r *infoReader) sleb() int64 {
	var v int64
	var shift uint
	var c byte
	for {
		c = r.u8()
		if r.err != nil {
			return 0
		}
		if shift < 64 {
			v |= int64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			break
		}
	}
	if shift < 64 && c&0x40 != 0 {
		v |= -1 << shift
	}
	return v
}

func (r *infoReader) cstrEnd() {
	for i := r.pos; i < uint64(len(r.b)); i++ {
		if r.b[i] == 0 {
			r.pos = i + 1
			return
		}
	}
	r.fail()
}

// unitStarting returns the unit whose header is at off (an offset
// .debug_aranges gives), reading that header only.
func (d *dwarfInfo) unitStarting(off uint64) *unit {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.unitStartingLocked(off)
}

func (d *dwarfInfo) unitStartingLocked(off uint64) *unit {
	if u, ok := d.units[off]; ok {
		return u
	}
	u, err := d.parseUnitHeader(off)
	if err != nil {
		u = nil
	}
	d.units[off] = u
	return u
}

func (d *dwarfInfo) parseUnitHeader(off uint64) (*unit, error) {
	r := &infoReader{b: d.sec.info.prefix(off + 64), pos: off}
	length := r.fixed(4)
	u := &unit{d: d, off: off, offSize: 4}
	if length == 0xffffffff {
		length = r.fixed(8)
		u.offSize = 8
	} else if length >= 0xfffffff0 {
		return nil, errInfo
	}
	u.end = r.pos + length
	if r.err != nil || u.end > d.sec.info.size() || u.end < r.pos {
		return nil, errInfo
	}
	u.version = uint16(r.fixed(2))
	switch {
	case u.version >= 2 && u.version <= 4:
		u.abbrevAt = r.fixed(uint64(u.offSize))
		u.addrSize = r.u8()
	case u.version == 5:
		typ := r.u8()
		u.addrSize = r.u8()
		u.abbrevAt = r.fixed(uint64(u.offSize))
		switch typ {
		case 0x04, 0x05: // skeleton, split_compile: dwo_id
			r.skip(8)
		case 0x02, 0x06: // type, split_type: signature and type offset
			r.skip(8 + uint64(u.offSize))
		}
	default:
		return nil, fmt.Errorf("%w: unit at %#x has version %d", errInfo, off, u.version)
	}
	if r.err != nil || (u.addrSize != 4 && u.addrSize != 8) {
		return nil, errInfo
	}
	u.dieOff = r.pos
	if u.dieOff > u.end {
		return nil, errInfo
	}
	return u, nil
}

// unitAt returns the unit holding the .debug_info offset off (of its
// header or of one of its DIEs).
// The units before off are read in order to find it (and the section
// decompressed that far): references between units are rare.
func (d *dwarfInfo) unitAt(off uint64) *unit {
	d.mu.Lock()
	defer d.mu.Unlock()
	for !d.seqDone && d.seqEnd <= off && d.seqEnd+11 <= d.sec.info.size() {
		u := d.unitStartingLocked(d.seqEnd)
		if u == nil {
			d.seqDone = true
			break
		}
		d.seq = append(d.seq, u)
		d.seqEnd = u.end
	}
	i := sort.Search(len(d.seq), func(i int) bool { return d.seq[i].end > off })
	if i < len(d.seq) && d.seq[i].off <= off {
		return d.seq[i]
	}
	return nil
}

// allUnits reads every unit header.
func (d *dwarfInfo) allUnits() []*unit {
	d.unitAt(^uint64(0) - 1)
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seq
}

// abbrevTable reads the abbreviation table at off, decompressing
// .debug_abbrev as far as the table goes.
func (d *dwarfInfo) abbrevTable(off uint64) (*abbrevTable, error) {
	for n := off + 8192; ; n = off + 2*(n-off) {
		b := d.sec.abbrev.prefix(n)
		t, err := parseAbbrevs(b, off)
		if err == nil || uint64(len(b)) >= d.sec.abbrev.size() || uint64(len(b)) < n {
			return t, err
		}
	}
}

// load reads the unit's abbreviations and root DIE (once).
func (u *unit) load() error {
	u.rootOnce.Do(func() {
		data := u.d.sec.info.prefix(u.end)
		if uint64(len(data)) < u.end {
			u.rootErr = fmt.Errorf("%w: unit at %#x is cut short", errInfo, u.off)
			return
		}
		u.data = data[:u.end:u.end]
		u.abbrevs, u.rootErr = u.d.abbrevTable(u.abbrevAt)
		if u.rootErr != nil {
			return
		}
		// The root's own attributes need no bases (strx and addrx forms
		// in the root are resolved after its bases are known).
		u.root, u.rootErr = u.readDIE(u.dieOff)
		if u.rootErr != nil {
			return
		}
		r := &u.root
		u.lang = r.lang
		if r.hasAddrBase {
			u.addrBase = r.addrBase
		}
		if r.hasStrBase {
			u.strBase = r.strBase
		} else if u.version >= 5 {
			u.strBase = 8 // the header of the first contribution (DWARF 5, 7.26)
		}
		if r.hasRngBase {
			u.rngBase = r.rngBase
		}
		if r.hasLow {
			u.base, _ = u.addr(r.lowPC, r.lowIsIndex)
		}
	})
	return u.rootErr
}

// parseAbbrevs reads the abbreviation table at off.
func parseAbbrevs(b []byte, off uint64) (*abbrevTable, error) {
	t := &abbrevTable{other: map[uint64]*abbrev{}}
	r := &infoReader{b: b, pos: off}
	for n := 0; ; n++ {
		if n > maxAbbrevsPerTable {
			return nil, errInfo
		}
		code := r.uleb()
		if r.err != nil {
			return nil, fmt.Errorf("%w: abbreviations at %#x", errInfo, off)
		}
		if code == 0 {
			return t, nil
		}
		a := &abbrev{tag: uint32(r.uleb()), children: r.u8() != 0}
		for {
			attr, form := r.uleb(), r.uleb()
			if r.err != nil {
				return nil, fmt.Errorf("%w: abbreviations at %#x", errInfo, off)
			}
			if attr == 0 && form == 0 {
				break
			}
			s := attrSpec{attr: uint32(attr), form: uint32(form)}
			if form == formImplicitConst {
				s.implicit = r.sleb()
			}
			if len(a.attrs) >= maxAbbrevAttrs {
				return nil, errInfo
			}
			a.attrs = append(a.attrs, s)
		}
		if code < 4096 {
			for uint64(len(t.dense)) <= code {
				t.dense = append(t.dense, nil)
			}
			t.dense[code] = a
		} else {
			t.other[code] = a
		}
	}
}

// readDIE decodes the DIE at off (which must lie in u). A null entry
// gives a die with tag 0.
func (u *unit) readDIE(off uint64) (die, error) {
	d := die{u: u, off: off}
	if off >= u.end {
		return d, errInfo
	}
	r := &infoReader{b: u.data, pos: off}
	code := r.uleb()
	if r.err != nil {
		return d, r.err
	}
	if code == 0 {
		d.next = r.pos
		return d, nil
	}
	a := u.abbrevs.get(code)
	if a == nil {
		return d, fmt.Errorf("%w: unknown abbreviation %d at %#x", errInfo, code, off)
	}
	d.tag, d.children = a.tag, a.children
	for _, s := range a.attrs {
		form := s.form
		if form == formIndirect {
			form = uint32(r.uleb())
		}
		u.attr(r, &d, s.attr, form, s.implicit)
		if r.err != nil {
			return d, fmt.Errorf("%w: DIE at %#x", errInfo, off)
		}
	}
	d.next = r.pos
	return d, nil
}

// attr reads one attribute value and keeps the ones frames need.
func (u *unit) attr(r *infoReader, d *die, at, form uint32, implicit int64) {
	var v uint64
	var ref dieRef
	var block []byte
	isStr, isRef, isIndex := false, false, false
	offSize := uint64(u.offSize)
	switch form {
	case formAddr:
		v = r.fixed(uint64(u.addrSize))
	case formBlock2:
		n := r.fixed(2)
		block = r.block(n)
	case formBlock4:
		n := r.fixed(4)
		block = r.block(n)
	case formData2:
		v = r.fixed(2)
	case formData4:
		v = r.fixed(4)
	case formData8:
		v = r.fixed(8)
	case formData16:
		r.skip(16)
	case formString:
		v = r.pos
		r.cstrEnd()
		isStr = true
	case formBlock, formExprloc:
		n := r.uleb()
		block = r.block(n)
	case 0x0a: // block1
		n := r.fixed(1)
		block = r.block(n)
	case formData1, formFlag:
		v = r.fixed(1)
	case formSdata:
		v = uint64(r.sleb())
	case formStrp, formLineStrp, formStrpSup, formGNUStrpAlt:
		v = r.fixed(offSize)
		isStr = true
	case formUdata:
		v = r.uleb()
	case formRefAddr:
		n := offSize
		if u.version <= 2 {
			n = uint64(u.addrSize)
		}
		ref = dieRef{refInfo, r.fixed(n)}
		isRef = true
	case formRef1:
		ref, isRef = dieRef{refInfo, u.off + r.fixed(1)}, true
	case formRef2:
		ref, isRef = dieRef{refInfo, u.off + r.fixed(2)}, true
	case formRef4:
		ref, isRef = dieRef{refInfo, u.off + r.fixed(4)}, true
	case formRef8:
		ref, isRef = dieRef{refInfo, u.off + r.fixed(8)}, true
	case formRefUdata:
		ref = dieRef{refInfo, u.off + r.uleb()}
		isRef = true
	case formSecOffset:
		v = r.fixed(offSize)
	case formFlagPresent:
		v = 1
	case formStrx, formGNUStrIndex:
		v = r.uleb()
		isStr = true
	case formStrx1, formStrx2, formStrx3, formStrx4:
		v = r.fixed(uint64(form-formStrx1) + 1)
		isStr = true
	case formAddrx, formGNUAddrIndex:
		v = r.uleb()
		isIndex = true
	case formAddrx1, formAddrx2, formAddrx3, formAddrx4:
		v = r.fixed(uint64(form-formAddrx1) + 1)
		isIndex = true
	case formRefSup4:
		ref = dieRef{refAlt, r.fixed(4)}
		isRef = true
	case formRefSup8:
		ref = dieRef{refAlt, r.fixed(8)}
		isRef = true
	case formGNURefAlt:
		ref = dieRef{refAlt, r.fixed(offSize)}
		isRef = true
	case formRefSig8:
		r.skip(8)
	case formImplicitConst:
		v = uint64(implicit)
	case formLoclistx, formRnglistx:
		v = r.uleb()
		isIndex = true
	default:
		r.err = fmt.Errorf("%w: unknown form %#x", errInfo, form)
		r.pos = uint64(len(r.b))
		return
	}
	switch at {
	case atSibling:
		if isRef && ref.kind == refInfo {
			d.sibling = ref.off
		}
	case atName:
		if isStr {
			d.name = strVal{form, v}
		}
	case atLinkageName, atMIPSLinkage:
		if isStr {
			d.linkage = strVal{form, v}
		}
	case atLowPC:
		if d.tag == tagGNUCallSite { // the GNU call site's low_pc is its return address
			d.returnPC, d.hasReturnPC, d.returnIsIdx = v, true, isIndex
			return
		}
		d.lowPC, d.hasLow, d.lowIsIndex = v, true, isIndex
	case atHighPC:
		d.highPC, d.highIsIndex = v, isIndex
		if form == formAddr || isIndex {
			d.highKind = 1
		} else {
			d.highKind = 2
		}
	case atRanges:
		d.ranges = v
		d.rangesKind = 1
		if form == formRnglistx {
			d.rangesKind = 2
		}
	case atAbstractOrigin:
		if isRef {
			d.origin = ref
			if d.tag == tagGNUCallSite {
				d.callOrigin = ref
			}
		}
	case atSpecification:
		if isRef {
			d.spec = ref
		}
	case atCallFile:
		d.callFile = v
	case atCallLine:
		d.callLine = v
	case atDeclaration:
		d.declaration = v != 0
	case atLanguage:
		d.lang = uint16(v)
	case atAddrBase:
		d.addrBase, d.hasAddrBase = v, true
	case atStrOffsetsBase:
		d.strBase, d.hasStrBase = v, true
	case atRnglistsBase:
		d.rngBase, d.hasRngBase = v, true
	case atCallReturnPC:
		d.returnPC, d.hasReturnPC, d.returnIsIdx = v, true, isIndex
	case atStmtList:
		d.stmtList, d.hasStmtList = v, true
	case atCallTailCall, atGNUTailCall:
		d.tailCall = v != 0
	case atCallOrigin:
		if isRef {
			d.callOrigin = ref
		}
	case atCallTarget, atGNUCallTarget:
		d.callTarget = block
	}
}

func (r *infoReader) block(n uint64) []byte {
	if r.pos+n > uint64(len(r.b)) || r.pos+n < r.pos {
		r.fail()
		return nil
	}
	b := r.b[r.pos : r.pos+n]
	r.pos += n
	return b
}

// str resolves a string attribute of a DIE of u.
func (u *unit) str(s strVal) string {
	d := u.d
	switch s.form {
	case 0:
		return ""
	case formString:
		return cstrAt(u.data, s.val)
	case formStrp:
		return d.sec.str.cstringAt(s.val)
	case formLineStrp:
		return cstrAt(d.sec.lineStr.all(), s.val)
	case formStrpSup, formGNUStrpAlt:
		if d.alt != nil {
			return d.alt.sec.str.cstringAt(s.val)
		}
		return ""
	default: // strx forms
		off := u.strBase + s.val*uint64(u.offSize)
		r := &infoReader{b: d.sec.strOffsets.all(), pos: off}
		return d.sec.str.cstringAt(r.fixed(uint64(u.offSize)))
	}
}

func cstrAt(b []byte, off uint64) string {
	if off >= uint64(len(b)) {
		return ""
	}
	for i := off; i < uint64(len(b)); i++ {
		if b[i] == 0 {
			return string(b[off:i])
		}
	}
	return ""
}

// addr resolves an address attribute (an index into .debug_addr when
// isIndex).
func (u *unit) addr(v uint64, isIndex bool) (uint64, bool) {
	if !isIndex {
		return v, true
	}
	r := &infoReader{b: u.d.sec.addr.all(), pos: u.addrBase + v*uint64(u.addrSize)}
	a := r.fixed(uint64(u.addrSize))
	return a, r.err == nil
}

// follow returns the DIE a reference of x points to.
func (x *die) follow(ref dieRef) (die, bool) {
	if x.u == nil {
		return die{}, false
	}
	dd := x.u.d
	if ref.kind == refAlt {
		dd = dd.alt
	}
	if dd == nil || ref.kind == refNone {
		return die{}, false
	}
	u := x.u // most references stay in their unit
	if ref.kind == refAlt || ref.off < u.off || ref.off >= u.end {
		u = dd.unitAt(ref.off)
	}
	if u == nil || u.load() != nil {
		return die{}, false
	}
	y, err := u.readDIE(ref.off)
	if err != nil || y.tag == 0 {
		return die{}, false
	}
	return y, true
}
