package analyze

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// releaseLab is what these tests need of a lab run made inside a chroot of
// another Debian release (lab/run.sh --release SUITE): the chroot is the
// sysroot the cores are analysed with, gdb.txt was made inside it.
type releaseLab struct {
	Release   string `json:"release"`
	Sysroot   string `json:"sysroot"`
	Scenarios map[string]struct {
		Core string `json:"core"`
		GDB  string `json:"gdb"`
	} `json:"scenarios"`
	CPrograms map[string]struct {
		Core string `json:"core"`
		GDB  string `json:"gdb"`
	} `json:"c_programs"`
}

// releaseLabs returns the lab runs of other releases found under
// $CORONER_LAB_RELEASES (default: where lab/run.sh --release writes them).
func releaseLabs(t *testing.T) []releaseLab {
	root := os.Getenv("CORONER_LAB_RELEASES")
	if root == "" {
		root = "/var/cache/coroner/lab/out"
	}
	paths, _ := filepath.Glob(filepath.Join(root, "*", "manifest.json"))
	var out []releaseLab
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var l releaseLab
		if json.Unmarshal(b, &l) != nil || l.Sysroot == "" {
			continue
		}
		if _, err := os.Stat(l.Sysroot); err != nil {
			continue
		}
		out = append(out, l)
	}
	if len(out) == 0 {
		t.Skipf("no lab runs of other releases under %s (lab/run.sh --release SUITE; CORONER_LAB_RELEASES)", root)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Release < out[j].Release })
	return out
}

// TestReleaseLabsMatchGDB: on cores of php-fpm workers of other Debian
// releases (7.4 to 8.5, glibc 2.31 to 2.42), analysed from outside their
// chroot with a sysroot, every frame gdb names inside the chroot is named
// the same, and coroner names more.
func TestReleaseLabsMatchGDB(t *testing.T) {
	for _, l := range releaseLabs(t) {
		names := make([]string, 0, len(l.Scenarios))
		for n := range l.Scenarios {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			s := l.Scenarios[n]
			t.Run(l.Release+"/"+n, func(t *testing.T) {
				if s.Core == "" || s.GDB == "" {
					t.Skip("no core")
				}
				rep, err := Core(s.Core, Options{Sysroot: l.Sysroot})
				if err != nil {
					t.Fatal(err)
				}
				checkAgainstGDB(t, rep, s.GDB, true, gdbCheck{sysroot: l.Sysroot})
			})
		}
	}
}

// TestPHPDebugSymbolsMatchGDB: on a core of a php-fpm built with Debian's
// flags and its debug file kept apart (lab/zts, when it has been run), the
// VM handler that was running shows as the function inlined into
// execute_ex (ZEND_..._HANDLER), and every frame gdb names with the debug
// file is named the same.
func TestPHPDebugSymbolsMatchGDB(t *testing.T) {
	root := os.Getenv("CORONER_PHP_ZTS")
	if root == "" {
		root = "/var/cache/coroner/php-zts" // where lab/zts builds it
	}
	cores, _ := filepath.Glob(filepath.Join(root, "cores", "*", "core.*"))
	if len(cores) == 0 {
		t.Skipf("no cores of a PHP built with debug information under %s (lab/zts; CORONER_PHP_ZTS)", root)
	}
	for _, core := range cores {
		dir := filepath.Dir(core)
		version := filepath.Base(dir)
		debug := filepath.Join(root, version, "debug")
		gdbOut := filepath.Join(dir, "gdb.txt")
		if _, err := os.Stat(gdbOut); err != nil {
			continue
		}
		t.Run(version, func(t *testing.T) {
			rep, err := Core(core, Options{DebugDirs: []string{debug}, NoPHP: true})
			if err != nil {
				t.Fatal(err)
			}
			checkAgainstGDB(t, rep, gdbOut, false, gdbCheck{})
			handler := false
			for _, f := range rep.CrashedThread().Frames {
				for _, v := range f.Inlined {
					if f.Function == "execute_ex" && strings.HasPrefix(v.Function, "ZEND_") && strings.HasSuffix(v.Function, "_HANDLER") {
						handler = true
					}
				}
			}
			if !handler {
				t.Error("no VM handler inlined in execute_ex")
			}
		})
	}
}
