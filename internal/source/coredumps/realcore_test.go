package coredumps

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
)

// crashSource is a small program that dies with SIGSEGV writing through a
// NULL pointer a few calls deep.
const crashSource = `
#include <stdio.h>
#include <stdlib.h>
static int depth(volatile int *p, int n) {
	if (n == 0) { *p = 42; return 0; }
	return depth(p, n - 1) + 1;
}
int main(int argc, char **argv) {
	char *buf = malloc(1 << 20);
	for (int i = 0; i < (1 << 20); i++) buf[i] = (char)i;
	printf("%d\n", depth((volatile int *)0, 3 + (argc > 5)));
	return buf[7];
}
`

// realCore is a core of a real crashed process, made once per test binary.
type realCore struct {
	Core, Exe string
	PID       int
}

var (
	coreMu  sync.Mutex
	coreVal *realCore
	coreDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if coreDir != "" {
		os.RemoveAll(coreDir)
	}
	os.Exit(code)
}

// getRealCore compiles crashSource with gcc and crashes it under gdb,
// which dumps its core (labtest.CrashCore: kernel.core_pattern, which only
// the lab may change, and RLIMIT_CORE do not matter).
func getRealCore(t testing.TB) *realCore {
	t.Helper()
	coreMu.Lock()
	defer coreMu.Unlock()
	if coreVal != nil {
		return coreVal
	}
	if coreDir == "" {
		dir, err := os.MkdirTemp("", "coroner-cores-test-")
		if err != nil {
			t.Fatal(err)
		}
		coreDir = dir
	}
	coreVal = crashIn(t, coreDir, crashSource)
	return coreVal
}

// crashIn compiles source to dir/crash, runs it until it crashes and
// returns its core (dir/core.raw).
func crashIn(t testing.TB, dir, source string) *realCore {
	t.Helper()
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed")
	}
	src := filepath.Join(dir, "crash.c")
	exe := filepath.Join(dir, "crash")
	if err := os.WriteFile(src, []byte(source), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("gcc", "-O0", "-o", exe, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v: %s", err, out)
	}
	core, pid := labtest.CrashCore(t, dir, nil, exe)
	raw := filepath.Join(dir, "core.raw")
	if err := os.Rename(core, raw); err != nil {
		t.Fatal(err)
	}
	return &realCore{Core: raw, Exe: exe, PID: pid}
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

func TestReadCoreInfoRealCore(t *testing.T) {
	rc := getRealCore(t)
	info, size, err := ReadCoreInfoFile(rc.Core)
	if err != nil {
		t.Fatal(err)
	}
	if info.PID != rc.PID || info.Signal != 11 || info.Comm != "crash" || info.Exe != rc.Exe {
		t.Errorf("got pid %d signal %d comm %q exe %q; want %d 11 crash %s", info.PID, info.Signal, info.Comm, info.Exe, rc.PID, rc.Exe)
	}
	if info.SigCode != 1 { // SEGV_MAPERR
		t.Errorf("si_code = %d, want 1 (SEGV_MAPERR)", info.SigCode)
	}
	if info.ExpectedSize != size {
		t.Errorf("expected size %d, file size %d", info.ExpectedSize, size)
	}
	want, err := FileBuildID(rc.Exe)
	if err != nil || want == "" {
		t.Fatalf("build-id of %s: %q %v", rc.Exe, want, err)
	}
	if info.ExeBuildID != want {
		t.Errorf("build-id in core %q, on disk %q", info.ExeBuildID, want)
	}
	// The oracle: eu-readelf / readelf print the same build-id.
	if out, err := exec.Command("readelf", "-n", rc.Exe).Output(); err == nil && !strings.Contains(string(out), want) {
		t.Errorf("readelf -n does not show build-id %s:\n%s", want, out)
	}
}

// TestAnalysableVerdicts: a core whose executable was rebuilt (another
// build-id) or removed since the crash is listed as not analysable, with
// the reason.
func TestAnalysableVerdicts(t *testing.T) {
	dir := t.TempDir()
	rc := crashIn(t, dir, crashSource)
	opts := DiscoverOptions{Sources: []string{SourceDir}, Dirs: []string{rc.Core}, NoJournal: true}
	verdict := func() *Entry {
		es, _ := Discover(opts)
		if len(es) != 1 {
			t.Fatalf("%d entries", len(es))
		}
		return es[0]
	}
	if e := verdict(); e.Analysable != Yes {
		t.Fatalf("fresh core: %s %s", e.Analysable, e.Why)
	}
	src := filepath.Join(dir, "crash.c")
	os.WriteFile(src, []byte(strings.Replace(crashSource, "42", "43", 1)), 0o644)
	if out, err := exec.Command("gcc", "-O0", "-o", rc.Exe, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v %s", err, out)
	}
	if e := verdict(); e.Analysable != No || !strings.Contains(e.Why, "rebuilt or upgraded") || e.BuildID == e.FileBuildID {
		t.Errorf("rebuilt executable: %s %q", e.Analysable, e.Why)
	}
	os.Remove(rc.Exe)
	if e := verdict(); e.Analysable != No || !strings.Contains(e.Why, "no longer on disk") {
		t.Errorf("removed executable: %s %q", e.Analysable, e.Why)
	}
}
