package symbols

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"encoding/hex"
	"path/filepath"

	"github.com/coroner-dev/coroner/internal/regular"
)

// dwarf returns the .debug_info of the debug file, else of the object
// itself (read once), or nil when neither has one.
func (o *Object) dwarf() *dwarfInfo {
	o.infoOnce.Do(func() {
		o.used.Store(true)
		for _, c := range []*sectionCache{o.dbg(), o.secs} {
			if !c.has(".debug_info") {
				continue
			}
			o.info = newDWARFInfo(readDWARFSections(c))
			if o.info == nil {
				continue
			}
			if alt := o.altFile(c); alt != nil {
				o.info.alt = newDWARFInfo(readDWARFSections(alt))
			}
			return
		}
	})
	return o.info
}

// HasDebugInfo reports whether the object or its debug file has
// .debug_info (without reading it).
func (o *Object) HasDebugInfo() bool {
	return o.secs.has(".debug_info") || o.dbg().has(".debug_info")
}

func readDWARFSections(c *sectionCache) dwarfSections {
	return dwarfSections{
		info: c.progressive(".debug_info"), abbrev: c.progressive(".debug_abbrev"), line: c.progressive(".debug_line"),
		str: c.progressive(".debug_str"), lineStr: c.progressive(".debug_line_str"), addr: c.progressive(".debug_addr"),
		strOffsets: c.progressive(".debug_str_offsets"), ranges: c.progressive(".debug_ranges"),
		rnglists: c.progressive(".debug_rnglists"), aranges: c.progressive(".debug_aranges"),
	}
}

// lineProgram returns .debug_line decompressed up to the end of the line
// program at off.
func (d *dwarfInfo) lineProgram(off uint64) []byte {
	b := d.sec.line.prefix(off + 12)
	if off+4 > uint64(len(b)) {
		return b
	}
	length := uint64(binary.LittleEndian.Uint32(b[off:]))
	end := off + 4 + length
	if length == 0xffffffff && off+12 <= uint64(len(b)) {
		end = off + 12 + binary.LittleEndian.Uint64(b[off+4:])
	}
	if end < off {
		return b
	}
	return d.sec.line.prefix(end)
}

// altFile opens the dwz supplementary file a debug file names in
// .gnu_debugaltlink (a path, then the build-id of the file it must be).
func (o *Object) altFile(c *sectionCache) *sectionCache {
	link := c.get(".gnu_debugaltlink")
	i := bytes.IndexByte(link, 0)
	if i <= 0 || i+1 >= len(link) {
		return nil
	}
	name, id := string(link[:i]), hex.EncodeToString(link[i+1:])
	self := o.Path
	if c == o.debugSecs {
		self = o.debugFile
	}
	var cands []string
	if filepath.IsAbs(name) {
		cands = append(cands, filepath.Join(o.opts.Sysroot, name))
		if o.opts.Sysroot != "" && !o.opts.NoHostDebug {
			cands = append(cands, name)
		}
	} else {
		cands = append(cands, filepath.Join(filepath.Dir(self), name))
	}
	for _, d := range o.debugDirs() {
		if len(id) > 2 {
			cands = append(cands, filepath.Join(d, ".build-id", id[:2], id[2:]+".debug"))
		}
	}
	for _, p := range cands {
		f, err := regular.Open(p)
		if err != nil {
			continue
		}
		ef, err := elf.NewFile(f)
		if err != nil || ReadBuildID(ef) != id {
			f.Close()
			continue
		}
		o.altF = f
		o.altSecs = newSectionCache(f, ef)
		return o.altSecs
	}
	return nil
}

// files returns the file table of the line program at off in .debug_line
// (what DW_AT_call_file numbers), decoded once.
func (d *dwarfInfo) files(off uint64) []fileName {
	d.mu.Lock()
	defer d.mu.Unlock()
	if f, ok := d.fileTables[off]; ok {
		return f
	}
	var files []fileName
	line := d.lineProgram(off)
	if h, err := parseLineHeader(line, off); err == nil {
		u := unitFiles{r: lineReader{b: line, pos: h.filesAt, end: h.progStart}, version: h.version,
			offSize: h.offSize, lineStr: d.sec.lineStr.all(), str: d.sec.str.all}
		files = u.decode()
	}
	if d.fileTables == nil {
		d.fileTables = map[uint64][]fileName{}
	}
	d.fileTables[off] = files
	return files
}

// unitLines returns the decoded line program of unit u (once per program).
func (d *dwarfInfo) unitLines(u *unit) *lineTable {
	if u.load() != nil || !u.root.hasStmtList {
		return nil
	}
	off := u.root.stmtList
	d.mu.Lock()
	lt, ok := d.lineTables[off]
	d.mu.Unlock()
	if ok {
		return lt
	}
	lt, _ = parseUnitLineTable(d.lineProgram(off), d.sec.lineStr.all(), d.sec.str.all, off)
	d.mu.Lock()
	if d.lineTables == nil {
		d.lineTables = map[uint64]*lineTable{}
	}
	d.lineTables[off] = lt
	d.mu.Unlock()
	return lt
}

// Location is what the debug information says about an address.
type Location struct {
	// File and Line are the source position (from the line table).
	File string
	Line int
	// Scopes are the functions active there, innermost first (see Scopes).
	Scopes []Scope
}

// Locations returns the source position and the functions (inlined ones
// included) of link-time addresses. With .debug_info, each address costs
// the line program of its own compilation unit and the path to its
// function; without, it is Lines. Addresses nothing is known about are
// absent from the map.
func (o *Object) Locations(addrs []uint64) map[uint64]Location {
	out := map[uint64]Location{}
	var todo []uint64
	for _, a := range addrs {
		if l, ok := o.cache.location(a); ok {
			if l != nil {
				out[a] = *l
			}
			continue
		}
		todo = append(todo, a)
	}
	if len(todo) == 0 {
		return out
	}
	found := o.locations(todo)
	for _, a := range todo {
		if l, ok := found[a]; ok {
			out[a] = l
			o.cache.setLocation(a, &l)
		} else {
			o.cache.setLocation(a, nil)
		}
	}
	return out
}

// locations looks addresses up in the debug information.
func (o *Object) locations(addrs []uint64) map[uint64]Location {
	out := map[uint64]Location{}
	var rest []uint64
	d := (*dwarfInfo)(nil)
	if o.HasDebugInfo() {
		d = o.dwarf()
	}
	for _, a := range addrs {
		if d == nil {
			rest = append(rest, a)
			continue
		}
		u := d.unitFor(a)
		if u == nil {
			rest = append(rest, a)
			continue
		}
		var loc Location
		if lt := d.unitLines(u); lt != nil {
			if file, line, ok := lt.lookup(a); ok {
				loc.File, loc.Line = file, line
			}
		}
		loc.Scopes = o.Scopes(a)
		if loc.Line == 0 && loc.Scopes == nil {
			rest = append(rest, a)
			continue
		}
		out[a] = loc
	}
	if len(rest) > 0 && o.HasLineTable() {
		for a, p := range o.Lines(rest) {
			out[a] = Location{File: p.File, Line: p.Line}
		}
	}
	return out
}
