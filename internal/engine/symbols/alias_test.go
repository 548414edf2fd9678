package symbols

import (
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestAliasesAsGDB: where several function symbols share an address
// (raise/gsignal, close/__close, strtod/strtof64), coroner names the
// address as gdb does. The oracle is gdb's `info symbol` on the stripped
// libc of this host and, when the lab's chroots of other Debian releases
// exist, on theirs.
func TestAliasesAsGDB(t *testing.T) {
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skip("gdb not installed")
	}
	libs := []string{"/lib/x86_64-linux-gnu/libc.so.6"}
	chroots := os.Getenv("CORONER_LAB_CHROOTS")
	if chroots == "" {
		chroots = "/var/cache/coroner/lab/chroots" // where lab/chroot.sh makes them
	}
	for _, rel := range []string{"bullseye", "trixie", "sid"} {
		for _, dir := range []string{"usr/lib", "lib"} {
			p := filepath.Join(chroots, rel, dir, "x86_64-linux-gnu/libc.so.6")
			if real, err := filepath.EvalSymlinks(p); err == nil {
				libs = append(libs, real)
				break
			}
		}
	}
	for _, lib := range libs {
		if _, err := os.Stat(lib); err != nil {
			continue
		}
		t.Run(lib, func(t *testing.T) {
			// No debug file: gdb and coroner see .dynsym only.
			o, err := OpenWithOptions(lib, Options{DebugDirs: []string{t.TempDir()}})
			if err != nil {
				t.Fatal(err)
			}
			defer o.Close()
			addrs := aliasedAddresses(t, lib)
			if len(addrs) < 20 {
				t.Fatalf("only %d aliased addresses in %s", len(addrs), lib)
			}
			if len(addrs) > 120 {
				addrs = addrs[:120]
			}
			args := []string{"-nx", "-batch", "-ex", "set debug-file-directory " + t.TempDir()}
			for _, a := range addrs {
				args = append(args, "-ex", fmt.Sprintf("info symbol %#x", a))
			}
			out, err := exec.Command("gdb", append(args, lib)...).Output()
			if err != nil {
				t.Fatalf("gdb: %v", err)
			}
			lines := strings.Split(strings.TrimSpace(string(out)), "\n")
			if len(lines) != len(addrs) {
				t.Fatalf("gdb printed %d lines for %d addresses", len(lines), len(addrs))
			}
			for i, a := range addrs {
				want, _, _ := strings.Cut(lines[i], " in section")
				want, _, _ = strings.Cut(want, " + ")
				s, ok := o.Lookup(a)
				if !ok || s.Name != want {
					t.Errorf("%#x: gdb %q, coroner %q (aliases %v)", a, want, s.Name, o.Aliases(a))
				}
			}
		})
	}
}

// aliasedAddresses returns the addresses where .dynsym defines functions
// under more than one name.
func aliasedAddresses(t *testing.T, lib string) []uint64 {
	ef, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	syms, err := ef.DynamicSymbols()
	if err != nil {
		t.Fatal(err)
	}
	names := map[uint64]map[string]bool{}
	for _, s := range syms {
		typ := elf.ST_TYPE(s.Info)
		if (typ != elf.STT_FUNC && typ != elf.STT_GNU_IFUNC) || s.Section == elf.SHN_UNDEF || s.Value == 0 || s.Size == 0 {
			continue
		}
		if names[s.Value] == nil {
			names[s.Value] = map[string]bool{}
		}
		names[s.Value][s.Name] = true
	}
	var out []uint64
	for a, n := range names {
		if len(n) > 1 {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}
