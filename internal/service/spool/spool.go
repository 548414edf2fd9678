// Package spool is a durable, bounded, ordered queue of records on local
// disk: what `coroner watch` keeps while its database is away, and writes
// to the database, in order, once it is back.
//
// A spool is a directory of segment files (NNNNNNNNNNNNNNNN.seg, records
// appended and fsync'd, see format.go), a cursor file naming the first
// record not yet consumed, and a lock file that keeps a second process out.
// Consumption is at least once: the cursor is persisted lazily, so after a
// crash the last consumed records may be handed out again; consumers make
// their writes idempotent. Damaged bytes (a torn write after a power loss,
// a corrupted file) are reported with their file and offset and skipped,
// never fatal.
package spool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Errors of Append.
var (
	// ErrFull is returned when a record would exceed Options.MaxBytes or
	// Options.MaxRecords.
	ErrFull = errors.New("spool full")
	// ErrTooLarge is returned for a payload above Options.MaxRecord.
	ErrTooLarge = errors.New("record too large for the spool")
)

// Options bound a spool. Zero values take the defaults.
type Options struct {
	// MaxBytes bounds the pending records, headers included (default 256 MiB).
	MaxBytes int64
	// MaxRecords bounds the number of pending records (default 100,000).
	MaxRecords int
	// MaxRecord bounds one payload (default 32 MiB, at most MaxBytes).
	MaxRecord int
	// SegmentBytes is the size after which appends go to a new segment
	// file (default 8 MiB).
	SegmentBytes int64
	// CursorEvery is how many consumed records may go unrecorded in the
	// cursor file (default 64); they are handed out again after a crash.
	CursorEvery int
	// Logf receives reports of damaged data (default: none).
	Logf func(format string, args ...any)
}

func (o *Options) defaults() {
	if o.MaxBytes <= 0 {
		o.MaxBytes = 256 << 20
	}
	if o.MaxRecords <= 0 {
		o.MaxRecords = 100_000
	}
	if o.MaxRecord <= 0 {
		o.MaxRecord = 32 << 20
	}
	if int64(o.MaxRecord) > o.MaxBytes-headerSize {
		o.MaxRecord = int(max(o.MaxBytes-headerSize, 0))
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 8 << 20
	}
	if o.CursorEvery <= 0 {
		o.CursorEvery = 64
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
}

// pos is a pending record.
type pos struct {
	seg  uint64
	rec  record
	size int64 // header + payload
}

// Spool is an open spool directory. Its methods are safe for concurrent use.
type Spool struct {
	dir  string
	opts Options
	lock *os.File

	mu      sync.Mutex
	queue   []pos
	bytes   int64
	readers map[uint64]*os.File
	w       *os.File // segment being appended to, nil before the first Append
	wseq    uint64
	wsize   int64
	nextSeq uint64
	// cursor: records before (cseg, coff) are consumed.
	cseg     uint64
	coff     int64
	unsynced int // consumed records not yet in the cursor file
	damaged  int64
	closed   bool
}

// Entry is a pending record handed out by Peek.
type Entry struct {
	Kind    byte
	Payload []byte
	p       pos
	file    string
}

// Where names the record for a report: "SEGMENT-FILE: offset N".
func (e Entry) Where() string { return fmt.Sprintf("%s: offset %d", e.file, e.p.rec.off) }

// Open opens (creating) the spool directory dir, takes its lock (an error
// names the directory when another process holds it), removes the
// segments the cursor says are consumed and indexes the pending records,
// reporting damaged regions through Options.Logf.
func Open(dir string, opts Options) (*Spool, error) {
	opts.defaults()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: create %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("spool %s is in use by another process", dir)
		}
		return nil, fmt.Errorf("spool: lock %s: %w", dir, err)
	}
	s := &Spool{dir: dir, opts: opts, lock: lock, readers: map[uint64]*os.File{}}
	if err := s.load(); err != nil {
		s.closeFiles()
		return nil, err
	}
	return s, nil
}

func (s *Spool) segPath(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%016d.seg", seq))
}

func (s *Spool) cursorPath() string { return filepath.Join(s.dir, "cursor") }

// readCursor parses the cursor file: "coroner-spool-cursor 1 SEG OFF\n".
// A missing file means nothing was consumed; a damaged one is reported and
// treated the same way (records are then handed out again, which
// consumers tolerate).
func (s *Spool) readCursor() (uint64, int64) {
	b, err := os.ReadFile(s.cursorPath())
	if errors.Is(err, os.ErrNotExist) {
		return 0, 0
	}
	if err == nil {
		seg, off, perr := parseCursor(b)
		if perr == nil {
			return seg, off
		}
		err = perr
	}
	s.damaged++
	s.opts.Logf("spool: %s: offset 0: %v; replaying from the oldest segment", s.cursorPath(), err)
	return 0, 0
}

func parseCursor(b []byte) (uint64, int64, error) {
	f := strings.Fields(string(b))
	if len(b) > 100 || len(f) != 4 || f[0] != "coroner-spool-cursor" || f[1] != "1" {
		return 0, 0, errors.New("not a cursor file")
	}
	seg, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("bad segment number: %w", err)
	}
	off, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil || off < 0 {
		return 0, 0, fmt.Errorf("bad offset %q", f[3])
	}
	return seg, off, nil
}

func (s *Spool) load() error {
	s.cseg, s.coff = s.readCursor()
	ents, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("spool: list %s: %w", s.dir, err)
	}
	var segs []uint64
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			os.Remove(filepath.Join(s.dir, name)) // an interrupted cursor write
			continue
		}
		seq, ok := strings.CutSuffix(name, ".seg")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		n, err := strconv.ParseUint(seq, 10, 64)
		if err != nil || len(seq) != 16 {
			continue
		}
		segs = append(segs, n)
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i] < segs[j] })
	s.nextSeq = s.cseg + 1
	for _, seq := range segs {
		s.nextSeq = max(s.nextSeq, seq+1)
		path := s.segPath(seq)
		if seq < s.cseg {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: remove consumed segment: %w", err)
			}
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return fmt.Errorf("spool: %w", err)
		}
		from := int64(0)
		if seq == s.cseg {
			from = s.coff
		}
		n := 0
		scan(f, fi.Size(), s.opts.MaxRecord, func(r record) {
			if r.off < from {
				return
			}
			s.queue = append(s.queue, pos{seg: seq, rec: r, size: r.end() - r.off})
			s.bytes += r.end() - r.off
			n++
		}, func(off, n int64, why error) {
			s.damaged++
			s.opts.Logf("spool: %s: offset %d: %v; skipped %d bytes", path, off, why, n)
		})
		if n == 0 {
			// Nothing pending here: consumed, empty or all damaged.
			f.Close()
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: remove consumed segment: %w", err)
			}
			continue
		}
		s.readers[seq] = f
	}
	return nil
}

// Len is the number of pending records.
func (s *Spool) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}

// Bytes is the size of the pending records, headers included.
func (s *Spool) Bytes() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// Damaged counts the damaged regions (and cursor files) found so far.
func (s *Spool) Damaged() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.damaged
}

// Dir is the spool directory.
func (s *Spool) Dir() string { return s.dir }

// Append adds a record at the end of the spool and returns once it is on
// disk (fsync). kind must not be 0. It fails with ErrFull, ErrTooLarge or
// the I/O error; a failed append leaves no trace in the spool.
func (s *Spool) Append(kind byte, payload []byte) error {
	if kind == 0 {
		return errors.New("spool: record kind 0")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool: closed")
	}
	if len(payload) > s.opts.MaxRecord {
		return fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, len(payload), s.opts.MaxRecord)
	}
	size := int64(headerSize + len(payload))
	if s.bytes+size > s.opts.MaxBytes || len(s.queue) >= s.opts.MaxRecords {
		return fmt.Errorf("%w (%d records, %d bytes)", ErrFull, len(s.queue), s.bytes)
	}
	if s.w == nil || s.wsize >= s.opts.SegmentBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	h := header(kind, payload)
	buf := make([]byte, 0, size)
	buf = append(append(buf, h[:]...), payload...)
	if _, err := s.w.Write(buf); err != nil {
		s.w.Truncate(s.wsize)
		return fmt.Errorf("spool: write %s: %w", s.w.Name(), err)
	}
	if err := s.w.Sync(); err != nil {
		s.w.Truncate(s.wsize)
		return fmt.Errorf("spool: sync %s: %w", s.w.Name(), err)
	}
	s.queue = append(s.queue, pos{seg: s.wseq, rec: record{off: s.wsize, kind: kind, n: len(payload)}, size: size})
	s.wsize += size
	s.bytes += size
	return nil
}

// rotate starts a new segment for appends.
func (s *Spool) rotate() error {
	seq := s.nextSeq
	path := s.segPath(seq)
	w, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: create segment: %w", err)
	}
	r, err := os.Open(path)
	if err != nil {
		w.Close()
		os.Remove(path)
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		w.Close()
		r.Close()
		os.Remove(path)
		return err
	}
	if s.w != nil {
		s.w.Close()
	}
	s.nextSeq++
	s.w, s.wseq, s.wsize = w, seq, 0
	s.readers[seq] = r
	return nil
}

// Peek returns the oldest pending record, false when there is none. A
// record found damaged now (its file changed since it was indexed) is
// reported, dropped and the next one returned.
func (s *Spool) Peek() (Entry, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Entry{}, false, errors.New("spool: closed")
	}
	for len(s.queue) > 0 {
		p := s.queue[0]
		f := s.readers[p.seg]
		if f == nil {
			return Entry{}, false, fmt.Errorf("spool: segment %d not open", p.seg)
		}
		fi, err := f.Stat()
		if err != nil {
			return Entry{}, false, fmt.Errorf("spool: %w", err)
		}
		if _, err := check(f, fi.Size(), p.rec.off, s.opts.MaxRecord); err != nil {
			s.damaged++
			s.opts.Logf("spool: %s: offset %d: %v; skipped %d bytes", f.Name(), p.rec.off, err, p.size)
			if err := s.consume(); err != nil {
				return Entry{}, false, err
			}
			continue
		}
		buf := make([]byte, p.rec.n)
		if _, err := f.ReadAt(buf, p.rec.off+headerSize); err != nil {
			return Entry{}, false, fmt.Errorf("spool: read %s at offset %d: %w", f.Name(), p.rec.off, err)
		}
		return Entry{Kind: p.rec.kind, Payload: buf, p: p, file: f.Name()}, true, nil
	}
	return Entry{}, false, nil
}

// Ack consumes e, which must be the record Peek returned last (the oldest).
func (s *Spool) Ack(e Entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("spool: closed")
	}
	if len(s.queue) == 0 || s.queue[0] != e.p {
		return errors.New("spool: Ack of a record that is not the oldest")
	}
	return s.consume()
}

// consume drops the oldest record, moves the cursor past it, and removes
// the segments that hold nothing pending any more.
func (s *Spool) consume() error {
	p := s.queue[0]
	s.queue = s.queue[1:]
	if len(s.queue) == 0 {
		s.queue = nil // let the backing array go
	}
	s.bytes -= p.size
	s.cseg, s.coff = p.seg, p.rec.end()
	s.unsynced++
	// Segments before the next pending record (all of them when the spool
	// is empty, the one being appended to included) are done.
	limit := s.nextSeq
	if len(s.queue) > 0 {
		limit = s.queue[0].seg
	}
	var done []uint64
	for seq := range s.readers {
		if seq < limit {
			done = append(done, seq)
		}
	}
	if len(done) == 0 && s.unsynced < s.opts.CursorEvery {
		return nil
	}
	if len(done) > 0 && len(s.queue) == 0 {
		// Empty: the next append starts a new segment.
		if s.w != nil {
			s.w.Close()
			s.w = nil
		}
		s.cseg, s.coff = s.nextSeq, 0
	} else if len(done) > 0 {
		s.cseg, s.coff = limit, 0
		if p := s.queue[0]; p.seg == limit {
			s.coff = p.rec.off
		}
	}
	if err := s.writeCursor(); err != nil {
		return err
	}
	for _, seq := range done {
		s.readers[seq].Close()
		delete(s.readers, seq)
		if err := os.Remove(s.segPath(seq)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: remove consumed segment: %w", err)
		}
	}
	return nil
}

// writeCursor persists the cursor (write, fsync, rename, fsync directory).
func (s *Spool) writeCursor() error {
	tmp := s.cursorPath() + ".tmp"
	b := fmt.Appendf(nil, "coroner-spool-cursor 1 %d %d\n", s.cseg, s.coff)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("spool: write cursor: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, s.cursorPath())
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("spool: write cursor: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	s.unsynced = 0
	return nil
}

// Walk calls fn with every pending record, oldest first (for a consumer
// that indexes them after a restart). Damaged records are skipped.
func (s *Spool) Walk(fn func(Entry) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.queue {
		f := s.readers[p.seg]
		if f == nil {
			continue
		}
		buf := make([]byte, p.rec.n)
		if _, err := f.ReadAt(buf, p.rec.off+headerSize); err != nil {
			return fmt.Errorf("spool: read %s at offset %d: %w", f.Name(), p.rec.off, err)
		}
		if err := fn(Entry{Kind: p.rec.kind, Payload: buf, p: p, file: f.Name()}); err != nil {
			return err
		}
	}
	return nil
}

// Close records the cursor and releases the spool.
func (s *Spool) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	var err error
	if s.unsynced > 0 {
		err = s.writeCursor()
	}
	s.closeFiles()
	s.closed = true
	return err
}

func (s *Spool) closeFiles() {
	for seq, f := range s.readers {
		f.Close()
		delete(s.readers, seq)
	}
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	s.lock.Close() // releases the flock
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	return nil
}
