package symbols

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"path"
	"slices"
	"sort"
)

// lineRow is one row of a DWARF line table.
type lineRow struct {
	addr uint64
	unit int32 // index into lineTable.units
	file int32 // index into the unit's files
	line int32
	end  bool // end_sequence: no code at and after addr in this sequence
	stmt bool // is_stmt: a recommended breakpoint location
}

// lineTable is the whole .debug_line of an object, decoded once and sorted,
// so that line lookups need neither .debug_info nor a compilation unit
// search (debug/dwarf needs both, and .debug_info is by far the largest
// section to decompress).
type lineTable struct {
	rows []lineRow
	// units holds each line program's file table.
	units []*unitFiles
	// want, when set, filters the sequences kept (sorted addresses).
	want []uint64
}

// unitFiles is the not yet decoded file table of one line program.
type unitFiles struct {
	r       lineReader // positioned at the directory table
	version uint64
	offSize uint64
	lineStr []byte
	str     func() []byte
	files   []fileName
	done    bool
}

// decode reads the directory and file tables (once); a malformed table
// gives no files.
func (u *unitFiles) decode() []fileName {
	if u.done {
		return u.files
	}
	u.done = true
	r := &u.r
	if u.version >= 5 {
		dirs, _, err := r.readEntries(u.offSize, u.lineStr, u.str)
		if err != nil {
			return nil
		}
		names, dirIdx, err := r.readEntries(u.offSize, u.lineStr, u.str)
		if err != nil {
			return nil
		}
		files := make([]fileName, 0, len(names))
		for i, n := range names {
			f := fileName{name: n}
			if dirIdx[i] < uint64(len(dirs)) && dirIdx[i] > 0 {
				f.dir = dirs[dirIdx[i]]
			}
			files = append(files, f)
		}
		u.files = files
		return files
	}
	dirs := []string{""}
	for len(dirs) < maxLineFiles {
		s, err := r.cstr()
		if err != nil {
			return nil
		}
		if s == "" {
			break
		}
		dirs = append(dirs, s)
	}
	files := []fileName{{}} // DWARF < 5 numbers files from 1
	for len(files) < maxLineFiles {
		s, err := r.cstr()
		if err != nil {
			return files
		}
		if s == "" {
			break
		}
		d, _ := r.uleb()
		r.uleb() // mtime
		r.uleb() // length
		f := fileName{name: s}
		if d > 0 && d < uint64(len(dirs)) {
			f.dir = dirs[d]
		}
		files = append(files, f)
	}
	u.files = files
	return files
}

// fileName is a file of a line program with its directory, joined lazily.
type fileName struct{ dir, name string }

func (f fileName) String() string {
	if f.dir == "" || path.IsAbs(f.name) {
		return f.name
	}
	return path.Join(f.dir, f.name)
}

// wanted reports whether an address in [lo, hi] is wanted.
func (lt *lineTable) wanted(lo, hi uint64) bool {
	i := sort.Search(len(lt.want), func(i int) bool { return lt.want[i] >= lo })
	return i < len(lt.want) && lt.want[i] <= hi
}

// Bounds on what a line table may make us allocate.
const (
	maxLineRows  = 1 << 24
	maxLineFiles = 1 << 20
)

var errLine = errors.New("malformed .debug_line")

// parseLineTable decodes every line program in .debug_line (DWARF 2-5).
// lineStr is .debug_line_str; str returns .debug_str (for DWARF 5 forms),
// called only if a header refers to it.
// When want (sorted addresses) is not nil, only the sequences that contain
// one of them are kept: one pass over the section, no large table.
func parseLineTable(b, lineStr []byte, str func() []byte, want []uint64) (*lineTable, error) {
	lt := &lineTable{want: want}
	if want == nil {
		// Line programs take about four bytes per row: size the table once.
		lt.rows = make([]lineRow, 0, min(len(b)/4+16, maxLineRows))
	}
	for off := uint64(0); off < uint64(len(b)); {
		next, err := lt.parseUnit(b, off, lineStr, str)
		if err != nil {
			if len(lt.rows) == 0 {
				return nil, err
			}
			break // keep what was decoded before the damage
		}
		off = next
	}
	lt.sortBySequence()
	return lt, nil
}

// sortBySequence orders the rows by address. Rows within a sequence are
// already ascending (DWARF requires it), so sequences are sorted as blocks:
// far cheaper than sorting a million rows one by one.
func (lt *lineTable) sortBySequence() {
	type seq struct{ start, end int }
	var seqs []seq
	begin := 0
	sorted := true
	for i, r := range lt.rows {
		if i > begin && r.addr < lt.rows[i-1].addr {
			sorted = false
		}
		if r.end {
			seqs = append(seqs, seq{begin, i + 1})
			begin = i + 1
		}
	}
	if begin < len(lt.rows) {
		seqs = append(seqs, seq{begin, len(lt.rows)})
	}
	if !sorted {
		slices.SortStableFunc(lt.rows, byRowAddr)
		return
	}
	slices.SortStableFunc(seqs, func(a, b seq) int { return cmp.Compare(lt.rows[a.start].addr, lt.rows[b.start].addr) })
	out := make([]lineRow, 0, len(lt.rows))
	for _, s := range seqs {
		out = append(out, lt.rows[s.start:s.end]...)
	}
	// Sequences may still interleave (overlapping ranges, such as code of
	// discarded functions at address 0): fall back to a full sort then.
	for i := 1; i < len(out); i++ {
		if out[i].addr < out[i-1].addr {
			slices.SortStableFunc(out, byRowAddr)
			break
		}
	}
	lt.rows = out
}

type lineReader struct {
	b   []byte
	pos uint64
	end uint64
}

func (r *lineReader) u8() (uint8, error) {
	if r.pos >= r.end {
		return 0, errLine
	}
	v := r.b[r.pos]
	r.pos++
	return v, nil
}

func (r *lineReader) fixed(n uint64) (uint64, error) {
	if n > 8 || r.pos+n > r.end || r.pos+n < r.pos {
		return 0, errLine
	}
	var v uint64
	for i := uint64(0); i < n; i++ {
		v |= uint64(r.b[r.pos+i]) << (8 * i)
	}
	r.pos += n
	return v, nil
}

func (r *lineReader) uleb() (uint64, error) {
	var v uint64
	var shift uint
	for {
		c, err := r.u8()
		if err != nil {
			return 0, err
		}
		if shift < 64 {
			v |= uint64(c&0x7f) << shift
		}
		shift += 7
		if c&0x80 == 0 {
			return v, nil
		}
	}
}

func (r *lineReader) sleb() (int64, error) {
	var v int64
	var shift uint
	var c byte
	var err error
	for {
		c, err = r.u8()
		if err != nil {
			return 0, err
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
	return v, nil
}

func (r *lineReader) cstr() (string, error) {
	for i := r.pos; i < r.end; i++ {
		if r.b[i] == 0 {
			s := string(r.b[r.pos:i])
			r.pos = i + 1
			return s, nil
		}
	}
	return "", errLine
}

func strAt(sec []byte, off uint64) string {
	if off >= uint64(len(sec)) {
		return ""
	}
	for i := off; i < uint64(len(sec)); i++ {
		if sec[i] == 0 {
			return string(sec[off:i])
		}
	}
	return ""
}

// DWARF forms used in DWARF 5 line table headers.
const (
	formBlock    = 0x09
	formData1    = 0x0b
	formData2    = 0x05
	formData4    = 0x06
	formData8    = 0x07
	formData16   = 0x1e
	formString   = 0x08
	formStrp     = 0x0e
	formLineStrp = 0x1f
	formUdata    = 0x0f
	lnctPath     = 1
	lnctDirIndex = 2
)

// readForm reads one attribute value: a string for string forms, else a number.
func (r *lineReader) readForm(form uint64, offSize uint64, lineStr []byte, str func() []byte) (string, uint64, error) {
	switch form {
	case formString:
		s, err := r.cstr()
		return s, 0, err
	case formLineStrp, formStrp:
		off, err := r.fixed(offSize)
		if err != nil {
			return "", 0, err
		}
		if form == formLineStrp {
			return strAt(lineStr, off), 0, nil
		}
		return strAt(str(), off), 0, nil
	case formUdata:
		v, err := r.uleb()
		return "", v, err
	case formData1:
		v, err := r.fixed(1)
		return "", v, err
	case formData2:
		v, err := r.fixed(2)
		return "", v, err
	case formData4:
		v, err := r.fixed(4)
		return "", v, err
	case formData8:
		v, err := r.fixed(8)
		return "", v, err
	case formData16:
		if r.pos+16 > r.end {
			return "", 0, errLine
		}
		r.pos += 16
		return "", 0, nil
	case formBlock:
		n, err := r.uleb()
		if err != nil || r.pos+n > r.end || r.pos+n < r.pos {
			return "", 0, errLine
		}
		r.pos += n
		return "", 0, nil
	}
	return "", 0, fmt.Errorf("%w: unsupported form %#x in header", errLine, form)
}

// readEntries reads DWARF 5 directory or file entries: (path, dir index).
func (r *lineReader) readEntries(offSize uint64, lineStr []byte, str func() []byte) ([]string, []uint64, error) {
	nfmt, err := r.u8()
	if err != nil {
		return nil, nil, err
	}
	type format struct{ content, form uint64 }
	formats := make([]format, nfmt)
	for i := range formats {
		if formats[i].content, err = r.uleb(); err != nil {
			return nil, nil, err
		}
		if formats[i].form, err = r.uleb(); err != nil {
			return nil, nil, err
		}
	}
	count, err := r.uleb()
	if err != nil || count > maxLineFiles || count > r.end-r.pos {
		return nil, nil, errLine
	}
	paths := make([]string, count)
	dirs := make([]uint64, count)
	for i := uint64(0); i < count; i++ {
		for _, f := range formats {
			s, v, err := r.readForm(f.form, offSize, lineStr, str)
			if err != nil {
				return nil, nil, err
			}
			switch f.content {
			case lnctPath:
				paths[i] = s
			case lnctDirIndex:
				dirs[i] = v
			}
		}
	}
	return paths, dirs, nil
}

// parseUnit decodes the line program of the unit at off, appending its
// rows, and returns the offset of the next unit.
func (lt *lineTable) parseUnit(b []byte, off uint64, lineStr []byte, str func() []byte) (uint64, error) {
	h, err := parseLineHeader(b, off)
	if err != nil {
		return 0, err
	}
	// The file table is decoded only when a row of this unit is looked
	// up: most units of a large library are never needed.
	unit := int32(len(lt.units))
	lt.units = append(lt.units, &unitFiles{r: lineReader{b: b, pos: h.filesAt, end: h.progStart}, version: h.version,
		offSize: h.offSize, lineStr: lineStr, str: str})
	m := lineMachine{lt: lt, h: &h, r: lineReader{b: b, pos: h.progStart, end: h.end}, unit: unit}
	m.reset()
	if err := m.run(); err != nil {
		return 0, err
	}
	return h.end, nil
}

// lineHeader is what the line program of one unit needs of its header.
type lineHeader struct {
	version, offSize uint64
	// end is the end of the unit; progStart the start of its line
	// program; filesAt the start of its directory and file tables.
	end, progStart, filesAt uint64
	minInst                 uint64
	defaultStmt             bool
	lineBase                int64
	lineRange, opcodeBase   uint8
	// stdLens are the operand counts of the standard opcodes.
	stdLens []uint8
}

// parseLineHeader reads the header of the unit at off (DWARF 2-5).
func parseLineHeader(b []byte, off uint64) (lineHeader, error) {
	var h lineHeader
	le := binary.LittleEndian
	if off+4 > uint64(len(b)) {
		return h, errLine
	}
	length := uint64(le.Uint32(b[off:]))
	hdr := uint64(4)
	h.offSize = 4
	if length == 0xffffffff {
		if off+12 > uint64(len(b)) {
			return h, errLine
		}
		length = le.Uint64(b[off+4:])
		hdr, h.offSize = 12, 8
	}
	h.end = off + hdr + length
	if h.end > uint64(len(b)) || h.end < off || length < 2 {
		return h, errLine
	}
	r := &lineReader{b: b, pos: off + hdr, end: h.end}
	var err error
	h.version, err = r.fixed(2)
	if err != nil || h.version < 2 || h.version > 5 {
		return h, fmt.Errorf("%w: version %d", errLine, h.version)
	}
	if h.version >= 5 {
		if _, err := r.fixed(2); err != nil { // address_size, segment_selector_size
			return h, err
		}
	}
	headerLen, err := r.fixed(h.offSize)
	if err != nil {
		return h, err
	}
	h.progStart = r.pos + headerLen
	if h.progStart > h.end || h.progStart < r.pos {
		return h, errLine
	}
	minInst, _ := r.u8()
	h.minInst = uint64(minInst)
	if h.version >= 4 {
		r.u8() // maximum_operations_per_instruction (VLIW only)
	}
	defStmt, _ := r.u8()
	h.defaultStmt = defStmt != 0
	lb, _ := r.u8()
	h.lineBase = int64(int8(lb))
	h.lineRange, _ = r.u8()
	h.opcodeBase, err = r.u8()
	if err != nil || h.lineRange == 0 || h.opcodeBase == 0 {
		return h, errLine
	}
	h.stdLens = make([]uint8, h.opcodeBase)
	for i := uint8(1); i < h.opcodeBase; i++ {
		if h.stdLens[i], err = r.u8(); err != nil {
			return h, err
		}
	}
	h.filesAt = r.pos
	return h, nil
}

// lineMachine is the line-number state machine (DWARF 5, 6.2.2) running
// the program of one unit and appending its rows to lt.
type lineMachine struct {
	lt   *lineTable
	h    *lineHeader
	r    lineReader
	unit int32
	addr uint64
	file uint64
	line int64
	stmt bool
	// seqStart is the first row of the current sequence.
	seqStart int
}

// reset starts a new sequence.
func (m *lineMachine) reset() {
	m.addr, m.file, m.line, m.stmt = 0, 1, 1, m.h.defaultStmt
	m.seqStart = len(m.lt.rows)
}

func (m *lineMachine) run() error {
	for m.r.pos < m.r.end {
		op, _ := m.r.u8()
		var err error
		switch {
		case op >= m.h.opcodeBase:
			err = m.special(op)
		case op == 0:
			err = m.extended()
		default:
			err = m.standard(op)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// emit appends a row; at the end of a sequence, the sequence is kept only
// if it covers a wanted address.
func (m *lineMachine) emit(endSeq bool) error {
	lt := m.lt
	if len(lt.rows) >= maxLineRows {
		return errLine
	}
	file := int32(-1)
	if m.file < 1<<31 {
		file = int32(m.file)
	}
	lt.rows = append(lt.rows, lineRow{addr: m.addr, unit: m.unit, file: file, line: int32(m.line), end: endSeq, stmt: m.stmt})
	if endSeq && lt.want != nil {
		if m.seqStart < len(lt.rows) && !lt.wanted(lt.rows[m.seqStart].addr, m.addr) {
			lt.rows = lt.rows[:m.seqStart]
		}
		m.seqStart = len(lt.rows)
	}
	return nil
}

// special executes a special opcode: advance address and line, emit a row.
func (m *lineMachine) special(op uint8) error {
	adj := uint64(op - m.h.opcodeBase)
	m.addr += (adj / uint64(m.h.lineRange)) * m.h.minInst
	m.line += m.h.lineBase + int64(adj%uint64(m.h.lineRange))
	return m.emit(false)
}

// extended executes an extended opcode (end_sequence, set_address; others
// are skipped by their length).
func (m *lineMachine) extended() error {
	r := &m.r
	n, err := r.uleb()
	if err != nil || n == 0 || r.pos+n > r.end || r.pos+n < r.pos {
		return errLine
	}
	next := r.pos + n
	sub, _ := r.u8()
	switch sub {
	case 1: // end_sequence
		if err := m.emit(true); err != nil {
			return err
		}
		m.reset()
	case 2: // set_address
		if n-1 == 8 || n-1 == 4 {
			m.addr, _ = r.fixed(n - 1)
		}
	}
	r.pos = next
	return nil
}

// standard executes a standard opcode.
func (m *lineMachine) standard(op uint8) error {
	r := &m.r
	var v uint64
	var err error
	switch op {
	case 1: // copy
		return m.emit(false)
	case 2: // advance_pc
		if v, err = r.uleb(); err == nil {
			m.addr += v * m.h.minInst
		}
	case 3: // advance_line
		var d int64
		if d, err = r.sleb(); err == nil {
			m.line += d
		}
	case 4: // set_file
		if v, err = r.uleb(); err == nil {
			m.file = v
		}
	case 5, 12: // set_column, set_isa
		_, err = r.uleb()
	case 6: // negate_stmt
		m.stmt = !m.stmt
	case 7, 10, 11: // basic_block, prologue_end, epilogue_begin
	case 8: // const_add_pc
		m.addr += (uint64(255-m.h.opcodeBase) / uint64(m.h.lineRange)) * m.h.minInst
	case 9: // fixed_advance_pc
		if v, err = r.fixed(2); err == nil {
			m.addr += v
		}
	default: // unknown standard opcode: skip its uleb operands
		for i := uint8(0); i < m.h.stdLens[op] && err == nil; i++ {
			_, err = r.uleb()
		}
	}
	return err
}

// lookup returns the file and line of addr as gdb finds them: the last
// row at or before addr; when several rows share its address and that
// one is not a statement (is_stmt), the last statement row among them.
func (lt *lineTable) lookup(addr uint64) (string, int, bool) {
	i := sort.Search(len(lt.rows), func(i int) bool { return lt.rows[i].addr > addr }) - 1
	if i < 0 {
		return "", 0, false
	}
	at := lt.rows[i].addr
	best := -1
	// Several sequences may share an address (an end_sequence and the
	// start of the next): an end marker has no line.
	for k := i; k >= 0 && k > i-64 && lt.rows[k].addr == at; k-- {
		row := lt.rows[k]
		if row.end || row.line == 0 {
			continue
		}
		if best < 0 {
			best = k
		}
		if row.stmt {
			best = k
			break
		}
	}
	if best < 0 {
		return "", 0, false
	}
	row := lt.rows[best]
	if row.file >= 0 && int(row.unit) < len(lt.units) {
		if files := lt.units[row.unit].decode(); int(row.file) < len(files) {
			return files[row.file].String(), int(row.line), true
		}
	}
	return "", 0, false
}

// parseUnitLineTable decodes the one line program at off in .debug_line:
// the lines of one compilation unit, found through .debug_info.
func parseUnitLineTable(b, lineStr []byte, str func() []byte, off uint64) (*lineTable, error) {
	lt := &lineTable{}
	if _, err := lt.parseUnit(b, off, lineStr, str); err != nil && len(lt.rows) == 0 {
		return nil, err
	}
	lt.sortBySequence()
	return lt, nil
}

// byRowAddr orders line rows by address.
func byRowAddr(a, b lineRow) int { return cmp.Compare(a.addr, b.addr) }
