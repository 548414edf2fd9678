package coredumps

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/source/compressed"
	"github.com/coroner-dev/coroner/internal/source/roots"
)

// Bounds of peeking into a compressed core during discovery. The headers
// and notes come first in every Linux core and are kept (peekHead); the
// executable's first page (for its build-id) may lie far behind them (in a
// php-fpm core, after the OPcache shared memory and the JIT buffer: ~200
// MB), so the stream is decompressed and skipped up to peekBudget bytes.
const (
	peekHead   = 4 << 20
	peekWindow = 64 << 10
	peekBudget = 1 << 30
)

// errPeekLimit is returned for data beyond peekBudget.
var errPeekLimit = errors.New("beyond the decompression bound for discovery")

// streamReaderAt serves ReadAt from a forward-only (decompressing) stream:
// the first peekHead bytes are kept; later reads must go forward and are
// served from a window read at the requested offset, skipping what lies
// between without keeping it.
type streamReaderAt struct {
	r      io.Reader
	head   []byte
	pos    int64 // stream bytes consumed
	win    []byte
	winOff int64
	err    error
}

func (s *streamReaderAt) fill(n int64) {
	for int64(len(s.head)) < n && s.err == nil {
		old := len(s.head)
		want := min(max(n-int64(old), 16<<10), peekHead-int64(old))
		s.head = append(s.head, make([]byte, want)...)
		m, err := io.ReadFull(s.r, s.head[old:])
		s.head = s.head[:old+m]
		s.pos += int64(m)
		if err != nil {
			s.err = err
		}
	}
}

func (s *streamReaderAt) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if len(b) == 0 {
		// Nothing to read, wherever off is (debug/elf reads the zero
		// program headers of e_phnum = 0 at any e_phoff): like a file.
		return 0, nil
	}
	end := off + int64(len(b))
	if end <= peekHead {
		s.fill(end)
		if off >= int64(len(s.head)) {
			return 0, io.EOF
		}
		n := copy(b, s.head[off:])
		if n < len(b) {
			return n, io.EOF
		}
		return n, nil
	}
	if s.win != nil && off >= s.winOff && end <= s.winOff+int64(len(s.win)) {
		return copy(b, s.win[off-s.winOff:]), nil
	}
	s.fill(peekHead)
	if end > peekBudget {
		return 0, errPeekLimit
	}
	// Keep what the window already holds from off on.
	var keep []byte
	switch {
	case s.win != nil && off >= s.winOff && off < s.winOff+int64(len(s.win)):
		keep = s.win[off-s.winOff:]
	case off < s.pos:
		return 0, fmt.Errorf("stream offset %d already passed (at %d)", off, s.pos)
	}
	if s.err != nil && keep == nil {
		return 0, io.EOF
	}
	if keep == nil {
		if _, err := io.CopyN(io.Discard, s.r, off-s.pos); err != nil {
			s.err = err
			return 0, io.EOF
		}
		s.pos = off
	}
	win := make([]byte, max(int64(len(b)), peekWindow))
	k := copy(win, keep)
	m := 0
	var err error
	if s.err == nil {
		m, err = io.ReadFull(s.r, win[k:])
	}
	s.win, s.winOff = win[:k+m], off
	s.pos += int64(m)
	if err != nil {
		s.err = err
	}
	n := copy(b, s.win)
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// buildIDCache remembers the build-id of executables on disk.
type buildIDCache struct {
	mu sync.Mutex
	m  map[string]buildIDResult
	// hostRoots are this host's container and chroot roots, listed once
	// (findRoot).
	rootsOnce sync.Once
	hostRoots []roots.Root
}

// discoverRoots lists this host's roots (a test replaces it).
var discoverRoots = func() []roots.Root { return roots.Discover(roots.Options{Layers: true}) }

// findRoot looks for the root a crashed process ran in when its
// executable is not on this host with the core's build-id: the directories
// above the core, systemd-coredump's COREDUMP_ROOT, then this host's
// containers, chroots and image layers (roots.Discover), as coroner
// analyze does.
func (c *buildIDCache) findRoot(e *Entry, exe string) (roots.Root, bool) {
	if e.BuildID == "" {
		return roots.Root{}, false
	}
	var cands []roots.Root
	if e.Path != "" {
		cands = roots.Ancestors(e.Path)
	}
	if r := e.Meta["journal.COREDUMP_ROOT"]; r != "" && r != "/" && filepath.IsAbs(r) {
		cands = append(cands, roots.Root{Dir: r, Runtime: "given"})
	}
	c.rootsOnce.Do(func() { c.hostRoots = discoverRoots() })
	for _, r := range append(cands, c.hostRoots...) {
		if id, err := c.get(regular.Within(r.Dir, exe)); err == nil && id == e.BuildID {
			return r, true
		}
	}
	return roots.Root{}, false
}

type buildIDResult struct {
	id  string
	err error
}

func (c *buildIDCache) get(path string) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]buildIDResult{}
	}
	if r, ok := c.m[path]; ok {
		return r.id, r.err
	}
	id, err := FileBuildID(path)
	c.m[path] = buildIDResult{id, err}
	return id, err
}

// inspect completes e from the core itself: the notes (pid, signal,
// executable, build-id), truncation and analysability. For a compressed
// core only a prefix is decompressed, unless quick is set, in which case
// only the store's metadata is used.
func inspect(e *Entry, quick bool, ids *buildIDCache) {
	if e.Path == "" {
		e.Analysable = No
		if e.Truncated == "" {
			e.Truncated = Unknown
		}
		if e.Why == "" {
			e.Why = "the core was not kept"
		}
		return
	}
	var info *CoreInfo
	var err error
	switch {
	case e.Report != "" && e.Report == e.Path: // an Apport report embedding the core
		if quick {
			e.Compression = "in-report" // gzip or zstd, not looked at
		} else {
			info, err = peekCrash(e)
		}
	case e.Compression == "":
		var size int64
		info, size, err = ReadCoreInfoFile(e.Path)
		if info != nil {
			e.CoreSize = size
			setTruncated(e, info, size)
		}
	default:
		if !quick {
			info, err = peekCompressed(e.Path, compressed.Format(e.Compression))
		}
	}
	if err != nil && info == nil {
		e.Analysable = No
		e.Why = err.Error()
		if e.Truncated == "" {
			e.Truncated = Unknown
		}
		return
	}
	if e.Truncated == "" {
		e.Truncated = Unknown
		if e.TruncatedWhy == "" {
			e.TruncatedWhy = "compressed: known only after decompression"
		}
	}
	if info != nil {
		fillFromCore(e, info)
	}
	checkAnalysable(e, ids)
	if info == nil && e.Analysable == Unknown && e.BuildID == "" && e.FileBuildID != "" {
		e.Why = "build-id not checked (quick mode: the compressed core was not opened)"
	}
}

// inspectJournal completes e, a core kept in the journal, from its notes
// (read from a prefix of the record's COREDUMP field), unless opts.Quick.
func inspectJournal(e *Entry, opts DiscoverOptions, ids *buildIDCache) {
	if e.Truncated == "" {
		e.Truncated = Unknown
	}
	if opts.Quick {
		checkAnalysable(e, ids)
		if e.Analysable == Unknown && e.FileBuildID != "" {
			e.Why = "build-id not checked (quick mode: the core in the journal was not read)"
		}
		return
	}
	timeout := time.Minute // the notes come first: a listing does not wait for more
	if opts.JournalTimeout > 0 && opts.JournalTimeout < timeout {
		timeout = opts.JournalTimeout
	}
	info, err := peekJournal(e, opts.Journal, timeout)
	if err != nil && info == nil {
		e.Analysable, e.Why = No, err.Error()
		return
	}
	fillFromCore(e, info)
	if e.CoreSize > 0 {
		setTruncated(e, info, e.CoreSize)
	}
	checkAnalysable(e, ids)
}

// fillFromCore copies what the core's notes say into e where the store was silent.
func fillFromCore(e *Entry, info *CoreInfo) {
	if e.PID == 0 && info.PID != 0 {
		e.PID, e.PIDFrom = info.PID, "core"
	}
	e.TIDs = info.TIDs
	if e.Signal == 0 {
		e.Signal = info.Signal
	}
	if e.Comm == "" {
		e.Comm = info.Comm
	}
	if info.Exe != "" {
		e.Exe = info.Exe
	}
	if e.UID == 0 && info.UID != 0 {
		e.UID = info.UID
	}
	if e.GID == 0 && info.GID != 0 {
		e.GID = info.GID
	}
	e.BuildID = info.ExeBuildID
	if len(info.Mappings) > 0 {
		e.MapsKnown = true
		e.PHPModule = phpLibrary(info.Mappings)
	}
	if info.Args != "" {
		e.meta("psargs", info.Args)
	}
}

// setTruncated decides truncation of a plain core of the given size.
func setTruncated(e *Entry, info *CoreInfo, size int64) {
	if e.Truncated == Yes { // the store already said so
		return
	}
	if size < info.ExpectedSize {
		e.Truncated = Yes
		e.TruncatedWhy = fmt.Sprintf("%d bytes, program headers need %d", size, info.ExpectedSize)
		return
	}
	e.Truncated = No
	e.TruncatedWhy = ""
}

// checkAnalysable compares the executable on disk with the core's build-id.
func checkAnalysable(e *Entry, ids *buildIDCache) {
	exe := strings.TrimSuffix(e.Exe, " (deleted)")
	switch {
	case exe == "":
		e.Analysable, e.Why = Unknown, "executable not known"
		return
	case strings.HasSuffix(e.Exe, " (deleted)"):
		e.Analysable, e.Why = No, "the executable was deleted or replaced while the process ran"
		return
	}
	if _, err := os.Stat(exe); err != nil {
		if r, ok := ids.findRoot(e, exe); ok {
			ranIn(e, r)
			return
		}
		e.Analysable, e.Why = No, fmt.Sprintf("executable %s is no longer on disk, nor in a container or chroot of this host (removed since the crash, or a core from another root: give it with coroner analyze --sysroot or --roots)", exe)
		return
	}
	id, err := ids.get(exe)
	if err != nil {
		e.Analysable, e.Why = Unknown, fmt.Sprintf("read build-id of %s: %v", exe, err)
		return
	}
	e.FileBuildID = id
	switch {
	case e.BuildID == "":
		e.Analysable, e.Why = Unknown, "the core does not record the executable's build-id; cannot check it is the same binary"
	case e.BuildID != id:
		if r, ok := ids.findRoot(e, exe); ok {
			e.FileBuildID = ""
			ranIn(e, r)
			return
		}
		e.Analysable, e.Why = No, fmt.Sprintf("%s on this host is another build (build-id %s in the core, %s on disk): rebuilt or upgraded since the crash, or the process ran in a container or chroot whose root was not found (coroner analyze --sysroot or --roots)", exe, short(e.BuildID), short(id))
	default:
		e.Analysable, e.Why = Yes, ""
	}
	if e.Analysable == Yes && e.Truncated == Yes {
		e.Why = "truncated: some memory is missing, analysis will be partial"
	}
}

// ranIn records that the crashed process's executable was found in
// another root of this host (a container, a chroot): coroner analyze
// finds it there too.
func ranIn(e *Entry, r roots.Root) {
	e.Analysable, e.Why = Yes, "ran in the "+r.String()
	e.meta("root", r.Dir)
	if e.Truncated == Yes {
		e.Why += "; truncated: some memory is missing, analysis will be partial"
	}
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	if id == "" {
		return "none"
	}
	return id
}

// peekCompressed reads the notes of a compressed core from a bounded
// decompressed prefix.
func peekCompressed(path string, format compressed.Format) (*CoreInfo, error) {
	f, err := regular.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	dec, err := compressed.NewReader(bufio.NewReaderSize(f, 16<<10), format)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	defer dec.Close()
	info, err := ReadCoreInfo(&streamReaderAt{r: dec})
	if err != nil {
		err = fmt.Errorf("%s: %w", path, err)
	}
	return info, err
}

// peekCrash reads the notes of the core embedded in an Apport report.
func peekCrash(e *Entry) (*CoreInfo, error) {
	f, err := regular.Open(e.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, perr := ParseCrash(f, func(key string) io.Writer {
			if key == "CoreDump" {
				return pw
			}
			return nil
		})
		if perr == nil {
			perr = io.EOF
		}
		pw.CloseWithError(perr)
	}()
	defer func() {
		pr.CloseWithError(errors.New("stopped reading"))
		<-done
	}()
	br := bufio.NewReaderSize(pr, 64<<10)
	head, _ := br.Peek(compressed.HeaderLen)
	format := compressed.Detect(head)
	if len(head) == 0 {
		return nil, fmt.Errorf("%s has no CoreDump field", e.Path)
	}
	if format == compressed.Unknown {
		return nil, fmt.Errorf("%s: CoreDump is not a gzip, zstd or zlib stream", e.Path)
	}
	e.Compression = string(format)
	dec, err := compressed.NewReader(br, format)
	if err != nil {
		return nil, fmt.Errorf("%s: CoreDump: %w", e.Path, err)
	}
	defer dec.Close()
	info, err := ReadCoreInfo(&streamReaderAt{r: dec})
	if err != nil {
		err = fmt.Errorf("%s: CoreDump: %w", e.Path, err)
	}
	return info, err
}

// libphpRE matches PHP's embeddable library: Apache's mod_php
// (libphp8.2.so, libphp.so, libphp7.so, mod_php7.so on old builds) and
// FrankenPHP's.
var libphpRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(libphp[0-9.]*\.so[.0-9]*|mod_php[0-9.]*\.so)$`) })

// phpLibrary is the path of PHP's library among a core's mappings, "" when
// it maps none.
func phpLibrary(maps []FileMapping) string {
	for _, m := range maps {
		p := strings.TrimSuffix(m.Path, " (deleted)")
		if libphpRE().MatchString(path.Base(p)) {
			return p
		}
	}
	return ""
}
