package compressed

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// CacheConfig configures an optional cache of decompressed cores, so that
// running several commands on one compressed core decompresses it once.
type CacheConfig struct {
	// Dir holds the decompressed cores; "" disables the cache (Open then
	// uses a temporary file that cleanup removes).
	Dir string
	// MaxBytes bounds the cache's total size; the least recently used cores
	// are removed to make room. A core bigger than MaxBytes is not cached.
	MaxBytes int64
}

// Cache is the cache Open uses (disabled by default).
var Cache CacheConfig

const cacheSuffix = ".core"

// cacheKey names the decompressed form of the file described by fi at path:
// any change of the source (size, modification time, inode) gives a new key.
func cacheKey(path string, fi os.FileInfo) string {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	var ino uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		ino = st.Ino
	}
	h := sha256.Sum256([]byte(fmt.Sprintf("%s\x00%d\x00%d\x00%d", abs, fi.Size(), fi.ModTime().UnixNano(), ino)))
	return hex.EncodeToString(h[:16]) + cacheSuffix
}

// openCached returns the cached decompressed core for path, decompressing
// into the cache on a miss.
func openCached(path string, fi os.FileInfo, src io.Reader, format Format, opts Options) (string, func(), error) {
	c := Cache
	if err := os.MkdirAll(c.Dir, 0o700); err != nil {
		return "", nil, fmt.Errorf("create cache directory: %w", err)
	}
	dst := filepath.Join(c.Dir, cacheKey(path, fi))
	if _, err := os.Stat(dst); err == nil {
		now := time.Now()
		_ = os.Chtimes(dst, now, now) // mark as recently used
		return dst, func() {}, nil
	}
	tmp, _, cut, err := toTempIn(c.Dir, src, format, path, fi.Size(), opts)
	if err != nil {
		return "", nil, err
	}
	if cut {
		// Not the whole core: never served from the cache.
		return tmp, func() { os.Remove(tmp) }, nil
	}
	st, err := os.Stat(tmp)
	if err != nil {
		os.Remove(tmp)
		return "", nil, err
	}
	if c.MaxBytes > 0 && st.Size() > c.MaxBytes {
		// Too big to cache: hand it out as a temporary file.
		return tmp, func() { os.Remove(tmp) }, nil
	}
	evict(c, c.MaxBytes-st.Size())
	untrack(tmp)
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return "", nil, fmt.Errorf("store %s in the cache: %w", path, err)
	}
	return dst, func() {}, nil
}

// evict removes the least recently used cached cores until the cache holds
// at most budget bytes; a cache without MaxBytes is never evicted.
func evict(c CacheConfig, budget int64) {
	if c.MaxBytes <= 0 {
		return
	}
	dir := c.Dir
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	type item struct {
		path string
		size int64
		used time.Time
	}
	var items []item
	var total int64
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), cacheSuffix) || strings.HasPrefix(e.Name(), "coroner-") {
			continue // temporary files of running decompressions
		}
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		items = append(items, item{filepath.Join(dir, e.Name()), fi.Size(), fi.ModTime()})
		total += fi.Size()
	}
	sort.Slice(items, func(i, j int) bool { return items[i].used.Before(items[j].used) })
	for _, it := range items {
		if total <= budget {
			break
		}
		if os.Remove(it.path) == nil {
			total -= it.size
		}
	}
}
