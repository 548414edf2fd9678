package compressed

import (
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/coroner-dev/coroner/internal/hostile"
)

// TestBomb: 16 GiB of zeros in 512 KiB of zstd are decompressed up to
// MaxBytes, into a sparse file (the zeros take no disk), and the cut is
// reported; a Stop that says stop ends the decompression at once.
func TestBomb(t *testing.T) {
	dir := t.TempDir()
	cs, err := hostile.Make(dir, "bomb.zst")
	if err != nil {
		t.Fatal(err)
	}
	old := TempDir
	TempDir = dir
	defer func() { TempDir = old }()
	var warns []string
	warnf := func(format string, args ...any) { warns = append(warns, format) }
	plain, cleanup, err := OpenWith(cs.Path, Options{MaxBytes: 256 << 20, Warnf: warnf})
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(plain)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != 256<<20 {
		t.Errorf("decompressed %d bytes, want %d", st.Size(), 256<<20)
	}
	if blocks := st.Sys().(*syscall.Stat_t).Blocks * 512; blocks > 1<<20 {
		t.Errorf("the zeros take %d bytes of disk", blocks)
	}
	if len(warns) != 1 {
		t.Errorf("warnings %q", warns)
	}
	cleanup()
	if _, err := os.Stat(plain); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cleanup left %s", plain)
	}

	warns = nil
	stop := errors.New("budget used up")
	plain, cleanup, err = OpenWith(cs.Path, Options{Stop: func() error { return stop }, Warnf: warnf})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if st, _ := os.Stat(plain); st.Size() != 0 || len(warns) != 1 {
		t.Errorf("stopped decompression: %d bytes, warnings %q", st.Size(), warns)
	}
}

// TestRemoveTemps: the decompressed copies a process still holds are
// removed by RemoveTemps (what an interrupted command runs).
func TestRemoveTemps(t *testing.T) {
	p := sample(t)
	z := p + ".zst"
	compress(t, "zstd", p, z)
	old := TempDir
	TempDir = t.TempDir()
	defer func() { TempDir = old }()
	plain, _, err := Open(z, nil)
	if err != nil {
		t.Fatal(err)
	}
	RemoveTemps()
	if _, err := os.Stat(plain); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there", plain)
	}
}

// TestOpenFIFO: a FIFO named as a core is refused at once.
func TestOpenFIFO(t *testing.T) {
	p := t.TempDir() + "/fifo"
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(p, nil); err == nil || !strings.Contains(err.Error(), "named pipe") {
		t.Fatalf("%v", err)
	}
}
