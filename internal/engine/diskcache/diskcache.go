// Package diskcache keeps on disk what coroner derives from binaries, keyed
// by what identifies a binary (its build-id), so that the next analysis of
// a core of the same programs skips the work: symbol indexes, the names of
// PHP's internal functions, what the debug information says about frame
// addresses, debug files fetched from debuginfod.
//
// Entries are files under DIR/KIND/KEY[:2]/KEY. A writer never leaves a
// partial entry: it writes a temporary file in the same directory and
// renames it into place, so processes may share a cache and a reader sees
// an old entry or a new one, never half of one. The total size is bounded:
// when a write takes it over the limit, the least recently used entries
// (by modification time, which a read refreshes) are removed.
//
// A nil *Cache is a valid, disabled cache: Get misses, Put does nothing.
package diskcache

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DefaultMaxBytes bounds a cache opened without a limit.
const DefaultMaxBytes = 1 << 30

// Cache is a directory of entries.
type Cache struct {
	dir string
	max int64

	mu      sync.Mutex
	written int64 // bytes written since the last trim
}

// DefaultDir returns the cache directory of the user: $XDG_CACHE_HOME/coroner,
// else ~/.cache/coroner, else (a systemd service without a home)
// $CACHE_DIRECTORY or $STATE_DIRECTORY/cache; "" when none is known.
func DefaultDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "coroner")
	}
	if h := os.Getenv("HOME"); filepath.IsAbs(h) && h != "/" {
		return filepath.Join(h, ".cache", "coroner")
	}
	if d := os.Getenv("CACHE_DIRECTORY"); filepath.IsAbs(d) {
		return d
	}
	if d := os.Getenv("STATE_DIRECTORY"); filepath.IsAbs(d) {
		return filepath.Join(d, "cache")
	}
	return ""
}

// Open opens (creating it) the cache in dir, bounded to max bytes
// (DefaultMaxBytes when max <= 0).
func Open(dir string, max int64) (*Cache, error) {
	if dir == "" {
		return nil, errors.New("no cache directory")
	}
	if max <= 0 {
		max = DefaultMaxBytes
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	return &Cache{dir: dir, max: max}, nil
}

// Dir returns the cache's directory ("" for a disabled cache).
func (c *Cache) Dir() string {
	if c == nil {
		return ""
	}
	return c.dir
}

// validKey reports whether a kind or key can name a file: letters,
// digits, '-', '_' and '.', not starting with '.'.
func validKey(s string) bool {
	if s == "" || len(s) > 200 || s[0] == '.' {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// Path returns where the entry kind/key lives ("" when c is nil or the
// names are not valid).
func (c *Cache) Path(kind, key string) string {
	if c == nil || !validKey(kind) || !validKey(key) {
		return ""
	}
	sub := key
	if len(sub) > 2 {
		sub = sub[:2]
	}
	return filepath.Join(c.dir, kind, sub, key)
}

// Get returns the entry kind/key and marks it used.
func (c *Cache) Get(kind, key string) ([]byte, bool) {
	p := c.Path(kind, key)
	if p == "" {
		return nil, false
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return nil, false
	}
	c.Touch(p)
	return b, true
}

// Touch marks the entry at path (from Path) used now.
func (c *Cache) Touch(path string) {
	if c == nil || path == "" {
		return
	}
	now := time.Now()
	_ = os.Chtimes(path, now, now)
}

// Put stores data as the entry kind/key, replacing any.
func (c *Cache) Put(kind, key string, data []byte) error {
	f, err := c.Create(kind, key)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Abort()
		return fmt.Errorf("write cache entry %s/%s: %w", kind, key, err)
	}
	return f.Commit()
}

// Entry is an entry being written; Commit puts it in place, Abort drops it.
type Entry struct {
	*os.File
	c    *Cache
	path string
	size int64
	done bool
}

// Write writes to the entry.
func (e *Entry) Write(p []byte) (int, error) {
	n, err := e.File.Write(p)
	e.size += int64(n)
	return n, err
}

// Create starts writing the entry kind/key.
func (c *Cache) Create(kind, key string) (*Entry, error) {
	p := c.Path(kind, key)
	if p == "" {
		return nil, fmt.Errorf("no cache, or a bad cache key %q/%q", kind, key)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(p), ".tmp-"+key+"-")
	if err != nil {
		return nil, fmt.Errorf("cache entry: %w", err)
	}
	return &Entry{File: f, c: c, path: p}, nil
}

// Commit closes the entry and puts it in place atomically.
func (e *Entry) Commit() error {
	if e.done {
		return errors.New("cache entry already closed")
	}
	e.done = true
	tmp := e.File.Name()
	if err := e.File.Close(); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write cache entry: %w", err)
	}
	if err := os.Rename(tmp, e.path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("install cache entry: %w", err)
	}
	e.c.wrote(e.size)
	return nil
}

// Abort drops the entry being written.
func (e *Entry) Abort() {
	if e.done {
		return
	}
	e.done = true
	tmp := e.File.Name()
	e.File.Close()
	os.Remove(tmp)
}

// wrote counts bytes written and trims the cache when a tenth of its
// bound has been written since the last trim (a directory walk per write
// would cost more than most entries save).
func (c *Cache) wrote(n int64) {
	c.mu.Lock()
	c.written += n
	due := c.written > c.max/10
	if due {
		c.written = 0
	}
	c.mu.Unlock()
	if due {
		c.Trim()
	}
}

// staleTemp is how old a temporary file must be before Trim removes it
// (a writer that died).
const staleTemp = time.Hour

// Trim removes the least recently used entries until the cache is within
// its bound, and temporary files left by writers that died.
func (c *Cache) Trim() {
	if c == nil {
		return
	}
	type entry struct {
		path string
		size int64
		used time.Time
	}
	var all []entry
	var total int64
	_ = filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".tmp-") {
			if time.Since(fi.ModTime()) > staleTemp {
				os.Remove(p)
			}
			return nil
		}
		all = append(all, entry{p, fi.Size(), fi.ModTime()})
		total += fi.Size()
		return nil
	})
	if total <= c.max {
		return
	}
	sort.Slice(all, func(i, j int) bool { return all[i].used.Before(all[j].used) })
	// Trim to 90% so that the next writes do not trim again at once.
	for _, e := range all {
		if total <= c.max*9/10 {
			break
		}
		if os.Remove(e.path) == nil {
			total -= e.size
		}
	}
}
