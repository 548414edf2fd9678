package symbols

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
)

// What an object says about its addresses depends only on the object and
// the debug files found for it: a cache record keeps it between runs (the
// caller stores it, in coroner's disk cache): the symbol table as loaded
// (before AddSymbols), and the answers already given by Locations,
// CallTarget and the tail-call search. With a record, a warm analysis of a
// core of the same programs reads no symbol table and decompresses no
// debug section.

// cacheFormat changes whenever a record's layout or meaning changes, and
// so whenever what a name, a line or a call site resolves to changes:
// records of an older coroner are then not used.
const cacheFormat = "coroner-symbols-6"

// cacheRecord is what is known, from a previous run or this one.
type cacheRecord struct {
	mu     sync.Mutex
	syms   []Symbol // nil: not known
	source string
	locs   map[uint64]*Location // nil value: nothing known there
	calls  map[uint64]cachedCall
	tails  map[uint64][]callSite
	dirty  bool
}

type cachedCall struct {
	entry uint64
	name  string
	ok    bool
}

func newCacheRecord() *cacheRecord {
	return &cacheRecord{locs: map[uint64]*Location{}, calls: map[uint64]cachedCall{}, tails: map[uint64][]callSite{}}
}

// CacheKey identifies the object and the debug information found for it:
// its build-id (else its path, size, modification time and inode), the
// build-id of its debug file, and whether it has MiniDebugInfo.
func (o *Object) CacheKey() string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n", cacheFormat)
	if o.BuildID != "" {
		fmt.Fprintf(h, "build-id %s\n", o.BuildID)
	} else if fi, err := o.file.Stat(); err == nil {
		var ino uint64
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			ino = st.Ino
		}
		fmt.Fprintf(h, "file %s %d %d %d\n", o.Path, fi.Size(), fi.ModTime().UnixNano(), ino)
	} else {
		fmt.Fprintf(h, "path %s\n", o.Path)
	}
	if o.dbg() != nil {
		fmt.Fprintf(h, "debug %s\n", ReadBuildID(o.debugElf))
		if fi, err := o.debugF.Stat(); err == nil {
			fmt.Fprintf(h, "debug-size %d\n", fi.Size())
		}
	}
	fmt.Fprintf(h, "mini %v\n", o.elfFile().Section(".gnu_debugdata") != nil)
	return hex.EncodeToString(h.Sum(nil))[:40]
}

// UseCacheRecord loads a record made by CacheRecord for an object with the
// same CacheKey. It must be called before any lookup.
func (o *Object) UseCacheRecord(b []byte) error {
	if o.used.Load() {
		return errors.New("cache record given after lookups began")
	}
	r, err := decodeCacheRecord(b)
	if err != nil {
		return err
	}
	o.cache = r
	return nil
}

// CacheRecord returns the object's record and whether it holds anything
// the record it was loaded from (if any) did not.
// (A record that holds nothing new is not encoded: nil, false.)
func (o *Object) CacheRecord() ([]byte, bool) {
	c := o.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.syms == nil {
		if base := o.baseSyms.Load(); base != nil {
			c.syms, c.source, c.dirty = *base, o.source, true
		}
	}
	if !c.dirty {
		return nil, false
	}
	return encodeCacheRecord(c), true
}

// cachedLocation returns what the record says about addr.
func (c *cacheRecord) location(addr uint64) (*Location, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	l, ok := c.locs[addr]
	return l, ok
}

func (c *cacheRecord) setLocation(addr uint64, l *Location) {
	c.mu.Lock()
	c.locs[addr] = l
	c.dirty = true
	c.mu.Unlock()
}

func (c *cacheRecord) call(ret uint64) (cachedCall, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.calls[ret]
	return v, ok
}

func (c *cacheRecord) setCall(ret uint64, v cachedCall) {
	c.mu.Lock()
	c.calls[ret] = v
	c.dirty = true
	c.mu.Unlock()
}

func (c *cacheRecord) tailSites(entry uint64) ([]callSite, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.tails[entry]
	return v, ok
}

func (c *cacheRecord) setTailSites(entry uint64, v []callSite) {
	c.mu.Lock()
	c.tails[entry] = v
	c.dirty = true
	c.mu.Unlock()
}

// The encoding: a header line, a string table, then the sections, all
// numbers as uvarints. Counts are checked against the bytes left, so a
// damaged record fails without a large allocation.

type recWriter struct {
	buf     []byte
	strs    map[string]uint64
	strList []string
}

func (w *recWriter) u(v uint64) { w.buf = binary.AppendUvarint(w.buf, v) }

func (w *recWriter) s(v string) {
	i, ok := w.strs[v]
	if !ok {
		i = uint64(len(w.strList))
		w.strs[v] = i
		w.strList = append(w.strList, v)
	}
	w.u(i)
}

func encodeCacheRecord(c *cacheRecord) []byte {
	w := &recWriter{strs: map[string]uint64{}}
	w.s(c.source)
	w.u(uint64(len(c.syms)))
	if c.syms != nil {
		w.u(1)
	} else {
		w.u(0)
	}
	for _, s := range c.syms {
		w.s(s.Name)
		w.u(s.Value)
		w.u(s.Size)
		w.s(s.Source)
	}
	addrs := make([]uint64, 0, len(c.locs))
	for a := range c.locs {
		addrs = append(addrs, a)
	}
	slices.Sort(addrs)
	w.u(uint64(len(addrs)))
	for _, a := range addrs {
		w.u(a)
		l := c.locs[a]
		if l == nil {
			w.u(0)
			continue
		}
		w.u(1)
		w.s(l.File)
		w.u(uint64(l.Line))
		w.u(uint64(len(l.Scopes)))
		for _, sc := range l.Scopes {
			w.s(sc.Name)
			w.u(sc.Entry)
			if sc.Inlined {
				w.u(1)
			} else {
				w.u(0)
			}
			w.s(sc.CallFile)
			w.u(uint64(sc.CallLine))
		}
	}
	rets := make([]uint64, 0, len(c.calls))
	for r := range c.calls {
		rets = append(rets, r)
	}
	slices.Sort(rets)
	w.u(uint64(len(rets)))
	for _, r := range rets {
		v := c.calls[r]
		w.u(r)
		w.u(v.entry)
		w.s(v.name)
		if v.ok {
			w.u(1)
		} else {
			w.u(0)
		}
	}
	entries := make([]uint64, 0, len(c.tails))
	for e := range c.tails {
		entries = append(entries, e)
	}
	slices.Sort(entries)
	w.u(uint64(len(entries)))
	for _, e := range entries {
		w.u(e)
		w.u(uint64(len(c.tails[e])))
		for _, s := range c.tails[e] {
			w.u(s.ret)
			w.u(s.entry)
			w.s(s.name)
			flags := uint64(0)
			if s.tail {
				flags |= 1
			}
			if s.target {
				flags |= 2
			}
			w.u(flags)
		}
	}
	// Header, then the string table (lengths, then the bytes of all
	// strings: one allocation when decoded), then the sections.
	total := 0
	for _, s := range w.strList {
		total += len(s)
	}
	out := make([]byte, 0, len(w.buf)+total+3*len(w.strList)+len(cacheFormat)+16)
	out = append(out, cacheFormat...)
	out = append(out, '\n')
	out = binary.AppendUvarint(out, uint64(len(w.strList)))
	for _, s := range w.strList {
		out = binary.AppendUvarint(out, uint64(len(s)))
	}
	for _, s := range w.strList {
		out = append(out, s...)
	}
	return append(out, w.buf...)
}

var errRecord = errors.New("damaged symbols cache record")

type recReader struct {
	b    []byte
	pos  int
	strs []string
	err  error
}

func (r *recReader) u() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b[r.pos:])
	if n <= 0 {
		r.err = errRecord
		return 0
	}
	r.pos += n
	return v
}

// count reads a count of items of at least min bytes each.
func (r *recReader) count(min int) int {
	n := r.u()
	if r.err == nil && n > uint64(len(r.b)-r.pos)/uint64(min) {
		r.err = errRecord
		return 0
	}
	return int(n)
}

func (r *recReader) s() string {
	i := r.u()
	if r.err == nil && i >= uint64(len(r.strs)) {
		r.err = errRecord
		return ""
	}
	if r.err != nil {
		return ""
	}
	return r.strs[i]
}

func decodeCacheRecord(b []byte) (*cacheRecord, error) {
	if len(b) < len(cacheFormat)+1 || string(b[:len(cacheFormat)+1]) != cacheFormat+"\n" {
		return nil, fmt.Errorf("%w: format", errRecord)
	}
	r := &recReader{b: b, pos: len(cacheFormat) + 1}
	n := r.count(1)
	lens := make([]uint64, 0, n)
	var total uint64
	for i := 0; i < n && r.err == nil; i++ {
		l := r.u()
		lens = append(lens, l)
		total += l
		if total > uint64(len(b)) {
			return nil, errRecord
		}
	}
	if r.err != nil || total > uint64(len(b)-r.pos) {
		return nil, errRecord
	}
	all := string(b[r.pos : r.pos+int(total)])
	r.pos += int(total)
	r.strs = make([]string, 0, n)
	off := 0
	for _, l := range lens {
		r.strs = append(r.strs, all[off:off+int(l)])
		off += int(l)
	}
	c := newCacheRecord()
	c.source = r.s()
	ns := r.count(4)
	if r.u() == 1 {
		c.syms = make([]Symbol, 0, ns)
	}
	for i := 0; i < ns && r.err == nil; i++ {
		s := Symbol{Name: r.s(), Value: r.u(), Size: r.u(), Source: r.s()}
		if c.syms != nil {
			c.syms = append(c.syms, s)
		}
	}
	nl := r.count(2)
	for i := 0; i < nl && r.err == nil; i++ {
		a := r.u()
		if r.u() == 0 {
			c.locs[a] = nil
			continue
		}
		l := &Location{File: r.s(), Line: int(r.u())}
		nsc := r.count(5)
		for k := 0; k < nsc && r.err == nil; k++ {
			sc := Scope{Name: r.s(), Entry: r.u(), Inlined: r.u() == 1, CallFile: r.s(), CallLine: int(r.u())}
			l.Scopes = append(l.Scopes, sc)
		}
		c.locs[a] = l
	}
	nc := r.count(4)
	for i := 0; i < nc && r.err == nil; i++ {
		ret := r.u()
		c.calls[ret] = cachedCall{entry: r.u(), name: r.s(), ok: r.u() == 1}
	}
	nt := r.count(2)
	for i := 0; i < nt && r.err == nil; i++ {
		e := r.u()
		k := r.count(4)
		sites := make([]callSite, 0, k)
		for j := 0; j < k && r.err == nil; j++ {
			s := callSite{ret: r.u(), entry: r.u(), name: r.s()}
			f := r.u()
			s.tail, s.target = f&1 != 0, f&2 != 0
			sites = append(sites, s)
		}
		c.tails[e] = sites
	}
	if r.err != nil || r.pos != len(b) {
		return nil, errRecord
	}
	return c, nil
}
