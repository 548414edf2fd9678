package elfcore

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

// TestBackingReadsThenMaps reads a backing file from several goroutines
// across the switch from preads to the mapping: every read returns the
// file's bytes, reads past the end return nothing, the file is mapped only
// after backingReadsBeforeMap reads.
func TestBackingReadsThenMaps(t *testing.T) {
	content := make([]byte, 3*65536+123)
	for i := range content {
		content[i] = byte(i*7 + i>>8)
	}
	path := filepath.Join(t.TempDir(), "lib.so")
	if err := os.WriteFile(path, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	b := &backingFile{f: f, size: int64(len(content))}
	defer b.close(true)
	check := func(off uint64, n int) {
		p := make([]byte, n)
		k := b.readAt(p, off)
		want := 0
		if off < uint64(len(content)) {
			want = min(n, len(content)-int(off))
		}
		if k != want || (k > 0 && !bytes.Equal(p[:k], content[off:off+uint64(k)])) {
			t.Errorf("readAt(%d, %d) = %d bytes, want %d of the file", off, n, k, want)
		}
	}
	for i := range backingReadsBeforeMap - 1 {
		check(uint64(i*1000), 64)
	}
	if b.mapped.Load() {
		t.Fatalf("mapped after %d reads", backingReadsBeforeMap-1)
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				check(uint64((g*50+i)*997%len(content)), 200)
			}
		}()
	}
	wg.Wait()
	if !b.mapped.Load() || b.data == nil {
		t.Errorf("not mapped after %d reads", b.reads.Load())
	}
	check(uint64(len(content)), 8)
	check(uint64(len(content))+4096, 8)
	check(1<<63+5, 8)
}
