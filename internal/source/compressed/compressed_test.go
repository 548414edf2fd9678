package compressed

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sample is a real ELF file (this test binary) with a zeroed tail, like the
// sparse regions of a core.
func sample(t testing.TB) string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	b = append(b[:min(len(b), 2<<20)], make([]byte, 1<<20)...)
	p := filepath.Join(t.TempDir(), "core")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func sum(t testing.TB, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", sha256.Sum256(b))
}

// compress runs the real command-line tool.
func compress(t testing.TB, tool, src, dst string, extra ...string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is needed (apt-get install zstd lz4 xz-utils gzip): %v", tool, err)
	}
	if tool == "xz" && len(extra) == 0 {
		extra = []string{"-1", "-T1"}
	}
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd := exec.Command(tool, append(append([]string{"-c"}, extra...), src)...)
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v %s", tool, err, stderr.String())
	}
}

func TestOpenRoundTrip(t *testing.T) {
	src := sample(t)
	want := sum(t, src)
	dir := t.TempDir()
	TempDir = filepath.Join(dir, "tmp")
	os.Mkdir(TempDir, 0o700)
	defer func() { TempDir = "" }()
	cases := []struct {
		tool   string
		extra  []string
		format Format
		name   string
	}{
		{"zstd", []string{"-q", "-3"}, Zstd, "c.zst"},
		{"zstd", []string{"-q", "--long=27"}, Zstd, "no-extension"},
		{"lz4", []string{"-q"}, LZ4, "c.lz4"},
		{"xz", []string{"-1", "-T1"}, XZ, "c.xz"},
		{"gzip", []string{"-1"}, Gzip, "c.gz"},
	}
	for _, c := range cases {
		t.Run(c.tool+"/"+c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.name)
			compress(t, c.tool, src, p, c.extra...)
			if f, err := Sniff(p); err != nil || f != c.format {
				t.Fatalf("Sniff = %q %v, want %q", f, err, c.format)
			}
			plain, cleanup, err := Open(p, nil)
			if err != nil {
				t.Fatal(err)
			}
			if plain == p || sum(t, plain) != want {
				t.Errorf("decompressed %s differs from the original", plain)
			}
			cleanup()
			if _, err := os.Stat(plain); !os.IsNotExist(err) {
				t.Errorf("cleanup left %s", plain)
			}
		})
	}
	// Concatenated frames / members decode as the concatenation.
	for _, tool := range []string{"zstd", "gzip", "xz"} {
		a, b := filepath.Join(dir, "a."+tool), filepath.Join(dir, "b."+tool)
		compress(t, tool, src, a)
		compress(t, tool, src, b)
		cat := filepath.Join(dir, "cat."+tool)
		os.WriteFile(cat, append(readAll(t, a), readAll(t, b)...), 0o600)
		plain, cleanup, err := Open(cat, nil)
		if err != nil {
			t.Fatalf("%s concatenated: %v", tool, err)
		}
		if got, want := len(readAll(t, plain)), 2*len(readAll(t, src)); got != want {
			t.Errorf("%s concatenated: %d bytes, want %d", tool, got, want)
		}
		cleanup()
	}
	if left, _ := os.ReadDir(TempDir); len(left) != 0 {
		t.Errorf("temp files left: %v", left)
	}
}

func readAll(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenPlainAndUnknown(t *testing.T) {
	src := sample(t)
	plain, cleanup, err := Open(src, nil)
	if err != nil || plain != src {
		t.Fatalf("plain: %q %v", plain, err)
	}
	cleanup()
	if _, err := os.Stat(src); err != nil {
		t.Fatal("cleanup of a plain core removed it")
	}
	dir := t.TempDir()
	txt := filepath.Join(dir, "core.txt")
	os.WriteFile(txt, []byte("hello world"), 0o600)
	if _, _, err := Open(txt, nil); err == nil || !strings.Contains(err.Error(), "neither an ELF core") {
		t.Errorf("text file: %v", err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	if _, _, err := Open(empty, nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Errorf("empty file: %v", err)
	}
	if _, _, err := Open(dir, nil); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Errorf("directory: %v", err)
	}
	if _, _, err := Open(filepath.Join(dir, "missing"), nil); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCorruptStreams(t *testing.T) {
	src := sample(t)
	dir := t.TempDir()
	TempDir = filepath.Join(dir, "tmp")
	os.Mkdir(TempDir, 0o700)
	defer func() { TempDir = "" }()
	for _, c := range []struct{ tool, ext string }{{"zstd", ".zst"}, {"lz4", ".lz4"}, {"xz", ".xz"}, {"gzip", ".gz"}} {
		p := filepath.Join(dir, "ok"+c.ext)
		compress(t, c.tool, src, p)
		b := readAll(t, p)
		cut := filepath.Join(dir, "cut"+c.ext)
		os.WriteFile(cut, b[:len(b)*2/3], 0o600)
		bad := bytes.Clone(b)
		for i := len(bad) / 2; i < len(bad)/2+32; i++ {
			bad[i] ^= 0xa5
		}
		flipped := filepath.Join(dir, "flipped"+c.ext)
		os.WriteFile(flipped, bad, 0o600)
		for _, p := range []string{cut, flipped} {
			_, _, err := Open(p, nil)
			t.Logf("%s: %v", filepath.Base(p), err)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.Path != p || ce.Format == "" {
				t.Errorf("%s: want a CorruptError naming the file, got %v", filepath.Base(p), err)
				continue
			}
			if p == cut && !strings.Contains(err.Error(), "truncated") && !strings.Contains(err.Error(), "corrupt") {
				t.Errorf("%s: %v", filepath.Base(p), err)
			}
		}
	}
	if left, _ := os.ReadDir(TempDir); len(left) != 0 {
		t.Errorf("temp files left after failures: %v", left)
	}
}

func TestProgressBar(t *testing.T) {
	src := sample(t)
	p := filepath.Join(t.TempDir(), "c.zst")
	compress(t, "zstd", src, p, "-q")
	ProgressDelay = 0 // draw at once
	defer func() { ProgressDelay = 300 * time.Millisecond }()
	var bar bytes.Buffer
	plain, cleanup, err := Open(p, &bar)
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	_ = plain
	out := bar.String()
	if !strings.Contains(out, "decompressing c.zst") || !strings.Contains(out, "100%") || !strings.HasSuffix(out, "\n") {
		t.Errorf("progress output %q", out)
	}
}

func TestDetect(t *testing.T) {
	for _, c := range []struct {
		head []byte
		want Format
	}{
		{[]byte("\x7fELF\x02\x01"), Plain},
		{[]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0}, Zstd},
		{[]byte{0x04, 0x22, 0x4d, 0x18, 0, 0}, LZ4},
		{[]byte{0xfd, '7', 'z', 'X', 'Z', 0}, XZ},
		{[]byte{0x1f, 0x8b, 8, 0, 0, 0}, Gzip},
		{[]byte{0x78, 0x9c, 0, 0, 0, 0}, Zlib},
		{[]byte{0x78, 0x9d}, Unknown},
		{[]byte("ProblemType"), Unknown},
		{nil, Unknown},
	} {
		if got := Detect(c.head); got != c.want {
			t.Errorf("Detect(% x) = %q, want %q", c.head, got, c.want)
		}
	}
}

// limitWriter fails after n bytes, bounding decompression bombs in fuzzing.
type limitWriter struct{ n int }

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.n -= len(p); l.n < 0 {
		return 0, errors.New("output limit")
	}
	return len(p), nil
}

func FuzzCopy(f *testing.F) {
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x05, 0x29, 0x00, 0x00, 'h', 'e', 'l', 'l', 'o'})
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff, 0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{0x04, 0x22, 0x4d, 0x18, 0x64, 0x40, 0xa7, 0, 0, 0, 0})
	f.Add([]byte{0xfd, '7', 'z', 'X', 'Z', 0, 0, 4, 0xe6, 0xd6, 0xb4, 0x46})
	f.Add([]byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		format := Detect(data)
		if format == Unknown || format == Plain {
			return
		}
		_, err := Copy(&limitWriter{n: 64 << 20}, bytes.NewReader(data), format, nil)
		if err != nil && err.Error() == "" {
			t.Fatal("empty error")
		}
		_ = io.EOF
	})
}

func TestCache(t *testing.T) {
	src := sample(t)
	size := int64(len(readAll(t, src)))
	dir := t.TempDir()
	Cache = CacheConfig{Dir: filepath.Join(dir, "cache"), MaxBytes: 2*size + size/2}
	defer func() { Cache = CacheConfig{} }()
	var paths []string
	for i := 0; i < 3; i++ {
		p := filepath.Join(dir, fmt.Sprintf("c%d.zst", i))
		compress(t, "zstd", src, p, "-q")
		plain, cleanup, err := Open(p, nil)
		if err != nil {
			t.Fatal(err)
		}
		cleanup() // a cached core stays
		if sum(t, plain) != sum(t, src) {
			t.Fatalf("cached core differs")
		}
		paths = append(paths, plain)
		// A second Open is a hit: same file.
		again, _, err := Open(p, nil)
		if err != nil || again != plain {
			t.Fatalf("second open: %q %v, want the cached %q", again, err, plain)
		}
	}
	// Only two fit: the least recently used (the first) was evicted.
	if _, err := os.Stat(paths[0]); !os.IsNotExist(err) {
		t.Errorf("oldest cached core not evicted")
	}
	for _, p := range paths[1:] {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("recent cached core %s gone: %v", p, err)
		}
	}
	// A core bigger than the whole cache is handed out as a temp file.
	Cache.MaxBytes = size / 2
	p := filepath.Join(dir, "big.zst")
	compress(t, "zstd", src, p, "-q")
	plain, cleanup, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	cleanup()
	if _, err := os.Stat(plain); !os.IsNotExist(err) {
		t.Errorf("oversized core left in the cache: %s", plain)
	}
}
