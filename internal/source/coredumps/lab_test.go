package coredumps_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

func sameFile(a, b string) bool {
	ra, err1 := filepath.EvalSymlinks(a)
	rb, err2 := filepath.EvalSymlinks(b)
	return err1 == nil && err2 == nil && ra == rb
}

// TestLabCores: every core the crash lab produced (php-fpm workers and C
// programs) is discovered with the pid, signal and executable the lab
// recorded, as complete and analysable; a php-fpm core stored the way
// systemd-coredump stores it (zstd, xattrs) analyses like the raw core.
func TestLabCores(t *testing.T) {
	lab := labtest.Get(t)
	type want struct {
		name, core, exe string
		pid, signal     int
	}
	var wants []want
	for name, sc := range lab.Scenarios {
		wants = append(wants, want{name, sc.Core, lab.PHPFPM, sc.PID, sc.Signal})
	}
	for name, cc := range lab.CPrograms {
		wants = append(wants, want{name, cc.Core, cc.Binary, 0, cc.Signal})
	}
	sort.Slice(wants, func(i, j int) bool { return wants[i].name < wants[j].name })
	if len(wants) == 0 {
		t.Fatal("the lab produced no cores")
	}
	for _, w := range wants {
		t.Run(w.name, func(t *testing.T) {
			entries, warns := coredumps.Discover(coredumps.DiscoverOptions{Sources: []string{coredumps.SourceDir}, Dirs: []string{w.core}, NoJournal: true})
			if len(warns) != 0 || len(entries) != 1 {
				t.Fatalf("discover %s: %d entries, warnings %v", w.core, len(entries), warns)
			}
			e := entries[0]
			if w.pid != 0 && e.PID != w.pid {
				t.Errorf("pid %d, lab says %d", e.PID, w.pid)
			}
			if e.Signal != w.signal || !sameFile(e.Exe, w.exe) {
				t.Errorf("signal %d exe %s; lab says %d %s", e.Signal, e.Exe, w.signal, w.exe)
			}
			switch {
			case e.Truncated != coredumps.No:
				t.Errorf("truncated %s (%s)", e.Truncated, e.Why)
			case e.BuildID == "" && e.Analysable == coredumps.Unknown:
				// Go binaries carry no GNU build-id (only Go's own): the
				// binary on disk cannot be checked, which is said, not guessed.
			case e.Analysable != coredumps.Yes || e.BuildID == "":
				t.Errorf("analysable %s (%s) build-id %q", e.Analysable, e.Why, e.BuildID)
			}
		})
	}
	// A php-fpm core through a systemd-coredump-style store.
	var sc *labtest.Scenario
	for _, name := range []string{"ffi-null-code", "abort", "kill-segv"} {
		if s := lab.Scenarios[name]; s != nil {
			sc = s
			break
		}
	}
	if sc == nil {
		t.Skip("no php-fpm scenario core in the lab")
	}
	store := t.TempDir()
	name := fmt.Sprintf("core.php-fpm8\\x2e2.33.0123456789abcdef0123456789abcdef.%d.1795721384000000.zst", sc.PID)
	dst := filepath.Join(store, name)
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("zstd", "-q", "-c", "-1", sc.Core)
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		t.Fatalf("zstd: %v", err)
	}
	out.Close()
	entries, _ := coredumps.Discover(coredumps.DiscoverOptions{Sources: []string{coredumps.SourceSystemd}, SystemdDir: store, NoJournal: true})
	if len(entries) != 1 || entries[0].Comm != "php-fpm8.2" || entries[0].PID != sc.PID || entries[0].Analysable != coredumps.Yes {
		t.Fatalf("store entry: %s", storeDump(entries))
	}
	e, plain, cleanup, err := coredumps.Resolve(name, coredumps.ResolveOptions{Discover: coredumps.DiscoverOptions{SystemdDir: store}})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if e.Truncated != coredumps.No || e.CoreSize == 0 {
		t.Errorf("resolved: truncated %s size %d", e.Truncated, e.CoreSize)
	}
	if got, want := analysis(t, plain), analysis(t, sc.Core); !bytes.Equal(got, want) {
		t.Errorf("analysis through the store differs from the raw core's")
	}
}

func storeDump(es []*coredumps.Entry) string {
	var b bytes.Buffer
	for _, e := range es {
		fmt.Fprintf(&b, "\n%+v", *e)
	}
	return b.String()
}
