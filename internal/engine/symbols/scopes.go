package symbols

// Scope is a function active at an address according to .debug_info: the
// function whose code holds it, or a function inlined there.
type Scope struct {
	// Name is the function's name as gdb prints it: for C the linkage
	// name when there is one (__GI_raise), else DW_AT_name; for C++ the
	// name qualified by its namespaces and classes, without parameters.
	Name string
	// Entry is the link-time entry address of the concrete function (the
	// outermost scope only).
	Entry uint64
	// Inlined is true for a function inlined at the address; CallFile and
	// CallLine are then where it was inlined, in the scope around it.
	Inlined  bool
	CallFile string
	CallLine int
}

// langRust is DW_LANG_Rust: gdb names Rust functions from DW_AT_name
// and their scopes, not from their linkage names.
const langRust = 0x1c

// DWARF languages whose names gdb qualifies with their scopes.
func qualifiedLanguage(lang uint16) bool {
	switch lang {
	case 0x04, 0x19, 0x1a, 0x21, 0x2a, 0x2b, // C++, C++03, C++11, C++14, C++17, C++20
		0x1c: // Rust
		return true
	}
	return false
}

// maxChain bounds the DW_AT_specification / DW_AT_abstract_origin hops.
const maxChain = 8

// scopesAt returns the unit holding a, the DIEs of the functions and
// blocks containing a (outermost first), and the call sites that are
// children of the innermost of them.
func (d *dwarfInfo) scopesAt(a uint64) (*unit, []die, []die) {
	u := d.unitFor(a)
	if u == nil || u.load() != nil || !u.root.children {
		return nil, nil, nil
	}
	var chain, sites []die
	// frames of the walk: a container (namespace, class) is left again
	// when its children end; a scope that contains a is never left.
	type level struct{ scope bool }
	stack := []level{{scope: true}} // the unit itself
	off := u.root.next
	for steps := 0; off < u.end && steps < 1<<22; steps++ {
		x, err := u.readDIE(off)
		if err != nil {
			break
		}
		if x.tag == 0 {
			top := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if top.scope || len(stack) == 0 {
				break
			}
			off = x.next
			continue
		}
		switch x.tag {
		case tagSubprogram, tagInlinedSub, tagLexicalBlock, 0x32, 0x25, 0x0a: // try, catch blocks; label
			if x.tag == tagSubprogram && x.declaration {
				break
			}
			if rs := u.rangesOf(&x); contains(rs, a) {
				if x.tag == tagSubprogram {
					x = u.lastAlias(x, a)
				}
				if x.tag == tagSubprogram || x.tag == tagInlinedSub {
					chain = append(chain, x)
				}
				if !x.children {
					return u, chain, sites
				}
				sites = sites[:0]
				stack = append(stack, level{scope: true})
				off = x.next
				continue
			}
		case tagNamespace, tagClassType, tagStructType, tagUnionType, tagInterfaceType, tagModule:
			if x.children {
				stack = append(stack, level{})
				off = x.next
				continue
			}
		case tagCallSite, tagGNUCallSite:
			sites = append(sites, x)
		}
		end, err := u.subtreeEnd(&x)
		if err != nil || end <= off {
			break
		}
		off = end
	}
	return u, chain, sites
}

// lastAlias returns, of the subprogram x and the subprograms right after
// it that also contain a, the last one: the assembler describes each name
// of an aliased function (__clone3, __GI___clone3, clone3) as a
// subprogram over the same code, and gdb names the code by the last.
func (u *unit) lastAlias(x die, a uint64) die {
	for i := 0; i < 16; i++ {
		end, err := u.subtreeEnd(&x)
		if err != nil {
			return x
		}
		y, err := u.readDIE(end)
		if err != nil || y.tag != tagSubprogram || y.declaration || !contains(u.rangesOf(&y), a) {
			return x
		}
		x = y
	}
	return x
}

// entryOf returns the entry address of a function DIE: its low_pc, or
// the start of its first range.
func entryOf(x *die) (uint64, bool) {
	rs := x.u.rangesOf(x)
	if len(rs) == 0 {
		return 0, false
	}
	return rs[0].lo, true
}

// nameAttrs follows x's DW_AT_specification / DW_AT_abstract_origin chain
// (as gdb's dwarf2_attr does) for the first DW_AT_name and linkage name,
// and returns the DIE at the end of the chain (the declaration).
func nameAttrs(x die) (name, linkage string, decl die) {
	cur := x
	for i := 0; i < maxChain; i++ {
		if name == "" && cur.name.form != 0 {
			name = cur.u.str(cur.name)
		}
		if linkage == "" && cur.linkage.form != 0 {
			linkage = cur.u.str(cur.linkage)
		}
		next := cur.spec
		if next.kind == refNone {
			next = cur.origin
		}
		if next.kind == refNone {
			break
		}
		n, ok := cur.follow(next)
		if !ok {
			break
		}
		cur = n
	}
	return name, linkage, cur
}

// functionName names a function DIE the way gdb does (see Scope.Name).
func (d *dwarfInfo) functionName(x die, lang uint16) string {
	key := dieKey{x.off, lang}
	own := x.u.d
	own.mu.Lock()
	n, ok := own.names[key]
	own.mu.Unlock()
	if ok {
		return n
	}
	name, linkage, decl := nameAttrs(x)
	switch {
	case !qualifiedLanguage(lang):
		n = name
		if linkage != "" {
			n = linkage
		}
	case linkage != "" && lang != langRust:
		// gdb's physname: the demangled linkage name without return
		// type and parameters (clang names every function so; gcc not
		// those of local types such as lambdas).
		if dm, ok := demangleNoParams(linkage); ok {
			n = dm
			break
		}
		fallthrough
	case name != "":
		n = joinScope(d.prefix(decl, lang, 0), name)
	default:
		n = Demangle(linkage)
	}
	own.mu.Lock()
	own.names[key] = n
	own.mu.Unlock()
	return n
}

func joinScope(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "::" + name
}

// prefix returns the scope a C++ declaration is in ("std", "ns::Class"),
// as gdb's determine_prefix computes it: namespaces and named classes
// qualify, a function or an unnamed class (a lambda's) ends the prefix.
func (d *dwarfInfo) prefix(decl die, lang uint16, depth int) string {
	if depth > 16 || decl.u == nil {
		return ""
	}
	anc := decl.u.ancestors(decl.off)
	for i := len(anc) - 1; i >= 0; i-- {
		p := anc[i]
		switch p.tag {
		case tagNamespace:
			name, _, pdecl := nameAttrs(p)
			if name == "" {
				name = "(anonymous namespace)"
			}
			return joinScope(d.prefix(pdecl, lang, depth+1), name)
		case tagClassType, tagStructType, tagUnionType, tagInterfaceType, tagModule:
			name, _, pdecl := nameAttrs(p)
			if name == "" {
				return ""
			}
			return joinScope(d.prefix(pdecl, lang, depth+1), name)
		case tagSubprogram, tagInlinedSub, tagCompileUnit, tagPartialUnit, tagSkeletonUnit:
			return ""
		}
		// lexical blocks and the like: the prefix of their parent
	}
	return ""
}

// ancestors returns the DIEs enclosing the DIE at target, the unit's root
// first, skipping subtrees by their DW_AT_sibling where present.
func (u *unit) ancestors(target uint64) []die {
	var path []die
	off := u.dieOff
	for steps := 0; off < u.end && steps < 1<<22; steps++ {
		x, err := u.readDIE(off)
		if err != nil || x.tag == 0 {
			return nil
		}
		if x.off == target {
			return path
		}
		end, err := u.subtreeEnd(&x)
		if err != nil || end <= off {
			return nil
		}
		if x.children && target > x.off && target < end {
			path = append(path, x)
			off = x.next
			continue
		}
		off = end
	}
	return nil
}

// callSite is a DW_TAG_call_site: where a function calls another.
type callSite struct {
	ret    uint64 // return address (after the call or jump)
	tail   bool
	entry  uint64 // the callee's entry, when known in this object
	name   string // the callee's linkage name (or name), when known
	target bool   // entry is valid
}

// siteOf decodes a call site DIE and resolves its target within the
// object: the entry of the function its DW_AT_call_origin names (a
// definition, else the symbol of that name), or a constant
// DW_AT_call_target.
func (o *Object) siteOf(x die) (callSite, bool) {
	if !x.hasReturnPC {
		return callSite{}, false
	}
	ret, ok := x.u.addr(x.returnPC, x.returnIsIdx)
	if !ok {
		return callSite{}, false
	}
	s := callSite{ret: ret, tail: x.tailCall}
	if x.callOrigin.kind != refNone {
		if t, ok := x.follow(x.callOrigin); ok {
			name, linkage, _ := nameAttrs(t)
			if linkage != "" {
				name = linkage
			}
			s.name = name
			if !t.declaration {
				s.entry, s.target = entryOf(&t)
			}
			if !s.target && name != "" {
				s.entry, s.target = o.FunctionEntry(name)
			}
		}
	} else if e := x.callTarget; len(e) == 9 && e[0] == 0x03 { // DW_OP_addr
		s.entry, s.target = le64(e[1:]), true
	} else if len(e) > 1 && (e[0] == 0xa1 || e[0] == 0xfb) { // DW_OP_addrx, DW_OP_GNU_addr_index
		r := &infoReader{b: e, pos: 1}
		if i := r.uleb(); r.err == nil {
			s.entry, s.target = x.u.addr(i, true)
		}
	}
	return s, true
}

// CallTarget tells which function the call returning to the link-time
// address ret called, from the caller's DW_TAG_call_site: its entry in
// this object when it is defined here, and its (linkage) name.
func (o *Object) CallTarget(ret uint64) (entry uint64, name string, ok bool) {
	if c, ok := o.cache.call(ret); ok {
		return c.entry, c.name, c.ok
	}
	entry, name, ok = o.callTarget(ret)
	o.cache.setCall(ret, cachedCall{entry, name, ok})
	return entry, name, ok
}

func (o *Object) callTarget(ret uint64) (entry uint64, name string, ok bool) {
	if !o.HasDebugInfo() || ret == 0 {
		return 0, "", false
	}
	d := o.dwarf()
	if d == nil {
		return 0, "", false
	}
	_, _, sites := d.scopesAt(ret - 1)
	for _, x := range sites {
		s, ok := o.siteOf(x)
		if ok && s.ret == ret && !s.tail {
			return s.entry, s.name, s.target || s.name != ""
		}
	}
	return 0, "", false
}

// FunctionEntry returns the address of the function symbol name.
func (o *Object) FunctionEntry(name string) (uint64, bool) {
	s, ok := o.SymbolByName(name)
	if !ok {
		return 0, false
	}
	if t := s.Info & 0xf; t != 2 && t != 10 { // STT_FUNC, STT_GNU_IFUNC
		return 0, false
	}
	return s.Value, s.Value != 0
}

// tailSites returns the tail calls (jumps to other functions) made by the
// function entered at entry.
func (o *Object) tailSites(entry uint64) []callSite {
	if s, ok := o.cache.tailSites(entry); ok {
		return s
	}
	var out []callSite
	if d := o.dwarf(); d != nil {
		u, chain, _ := d.scopesAt(entry)
		var fn *die
		for i := range chain {
			if chain[i].tag == tagSubprogram {
				fn = &chain[i]
			}
		}
		if fn != nil {
			if e, ok := entryOf(fn); ok && e == entry {
				end, err := u.subtreeEnd(fn)
				for off := fn.next; err == nil && off < end && len(out) < 4096; {
					x, err2 := u.readDIE(off)
					if err2 != nil {
						break
					}
					if (x.tag == tagCallSite || x.tag == tagGNUCallSite) && x.tailCall {
						if s, ok := o.siteOf(x); ok && s.target {
							out = append(out, s)
						}
					}
					off = x.next
				}
			}
		}
	}
	o.cache.setTailSites(entry, out)
	return out
}

// maxTailPaths bounds the search for tail-call chains.
const (
	maxTailDepth = 16
	maxTailVisit = 2000
)

// TailCallChain returns the tail calls by which the function entered at
// from reached the function entered at to (both link-time, in this
// object), as gdb reconstructs them from DW_TAG_call_site entries with
// DW_AT_call_tail_call: the return addresses of the jumps, the one nearest
// to to first. When several chains are possible only the calls they all
// share at either end are returned, as gdb does; nil when there is none.
func (o *Object) TailCallChain(from, to uint64) []uint64 {
	if from == to || !o.HasDebugInfo() {
		return nil
	}
	var paths [][]uint64 // each from the caller's side
	visits := 0
	var walk func(fn uint64, path []uint64, seen map[uint64]bool)
	walk = func(fn uint64, path []uint64, seen map[uint64]bool) {
		visits++
		if visits > maxTailVisit || len(path) > maxTailDepth || len(paths) > 64 {
			return
		}
		for _, s := range o.tailSites(fn) {
			p := append(append([]uint64(nil), path...), s.ret)
			if s.entry == to {
				paths = append(paths, p)
				continue
			}
			if seen[s.entry] {
				continue
			}
			seen[s.entry] = true
			walk(s.entry, p, seen)
			delete(seen, s.entry)
		}
	}
	walk(from, nil, map[uint64]bool{from: true})
	if len(paths) == 0 {
		return nil
	}
	// Keep the common prefix (caller side) and suffix (callee side).
	prefix := paths[0]
	suffix := paths[0]
	for _, p := range paths[1:] {
		n := 0
		for n < len(prefix) && n < len(p) && prefix[n] == p[n] {
			n++
		}
		prefix = prefix[:n]
		m := 0
		for m < len(suffix) && m < len(p) && suffix[len(suffix)-1-m] == p[len(p)-1-m] {
			m++
		}
		suffix = suffix[len(suffix)-m:]
	}
	chain := prefix
	if len(prefix) != len(paths[0]) {
		chain = append(append([]uint64(nil), prefix...), suffix...)
	}
	out := make([]uint64, len(chain))
	for i, r := range chain {
		out[len(chain)-1-i] = r
	}
	return out
}

// Scopes returns the functions active at the link-time address addr,
// innermost (inlined) first and the concrete function last, from
// .debug_info; nil when no debug information covers addr.
func (o *Object) Scopes(addr uint64) []Scope {
	d := o.dwarf()
	if d == nil {
		return nil
	}
	u, chain, _ := d.scopesAt(addr)
	// A nested function (a GNU C extension) is its own frame: keep the
	// innermost subprogram and what is inlined into it.
	for i := len(chain) - 1; i > 0; i-- {
		if chain[i].tag == tagSubprogram {
			chain = chain[i:]
			break
		}
	}
	if len(chain) == 0 || chain[0].tag != tagSubprogram {
		return nil
	}
	out := make([]Scope, len(chain))
	for k := range chain {
		c := chain[k]
		s := Scope{Name: d.functionName(c, u.lang)}
		if c.tag == tagInlinedSub {
			s.Inlined = true
			s.CallFile = o.unitFile(u, c.callFile)
			s.CallLine = int(c.callLine)
		} else {
			s.Entry, _ = entryOf(&c)
		}
		out[len(chain)-1-k] = s
	}
	return out
}

// unitFile names file number idx of the line program of unit u.
func (o *Object) unitFile(u *unit, idx uint64) string {
	if !u.root.hasStmtList {
		return ""
	}
	files := u.d.files(u.root.stmtList)
	if idx < uint64(len(files)) {
		return files[idx].String()
	}
	return ""
}
