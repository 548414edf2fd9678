// Package compressed gives transparent access to compressed core files
// (.zst, .lz4, .xz, .gz and the zlib streams of old Apport reports). Formats
// are detected by their magic bytes, not by file names. A compressed core is
// streamed into a temporary file (never held whole in memory), because ELF
// readers need random access.
package compressed

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// Format names a container format of a core file.
type Format string

// Formats recognised by Detect.
const (
	Plain   Format = ""     // not compressed (an ELF file)
	Zstd    Format = "zstd" // Zstandard frame(s)
	LZ4     Format = "lz4"  // LZ4 frame format
	XZ      Format = "xz"   // xz container
	Gzip    Format = "gzip" // gzip member(s)
	Zlib    Format = "zlib" // bare zlib stream (old Apport reports)
	Unknown Format = "unknown"
)

// Magic numbers of the formats.
var (
	magicELF  = []byte{0x7f, 'E', 'L', 'F'}
	magicZstd = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicLZ4  = []byte{0x04, 0x22, 0x4d, 0x18}
	magicXZ   = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicGzip = []byte{0x1f, 0x8b}
)

// HeaderLen is how many leading bytes Detect needs to tell every format apart.
const HeaderLen = 6

// Detect names the format of a stream from its first bytes (at least
// HeaderLen of them for a sure answer). ELF data is Plain; anything else that
// is not recognised is Unknown.
func Detect(head []byte) Format {
	switch {
	case bytes.HasPrefix(head, magicELF):
		return Plain
	case bytes.HasPrefix(head, magicZstd):
		return Zstd
	case bytes.HasPrefix(head, magicLZ4):
		return LZ4
	case bytes.HasPrefix(head, magicXZ):
		return XZ
	case bytes.HasPrefix(head, magicGzip):
		return Gzip
	case len(head) >= 2 && head[0]&0x0f == 8 && head[0]>>4 <= 7 && (uint16(head[0])<<8|uint16(head[1]))%31 == 0:
		// RFC 1950: CM=8 (deflate), CINFO<=7, FCHECK makes CMF*256+FLG a multiple of 31.
		return Zlib
	}
	return Unknown
}

// Sniff opens path and detects its format from its first bytes.
func Sniff(path string) (Format, error) {
	f, err := os.Open(path)
	if err != nil {
		return Unknown, err
	}
	defer f.Close()
	head := make([]byte, HeaderLen)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return Unknown, fmt.Errorf("read header of %s: %w", path, err)
	}
	return Detect(head[:n]), nil
}

// Extension returns the usual file-name extension of f (".zst", ...), or "".
func (f Format) Extension() string {
	switch f {
	case Zstd:
		return ".zst"
	case LZ4:
		return ".lz4"
	case XZ:
		return ".xz"
	case Gzip:
		return ".gz"
	case Zlib:
		return ".zz"
	}
	return ""
}

// TrimExtension removes a known compression extension from name.
func TrimExtension(name string) string {
	for _, ext := range []string{".zst", ".zstd", ".lz4", ".xz", ".gz", ".zz"} {
		if strings.HasSuffix(name, ext) {
			return strings.TrimSuffix(name, ext)
		}
	}
	return name
}

// maxZstdWindow bounds the memory a zstd stream may ask for (systemd and the
// zstd tool use windows of at most a few MiB; --long=31 needs 2 GiB).
const maxZstdWindow = 1 << 31

// NewReader returns a decompressing reader of r in format f. Close releases
// the decoder (it does not close r).
func NewReader(r io.Reader, f Format) (io.ReadCloser, error) {
	switch f {
	case Plain:
		return io.NopCloser(r), nil
	case Zstd:
		if d, ok := zstdPool.Get().(*zstd.Decoder); ok {
			if err := d.Reset(r); err == nil {
				return &zstdCloser{d}, nil
			}
			d.Close()
		}
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(maxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("start zstd decoder: %w", err)
		}
		return &zstdCloser{d}, nil
	case LZ4:
		return io.NopCloser(lz4.NewReader(r)), nil
	case XZ:
		x, err := xz.NewReader(r)
		if err != nil {
			return nil, &CorruptError{Format: f, Err: err}
		}
		return io.NopCloser(x), nil
	case Gzip:
		g, err := gzip.NewReader(r)
		if err != nil {
			return nil, &CorruptError{Format: f, Err: err}
		}
		return g, nil
	case Zlib:
		z, err := zlib.NewReader(r)
		if err != nil {
			return nil, &CorruptError{Format: f, Err: err}
		}
		return z, nil
	}
	return nil, fmt.Errorf("unsupported format %q", string(f))
}

// zstdPool keeps zstd decoders for reuse: creating one allocates its
// window buffers, which dominates reading the headers of many small cores.
var zstdPool sync.Pool

type zstdCloser struct{ d *zstd.Decoder }

func (z *zstdCloser) Read(p []byte) (int, error) {
	if z.d == nil {
		return 0, errors.New("read from a closed zstd reader")
	}
	return z.d.Read(p)
}

// Close returns the decoder to the pool.
func (z *zstdCloser) Close() error {
	if z.d != nil {
		if z.d.Reset(nil) == nil {
			zstdPool.Put(z.d)
		}
		z.d = nil
	}
	return nil
}

// CorruptError reports a compressed stream that could not be decoded: bad
// data, or a stream that ends before its end marker.
type CorruptError struct {
	Format Format
	Path   string // file name, when known
	Offset int64  // compressed bytes consumed when decoding failed, when known
	Err    error
}

func (e *CorruptError) Error() string {
	what := string(e.Format) + " stream"
	if e.Path != "" {
		what += " " + e.Path
	}
	msg := "corrupt"
	if errors.Is(e.Err, io.ErrUnexpectedEOF) {
		msg = "truncated (ends before its end marker)"
	}
	return fmt.Sprintf("%s is %s near compressed byte %d: %v", what, msg, e.Offset, e.Err)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// Copy decompresses src (in format f) into dst and returns the number of
// decompressed bytes. Decoding errors come back as *CorruptError. progress,
// when non-nil, is told about compressed bytes consumed.
func Copy(dst io.Writer, src io.Reader, f Format, progress *Progress) (int64, error) {
	cr := &countingReader{r: src}
	var in io.Reader = cr
	if progress != nil {
		in = io.TeeReader(cr, progress)
	}
	dec, err := NewReader(in, f)
	if err != nil {
		var ce *CorruptError
		if errors.As(err, &ce) {
			ce.Offset = cr.n
		}
		return 0, err
	}
	defer dec.Close()
	n, err := io.CopyBuffer(dst, dec, make([]byte, 256<<10))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return n, we.err
		}
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return n, &CorruptError{Format: f, Offset: cr.n, Err: err}
	}
	return n, nil
}

// writeError marks errors of the destination, so Copy does not blame the stream.
type writeError struct{ err error }

func (w *writeError) Error() string { return w.err.Error() }

type markedWriter struct{ w io.Writer }

func (m markedWriter) Write(p []byte) (int, error) {
	n, err := m.w.Write(p)
	if err != nil {
		err = &writeError{err}
	}
	return n, err
}

// TempDir is where decompressed cores go; empty means os.TempDir().
var TempDir = ""

// ToTemp streams src (in format f) decompressed into a new temporary file
// named after name, and returns its path and a cleanup that removes it.
// total is the compressed size for the progress bar (0 if unknown).
func ToTemp(src io.Reader, f Format, name string, total int64, progress io.Writer) (string, func(), error) {
	return toTempIn(TempDir, src, f, name, total, progress)
}

func toTempIn(dir string, src io.Reader, f Format, name string, total int64, progress io.Writer) (string, func(), error) {
	out, err := os.CreateTemp(dir, "coroner-"+sanitize(TrimExtension(filepath.Base(name)))+"-*.core")
	if err != nil {
		return "", nil, fmt.Errorf("create temp file for decompressed %s: %w", name, err)
	}
	cleanup := func() { _ = os.Remove(out.Name()) }
	var bar *Progress
	if progress != nil {
		bar = NewProgress(progress, "decompressing "+filepath.Base(name), total)
	}
	bw := bufio.NewWriterSize(markedWriter{out}, 1<<20)
	_, err = Copy(bw, src, f, bar)
	if err == nil {
		if ferr := bw.Flush(); ferr != nil {
			err = fmt.Errorf("write %s: %w", out.Name(), ferr)
		}
	}
	if bar != nil {
		bar.Done()
	}
	if cerr := out.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", out.Name(), cerr)
	}
	if err != nil {
		cleanup()
		var ce *CorruptError
		if errors.As(err, &ce) && ce.Path == "" {
			ce.Path = name
			return "", nil, ce
		}
		return "", nil, fmt.Errorf("decompress %s: %w", name, err)
	}
	return out.Name(), cleanup, nil
}

func sanitize(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

// Open returns a readable, uncompressed local file for path: the path itself
// when it is a plain (ELF) core, else a temp file the compressed stream
// (.zst/.zstd, .lz4, .xz, .gz; detected by magic bytes, not by name) was
// streamed into (or, when Cache.Dir is set, a file in the cache). cleanup
// removes temp files and is never nil when err is nil. progress (for
// example a terminal) may be nil.
func Open(path string, progress io.Writer) (plain string, cleanup func(), err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("open core: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", nil, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.IsDir() {
		return "", nil, fmt.Errorf("%s is a directory, not a core file", path)
	}
	br := bufio.NewReaderSize(f, 1<<20)
	head, _ := br.Peek(HeaderLen)
	format := Detect(head)
	switch format {
	case Plain:
		return path, func() {}, nil
	case Unknown:
		if len(head) == 0 {
			return "", nil, fmt.Errorf("%s is empty", path)
		}
		return "", nil, fmt.Errorf("%s is neither an ELF core nor a zstd, lz4, xz or gzip stream (it starts with % x)", path, head)
	}
	if Cache.Dir != "" {
		return openCached(path, st, br, format, progress)
	}
	return ToTemp(br, format, path, st.Size(), progress)
}
