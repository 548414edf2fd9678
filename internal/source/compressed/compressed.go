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

	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/units"
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
	f, err := regular.Open(path)
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
	return copyLimited(dst, src, f, progress, Options{MaxBytes: -1})
}

// DefaultMaxBytes bounds the decompressed size of a core (Options.MaxBytes):
// systemd-coredump does not store cores larger than this by default
// (ExternalSizeMax=2G), a php-fpm core is about 200 MiB, and 16 GiB of zeros
// fit in 512 KiB of zstd.
const DefaultMaxBytes = 2 << 30

// Options bound and report one decompression.
type Options struct {
	// Progress receives a progress bar (for example TerminalProgress());
	// nil for none.
	Progress io.Writer
	// MaxBytes bounds the decompressed bytes: the core is cut there, and
	// read as a truncated core (0: DefaultMaxBytes; negative: no bound).
	MaxBytes int64
	// Stop ends the decompression when it returns an error (a used-up
	// analysis budget); what was decompressed is kept, as when MaxBytes
	// is reached.
	Stop func() error
	// Warnf is told why a decompression was cut short (nil: not told).
	Warnf func(format string, args ...any)
}

func (o Options) maxBytes() int64 {
	switch {
	case o.MaxBytes == 0:
		return DefaultMaxBytes
	case o.MaxBytes < 0:
		return 1<<63 - 1
	}
	return o.MaxBytes
}

// errCut is returned by a decompression stopped by Options.
type errCut struct{ why string }

func (e *errCut) Error() string { return e.why }

// boundedReader stops the decompressed stream at max bytes or when stop
// says so.
type boundedReader struct {
	r    io.Reader
	n    int64
	max  int64
	stop func() error
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if b.stop != nil {
		if err := b.stop(); err != nil {
			return 0, &errCut{why: err.Error()}
		}
	}
	if b.n >= b.max {
		// One byte more tells a stream of exactly max bytes from a longer one.
		var one [1]byte
		if n, _ := io.ReadFull(b.r, one[:]); n == 0 {
			return 0, io.EOF
		}
		return 0, &errCut{why: fmt.Sprintf("the decompressed core is larger than %s (--max-core-size); the rest was not decompressed", units.Bytes(b.max))}
	}
	if int64(len(p)) > b.max-b.n {
		p = p[:b.max-b.n]
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

func copyLimited(dst io.Writer, src io.Reader, f Format, progress *Progress, opts Options) (int64, error) {
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
	br := &boundedReader{r: dec, max: opts.maxBytes(), stop: opts.Stop}
	n, err := io.CopyBuffer(dst, br, make([]byte, 256<<10))
	if err != nil {
		var we *writeError
		if errors.As(err, &we) {
			return n, we.err
		}
		var cut *errCut
		if errors.As(err, &cut) {
			return n, cut
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
	return ToTempWith(src, f, name, total, Options{Progress: progress})
}

// ToTempWith is ToTemp with bounds: a decompression cut short by opts
// (MaxBytes, Stop) keeps what was decompressed, which reads as a
// truncated core, and says why through opts.Warnf.
func ToTempWith(src io.Reader, f Format, name string, total int64, opts Options) (string, func(), error) {
	p, cleanup, _, err := toTempIn(TempDir, src, f, name, total, opts)
	return p, cleanup, err
}

// toTempIn decompresses into a new file in dir; cut is true when opts
// stopped the decompression before the end of the stream.
func toTempIn(dir string, src io.Reader, f Format, name string, total int64, opts Options) (string, func(), bool, error) {
	out, err := os.CreateTemp(dir, "coroner-"+safeName(TrimExtension(filepath.Base(name)))+"-*.core")
	if err != nil {
		return "", nil, false, fmt.Errorf("create temp file for decompressed %s: %w", name, err)
	}
	track(out.Name())
	cleanup := func() { untrack(out.Name()); _ = os.Remove(out.Name()) }
	var bar *Progress
	if opts.Progress != nil {
		bar = NewProgress(opts.Progress, "decompressing "+sanitize.Text(filepath.Base(name)), total)
	}
	sw := &sparseWriter{f: out}
	bw := bufio.NewWriterSize(markedWriter{sw}, 1<<20)
	_, err = copyLimited(bw, src, f, bar, opts)
	var cut *errCut
	wasCut := errors.As(err, &cut)
	if wasCut {
		err = nil
		if opts.Warnf != nil {
			opts.Warnf("decompressing %s stopped: %s", name, cut.why)
		}
	}
	if err == nil {
		if ferr := bw.Flush(); ferr != nil {
			err = fmt.Errorf("write %s: %w", out.Name(), ferr)
		} else if ferr := sw.finish(); ferr != nil {
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
			return "", nil, false, ce
		}
		return "", nil, false, fmt.Errorf("decompress %s: %w", name, err)
	}
	return out.Name(), cleanup, wasCut, nil
}

// temps are the decompressed files not yet removed, for RemoveTemps.
var temps struct {
	sync.Mutex
	m map[string]bool
}

func track(p string) {
	temps.Lock()
	defer temps.Unlock()
	if temps.m == nil {
		temps.m = map[string]bool{}
	}
	temps.m[p] = true
}

func untrack(p string) {
	temps.Lock()
	defer temps.Unlock()
	delete(temps.m, p)
}

// RemoveTemps removes the temporary files of decompressions that are in
// progress or whose cleanup has not run: for a process interrupted by a
// signal, so that a large decompressed core does not stay behind.
func RemoveTemps() {
	temps.Lock()
	defer temps.Unlock()
	for p := range temps.m {
		_ = os.Remove(p)
		delete(temps.m, p)
	}
}

// sparseWriter writes a file sequentially, leaving holes where whole
// pages are zero: a core's unused memory, or a decompression bomb's
// gigabytes of zeros, take no disk.
type sparseWriter struct {
	f   *os.File
	off int64
}

const sparsePage = 4096

var zeroPage [sparsePage]byte

func (w *sparseWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		// Up to the next page boundary of the file.
		k := int(sparsePage - w.off%sparsePage)
		if k > len(p) {
			k = len(p)
		}
		if k == sparsePage && bytes.Equal(p[:k], zeroPage[:]) {
			w.off += int64(k)
			p = p[k:]
			continue
		}
		// A run of pages that are not all zero.
		j := k
		for j+sparsePage <= len(p) && !bytes.Equal(p[j:j+sparsePage], zeroPage[:]) {
			j += sparsePage
		}
		if _, err := w.f.WriteAt(p[:j], w.off); err != nil {
			return n - len(p), err
		}
		w.off += int64(j)
		p = p[j:]
	}
	return n, nil
}

// finish gives the file its full size (a hole at the end is not written).
func (w *sparseWriter) finish() error { return w.f.Truncate(w.off) }

func safeName(s string) string {
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
	return OpenWith(path, Options{Progress: progress})
}

// OpenWith is Open with the bounds of opts.
func OpenWith(path string, opts Options) (plain string, cleanup func(), err error) {
	f, err := regular.Open(path)
	if err != nil {
		return "", nil, fmt.Errorf("open core: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", nil, fmt.Errorf("stat %s: %w", path, err)
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
		return openCached(path, st, br, format, opts)
	}
	return ToTempWith(br, format, path, st.Size(), opts)
}
