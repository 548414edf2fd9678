package php

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// labsDir, when set (CORONER_LAB_RELEASES=DIR), holds lab outputs to read
// instead of running the labs: DIR/*/manifest.json (lab/run.sh --release
// SUITE --out DIR/SUITE, or --fpm BIN).
func labsDir() string { return os.Getenv("CORONER_LAB_RELEASES") }

// releaseLabs returns the crashes of every PHP build the lab runs: the
// host's php-fpm (labtest.Get) and each Debian release in its chroot
// (labtest.Release), or the outputs under labsDir() when it is set.
func releaseLabs(t *testing.T) []*labtest.Lab {
	t.Helper()
	var out []*labtest.Lab
	if root := labsDir(); root != "" {
		manifests, _ := filepath.Glob(filepath.Join(root, "*", "manifest.json"))
		for _, mf := range manifests {
			l, err := labtest.Read(filepath.Dir(mf))
			if err != nil {
				t.Errorf("%s: %v", mf, err)
				continue
			}
			if l.Release == "" {
				l.Release = filepath.Base(filepath.Dir(mf))
			}
			if _, err := os.Stat(l.PHPFPM); l.PHPFPM != "" && err != nil {
				t.Logf("%s: its php-fpm %s is gone (an old output): left out", mf, l.PHPFPM)
				continue
			}
			out = append(out, l)
		}
		if len(out) == 0 {
			t.Skipf("no lab output under CORONER_LAB_RELEASES=%s", root)
		}
	} else {
		host := labtest.Get(t)
		if host.Release == "" {
			host.Release = "host"
		}
		out = append(out, host)
		suites := make([]string, 0, len(labtest.Releases))
		for s := range labtest.Releases {
			suites = append(suites, s)
		}
		sort.Strings(suites)
		for _, s := range suites {
			out = append(out, labtest.Release(t, s))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Release < out[j].Release })
	return out
}

// inputFromSysrootCore reads a core whose files live under sysroot.
func inputFromSysrootCore(t testing.TB, path, sysroot string) Input {
	t.Helper()
	c, err := elfcore.OpenWithOptions(path, elfcore.Options{Sysroot: sysroot})
	if err != nil {
		t.Fatalf("open core: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	var maps []mapping
	for _, f := range c.Files() {
		maps = append(maps, mapping{Start: f.Start, End: f.End, Offset: f.Offset, Path: f.Path})
	}
	host := func(p string) string {
		if sysroot == "" {
			return p
		}
		return filepath.Join(sysroot, p)
	}
	in := Input{Memory: c, Modules: modulesFromMappings(maps, host)}
	addThreads(&in, c)
	return in
}

// TestReleaseLabs reads every crash of every release lab with each layout
// mode and compares the PHP stack with PHP's own debug_backtrace(), the
// request with what PHP reported, and opcache.jit / pcre.jit with the
// lab's settings. --layout=derived must give the same results as the
// table: the derivation alone reads every release.
func TestReleaseLabs(t *testing.T) {
	for _, lab := range releaseLabs(t) {
		for _, mode := range []LayoutMode{LayoutAuto, LayoutDerived, LayoutTable} {
			t.Run(lab.Release+"/"+string(mode), func(t *testing.T) {
				if mode == LayoutTable {
					if _, ok := tableFor(lab.PHPVersion); !ok {
						t.Skipf("PHP %s is not in the table", lab.PHPVersion)
					}
				}
				names := make([]string, 0, len(lab.Scenarios))
				for n := range lab.Scenarios {
					names = append(names, n)
				}
				sort.Strings(names)
				for _, name := range names {
					sc := lab.Scenarios[name]
					in := inputFromSysrootCore(t, sc.Core, lab.Sysroot)
					in.Layout = mode
					res, err := Analyze(in)
					if err != nil || res == nil {
						t.Fatalf("%s: Analyze = %v, %v", name, res, err)
					}
					checkReleaseScenario(t, lab, name, sc, res, mode)
				}
			})
		}
	}
}

// checkReleaseScenario compares one analysis with the scenario's truth.
func checkReleaseScenario(t *testing.T, lab *labtest.Lab, name string, sc *labtest.Scenario, res *crash.PHP, mode LayoutMode) {
	t.Helper()
	if lab.ZTS && (!res.ZTS || res.TSRM == "" || res.Thread == 0) {
		t.Errorf("%s: ZTS build: zts %v, thread %d, tsrm %q", name, res.ZTS, res.Thread, res.TSRM)
	}
	if res.Version != lab.PHPVersion {
		t.Errorf("%s: version %q, lab ran %q", name, res.Version, lab.PHPVersion)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("%s: warnings %q", name, res.Warnings)
	}
	var got, want []truthFrame
	for _, f := range res.Frames {
		got = append(got, truthFrame{f.Function, f.Class, f.CallType, f.File, f.Line})
	}
	for _, f := range sc.Truth.Frames {
		want = append(want, truthFrame{f.Function, f.Class, f.CallType, f.File, f.Line})
	}
	if sc.Truth.Outermost {
		if len(got) < len(want) {
			t.Fatalf("%s: %d frames, fewer than the %d outermost ones", name, len(got), len(want))
		}
		got = got[len(got)-len(want):]
	} else {
		// the innermost internal frames (the crashing call) are not in
		// debug_backtrace() taken before it
		for len(got) > len(want) && res.Frames[len(res.Frames)-len(got)].Kind == crash.PHPInternal {
			got = got[1:]
		}
	}
	if len(got) != len(want) {
		t.Errorf("%s: %d frames %v, truth has %d %v", name, len(got), got, len(want), want)
	} else {
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%s: frame %d is %+v, truth %+v", name, i, got[i], want[i])
			}
		}
	}
	r := res.Request
	switch {
	case r == nil:
		t.Errorf("%s: no request", name)
	case r.URI != sc.Truth.RequestURI || r.Method != sc.Truth.Method || r.Host != sc.Truth.Host || r.Query != sc.Truth.Query:
		t.Errorf("%s: request %s %s host %s query %q, truth %s %s host %s query %q", name, r.Method, r.URI, r.Host, r.Query,
			sc.Truth.Method, sc.Truth.RequestURI, sc.Truth.Host, sc.Truth.Query)
	}
	if lab.JIT != "" && res.INI["opcache.jit"] != lab.JIT {
		t.Errorf("%s: opcache.jit = %q, the lab ran %q", name, res.INI["opcache.jit"], lab.JIT)
	}
	if res.INI["pcre.jit"] != "1" {
		t.Errorf("%s: pcre.jit = %q", name, res.INI["pcre.jit"])
	}
	if lab.JIT != "" && (res.JIT == nil || res.JIT.BufferStart == 0 || res.JIT.BufferEnd <= res.JIT.BufferStart) {
		t.Errorf("%s: JIT buffer not located: %+v", name, res.JIT)
	}
	for _, f := range res.LayoutFields {
		if mode == LayoutDerived && f.Source == crash.LayoutTable {
			t.Errorf("%s: --layout=derived used the table for %s", name, f.Field)
		}
		if mode == LayoutTable && f.Source == crash.LayoutDerived {
			t.Errorf("%s: --layout=table derived %s", name, f.Field)
		}
		if !f.Source.Valid() {
			t.Errorf("%s: %s has source %q", name, f.Field, f.Source)
		}
	}
	if mode != LayoutTable && !strings.HasPrefix(res.Layout, "derived") {
		t.Errorf("%s: layout %q", name, res.Layout)
	}
}
