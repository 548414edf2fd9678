package php

import (
	"fmt"
	"strings"

	"github.com/coroner-dev/coroner/crash"
)

// LayoutMode says how Analyze makes the layout of the PHP structures.
type LayoutMode string

// Layout modes.
const (
	// LayoutAuto derives the layout from the binary, with the table as the
	// cross-check and the fallback for what is not derived.
	LayoutAuto LayoutMode = "auto"
	// LayoutDerived derives the layout from the binary only (the table is
	// not consulted; fields unchanged since PHP 7.0 may still fall back to
	// their constant).
	LayoutDerived LayoutMode = "derived"
	// LayoutTable uses the table only (no derivation).
	LayoutTable LayoutMode = "table"
)

// ParseLayoutMode parses the --layout option ("" is auto).
func ParseLayoutMode(s string) (LayoutMode, error) {
	switch LayoutMode(s) {
	case "", LayoutAuto:
		return LayoutAuto, nil
	case LayoutDerived, LayoutTable:
		return LayoutMode(s), nil
	}
	return "", fmt.Errorf("layout %q: want auto, derived or table", s)
}

// choice is the value chosen for one field and where it came from.
type choice struct {
	def    fieldDef
	value  uint64
	have   bool
	source crash.LayoutSource
	d      *derived
	// ref is the table's value, or the constant, the derived value is
	// compared with (when hasRef).
	ref    uint64
	hasRef bool
	refSrc crash.LayoutSource
	// disagree is set when the derived value and ref differ; the core's
	// data decides (resolve).
	disagree bool
	// missing explains why there is no value; note explains a fallback
	// or a disagreement.
	missing, note string
	validated     string
}

// plan is the layout Analyze uses and the provenance of each field.
type plan struct {
	mode    LayoutMode
	l       Layout
	choices []*choice
	byID    map[string]*choice
	d       *derivation
	// tableVersion is the table entry used ("" when none).
	tableVersion string
	warns        []string
}

// makePlan chooses every field's value from the derivation d (nil when
// not derived), the table entry of version (or of the derived API number)
// and the constants, as mode says.
func makePlan(mode LayoutMode, d *derivation, version string) *plan {
	p := &plan{mode: mode, d: d, byID: map[string]*choice{}}
	p.l.Version = minorVersion(version)
	var te tableEntry
	haveTable := false
	if mode != LayoutDerived {
		te, haveTable = tableFor(version)
		if !haveTable && d != nil {
			if api, ok := d.fields["zend_api"]; ok {
				te, haveTable = tableForAPI(api.value)
			}
		}
		if haveTable {
			p.tableVersion = te.version
			if p.l.Version == "" {
				p.l.Version = te.version
			}
		}
	}
	for _, f := range fieldDefs {
		c := &choice{def: f}
		p.choices = append(p.choices, c)
		p.byID[f.id] = c
		var dv *derived
		if mode != LayoutTable && d != nil {
			if v, ok := d.fields[f.id]; ok {
				dv = &v
			}
		}
		if tv, ok := te.values[f.id]; ok && haveTable {
			c.ref, c.hasRef, c.refSrc = tv, true, crash.LayoutTable
		} else if f.hasConst {
			c.ref, c.hasRef, c.refSrc = f.constant, true, crash.LayoutConstant
		}
		switch {
		case dv != nil:
			c.value, c.have, c.source, c.d = dv.value, true, crash.LayoutDerived, dv
			c.disagree = c.hasRef && c.ref != dv.value
		case c.hasRef:
			c.value, c.have, c.source = c.ref, true, c.refSrc
			switch {
			case mode == LayoutTable || d == nil:
			case len(fieldAnchors[f.id]) == 0 && c.refSrc == crash.LayoutConstant:
				c.note = "the same since PHP 7.0 (no exported function reveals it): checked on the core's data"
			default:
				c.note = "not derived: " + d.missing(f.id)
			}
		default:
			c.missing = p.whyMissing(f.id, version, haveTable)
		}
	}
	p.inferStructural()
	p.apply()
	return p
}

// whyMissing explains a field without a value.
func (p *plan) whyMissing(id, version string, haveTable bool) string {
	var parts []string
	if p.mode != LayoutTable {
		if p.d == nil {
			parts = append(parts, "not derived (the PHP binary could not be read)")
		} else {
			parts = append(parts, "not derived: "+p.d.missing(id))
		}
	}
	if p.mode != LayoutDerived && !haveTable {
		if version == "" {
			parts = append(parts, "the PHP version is unknown, so coroner's table cannot be used")
		} else {
			parts = append(parts, fmt.Sprintf("PHP %s is not in coroner's table (%s)", version, tableVersions()))
		}
	}
	return strings.Join(parts, "; ")
}

// inferStructural fills fields that follow from others by a rule that has
// held since PHP 7.0: line_end is the uint32 after line_start, IS_PTR
// follows IS_INDIRECT.
func (p *plan) inferStructural() {
	infer := func(id, from string, delta uint64, rule string) {
		c, f := p.byID[id], p.byID[from]
		if c.source == crash.LayoutDerived || !f.have || f.source != crash.LayoutDerived {
			return
		}
		v := f.value + delta
		c.value, c.have, c.source, c.missing = v, true, crash.LayoutDerived, ""
		c.d = &derived{value: v, anchor: f.d.anchor, pc: f.d.pc, instr: f.d.instr, rule: rule}
		c.disagree = c.hasRef && c.ref != v
		c.note = ""
	}
	infer("oa.line_end", "oa.line_start", 4, "line_start + 4: uint32_t line_end follows line_start (since PHP 7.0)")
	infer("IS_PTR", "IS_INDIRECT", 1, "IS_INDIRECT + 1: IS_PTR follows IS_INDIRECT (PHP 7.4 to 8.5)")
}

// apply writes the chosen values into the layout.
func (p *plan) apply() {
	for _, c := range p.choices {
		if c.have {
			*c.def.ptr(&p.l) = c.value
		} else {
			*c.def.ptr(&p.l) = 0
		}
	}
}

// name says which layout was used, for crash.PHP.Layout.
func (p *plan) name() string {
	derived, table := false, false
	for _, c := range p.choices {
		switch c.source {
		case crash.LayoutDerived:
			derived = true
		case crash.LayoutTable:
			table = true
		}
	}
	switch {
	case derived && p.tableVersion != "":
		return "derived+php-" + p.tableVersion
	case derived:
		return "derived"
	case table:
		return "php-" + p.tableVersion
	}
	return "constants"
}

// missingFor returns the fields a reader of the given groups needs that
// have no value, as messages naming the anchors.
func (p *plan) missingFor(groups []string, ids ...string) []string {
	var out []string
	for _, c := range p.choices {
		if c.have || c.def.optional || !(inGroups(c.def.group, groups) || inGroups(c.def.id, ids)) {
			continue
		}
		out = append(out, fmt.Sprintf("%s (%s): %s", c.def.what, c.def.id, c.missing))
	}
	return out
}

func inGroups(g string, groups []string) bool {
	for _, x := range groups {
		if x == g {
			return true
		}
	}
	return false
}

// setCore gives a field a value found in the core's data (when it has none,
// or, in derived mode, instead of a table value it may not use).
func (p *plan) setCore(id string, v uint64, evidence string) {
	c := p.byID[id]
	if c.have && c.source != crash.LayoutConstant {
		if c.value != v {
			p.warns = append(p.warns, fmt.Sprintf("layout: %s is %d (%s) but the core says %d (%s)", c.def.what, c.value, c.source, v, evidence))
		}
		return
	}
	c.value, c.have, c.source, c.missing = v, true, crash.LayoutCore, ""
	c.disagree = c.hasRef && c.ref != v
	c.validated = evidence
	*c.def.ptr(&p.l) = v
}

// fields returns the provenance of every field, for crash.PHP.
func (p *plan) fields() []crash.PHPLayoutField {
	out := make([]crash.PHPLayoutField, 0, len(p.choices))
	for _, c := range p.choices {
		if !c.have {
			continue
		}
		f := crash.PHPLayoutField{Field: c.def.id, What: c.def.what, Value: c.value, Source: c.source, Validated: c.validated, Note: c.note}
		if c.d != nil {
			f.Anchor, f.Instruction, f.PC, f.Rule = c.d.anchor, c.d.instr, crash.Addr(c.d.pc), c.d.rule
			f.Agree = append([]string(nil), c.d.agree...)
		}
		if c.hasRef && c.source != c.refSrc {
			ref := c.ref
			f.Table = &ref
		}
		out = append(out, f)
	}
	return out
}
