package labtest

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/source/compressed"
)

// FixturesDir is where the checked-in lab cores live, relative to the
// repository root.
const FixturesDir = "internal/engine/analyze/testdata/cores"

// Fixture is a core of a lab crash checked into the repository, small
// enough for git: internal/engine/analyze/testdata/cores/NAME holds the
// core with only the pages coroner reads (core.zst), gdb's view of the
// original core (gdb.txt), PHP's own debug_backtrace() for PHP crashes
// (truth.json) and the golden report (report.json); the files the crashed
// processes mapped, with only the pages coroner reads, are shared by all
// of them (cores/sysroot.tar.zst, paths as in the cores).
// internal/labtest/trimcore makes them from a lab run (scripts/fixtures.sh).
type Fixture struct {
	// Name is the directory name ("c-pcre-null", "php-ffi-null-code").
	Name string
	// Dir is the fixture's directory in the repository.
	Dir string
	// Core is the compressed core as checked in.
	Core string
	// Sysroot is the directory the files of sysroot.tar.zst are extracted
	// to, for analyze.Options.Sysroot or --sysroot. Shared by every test
	// process: never write into it.
	Sysroot string
	// GDB is gdb's backtrace of the original core ("" when absent).
	GDB string
	// Truth is PHP's own view of the crash, for PHP crashes (else nil).
	Truth *Truth
	// Golden is the expected report (report.json).
	Golden string

	plainOnce sync.Once
	plain     string
	plainErr  error
}

var (
	fixturesOnce sync.Once
	fixtures     []*Fixture
	fixturesErr  error
)

// Fixtures returns the checked-in lab cores, with their sysroots extracted
// (once per content, in a cache directory under os.TempDir() shared by all
// test processes). They need neither root nor the lab.
func Fixtures(t testing.TB) []*Fixture {
	t.Helper()
	fixturesOnce.Do(func() { fixtures, fixturesErr = loadFixtures() })
	if fixturesErr != nil {
		t.Fatalf("checked-in cores: %v", fixturesErr)
	}
	return fixtures
}

// GetFixture returns the checked-in lab core NAME.
func GetFixture(t testing.TB, name string) *Fixture {
	t.Helper()
	for _, f := range Fixtures(t) {
		if f.Name == name {
			return f
		}
	}
	t.Fatalf("no checked-in core %q in %s", name, FixturesDir)
	return nil
}

// PlainCore returns the core decompressed (once per content, into the
// cache directory next to the sysroot).
func (f *Fixture) PlainCore(t testing.TB) string {
	t.Helper()
	f.plainOnce.Do(func() {
		b, err := os.ReadFile(f.Core)
		if err != nil {
			f.plainErr = err
			return
		}
		sum := sha256.Sum256(b)
		f.plain = filepath.Join(filepath.Dir(f.Sysroot), "core-"+hex.EncodeToString(sum[:])[:16])
		if _, err := os.Stat(f.plain); err == nil {
			return
		}
		f.plainErr = decompressTo(f.Core, f.plain)
	})
	if f.plainErr != nil {
		t.Fatalf("decompress %s: %v", f.Core, f.plainErr)
	}
	return f.plain
}

func loadFixtures() ([]*Fixture, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	base := filepath.Join(root, FixturesDir)
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", base, err)
	}
	archive, err := findOne(base, "sysroot.tar")
	if err != nil {
		return nil, err
	}
	sysroot, err := extractCached(archive)
	if err != nil {
		return nil, err
	}
	var out []*Fixture
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		dir := filepath.Join(base, e.Name())
		f := &Fixture{Name: e.Name(), Dir: dir, Golden: filepath.Join(dir, "report.json"), Sysroot: sysroot}
		if f.Core, err = findOne(dir, "core"); err != nil {
			return nil, err
		}
		if p := filepath.Join(dir, "gdb.txt"); fileExists(p) {
			f.GDB = p
		}
		if p := filepath.Join(dir, "truth.json"); fileExists(p) {
			b, err := os.ReadFile(p)
			if err != nil {
				return nil, err
			}
			f.Truth = &Truth{}
			if err := json.Unmarshal(b, f.Truth); err != nil {
				return nil, fmt.Errorf("parse %s: %w", p, err)
			}
		}
		out = append(out, f)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no fixtures in %s", base)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// findOne returns dir/NAME.zst or dir/NAME.xz.
func findOne(dir, name string) (string, error) {
	for _, ext := range []string{".zst", ".xz"} {
		if p := filepath.Join(dir, name+ext); fileExists(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: no %s.zst or %s.xz", dir, name, name)
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// extractCached extracts a compressed tar archive into a directory under
// os.TempDir() named by the archive's content hash and the user, unless a
// complete one is there, and returns DIR/sysroot.
func extractCached(archive string) (string, error) {
	b, err := os.ReadFile(archive)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	// One cache per user: another user's is not writable.
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("coroner-fixture-%s-%d", hex.EncodeToString(sum[:])[:16], os.Geteuid()))
	sysroot := filepath.Join(dir, "sysroot")
	if fileExists(sysroot) {
		return sysroot, nil
	}
	removeStaleFixtures(dir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(dir, "extract-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if err := ExtractTar(bytes.NewReader(b), tmp); err != nil {
		return "", fmt.Errorf("extract %s: %w", archive, err)
	}
	if err := os.Rename(tmp, sysroot); err != nil && !fileExists(sysroot) {
		return "", err
	}
	return sysroot, nil
}

// ExtractTar extracts a tar archive (compressed with zstd, xz, ... or not)
// of regular files and directories into dir. Pages of zeros are left as holes, so the
// trimmed files of a fixture take little disk space.
func ExtractTar(r io.Reader, dir string) error {
	head := make([]byte, 16)
	n, _ := io.ReadFull(r, head)
	head = head[:n]
	var in io.Reader = io.MultiReader(bytes.NewReader(head), r)
	if f := compressed.Detect(head); f != compressed.Unknown && f != compressed.Plain {
		rc, err := compressed.NewReader(in, f)
		if err != nil {
			return err
		}
		defer rc.Close()
		in = rc
	}
	tr := tar.NewReader(in)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		name := filepath.Clean(filepath.FromSlash(h.Name))
		if filepath.IsAbs(name) || name == ".." || strings.HasPrefix(name, ".."+string(filepath.Separator)) {
			return fmt.Errorf("archive entry %q leaves the directory", h.Name)
		}
		dst := filepath.Join(dir, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return err
			}
			if err := writeSparse(dst, tr, h.Size, os.FileMode(h.Mode).Perm()|0o444); err != nil {
				return fmt.Errorf("%s: %w", h.Name, err)
			}
		default:
			return fmt.Errorf("archive entry %q: unsupported type %c", h.Name, h.Typeflag)
		}
	}
}

// writeSparse writes size bytes of r to path, seeking over pages of zeros.
func writeSparse(path string, r io.Reader, size int64, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	n, err := copySparse(f, r, size)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Truncate(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// copySparse copies r to f until EOF or limit bytes (limit < 0: no
// limit), leaving pages of zeros as holes, and returns the length copied.
func copySparse(f *os.File, r io.Reader, limit int64) (int64, error) {
	buf := make([]byte, 4096)
	var off int64
	for limit < 0 || off < limit {
		want := int64(len(buf))
		if limit >= 0 {
			want = min(want, limit-off)
		}
		n, err := io.ReadFull(r, buf[:want])
		if n > 0 && !allZero(buf[:n]) {
			if _, werr := f.WriteAt(buf[:n], off); werr != nil {
				return off, werr
			}
		}
		off += int64(n)
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
	return off, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// decompressTo decompresses a compressed core into dst (atomically).
func decompressTo(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	head := make([]byte, 16)
	n, _ := io.ReadFull(in, head)
	if _, err := in.Seek(0, io.SeekStart); err != nil {
		return err
	}
	rc, err := compressed.NewReader(in, compressed.Detect(head[:n]))
	if err != nil {
		return err
	}
	defer rc.Close()
	tmp := dst + ".tmp" + fmt.Sprint(os.Getpid())
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	size, err := copySparse(f, rc, -1)
	if err == nil {
		err = f.Truncate(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, dst)
}

// removeStaleFixtures deletes extracted fixtures of other contents (older
// versions of the checked-in files) not used for a day.
func removeStaleFixtures(keep string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), fmt.Sprintf("coroner-fixture-*-%d", os.Geteuid())))
	for _, d := range dirs {
		if st, err := os.Stat(d); err == nil && d != keep && st.IsDir() && time.Since(st.ModTime()) > 24*time.Hour {
			os.RemoveAll(d)
		}
	}
}
