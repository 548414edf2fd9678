package analyze

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/render"
)

var update = flag.Bool("update", false, "rewrite the golden reports of the checked-in cores (testdata/cores/*/report.json)")

// analyzeFixture analyses a checked-in core the way `coroner analyze
// --json --sysroot` does, hermetically: only the checked-in files are read,
// never this host's libraries or debug files.
func analyzeFixture(t *testing.T, f *labtest.Fixture) *crash.Report {
	t.Helper()
	rep, err := Core(f.PlainCore(t), Options{Sysroot: f.Sysroot, NoHostDebugFiles: true})
	if err != nil {
		t.Fatalf("analyse %s: %v", f.Name, err)
	}
	kb, err := diagnose.Load()
	if err != nil {
		t.Fatal(err)
	}
	rep.Diagnosis = kb.Diagnose(rep, diagnose.Evidence{})
	rep.Fingerprint = diagnose.Fingerprint(rep)
	return rep
}

// goldenJSON is the report as it is checked in: without timings, with the
// core named as checked in and the sysroot as $SYSROOT, and with frame
// lists of more than goldenMaxArray frames (the 41,000 frames of a deep
// recursion) cut to their first and last frames and a marker
// {"elided": N, "sha256": ...} with the hash of the middle's JSON.
func goldenJSON(t *testing.T, rep *crash.Report, f *labtest.Fixture) []byte {
	t.Helper()
	r := *rep
	r.Timings = nil
	r.Process.CorePath = "core.zst"
	type cut struct {
		path []any // where the marker goes: keys and indexes
		mark map[string]any
	}
	var cuts []cut
	marker := func(middle any, n int) map[string]any {
		b, err := json.Marshal(middle)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		return map[string]any{"elided": n, "sha256": hex.EncodeToString(sum[:])}
	}
	r.Threads = append([]crash.Thread(nil), rep.Threads...)
	for i := range r.Threads {
		fr := r.Threads[i].Frames
		if len(fr) > goldenMaxArray {
			mid := fr[goldenHead : len(fr)-goldenTail]
			cuts = append(cuts, cut{[]any{"threads", i, "frames"}, marker(mid, len(mid))})
			r.Threads[i].Frames = append(append([]crash.Frame(nil), fr[:goldenHead]...), fr[len(fr)-goldenTail:]...)
		}
	}
	if rep.PHP != nil && len(rep.PHP.Frames) > goldenMaxArray {
		php := *rep.PHP
		fr := php.Frames
		mid := fr[goldenHead : len(fr)-goldenTail]
		cuts = append(cuts, cut{[]any{"php", "frames"}, marker(mid, len(mid))})
		php.Frames = append(append([]crash.PHPFrame(nil), fr[:goldenHead]...), fr[len(fr)-goldenTail:]...)
		r.PHP = &php
	}
	var buf bytes.Buffer
	if err := render.JSON(&buf, &r); err != nil {
		t.Fatal(err)
	}
	b := bytes.ReplaceAll(buf.Bytes(), []byte(f.Sysroot), []byte("$SYSROOT"))
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	for _, c := range cuts {
		var parent any = v
		for _, k := range c.path[:len(c.path)-1] {
			switch k := k.(type) {
			case string:
				parent = parent.(map[string]any)[k]
			case int:
				parent = parent.([]any)[k]
			}
		}
		m := parent.(map[string]any)
		key := c.path[len(c.path)-1].(string)
		list := m[key].([]any)
		m[key] = append(append(append([]any(nil), list[:goldenHead]...), c.mark), list[goldenHead:]...)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

const (
	goldenMaxArray = 300
	goldenHead     = 120
	goldenTail     = 60
)

// diffJSON lists the differences between two JSON documents field by field
// ("threads[0].frames[3].function: got ..., want ...").
func diffJSON(path string, got, want any, out *[]string) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: got %s, want an object", path, short(got)))
			return
		}
		keys := map[string]bool{}
		for k := range w {
			keys[k] = true
		}
		for k := range g {
			keys[k] = true
		}
		var sorted []string
		for k := range keys {
			sorted = append(sorted, k)
		}
		sort.Strings(sorted)
		for _, k := range sorted {
			p := k
			if path != "" {
				p = path + "." + k
			}
			gv, gok := g[k]
			wv, wok := w[k]
			switch {
			case !gok:
				*out = append(*out, fmt.Sprintf("%s: missing, want %s", p, short(wv)))
			case !wok:
				*out = append(*out, fmt.Sprintf("%s: got %s, not in the golden report", p, short(gv)))
			default:
				diffJSON(p, gv, wv, out)
			}
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			*out = append(*out, fmt.Sprintf("%s: got %s, want an array", path, short(got)))
			return
		}
		if len(g) != len(w) {
			*out = append(*out, fmt.Sprintf("%s: %d elements, want %d", path, len(g), len(w)))
		}
		for i := 0; i < len(g) && i < len(w); i++ {
			diffJSON(fmt.Sprintf("%s[%d]", path, i), g[i], w[i], out)
		}
	default:
		gb, _ := json.Marshal(got)
		wb, _ := json.Marshal(want)
		if !bytes.Equal(gb, wb) {
			*out = append(*out, fmt.Sprintf("%s: got %s, want %s", path, gb, wb))
		}
	}
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 120 {
		return string(b[:117]) + "..."
	}
	return string(b)
}

// TestGolden analyses each checked-in lab core (testdata/cores) with only
// the checked-in files and compares the report with the golden one field by
// field; -update rewrites the golden reports. It needs neither root nor the
// lab, and gives the same report on any machine: nothing of this host is
// read.
func TestGolden(t *testing.T) {
	for _, f := range labtest.Fixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			got := goldenJSON(t, analyzeFixture(t, f), f)
			if *update {
				if err := os.WriteFile(f.Golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			wantB, err := os.ReadFile(f.Golden)
			if err != nil {
				t.Fatalf("%v (make it with -update)", err)
			}
			if bytes.Equal(got, wantB) {
				return
			}
			var g, w any
			if err := json.Unmarshal(got, &g); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(wantB, &w); err != nil {
				t.Fatalf("golden %s: %v", f.Golden, err)
			}
			var diffs []string
			diffJSON("", g, w, &diffs)
			if len(diffs) > 40 {
				diffs = append(diffs[:40], fmt.Sprintf("... and %d more", len(diffs)-40))
			}
			t.Errorf("%s differs from the golden report (go test -run Golden -update rewrites it):\n  %s", f.Name, strings.Join(diffs, "\n  "))
		})
	}
}

// TestFixturesMatchOracles checks the checked-in cores against what gdb
// said of the original cores on the lab machine and, for PHP, against the
// PHP script's own debug_backtrace(): the golden reports are right, not
// only unchanged.
func TestFixturesMatchOracles(t *testing.T) {
	for _, f := range labtest.Fixtures(t) {
		t.Run(f.Name, func(t *testing.T) {
			rep := analyzeFixture(t, f)
			if f.GDB == "" {
				t.Fatalf("%s has no gdb.txt", f.Name)
			}
			// gdb read libc6-dbg on the lab machine: libc's static
			// functions have names there (from ../sysdeps/... sources)
			// that the checked-in libc's .dynsym does not have.
			distro := func(g gdbFrame) bool { return strings.HasPrefix(g.file, "../") || strings.HasPrefix(g.file, "./") }
			// The sysroot keeps only the pages of the files that coroner
			// read when the fixture was made: where the debug information
			// of a frame's code was not read then, gdb's inlined frames
			// there are that one frame.
			checkAgainstGDB(t, rep, f.GDB, rep.PHP != nil, gdbCheck{sysroot: f.Sysroot, skip: distro, noDebugInfo: true})
			for _, m := range rep.Modules {
				if m.Missing || m.Mismatch {
					t.Errorf("module %s: missing %v, build-id mismatch %v", m.Path, m.Missing, m.Mismatch)
				}
			}
			if f.Truth != nil {
				checkTruth(t, rep, f.Truth)
			}
		})
	}
}

// checkTruth compares the PHP stack with the frames the script saw
// (innermost internal functions, which ran after debug_backtrace(), aside).
func checkTruth(t *testing.T, rep *crash.Report, tr *labtest.Truth) {
	t.Helper()
	if rep.PHP == nil {
		t.Fatal("no PHP section")
	}
	type fr struct {
		Function, Class, File string
		Line                  int
	}
	var got, want []fr
	for _, f := range rep.PHP.Frames {
		got = append(got, fr{f.Function, f.Class, f.File, f.Line})
	}
	for _, f := range tr.Frames {
		want = append(want, fr{f.Function, f.Class, f.File, f.Line})
	}
	if tr.Outermost {
		if len(got) < len(want) {
			t.Fatalf("%d PHP frames, fewer than the %d outermost ones", len(got), len(want))
		}
		got = got[len(got)-len(want):]
	} else {
		for len(got) > 0 && got[0].File == "" {
			got = got[1:]
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("PHP frames:\n got %+v\nwant %+v", got, want)
	}
	if r := rep.PHP.Request; r == nil || r.URI != tr.RequestURI || r.Method != tr.Method {
		t.Errorf("request %+v, want %s %s", r, tr.Method, tr.RequestURI)
	}
}
