package coredumps

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/source/compressed"
)

// ResolveOptions are the ways of naming a core other than a path or a
// store entry name.
type ResolveOptions struct {
	// PID selects the newest core of that process id.
	PID int
	// Latest selects the newest core on the host.
	Latest bool
	// Discover says where to look (for PID, Latest and store entry names).
	Discover DiscoverOptions
	// Progress receives a progress bar while a compressed core is
	// decompressed (for example compressed.TerminalProgress()); nil for none.
	Progress io.Writer
	// Decompress bounds the decompression of a compressed core (its
	// Progress is taken from Progress above).
	Decompress compressed.Options
}

// Resolve turns a user's identifier (a path to a core or compressed core, a
// .crash file, a systemd-coredump store entry name, an ABRT directory) or
// the options (PID / Latest) into an uncompressed local core plus what the
// store knew about it. cleanup removes temporary files and is never nil
// when err is nil. The entry is re-checked against the plain core
// (truncation, build-id).
func Resolve(id string, opts ResolveOptions) (*Entry, string, func(), error) {
	e, err := find(id, opts)
	if err != nil {
		return nil, "", nil, err
	}
	if e.Name() == "" {
		return e, "", nil, fmt.Errorf("no core file for %s: %s", describe(e), e.Why)
	}
	dopts := opts.Decompress
	dopts.Progress = opts.Progress
	var plain string
	var cleanup func()
	if e.Journal != "" {
		plain, cleanup, err = extractJournalCore(e, opts.Discover.Journal, opts.Discover.JournalTimeout, dopts)
	} else {
		plain, cleanup, err = materialize(e, dopts)
	}
	if err != nil {
		return e, "", nil, err
	}
	info, size, err := ReadCoreInfoFile(plain)
	e.CoreSize = size
	if info != nil {
		fillFromCore(e, info)
		setTruncated(e, info, size)
	}
	if err != nil && info == nil {
		e.Analysable, e.Why = No, err.Error()
		return e, plain, cleanup, nil
	}
	checkAnalysable(e, &buildIDCache{})
	return e, plain, cleanup, nil
}

func describe(e *Entry) string {
	switch {
	case e.ID != "":
		return e.ID
	case e.PID != 0:
		return fmt.Sprintf("pid %d", e.PID)
	}
	return e.Report
}

// find locates the entry an identifier or the options name.
func find(id string, opts ResolveOptions) (*Entry, error) {
	if id == "" && (opts.PID != 0 || opts.Latest) {
		entries, warns := Discover(opts.Discover)
		for _, e := range entries {
			if e.Name() == "" || (opts.PID != 0 && e.PID != opts.PID) {
				continue
			}
			return e, nil
		}
		what := "no core found"
		if opts.PID != 0 {
			what = fmt.Sprintf("no core of pid %d found", opts.PID)
		}
		if len(warns) > 0 {
			what += fmt.Sprintf(" (%d places could not be read, first: %v)", len(warns), warns[0])
		}
		return nil, errors.New(what + "; see `coroner cores`")
	}
	if id == "" {
		return nil, errors.New("no core named: give a path, a store entry, --pid or --latest")
	}
	if fi, err := os.Stat(id); err == nil {
		return entryForPath(id, fi)
	}
	if _, _, ok := ParseJournalName(id); ok {
		r, err := findJournalRecord(id, opts.Discover.Journal, 30*time.Second)
		if err != nil {
			return nil, err
		}
		if r["COREDUMP"] == "" {
			return nil, fmt.Errorf("the journal record of %s holds no core", id)
		}
		return journalEntry(r), nil
	}
	// A store entry name.
	o := opts.Discover
	var cands []string
	sd := orDefault(o.SystemdDir, DefaultSystemdDir)
	for _, ext := range []string{"", ".zst", ".lz4", ".xz"} {
		cands = append(cands, filepath.Join(sd, id+ext))
	}
	cands = append(cands,
		filepath.Join(orDefault(o.ApportCrashDir, DefaultApportCrashDir), id),
		filepath.Join(orDefault(o.ApportCrashDir, DefaultApportCrashDir), id+".crash"),
		filepath.Join(orDefault(o.ApportCoreDir, DefaultApportCoreDir), id))
	abrt := o.ABRTDirs
	if len(abrt) == 0 {
		abrt = DefaultABRTDirs
	}
	for _, d := range abrt {
		cands = append(cands, filepath.Join(d, id))
	}
	if !strings.ContainsRune(id, '/') {
		for _, c := range cands {
			if fi, err := os.Stat(c); err == nil {
				e, err := entryForPath(c, fi)
				if e != nil && strings.HasPrefix(c, sd+"/") {
					e.Source = SourceSystemd
				}
				return e, err
			}
		}
	}
	return nil, fmt.Errorf("no such core: %s is neither a file nor an entry of the systemd-coredump, Apport or ABRT stores", id)
}

// entryForPath builds the entry of an existing file or directory.
func entryForPath(path string, fi os.FileInfo) (*Entry, error) {
	if fi.IsDir() {
		if e, ok := abrtEntry(path); ok {
			if e.Path != "" {
				c, err := compressionOf(e.Path)
				if err != nil {
					return nil, err
				}
				e.Compression = c
			}
			return e, nil
		}
		return nil, fmt.Errorf("%s is a directory without a coredump file; list its cores with `coroner cores %s`", path, path)
	}
	if isCrashFile(path) {
		return apportEntry(path, fi)
	}
	e, ok := systemdEntry(path, fi)
	if !ok {
		e = &Entry{Source: SourceDir, ID: fi.Name(), Path: path, Size: fi.Size(), Time: fi.ModTime()}
	} else if filepath.Dir(path) != DefaultSystemdDir {
		e.Source = SourceDir
	}
	c, err := compressionOf(path)
	if err != nil {
		return nil, err
	}
	e.Compression = c
	return e, nil
}

// materialize returns a plain core file for e.
func materialize(e *Entry, opts compressed.Options) (string, func(), error) {
	if e.Source == SourceApport || isCrashFile(e.Path) {
		if strings.HasSuffix(e.Path, ".crash") || isCrashFile(e.Path) {
			plain, format, cleanup, err := extractCrashCore(e.Path, opts)
			if err == nil {
				e.Compression = string(format)
			}
			return plain, cleanup, err
		}
	}
	return compressed.OpenWith(e.Path, opts)
}

// ExtractCrashCore streams the CoreDump field of an Apport report into a
// temporary plain core (base64 lines -> gzip/zstd/zlib decoder -> file),
// never holding the core in memory.
// It also returns the format the core was compressed with.
func ExtractCrashCore(path string, progress io.Writer) (string, compressed.Format, func(), error) {
	return extractCrashCore(path, compressed.Options{Progress: progress})
}

func extractCrashCore(path string, opts compressed.Options) (string, compressed.Format, func(), error) {
	f, err := regular.Open(path)
	if err != nil {
		return "", "", nil, fmt.Errorf("open report: %w", err)
	}
	defer f.Close()
	var total int64
	if st, err := f.Stat(); err == nil {
		total = st.Size() * 3 / 4 // base64 overhead
	}
	pr, pw := io.Pipe()
	parseErr := make(chan error, 1)
	found := false
	go func() {
		_, perr := ParseCrash(f, func(key string) io.Writer {
			if key == "CoreDump" && !found {
				found = true
				return pw
			}
			return nil
		})
		if perr == nil {
			perr = io.EOF
		}
		pw.CloseWithError(perr)
		parseErr <- perr
	}()
	br := bufio.NewReaderSize(pr, 1<<20)
	head, _ := br.Peek(compressed.HeaderLen)
	format := compressed.Detect(head)
	var out string
	var cleanup func()
	switch {
	case len(head) == 0:
		err = fmt.Errorf("%s has no CoreDump field (or it is empty)", path)
	case format == compressed.Unknown || format == compressed.Plain:
		err = fmt.Errorf("%s: CoreDump is not a gzip, zstd or zlib stream (starts with % x)", path, head)
	default:
		out, cleanup, err = compressed.ToTempWith(br, format, filepath.Base(path)+".CoreDump", total, opts)
	}
	pr.CloseWithError(errors.New("done reading CoreDump"))
	perr := <-parseErr
	if err != nil {
		// A parse error explains a broken stream better than the decoder.
		if perr != nil && !errors.Is(perr, io.EOF) && !strings.Contains(perr.Error(), "done reading CoreDump") {
			return "", "", nil, fmt.Errorf("extract core from %s: %w (decoder: %v)", path, perr, err)
		}
		return "", "", nil, fmt.Errorf("extract core from %s: %w", path, err)
	}
	return out, format, cleanup, nil
}
