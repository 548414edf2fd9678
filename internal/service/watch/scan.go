package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/source/compressed"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// fileState is what the scanner remembers about a file.
type fileState struct {
	size     int64
	mtime    time.Time
	stableAt time.Time // when size/mtime were first seen with these values
	done     bool      // analysed (or failed, or not a core)
}

// coreFile is one core in a managed directory.
type coreFile struct {
	path  string
	size  int64
	mtime time.Time
}

func jsonMarshal(v any) ([]byte, error) { return json.Marshal(v) }

func (w *Watcher) scanLoop(ctx context.Context) {
	tick := time.NewTicker(w.cfg.Poll)
	defer tick.Stop()
	var lastDiscover time.Time
	for {
		w.scanManaged(ctx)
		if w.cfg.Discover && time.Since(lastDiscover) >= w.cfg.DiscoverEvery {
			lastDiscover = time.Now()
			w.scanDiscovered(ctx)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// isApportReport reports whether the file starts like an Apport report
// (its CoreDump field embeds the core; the analysis extracts it).
func isApportReport(path string) bool {
	f, err := regular.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [12]byte
	_, err = io.ReadFull(f, h[:])
	return err == nil && string(h[:]) == "ProblemType:"
}

// isCore reports whether the file starts like an ELF core (ET_CORE) or is a
// compressed file named like a core.
func isCore(path string) bool {
	f, err := regular.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var h [18]byte
	if _, err := io.ReadFull(f, h[:]); err != nil {
		return false
	}
	if !bytes.Equal(h[:4], []byte("\x7fELF")) {
		// A compressed core (systemd-coredump, lz4/zstd core_pattern pipes)
		// is recognised by its format and name.
		fmtName := compressed.Detect(h[:])
		return fmtName != compressed.Plain && fmtName != compressed.Unknown &&
			strings.Contains(strings.ToLower(filepath.Base(path)), "core")
	}
	var et uint16
	if h[5] == 2 { // big endian
		et = uint16(h[16])<<8 | uint16(h[17])
	} else {
		et = uint16(h[16]) | uint16(h[17])<<8
	}
	return et == 4
}

// listCores lists the plain ELF cores directly inside the managed dirs.
func (w *Watcher) listCores() []coreFile {
	var out []coreFile
	for _, dir := range w.cfg.CoreDirs {
		ents, err := os.ReadDir(dir)
		if err != nil {
			w.log.Printf("watch: list cores: %v", err)
			continue
		}
		for _, e := range ents {
			if !e.Type().IsRegular() {
				continue
			}
			fi, err := e.Info()
			if err != nil {
				continue
			}
			out = append(out, coreFile{path: filepath.Join(dir, e.Name()), size: fi.Size(), mtime: fi.ModTime()})
		}
	}
	return out
}

// consider queues path once its size and mtime were stable for Settle. It
// returns false when the file is (still) pending.
func (w *Watcher) consider(ctx context.Context, path string, size int64, mtime time.Time, now time.Time) {
	w.mu.Lock()
	st, ok := w.seen[path]
	if ok && st.done && st.size == size && st.mtime.Equal(mtime) {
		w.mu.Unlock()
		return
	}
	if !ok || st.size != size || !st.mtime.Equal(mtime) {
		w.seen[path] = fileState{size: size, mtime: mtime, stableAt: now}
		w.mu.Unlock()
		return
	}
	if now.Sub(st.stableAt) < w.cfg.Settle || w.inflight[path] {
		w.mu.Unlock()
		return
	}
	w.mu.Unlock()
	markDone := func() {
		w.mu.Lock()
		w.seen[path] = fileState{size: size, mtime: mtime, done: true}
		w.mu.Unlock()
	}
	inJournal := isJournalName(path)
	if mtime.Before(w.cfg.Since) || !inJournal && !isCore(path) && !isApportReport(path) {
		markDone()
		return
	}
	if w.quar != nil && w.quar.held(path, size, mtime) {
		markDone()
		return
	}
	if has, err := w.cfg.Store.HasCore(ctx, path, mtime); err != nil {
		if !errors.Is(err, errSpoolFull) { // else: waits on disk for the database
			w.log.Printf("watch: %v", err)
		}
		return
	} else if has {
		markDone()
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.queue <- job{path: path, size: size, mtime: mtime}:
		w.Metrics.queue.Add(1)
		w.inflight[path] = true
		w.seen[path] = fileState{size: size, mtime: mtime, done: true}
	default:
		// Queue full: leave it pending, it is retried at the next poll.
		w.Metrics.queueFull.Add(1)
	}
}

func (w *Watcher) scanManaged(ctx context.Context) {
	now := time.Now()
	files := w.listCores()
	present := make(map[string]bool, len(files))
	for _, f := range files {
		present[f.path] = true
		w.consider(ctx, f.path, f.size, f.mtime, now)
	}
	w.mu.Lock()
	for p := range w.seen {
		if !present[p] && w.managed(p) {
			delete(w.seen, p)
		}
	}
	w.mu.Unlock()
	w.retain(files, now)
}

func (w *Watcher) managed(path string) bool {
	if isJournalName(path) {
		return false // a core kept in the journal, not a file of "."
	}
	dir := filepath.Dir(path)
	for _, d := range w.cfg.CoreDirs {
		if filepath.Clean(d) == dir {
			return true
		}
	}
	return false
}

// isJournalName reports whether a queued core is named by its journal
// record (a core systemd-coredump kept in the journal, Storage=journal)
// rather than a file.
func isJournalName(name string) bool {
	_, _, ok := coredumps.ParseJournalName(name)
	return ok
}

// scanDiscovered queues the cores found by cores.Discover outside the
// managed directories: plain, compressed, in an Apport .crash report, or
// kept in systemd's journal (the analysis resolves each as `coroner
// analyze` does).
func (w *Watcher) scanDiscovered(ctx context.Context) {
	opts := w.cfg.Stores
	opts.Quick = true
	opts.Since = w.cfg.Since
	entries, _ := coredumps.Discover(opts)
	now := time.Now()
	for _, e := range entries {
		if e.Path == "" && e.Journal != "" {
			// Written whole with its record: its time and size are final.
			w.consider(ctx, e.Journal, 0, e.Time, now)
			continue
		}
		if e.Path == "" || w.managed(e.Path) {
			continue
		}
		fi, err := os.Stat(e.Path)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		w.consider(ctx, e.Path, fi.Size(), fi.ModTime(), now)
	}
}

// retain deletes cores of the managed directories beyond the retention
// limits, oldest first, never one that is queued or being analysed, and
// updates the cores-on-disk gauges.
func (w *Watcher) retain(files []coreFile, now time.Time) {
	var cs []coreFile
	for _, f := range files {
		if isCore(f.path) {
			cs = append(cs, f)
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].mtime.Before(cs[j].mtime) })
	var total int64
	for _, f := range cs {
		total += f.size
	}
	n := len(cs)
	for _, f := range cs {
		overCount := w.cfg.KeepCores > 0 && n > w.cfg.KeepCores
		overBytes := w.cfg.MaxCoreBytes > 0 && total > w.cfg.MaxCoreBytes
		tooOld := w.cfg.MaxCoreAge > 0 && now.Sub(f.mtime) > w.cfg.MaxCoreAge
		if !overCount && !overBytes && !tooOld {
			continue
		}
		w.mu.Lock()
		busy := w.inflight[f.path]
		st := w.seen[f.path]
		w.mu.Unlock()
		// Never delete a core being analysed; the count limit also waits for
		// a core's analysis, while the size and age limits (which protect
		// the disk) do not.
		if busy || (!st.done && !overBytes && !tooOld) {
			continue
		}
		if err := os.Remove(f.path); err != nil {
			w.event(slog.LevelError, "retention: cannot delete core", EventCoreDeleted, slog.String("core", f.path), slog.String("error", err.Error()))
			continue
		}
		if !st.done {
			w.Metrics.deletedUnanalysed.Add(1)
		}
		reason := "keep-cores"
		switch {
		case tooOld:
			reason = "max-core-age"
		case overBytes:
			reason = "max-core-bytes"
		}
		w.event(slog.LevelInfo, "retention: core deleted", EventCoreDeleted, slog.String("core", f.path), slog.Int64("bytes", f.size),
			slog.String("reason", reason), slog.Bool("analysed", st.done))
		w.Metrics.deleted.Add(1)
		n--
		total -= f.size
	}
	w.Metrics.coresOnDisk.Store(int64(n))
	w.Metrics.coreBytes.Store(total)
}
