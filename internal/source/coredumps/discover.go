package coredumps

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/source/compressed"
)

// DiscoverOptions says where Discover looks. The zero value looks in every
// default place of the host.
type DiscoverOptions struct {
	// Dirs are extra directories (or single files) to search.
	Dirs []string
	// Sources restricts discovery to these sources (SourcePattern, ...);
	// empty means all. SourceDir is always searched when Dirs is set.
	Sources []string
	// CorePattern overrides kernel.core_pattern (then core_uses_pid is
	// taken as 0).
	CorePattern string
	// WorkDirs are extra working directories for a relative core_pattern
	// (searched with their subdirectories), besides the PHP-FPM and
	// web-server directories found on the host.
	WorkDirs []string
	// Store locations; empty means the default ones.
	SystemdDir, ApportCrashDir, ApportCoreDir string
	ABRTDirs                                  []string
	// NoJournal skips asking journalctl for systemd-coredump records.
	NoJournal bool
	// Journal is the journal journalctl reads systemd-coredump records
	// (and the cores kept in them, Storage=journal) from: "" for the
	// host's, else a directory (journalctl -D: a copied /var/log/journal,
	// a sysroot's) or one journal file (journalctl --file).
	Journal string
	// JournalTimeout bounds one extraction of a core from the journal
	// (default DefaultJournalTimeout).
	JournalTimeout time.Duration
	// Quick uses only store metadata for compressed cores and .crash
	// reports (no decompression of their first bytes), so truncation and
	// the build-id check stay unknown for them.
	Quick bool
	// Since and Until keep only the cores of crashes at or after Since and
	// before Until (Entry.Time); a zero time does not bound.
	Since, Until time.Time
	// Progress, when set, is called as each core has been inspected: done
	// of total, and the core just inspected (from several goroutines, one
	// call at a time).
	Progress func(done, total int, path string)
}

// InWindow reports whether t is within [since, until); a zero bound does
// not bound.
func InWindow(t, since, until time.Time) bool {
	return (since.IsZero() || !t.Before(since)) && (until.IsZero() || t.Before(until))
}

// DefaultABRTDirs are the usual ABRT dump locations.
var DefaultABRTDirs = []string{"/var/spool/abrt", "/var/tmp/abrt"}

func (o *DiscoverOptions) wants(src string) bool {
	if len(o.Sources) == 0 {
		return true
	}
	for _, s := range o.Sources {
		if s == src {
			return true
		}
	}
	return false
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Discover finds the cores on the host and returns them newest first, each
// inspected (notes, truncation, build-id check), plus warnings about places
// it could not read.
func Discover(opts DiscoverOptions) ([]*Entry, []error) {
	d := &discoverer{opts: opts, seen: map[string]bool{}}
	if opts.wants(SourcePattern) {
		d.fromPattern()
	}
	if opts.wants(SourceSystemd) {
		d.fromSystemd(orDefault(opts.SystemdDir, DefaultSystemdDir), SourceSystemd)
		if !opts.NoJournal {
			recs, warns := readJournal(opts.Journal, 10*time.Second, opts.Since)
			for _, w := range warns {
				d.warn(fmt.Errorf("%s", w))
			}
			d.entries = append(d.entries, mergeJournal(d.entries, recs)...)
		}
	}
	if opts.wants(SourceApport) {
		d.fromApport(orDefault(opts.ApportCrashDir, DefaultApportCrashDir), orDefault(opts.ApportCoreDir, DefaultApportCoreDir))
	}
	if opts.wants(SourceABRT) {
		dirs := opts.ABRTDirs
		if len(dirs) == 0 {
			dirs = DefaultABRTDirs
		}
		for _, dir := range dirs {
			d.fromABRT(dir)
		}
	}
	for _, dir := range opts.Dirs {
		d.fromDir(dir)
	}
	if !opts.Since.IsZero() || !opts.Until.IsZero() {
		kept := d.entries[:0]
		for _, e := range d.entries {
			if InWindow(e.Time, opts.Since, opts.Until) {
				kept = append(kept, e)
			}
		}
		d.entries = kept
	}
	d.inspectAll()
	sort.SliceStable(d.entries, func(i, j int) bool { return d.entries[i].Time.After(d.entries[j].Time) })
	return d.entries, d.warnings
}

type discoverer struct {
	opts     DiscoverOptions
	entries  []*Entry
	warnings []error
	seen     map[string]bool
}

func (d *discoverer) warn(err error) { d.warnings = append(d.warnings, err) }

// add records e unless its file was already found through another source.
func (d *discoverer) add(e *Entry) {
	key := e.Name()
	if key == "" {
		key = e.Report
	}
	if key != "" {
		if d.seen[key] {
			return
		}
		d.seen[key] = true
	}
	d.entries = append(d.entries, e)
}

// readDir lists a directory; a missing directory is not worth a warning.
func (d *discoverer) readDir(dir string) []os.DirEntry {
	ents, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		d.warn(fmt.Errorf("list %s: %w", dir, err))
	}
	return ents
}

func (d *discoverer) fromSystemd(dir, source string) {
	for _, de := range d.readDir(dir) {
		if !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		path := filepath.Join(dir, de.Name())
		e, ok := systemdEntry(path, fi)
		if !ok {
			continue
		}
		e.Source = source
		d.setCompression(e)
		d.add(e)
	}
}

func (d *discoverer) setCompression(e *Entry) {
	c, err := compressionOf(e.Path)
	if err != nil {
		e.Analysable, e.Why = No, err.Error()
		return
	}
	e.Compression = c
}

func (d *discoverer) fromApport(crashDir, coreDir string) {
	for _, de := range d.readDir(crashDir) {
		if !de.Type().IsRegular() || !strings.HasSuffix(de.Name(), ".crash") {
			continue
		}
		d.addCrash(filepath.Join(crashDir, de.Name()), SourceApport)
	}
	for _, de := range d.readDir(coreDir) {
		if !de.Type().IsRegular() {
			continue
		}
		fi, err := de.Info()
		if err != nil {
			continue
		}
		if e, ok := apportCoreEntry(filepath.Join(coreDir, de.Name()), fi); ok {
			d.setCompression(e)
			d.add(e)
		}
	}
}

func (d *discoverer) addCrash(path, source string) {
	fi, err := os.Stat(path)
	if err != nil {
		d.warn(err)
		return
	}
	e, err := apportEntry(path, fi)
	if err != nil {
		d.warn(fmt.Errorf("read %s: %w", path, err))
		return
	}
	e.Source = source
	d.add(e)
}

func (d *discoverer) fromABRT(dir string) {
	for _, de := range d.readDir(dir) {
		if !de.IsDir() {
			continue
		}
		if e, ok := abrtEntry(filepath.Join(dir, de.Name())); ok {
			if e.Path != "" {
				d.setCompression(e)
			}
			d.add(e)
		}
	}
}

// fromPattern looks where kernel.core_pattern writes cores.
func (d *discoverer) fromPattern() {
	pattern, usesPID := d.opts.CorePattern, false
	if pattern == "" {
		pattern = readSysctl("/proc/sys/kernel/core_pattern")
		usesPID = readSysctl("/proc/sys/kernel/core_uses_pid") == "1"
	}
	if pattern == "" {
		return
	}
	if strings.HasPrefix(pattern, "|") {
		handler := strings.Fields(strings.TrimPrefix(pattern, "|"))
		name := ""
		if len(handler) > 0 {
			name = filepath.Base(handler[0])
		}
		switch {
		case strings.Contains(name, "systemd-coredump"), strings.Contains(name, "apport"), strings.Contains(name, "abrt"):
			// Its store is searched as a source of its own.
		default:
			d.warn(fmt.Errorf("kernel.core_pattern pipes cores to %s; coroner does not know where it keeps them (pass the directory)", name))
		}
		return
	}
	glob := PatternGlob(pattern, usesPID)
	var globs []string
	if filepath.IsAbs(glob) {
		globs = []string{glob}
	} else {
		var dirs []workDir
		for _, w := range d.opts.WorkDirs {
			dirs = append(dirs, workDir{filepath.Clean(w), true})
		}
		dirs = append(dirs, workDirs()...)
		done := map[string]bool{}
		for _, w := range dirs {
			cands := []string{w.path}
			if w.walk {
				cands = subdirs(w.path)
			}
			for _, c := range cands {
				if !done[c] {
					done[c] = true
					globs = append(globs, filepath.Join(escapeGlob(c), glob))
				}
			}
		}
	}
	for _, g := range globs {
		matches, err := filepath.Glob(g)
		if err != nil {
			d.warn(fmt.Errorf("core_pattern glob %s: %w", g, err))
			continue
		}
		for _, m := range matches {
			d.addFile(m, SourcePattern, false)
		}
	}
}

func escapeGlob(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// fromDir searches a user-given directory (or file): cores (plain or
// compressed), .crash reports, systemd-named files and ABRT directories.
func (d *discoverer) fromDir(dir string) {
	fi, err := os.Stat(dir)
	if err != nil {
		d.warn(err)
		return
	}
	if !fi.IsDir() {
		d.addFile(dir, SourceDir, true)
		return
	}
	if e, ok := abrtEntry(dir); ok {
		e.Source = SourceDir
		if e.Path != "" {
			d.setCompression(e)
		}
		d.add(e)
		return
	}
	for _, de := range d.readDir(dir) {
		path := filepath.Join(dir, de.Name())
		switch {
		case de.IsDir():
			if e, ok := abrtEntry(path); ok {
				e.Source = SourceDir
				if e.Path != "" {
					d.setCompression(e)
				}
				d.add(e)
				continue
			}
			d.fromCrashDir(path)
		case de.Type().IsRegular():
			d.addFile(path, SourceDir, false)
		}
	}
}

// fromCrashDir adds the cores (files named core*) of a directory kept per
// crash inside a user-given directory (DIR/<crash>/core).
func (d *discoverer) fromCrashDir(dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return // not worth a warning: any subdirectory is tried
	}
	for _, de := range ents {
		if de.Type().IsRegular() && strings.HasPrefix(de.Name(), "core") {
			d.addFile(filepath.Join(dir, de.Name()), SourceDir, false)
		}
	}
}

// addFile adds one file if it is a core, a compressed core or a report.
// explicit files are added even when they do not look like cores (the
// inspection then says why they cannot be analysed).
func (d *discoverer) addFile(path, source string, explicit bool) {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() {
		return
	}
	if isCrashFile(path) {
		d.addCrash(path, source)
		return
	}
	var e *Entry
	if se, ok := systemdEntry(path, fi); ok {
		e = se
	} else {
		e = &Entry{ID: fi.Name(), Path: path, Size: fi.Size(), Time: fi.ModTime()}
		// core.%e.%p.%t, core.%p: the name tells the dump time, and the pid
		// when the core's notes are not read (a compressed core in quick
		// mode) or do not say.
		if pid, t := parseCoreName(fi.Name()); pid > 0 {
			e.namePID = pid
			if !t.IsZero() {
				e.Time = t
			}
		}
	}
	e.Source = source
	kind := sniffCore(path)
	switch {
	case kind == "core":
	case kind == "" && !explicit:
		return
	case kind == "":
		e.Analysable, e.Why = No, "not an ELF core file"
	default:
		e.Compression = kind
	}
	d.add(e)
}

// sniffCore returns "core" for an ELF core, the compression format for a
// compressed stream whose first decompressed bytes are an ELF core, else "".
func sniffCore(path string) string {
	f, err := regular.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	br := bufio.NewReader(f)
	head, _ := br.Peek(compressed.HeaderLen)
	format := compressed.Detect(head)
	var r io.Reader = br
	switch format {
	case compressed.Unknown, compressed.Zlib:
		return ""
	case compressed.Plain:
	default:
		dec, err := compressed.NewReader(br, format)
		if err != nil {
			return ""
		}
		defer dec.Close()
		r = dec
	}
	h := make([]byte, 18)
	if _, err := io.ReadFull(r, h); err != nil {
		return ""
	}
	if string(h[:4]) != "\x7fELF" || h[16] != 4 || h[17] != 0 { // e_type ET_CORE, little-endian
		return ""
	}
	if format == compressed.Plain {
		return "core"
	}
	return string(format)
}

// inspectAll inspects the entries in parallel.
func (d *discoverer) inspectAll() {
	ids := &buildIDCache{}
	work := make(chan *Entry)
	var wg sync.WaitGroup
	var mu sync.Mutex
	done := 0
	progress := func(e *Entry) {
		if d.opts.Progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		done++
		path := e.Name()
		if path == "" {
			path = e.Report
		}
		d.opts.Progress(done, len(d.entries), path)
	}
	n := runtime.GOMAXPROCS(0)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for e := range work {
				if e.Analysable == No && e.Path != "" {
					progress(e)
					continue // already judged (unreadable, not a core)
				}
				if e.Journal != "" {
					inspectJournal(e, d.opts, ids)
					progress(e)
					continue
				}
				inspect(e, d.opts.Quick, ids)
				progress(e)
			}
		}()
	}
	for _, e := range d.entries {
		work <- e
	}
	close(work)
	wg.Wait()
	for _, e := range d.entries {
		switch {
		case e.PID != 0 && e.PIDFrom == "":
			e.PIDFrom = "store"
		case e.PID == 0 && e.namePID != 0:
			e.PID, e.PIDFrom = e.namePID, "name"
		}
		if e.Truncated == "" {
			e.Truncated = Unknown
		}
		if e.Analysable == "" {
			e.Analysable = Unknown
		}
	}
}
