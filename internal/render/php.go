package render

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/sanitize"
)

// PHPText writes the PHP state of a crash (coroner php) as text.
func PHPText(w io.Writer, ph *crash.PHP) error {
	ph = sanitize.Copy(ph)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	build := "NTS"
	if ph.ZTS {
		build = "ZTS"
	}
	p("PHP %s (%s, %s)", ph.Version, ph.SAPI, build)
	if s := layoutSummary(ph); s != "" {
		p("%s", s)
	}
	if ph.TSRM != "" {
		p("thread %d: %s", ph.Thread, ph.TSRM)
	}
	if q := ph.Request; q != nil {
		p("request (from %s):", q.Source)
		for _, kv := range [][2]string{{"method", q.Method}, {"uri", q.URI}, {"query", q.Query}, {"script", q.Script},
			{"host", q.Host}, {"client", q.RemoteAddr}, {"agent", q.UserAgent}, {"type", q.ContentType}} {
			if kv[1] != "" {
				p("  %-7s %s", kv[0]+":", kv[1])
			}
		}
	}
	if ph.JIT != nil {
		p("jit: %s", ph.JIT.Description)
	}
	if len(ph.INI) > 0 {
		keys := make([]string, 0, len(ph.INI))
		for k := range ph.INI {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		p("ini:")
		for _, k := range keys {
			p("  %s = %s", k, ph.INI[k])
		}
	}
	p("PHP stack (%d frames, innermost first):", len(ph.Frames))
	phpStack(p, ph.Frames, ph.Cycles)
	for _, th := range ph.Threads {
		what := ""
		if q := th.Request; q != nil && q.URI != "" {
			what = ", serving " + strings.TrimSpace(q.Method+" "+q.URI)
		}
		p("PHP stack of thread %d (%d frames%s):", th.TID, len(th.Frames), what)
		phpStack(p, th.Frames, th.Cycles)
		for _, wn := range th.Warnings {
			p("  warning: %s", wn)
		}
	}
	if len(ph.Extensions) > 0 {
		var names []string
		for _, e := range ph.Extensions {
			names = append(names, strings.TrimSpace(e.Name+" "+e.Version))
		}
		p("extensions: %s", strings.Join(names, ", "))
	}
	for _, wn := range ph.Warnings {
		p("warning: %s", wn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// phpStack prints PHP frames with their repeats folded.
func phpStack(p func(string, ...any), frames []crash.PHPFrame, cycles []crash.Cycle) {
	ci := 0
	for i := 0; i < len(frames); i++ {
		if ci < len(cycles) && cycles[ci].Start == i {
			c := cycles[ci]
			for j := c.Start; j < c.Start+c.Length; j++ {
				p("  %s", phpFrame(j, &frames[j]))
			}
			p("  ... frames #%d-#%d repeat %d times in all (cycle of %d) ...", c.Start, c.End, c.Repeats, c.Length)
			i, ci = c.End, ci+1
			continue
		}
		p("  %s", phpFrame(i, &frames[i]))
	}
}

func phpFrame(i int, f *crash.PHPFrame) string {
	name := f.Function
	if f.Class != "" {
		name = f.Class + f.CallType + f.Function
	}
	s := fmt.Sprintf("#%-5d %s(%s)", i, name, strings.Join(f.Args, ", "))
	if f.File != "" {
		s += fmt.Sprintf(" at %s:%d", f.File, f.Line)
	}
	return s
}

// PHPSchemaVersion is the version of the JSON document of `coroner php
// --json` (PHPDocument); it changes only when a field changes meaning or
// goes away.
const PHPSchemaVersion = 1

// PHPDocument is the JSON document of `coroner php --json`: the report's
// "php" object with its schema version (docs/schema/php.json).
type PHPDocument struct {
	Schema int `json:"schema"` // PHPSchemaVersion
	*crash.PHP
}

// PHPLayoutSchemaVersion is the version of the JSON document of `coroner
// php --layout --json` (PHPLayout).
const PHPLayoutSchemaVersion = 1

// PHPLayout is the JSON form of `coroner php --layout --json`: the layout
// the PHP readers used and the provenance of every field.
type PHPLayout struct {
	// Schema is PHPLayoutSchemaVersion (docs/schema/php-layout.json).
	Schema  int                    `json:"schema"`
	Version string                 `json:"version"`
	Layout  string                 `json:"layout"`
	Mode    string                 `json:"layout_mode"`
	Binary  string                 `json:"layout_binary,omitempty"`
	Fields  []crash.PHPLayoutField `json:"fields"`
	// Warnings are the PHP reader's warnings (layout disagreements and
	// missing fields among them).
	Warnings []string `json:"warnings,omitempty"`
}

// PHPLayoutOf extracts the layout part of a PHP state.
func PHPLayoutOf(ph *crash.PHP) PHPLayout {
	f := ph.LayoutFields
	if f == nil {
		f = []crash.PHPLayoutField{}
	}
	return PHPLayout{Schema: PHPLayoutSchemaVersion, Version: ph.Version, Layout: ph.Layout, Mode: ph.LayoutMode, Binary: ph.LayoutBinary, Fields: f, Warnings: ph.Warnings}
}

// layoutSummary says in one line how the layout was made.
func layoutSummary(ph *crash.PHP) string {
	if len(ph.LayoutFields) == 0 {
		return ""
	}
	counts := map[crash.LayoutSource]int{}
	checked := 0
	for _, f := range ph.LayoutFields {
		counts[f.Source]++
		if f.Validated != "" {
			checked++
		}
	}
	var parts []string
	for _, s := range crash.LayoutSources() {
		if counts[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[s], s))
		}
	}
	s := fmt.Sprintf("layout: %s (%s; %d of %d checked on this core)", ph.Layout, strings.Join(parts, ", "), checked, len(ph.LayoutFields))
	if ph.LayoutBinary != "" {
		s += "; derived from " + ph.LayoutBinary
	}
	return s + "; coroner php --layout shows it"
}

// PHPLayoutText prints the layout the PHP readers used: each field, its
// value, where it came from and what checked it on the core.
func PHPLayoutText(w io.Writer, ph *crash.PHP) error {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("PHP %s: layout %s (--layout=%s)", ph.Version, ph.Layout, ph.LayoutMode)
	if ph.LayoutBinary != "" {
		p("derived from the code of %s", ph.LayoutBinary)
	}
	if ph.TSRM != "" {
		p("ZTS: %s", ph.TSRM)
	}
	for _, f := range ph.LayoutFields {
		src := string(f.Source)
		switch {
		case f.Anchor != "":
			src = fmt.Sprintf("derived from %s: %s", f.Anchor, f.Instruction)
			if f.PC != 0 {
				src += fmt.Sprintf(" (at %#x)", uint64(f.PC))
			}
		case f.Source == crash.LayoutConstant:
			src = "constant since PHP 7.0"
		case f.Source == crash.LayoutTable:
			src = "coroner's table"
		case f.Source == crash.LayoutCore:
			src = "found in the core"
		}
		p("  %-26s %8d  %s", f.Field, f.Value, src)
		if f.Rule != "" {
			p("  %-26s %8s  rule: %s", "", "", f.Rule)
		}
		if len(f.Agree) > 0 {
			p("  %-26s %8s  also given by: %s", "", "", strings.Join(f.Agree, ", "))
		}
		if f.Table != nil {
			agree := "agrees"
			if *f.Table != f.Value {
				agree = "DIFFERS"
			}
			p("  %-26s %8s  table/constant: %d (%s)", "", "", *f.Table, agree)
		}
		if f.Validated != "" {
			p("  %-26s %8s  checked: %s", "", "", f.Validated)
		} else {
			p("  %-26s %8s  checked: not exercised by this core", "", "")
		}
		if f.Note != "" {
			p("  %-26s %8s  note: %s", "", "", f.Note)
		}
	}
	for _, wn := range ph.Warnings {
		p("warning: %s", wn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
