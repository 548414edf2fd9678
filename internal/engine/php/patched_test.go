package php

import (
	"debug/elf"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// patchedEngine copies the PHP binary of in to dir with the code of the
// exported function fn overwritten (0xff bytes: no instruction), and points
// in's module at the copy.
func patchedEngine(t *testing.T, in *Input, fn string) {
	t.Helper()
	for i, mod := range in.Modules {
		if !phpCandidate(mod.Path) {
			continue
		}
		o, err := openObject(mod.Path)
		if err != nil {
			continue
		}
		sym, ok := readEngineSymbols(o)
		addr, size, found := o.symbol(fn)
		var off int64 = -1
		for _, p := range o.f.Progs {
			if p.Type == elf.PT_LOAD && addr >= p.Vaddr && addr+size <= p.Vaddr+p.Filesz {
				off = int64(p.Off + addr - p.Vaddr)
			}
		}
		o.close()
		if !ok || !found || off < 0 || sym.eg == 0 {
			continue
		}
		b, err := os.ReadFile(mod.Path)
		if err != nil {
			t.Fatal(err)
		}
		for j := int64(0); j < int64(size); j++ {
			b[off+j] = 0xff
		}
		copyPath := filepath.Join(t.TempDir(), filepath.Base(mod.Path))
		if err := os.WriteFile(copyPath, b, 0o755); err != nil {
			t.Fatal(err)
		}
		in.Modules[i].Path = copyPath
		return
	}
	t.Fatalf("no PHP engine exporting %s among the modules", fn)
}

// TestPatchedAnchor breaks the only function that reveals
// zend_op_array.line_start in a copy of the lab's php-fpm: with the table
// disabled, the PHP stack is refused with a message that names the
// function; with the table as the fallback it is read, and the layout says
// where the value came from.
func TestPatchedAnchor(t *testing.T) {
	lab := labtest.Get(t)
	sc := lab.Scenarios["method-closure-include"]
	if sc == nil {
		t.Fatal("no method-closure-include scenario")
	}
	const anchorFn = "zend_get_call_trampoline_func"
	in := inputFromCore(t, sc.Core)
	patchedEngine(t, &in, anchorFn)

	in.Layout = LayoutDerived
	res, err := Analyze(in)
	if err != nil || res == nil {
		t.Fatalf("Analyze = %v, %v", res, err)
	}
	if len(res.Frames) != 0 {
		t.Errorf("derived layout without line_start: %d frames %+v", len(res.Frames), res.Frames)
	}
	msg := strings.Join(res.Warnings, "\n")
	if !strings.Contains(msg, "PHP stack not read") || !strings.Contains(msg, "zend_op_array.line_start") || !strings.Contains(msg, anchorFn) {
		t.Errorf("warnings do not name the missing field and its anchor:\n%s", msg)
	}
	if res.Request == nil || res.Request.URI != sc.Truth.RequestURI {
		t.Errorf("the request does not need the missing field: %+v", res.Request)
	}
	t.Logf("derived: %s", msg)

	in.Layout = LayoutAuto
	res, err = Analyze(in)
	if err != nil || res == nil {
		t.Fatalf("Analyze = %v, %v", res, err)
	}
	if n := len(res.Frames); n != len(sc.Truth.Frames)+1 || res.Frames[n-1].Function != "{main}" || res.Frames[n-1].Line != sc.Truth.Frames[len(sc.Truth.Frames)-1].Line {
		t.Errorf("auto: frames %+v, truth %+v", res.Frames, sc.Truth.Frames)
	}
	for _, f := range res.LayoutFields {
		if f.Field == "oa.line_start" && (f.Source != "table" || !strings.Contains(f.Note, anchorFn) || f.Validated == "") {
			t.Errorf("auto: line_start %+v, want the table's value, a note naming %s and a validation", f, anchorFn)
		}
	}
}

// TestLayoutDisagreement makes the derived value and the table's disagree
// on EG(current_execute_data), one way then the other, on a real core:
// the value that reads the core's frames is used, with a warning.
func TestLayoutDisagreement(t *testing.T) {
	lab := labtest.Get(t)
	sc := lab.Scenarios["kill-segv"]
	if sc == nil {
		t.Fatal("no kill-segv scenario")
	}
	in := inputFromCore(t, sc.Core)
	check := func(what string, wantSource crash.LayoutSource, wantWarn string) {
		t.Helper()
		res, err := Analyze(in)
		if err != nil || res == nil {
			t.Fatalf("%s: Analyze = %v, %v", what, res, err)
		}
		if len(res.Frames) != len(sc.Truth.Frames)+1 || res.Frames[len(res.Frames)-1].Function != "{main}" {
			t.Errorf("%s: frames %+v", what, res.Frames)
		}
		for _, f := range res.LayoutFields {
			if f.Field == "eg.current_execute_data" && (f.Source != wantSource || f.Value != 488) {
				t.Errorf("%s: %+v, want 488 from %s", what, f, wantSource)
			}
		}
		if w := strings.Join(res.Warnings, "\n"); !strings.Contains(w, wantWarn) {
			t.Errorf("%s: warnings %q lack %q", what, w, wantWarn)
		}
	}

	// the table is wrong
	e, ok := tableFor(lab.PHPVersion)
	if !ok {
		t.Skipf("PHP %s is not in the table", lab.PHPVersion)
	}
	saved := e.values["eg.current_execute_data"]
	e.values["eg.current_execute_data"] = saved + 8
	check("wrong table", crash.LayoutDerived, "the derived value checks out on this core")
	e.values["eg.current_execute_data"] = saved

	// the derivation is wrong
	resetCache()
	defer resetCache()
	g, _, _ := findEngine(in.Modules, true)
	if g == nil || g.info.d == nil {
		t.Fatal("no derivation")
	}
	f := g.info.d.fields["eg.current_execute_data"]
	f.value += 8
	g.info.d.fields["eg.current_execute_data"] = f
	check("wrong derivation", crash.LayoutTable, "the derived one does not")
}

// TestUnknownRelease reads a lab core as if its PHP release were not in
// the table (a PHP coroner has never seen): the default mode reads it
// through derivation alone, with no warning.
func TestUnknownRelease(t *testing.T) {
	lab := labtest.Get(t)
	sc := lab.Scenarios["method-closure-include"]
	if sc == nil {
		t.Fatal("no method-closure-include scenario")
	}
	saved := table
	defer func() { table = saved }()
	table = nil
	for _, e := range saved {
		if e.version != minorVersion(lab.PHPVersion) {
			table = append(table, e)
		}
	}
	res, err := Analyze(inputFromCore(t, sc.Core))
	if err != nil || res == nil {
		t.Fatalf("Analyze = %v, %v", res, err)
	}
	if res.Layout != "derived" || len(res.Warnings) != 0 {
		t.Errorf("layout %q, warnings %q", res.Layout, res.Warnings)
	}
	if n := len(res.Frames); n != len(sc.Truth.Frames)+1 || res.Frames[n-1].Line != sc.Truth.Frames[len(sc.Truth.Frames)-1].Line {
		t.Errorf("frames %+v, truth %+v", res.Frames, sc.Truth.Frames)
	}
	for _, f := range res.LayoutFields {
		if f.Source == crash.LayoutTable {
			t.Errorf("%s from the table", f.Field)
		}
	}
}
