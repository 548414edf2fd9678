package spool

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// logBuf collects what a spool reports.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, format+"\n", args...)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// die abandons s the way kill -9 does: files closed by the kernel, the
// lock released, nothing else written.
func die(s *Spool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closeFiles()
	s.closed = true
}

func payload(i int) []byte {
	return []byte(fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i%50)))
}

func mustOpen(t *testing.T, dir string, o Options) *Spool {
	t.Helper()
	s, err := Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// drain consumes n records (all when n < 0) and returns their payloads.
func drain(t *testing.T, s *Spool, n int) []string {
	t.Helper()
	var out []string
	for n < 0 || len(out) < n {
		e, ok, err := s.Peek()
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		out = append(out, string(e.Payload))
		if err := s.Ack(e); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func segments(t *testing.T, dir string) []string {
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestOrderAcrossRestarts appends records over several segments and
// processes, consumes some, and checks that the rest comes back in order
// and that consumed segments are removed.
func TestOrderAcrossRestarts(t *testing.T) {
	dir := t.TempDir()
	o := Options{SegmentBytes: 200}
	s := mustOpen(t, dir, o)
	for i := range 20 {
		if err := s.Append(byte(1+i%2), payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != 20 || len(segments(t, dir)) < 3 {
		t.Fatalf("len %d, %d segments", s.Len(), len(segments(t, dir)))
	}
	got := drain(t, s, 7)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = mustOpen(t, dir, o)
	for i := 20; i < 25; i++ {
		if err := s.Append(1, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	got = append(got, drain(t, s, -1)...)
	if len(got) != 25 {
		t.Fatalf("%d records, want 25", len(got))
	}
	for i, p := range got {
		if p != string(payload(i)) {
			t.Fatalf("record %d = %s", i, p)
		}
	}
	if s.Len() != 0 || s.Bytes() != 0 || len(segments(t, dir)) != 0 {
		t.Errorf("after drain: len %d, bytes %d, segments %v", s.Len(), s.Bytes(), segments(t, dir))
	}
	// Empty, a new append starts a new segment and comes back after a restart.
	if err := s.Append(2, []byte("last")); err != nil {
		t.Fatal(err)
	}
	die(s)
	s = mustOpen(t, dir, o)
	defer s.Close()
	if got := drain(t, s, -1); len(got) != 1 || got[0] != "last" {
		t.Fatalf("after restart: %q", got)
	}
}

// TestKillRedelivers abandons a spool without recording the cursor: the
// records consumed since the last cursor write come back (at least once),
// the older ones do not, none is lost.
func TestKillRedelivers(t *testing.T) {
	dir := t.TempDir()
	o := Options{CursorEvery: 4}
	s := mustOpen(t, dir, o)
	for i := range 10 {
		if err := s.Append(1, payload(i)); err != nil {
			t.Fatal(err)
		}
	}
	drain(t, s, 6) // cursor written after 4
	die(s)
	s = mustOpen(t, dir, o)
	defer s.Close()
	got := drain(t, s, -1)
	if len(got) != 6 || got[0] != string(payload(4)) || got[5] != string(payload(9)) {
		t.Fatalf("after kill: %q", got)
	}
}

// TestDamage corrupts a record in the middle and cuts the last one short
// (a torn write): both are reported with path and offset and skipped, the
// others are delivered, and the spool goes on working.
func TestDamage(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	var ends []int64
	for i := range 5 {
		if err := s.Append(1, payload(i)); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, s.wsize)
	}
	die(s)
	seg := segments(t, dir)[0]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	b[ends[1]+headerSize+3] ^= 0x55 // payload of record 2
	b = b[:len(b)-5]                // record 4 torn
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var l logBuf
	s = mustOpen(t, dir, Options{Logf: l.logf})
	defer s.Close()
	want := []string{
		fmt.Sprintf("spool: %s: offset %d: checksum mismatch; skipped %d bytes", seg, ends[1], ends[2]-ends[1]),
		fmt.Sprintf("spool: %s: offset %d: truncated record", seg, ends[3]),
	}
	for _, w := range want {
		if !strings.Contains(l.String(), w) {
			t.Errorf("report lacks %q:\n%s", w, l.String())
		}
	}
	if s.Damaged() != 2 {
		t.Errorf("damaged = %d", s.Damaged())
	}
	if err := s.Append(1, payload(5)); err != nil {
		t.Fatal(err)
	}
	got := drain(t, s, -1)
	wantP := []string{string(payload(0)), string(payload(1)), string(payload(3)), string(payload(5))}
	if strings.Join(got, "|") != strings.Join(wantP, "|") {
		t.Errorf("delivered %q, want %q", got, wantP)
	}
}

// TestGarbage opens a spool whose files hold anything but records.
func TestGarbage(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "0000000000000003.seg"), bytes.Repeat([]byte("CSP1\xff"), 1000), 0o600)
	os.WriteFile(filepath.Join(dir, "cursor"), []byte("coroner-spool-cursor 1 x y\n"), 0o600)
	var l logBuf
	s := mustOpen(t, dir, Options{Logf: l.logf})
	defer s.Close()
	if s.Len() != 0 || s.Damaged() != 2 {
		t.Errorf("len %d damaged %d", s.Len(), s.Damaged())
	}
	if !strings.Contains(l.String(), "cursor: offset 0: bad segment number") ||
		!strings.Contains(l.String(), "0000000000000003.seg: offset 0: bad kind/reserved bytes ff 43 53 50; skipped 5000 bytes") {
		t.Errorf("report:\n%s", l.String())
	}
	if err := s.Append(1, []byte("ok")); err != nil {
		t.Fatal(err)
	}
	if got := drain(t, s, -1); len(got) != 1 {
		t.Errorf("got %q", got)
	}
}

// TestBounds checks MaxBytes, MaxRecords and MaxRecord.
func TestBounds(t *testing.T) {
	s := mustOpen(t, t.TempDir(), Options{MaxBytes: 110, MaxRecords: 3})
	defer s.Close()
	if err := s.Append(1, make([]byte, 95)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	for range 2 {
		if err := s.Append(1, make([]byte, 30)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Append(1, make([]byte, 30)); !errors.Is(err, ErrFull) {
		t.Errorf("bytes: %v", err)
	}
	if err := s.Append(1, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(1, nil); !errors.Is(err, ErrFull) {
		t.Errorf("records: %v", err)
	}
	drain(t, s, 1)
	if err := s.Append(1, make([]byte, 30)); err != nil {
		t.Errorf("after consuming one: %v", err)
	}
}

func TestLock(t *testing.T) {
	dir := t.TempDir()
	s := mustOpen(t, dir, Options{})
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use by another process") {
		t.Errorf("second open: %v", err)
	}
	s.Close()
	s = mustOpen(t, dir, Options{})
	s.Close()
}

// segmentOf builds a segment file from records.
func segmentOf(recs ...[]byte) []byte {
	var b []byte
	for _, p := range recs {
		h := header(1, p)
		b = append(append(b, h[:]...), p...)
	}
	return b
}

// FuzzScan feeds arbitrary bytes to the segment reader: it must not panic,
// must account for every byte exactly once (records and damaged regions in
// order, without gaps or overlaps), and every record it accepts must
// verify again.
func FuzzScan(f *testing.F) {
	valid := segmentOf([]byte(`{"a":1}`), []byte(""), []byte(`{"b":"CSP1"}`))
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	bad := bytes.Clone(valid)
	bad[headerSize+2] ^= 1
	f.Add(bad)
	f.Add([]byte("CSP1\x01\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00"))
	f.Add(append([]byte("garbage"), valid...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		size := int64(len(data))
		next := int64(0)
		scan(r, size, 1<<20, func(rec record) {
			if rec.off != next {
				t.Fatalf("record at %d, expected %d", rec.off, next)
			}
			if _, err := check(r, size, rec.off, 1<<20); err != nil {
				t.Fatalf("accepted record at %d does not verify: %v", rec.off, err)
			}
			next = rec.end()
		}, func(off, n int64, why error) {
			if off != next || n <= 0 || why == nil {
				t.Fatalf("damage at %d (+%d), expected at %d", off, n, next)
			}
			next = off + n
		})
		if next != size {
			t.Fatalf("scan stopped at %d of %d", next, size)
		}
	})
}

// FuzzOpen opens a spool directory holding an arbitrary segment and cursor
// file: no panic, and the spool accepts, keeps and delivers new records.
func FuzzOpen(f *testing.F) {
	f.Add(segmentOf([]byte("one"), []byte("two")), []byte("coroner-spool-cursor 1 1 23\n"))
	f.Add(segmentOf([]byte("one")), []byte("coroner-spool-cursor 1 0 999999\n"))
	f.Add([]byte("CSP1"), []byte("junk"))
	f.Fuzz(func(t *testing.T, seg, cursor []byte) {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, "0000000000000001.seg"), seg, 0o600)
		os.WriteFile(filepath.Join(dir, "cursor"), cursor, 0o600)
		s, err := Open(dir, Options{MaxBytes: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		old := s.Len()
		if err := s.Append(7, []byte("new")); err != nil {
			t.Fatal(err)
		}
		n := 0
		var last Entry
		for {
			e, ok, err := s.Peek()
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				break
			}
			last = e
			n++
			if err := s.Ack(e); err != nil {
				t.Fatal(err)
			}
		}
		if n != old+1 || last.Kind != 7 || string(last.Payload) != "new" {
			t.Fatalf("delivered %d records (want %d), last %q", n, old+1, last.Payload)
		}
	})
}
