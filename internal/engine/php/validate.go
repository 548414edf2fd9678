package php

import (
	"fmt"
	"io"
	"strings"

	"github.com/coroner-dev/coroner/crash"
)

// maxCheckFrames bounds the frames a layout check walks.
const maxCheckFrames = 64

// check runs the reader of a field group with a candidate layout and says
// whether the core's data reads as it should; ok is false with known true
// when the data contradicts the layout, known false when this core has no
// data to tell (no PHP frame running, no request...).
func check(r io.ReaderAt, g *globals, l Layout, group string) (ok, known bool, evidence string) {
	m := &mem{r: r, l: &l}
	switch group {
	case groupFrames, groupNames:
		if cur, err := m.ptr(g.eg+l.EGCurrentExecuteData, 8); err == nil && cur == 0 {
			return false, false, "no PHP frame was running"
		}
		w := newWalker(m, &l)
		w.max = maxCheckFrames
		frames := w.walk(g.eg, nil)
		if len(frames) == 0 || w.stats.stopped || (w.stats.userFrames > 0 && w.stats.linesInRange == 0) {
			return false, true, fmt.Sprintf("the frame walk fails: %s", strings.Join(w.warns, "; "))
		}
		return true, true, fmt.Sprintf("the frame walk reads %d frames", len(frames))
	case groupINI:
		ht, err := m.ptr(g.eg+l.EGIniDirectives, 8)
		if err != nil || ht == 0 || !isINITable(m, ht) {
			return false, true, "no INI table at that offset"
		}
		return true, true, "EG(ini_directives) holds INI entries named like their keys"
	case groupModules, groupHash:
		reg := extensions(m, g)
		if reg.modules == 0 {
			return false, true, "the module registry does not read"
		}
		return true, true, fmt.Sprintf("the module registry reads (%d modules)", reg.modules)
	case groupRequest:
		sapi := ""
		if g.sapiModule != 0 {
			if p, err := m.ptr(g.sapiModule, 1); err == nil && p != 0 {
				sapi, _ = m.cstring(p, 64)
			}
		}
		_, _, st := readRequest(m, g, sapi, false)
		switch {
		case st.fcgiParams > 0:
			return true, true, fmt.Sprintf("%d FastCGI parameters read", st.fcgiParams)
		case len(st.sgFields) > 0:
			return true, true, "SG(request_info) reads"
		}
		return false, false, "no request to read"
	}
	return false, false, "not checked on the core"
}

// resolve settles each field whose derived value differs from the table
// (or the constant): the value that checks out on the core's data is used,
// the derived one when neither or both do, with a warning either way.
func (p *plan) resolve(r io.ReaderAt, g *globals) {
	for _, c := range p.choices {
		if !c.disagree || c.source == crash.LayoutCore {
			continue
		}
		derivedL, refL := p.l, p.l
		*c.def.ptr(&derivedL) = c.value
		*c.def.ptr(&refL) = c.ref
		okD, knownD, evD := check(r, g, derivedL, c.def.group)
		okR, knownR, evR := check(r, g, refL, c.def.group)
		what := fmt.Sprintf("%s: derived %d (%s) differs from the %s's %d", c.def.what, c.value, c.d.anchor, c.refSrc, c.ref)
		switch {
		case okD:
			c.note = what + "; the derived value checks out on this core (" + evD + "): used"
		case okR:
			c.note = what + "; the " + string(c.refSrc) + "'s value checks out on this core (" + evR + "), the derived one does not (" + evD + "): the " + string(c.refSrc) + "'s is used"
			c.value, c.source, c.d = c.ref, c.refSrc, nil
			*c.def.ptr(&p.l) = c.ref
		case !knownD && !knownR:
			c.note = what + "; this core cannot tell (" + evD + "): the derived value is used"
		default:
			c.note = what + "; neither checks out on this core (" + evD + "): the derived value is used"
		}
		p.warns = append(p.warns, "layout: "+c.note)
	}
}

// evidence is what the readers read with the final layout.
type evidence struct {
	walk    *walkStats
	ini     *iniResult
	reg     *registry
	req     *requestStats
	coreAPI uint64
}

// validate records, for each field, what checked it on this core.
func (p *plan) validate(ev evidence) {
	var walk, lines, files, classes, includes, regLine, args, opcodes, this, objCE string
	if w := ev.walk; w != nil && w.frames > 0 && !w.stopped {
		walk = fmt.Sprintf("frame walk: %d frames", w.frames)
		if w.endsAtMain {
			walk += " ending at {main}"
		}
		if w.names > 0 {
			walk += fmt.Sprintf(", %d function names read", w.names)
		}
		if w.lines > 0 {
			lines = fmt.Sprintf("%d of %d current lines within their function's lines", w.linesInRange, w.lines)
		}
		if w.files > 0 {
			files = fmt.Sprintf("%d file names read", w.files)
		}
		if w.classes > 0 {
			classes = fmt.Sprintf("%d class names read", w.classes)
		}
		if w.includes > 0 {
			includes = fmt.Sprintf("%d include/require/eval frames named from their opline", w.includes)
		}
		if w.registerLine {
			regLine = "%r15 points at an opline inside the innermost frame's opcodes"
		}
		if w.oplinesInOpcodes > 0 {
			opcodes = fmt.Sprintf("EX(opline) of %d of %d user frames lies within its function's opcodes[0..last)", w.oplinesInOpcodes, w.userFrames)
		}
		if w.thisObjects > 0 {
			this = fmt.Sprintf("%d frames hold an object in EX(This)", w.thisObjects)
		}
		if w.objectClasses > 0 {
			objCE = fmt.Sprintf("%d object classes read", w.objectClasses)
		}
		if w.userFrames > 0 {
			args = "arguments read"
		}
	}
	var ini, reg, req, sg, hash string
	if ev.ini != nil && ev.ini.values != nil {
		ini = fmt.Sprintf("EG(ini_directives) holds INI entries named like their keys; %d values read", len(ev.ini.values))
		hash = "HashTables read (EG(ini_directives)"
	}
	if ev.reg != nil && ev.reg.modules > 0 {
		reg = fmt.Sprintf("module registry: %d modules read", ev.reg.modules)
		if ev.reg.api != 0 {
			reg += fmt.Sprintf(", Core zend_api %d", ev.reg.api)
		}
		if hash == "" {
			hash = "HashTables read (module_registry"
		} else {
			hash += ", module_registry"
		}
	}
	if hash != "" {
		hash += ")"
	}
	sgAgree := map[string]bool{}
	if ev.req != nil {
		if ev.req.fcgiParams > 0 {
			req = fmt.Sprintf("%d FastCGI parameters read from SG(server_context)", ev.req.fcgiParams)
		}
		for _, id := range ev.req.sgAgree {
			sgAgree[id] = true
		}
		if len(ev.req.sgFields) > 0 {
			sg = "SG(request_info) strings read"
		}
	}
	join := func(parts ...string) string {
		var out []string
		for _, s := range parts {
			if s != "" {
				out = append(out, s)
			}
		}
		return strings.Join(out, "; ")
	}
	for _, c := range p.choices {
		if !c.have || c.validated != "" {
			continue
		}
		id := c.def.id
		switch {
		case id == "zend_api":
			if ev.coreAPI != 0 && ev.coreAPI == c.value {
				c.validated = "equals the Core module's zend_api in the core"
			}
		case id == "oa.opcodes" || id == "oa.last" || id == "op.size":
			c.validated = join(opcodes, regLine)
		case id == "op.opcode" || id == "op.extended_value" || id == "ZEND_INCLUDE_OR_EVAL":
			c.validated = includes
		case id == "oa.filename":
			c.validated = join(walk, files)
		case id == "oa.line_start" || id == "oa.line_end" || id == "op.lineno" || id == "ex.opline":
			c.validated = join(walk, lines)
		case id == "fn.scope" || id == "ce.name":
			c.validated = join(classes)
		case id == "ex.this.u2.num_args" || id == "args.offset" || id == "fn.num_args":
			c.validated = join(args)
		case id == "ex.this":
			c.validated = this
		case id == "obj.ce":
			c.validated = objCE
		case id == "ref.val":
			c.validated = ""
		case strings.HasPrefix(id, "sg.") && id != "sg.server_context":
			if sgAgree[id] {
				c.validated = "equals the FastCGI parameter of the same request"
			} else {
				c.validated = sg
			}
		case id == "sg.server_context" || strings.HasPrefix(id, "fcgi."):
			c.validated = req
		case id == "eg.ini_directives" || id == "ini.name" || id == "ini.value":
			c.validated = ini
		case id == "IS_PTR":
			c.validated = join(ini, reg)
		case strings.HasPrefix(id, "mod.") || id == "llist.data" || id == "zext.version":
			c.validated = reg
		case id == "eg.symbol_table" || id == "IS_INDIRECT":
			if ev.req != nil && ev.req.serverVars > 0 {
				c.validated = fmt.Sprintf("$_SERVER read through EG(symbol_table) (%d entries)", ev.req.serverVars)
			}
		case c.def.group == groupHash:
			c.validated = hash
		case c.def.group == groupNames:
			c.validated = join(walk, ini, reg)
		case c.def.group == groupFrames:
			c.validated = walk
		}
	}
}
