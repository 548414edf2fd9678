package diskcache

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

func TestPutGet(t *testing.T) {
	c, err := Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.Get("symbols", "abcd"); ok {
		t.Fatal("hit in an empty cache")
	}
	if err := c.Put("symbols", "abcd", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if b, ok := c.Get("symbols", "abcd"); !ok || string(b) != "one" {
		t.Fatalf("got %q %v", b, ok)
	}
	for _, bad := range []string{"", "../x", ".hidden", "a/b", "a b"} {
		if err := c.Put("symbols", bad, nil); err == nil {
			t.Errorf("key %q accepted", bad)
		}
		if err := c.Put(bad, "abcd", nil); err == nil {
			t.Errorf("kind %q accepted", bad)
		}
	}
	var nilCache *Cache
	if _, ok := nilCache.Get("symbols", "abcd"); ok || nilCache.Put("symbols", "abcd", nil) == nil {
		t.Error("a nil cache stores")
	}
}

// TestTrimKeepsRecentlyUsed: over its bound the cache drops the entries
// used least recently, and stale temporary files.
func TestTrimKeepsRecentlyUsed(t *testing.T) {
	dir := t.TempDir()
	w, err := Open(dir, 1<<20) // writes without trimming
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-time.Hour)
	for i := 0; i < 20; i++ {
		key := fmt.Sprintf("k%02d", i)
		if err := w.Put("x", key, bytes.Repeat([]byte{'a'}, 1000)); err != nil {
			t.Fatal(err)
		}
		when := old.Add(time.Duration(i) * time.Minute)
		os.Chtimes(w.Path("x", key), when, when)
	}
	c, _ := Open(dir, 10_000)
	c.Get("x", "k00") // used now: kept
	stale := filepath.Join(dir, "x", ".tmp-dead-1")
	os.WriteFile(stale, []byte("partial"), 0o600)
	os.Chtimes(stale, old.Add(-time.Hour), old.Add(-time.Hour))
	c.Trim()
	if _, ok := c.Get("x", "k00"); !ok {
		t.Error("the recently used entry was removed")
	}
	if _, ok := c.Get("x", "k01"); ok {
		t.Error("the least recently used entry was kept")
	}
	if _, ok := c.Get("x", "k19"); !ok {
		t.Error("a recent entry was removed")
	}
	if _, err := os.Stat(stale); err == nil {
		t.Error("a stale temporary file was kept")
	}
	var total int64
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			total += fi.Size()
		}
		return nil
	})
	if total > 10_000 {
		t.Errorf("%d bytes after trimming to 10000", total)
	}
}

// TestConcurrentWriters: processes writing the same entries at once never
// leave a reader a partial entry.
func TestConcurrentWriters(t *testing.T) {
	if os.Getenv("DISKCACHE_WRITER") != "" {
		c, err := Open(os.Getenv("DISKCACHE_WRITER"), 0)
		if err != nil {
			os.Exit(1)
		}
		id, _ := strconv.Atoi(os.Getenv("DISKCACHE_ID"))
		for i := 0; i < 200; i++ {
			if c.Put("x", fmt.Sprintf("k%d", i%5), bytes.Repeat([]byte{byte('a' + id)}, 64<<10)) != nil {
				os.Exit(2)
			}
		}
		os.Exit(0)
	}
	dir := t.TempDir()
	var procs []*exec.Cmd
	for id := 0; id < 3; id++ {
		cmd := exec.Command(os.Args[0], "-test.run=TestConcurrentWriters")
		cmd.Env = append(os.Environ(), "DISKCACHE_WRITER="+dir, "DISKCACHE_ID="+strconv.Itoa(id))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	c, _ := Open(dir, 0)
	var wg sync.WaitGroup
	bad := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 2000; i++ {
			b, ok := c.Get("x", fmt.Sprintf("k%d", i%5))
			if !ok {
				continue
			}
			if len(b) != 64<<10 || !bytes.Equal(b, bytes.Repeat(b[:1], len(b))) {
				bad++
			}
		}
	}()
	for _, p := range procs {
		if err := p.Wait(); err != nil {
			t.Errorf("writer: %v", err)
		}
	}
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d partial or mixed entries read", bad)
	}
}
