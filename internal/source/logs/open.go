package logs

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/coroner-dev/coroner/internal/regular"
)

// Input is one log to read.
type Input struct {
	// Path is a file path, "-" for standard input, or "cmd:..." for the
	// output of a command run by discovery (dmesg, journalctl).
	Path string `json:"path"`
	// Format is the declared format; FormatAuto means sniff the content.
	Format Format `json:"format"`
	// Why says how the input was found (discovery) or "given".
	Why string `json:"why,omitempty"`
}

// openLog opens a log file, transparently decompressing gzip, zstd, xz and
// bzip2 (recognised by their magic bytes, whatever the file name).
func openLog(path string, stdin io.Reader) (io.ReadCloser, error) {
	var f io.ReadCloser
	if path == "-" {
		f = io.NopCloser(stdin)
	} else {
		o, err := regular.Open(path)
		if errors.Is(err, regular.ErrNotRegular) {
			return nil, fmt.Errorf("open log: %w (a pipe is read as standard input: -)", err)
		}
		if err != nil {
			return nil, fmt.Errorf("open log: %w", err)
		}
		f = o
	}
	br := bufio.NewReaderSize(f, 64<<10)
	magic, _ := br.Peek(6)
	var r io.Reader = br
	var closer func() error = f.Close
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		gz, err := gzip.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open gzip log %s: %w", path, err)
		}
		r = gz
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br, zstd.WithDecoderMaxWindow(128<<20), zstd.WithDecoderConcurrency(1))
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open zstd log %s: %w", path, err)
		}
		r = zr
		closer = func() error { zr.Close(); return f.Close() }
	case bytes.HasPrefix(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		xr, err := xz.NewReader(br)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("open xz log %s: %w", path, err)
		}
		r = xr
	case bytes.HasPrefix(magic, []byte("BZh")):
		r = bzip2.NewReader(br)
	}
	return &readCloser{Reader: r, close: closer}, nil
}

type readCloser struct {
	io.Reader
	close func() error
}

func (r *readCloser) Close() error { return r.close() }

// rotationRe matches the suffix logrotate adds: ".1", ".2.gz", "-20261126",
// "-20261126.gz" (dateext).
var rotationRe = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(.*?)(?:\.(\d{1,4})|-(\d{8,10}))(\.gz|\.xz|\.zst|\.bz2)?$`)
})

// rotationKey splits a path into the live file it was rotated from and an
// age rank (larger is newer; the live file ranks highest).
func rotationKey(path string) (base string, rank int64) {
	m := rotationRe().FindStringSubmatch(path)
	if m == nil {
		return path, 1 << 62
	}
	if m[2] != "" {
		n, _ := strconv.ParseInt(m[2], 10, 64)
		return m[1], -n
	}
	n, _ := strconv.ParseInt(m[3], 10, 64)
	return m[1], n - (1 << 40) // dated files are older than the live file
}

// SortRotated orders paths so that the rotations of each log come oldest
// first and the live file last ("error.log.2.gz", "error.log.1",
// "error.log"); distinct logs keep the order of their first appearance.
func SortRotated(paths []string) []string {
	type item struct {
		path  string
		group int
		rank  int64
	}
	groups := map[string]int{}
	items := make([]item, 0, len(paths))
	for _, p := range paths {
		base, rank := rotationKey(p)
		g, ok := groups[base]
		if !ok {
			g = len(groups)
			groups[base] = g
		}
		items = append(items, item{p, g, rank})
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].group != items[j].group {
			return items[i].group < items[j].group
		}
		return items[i].rank < items[j].rank
	})
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.path
	}
	return out
}

// Rotations returns the existing rotated siblings of a live log and the log
// itself, oldest first.
func Rotations(path string) []string {
	matches, _ := filepath.Glob(path + ".*")
	dated, _ := filepath.Glob(path + "-*")
	matches = append(matches, dated...)
	out := []string{}
	for _, m := range matches {
		if base, _ := rotationKey(m); base == path {
			out = append(out, m)
		}
	}
	if _, err := os.Stat(path); err == nil {
		out = append(out, path)
	}
	return SortRotated(out)
}

// formatFromName guesses a format from a file name ("" when unsure).
func formatFromName(path string) Format {
	b := strings.ToLower(filepath.Base(path))
	dir := strings.ToLower(filepath.Base(filepath.Dir(path)))
	switch {
	case strings.HasSuffix(b, "-json.log") || strings.Contains(path, "/var/log/pods/") || strings.Contains(path, "/var/log/containers/"):
		return FormatMixed // a container's log: any of its programs' lines
	case strings.Contains(b, "forensic"):
		return FormatApacheForensic
	case strings.Contains(b, "slow"):
		return FormatSlowlog
	case strings.Contains(b, "fpm") || dir == "php-fpm":
		return FormatFPM
	case strings.Contains(b, "access"):
		return FormatNginxAccess
	case (dir == "apache2" || dir == "httpd") && strings.Contains(b, "error"):
		return FormatApacheError
	case dir == "nginx" && strings.Contains(b, "error"):
		return FormatNginxError
	case strings.HasPrefix(b, "kern") || strings.HasPrefix(b, "syslog") || strings.HasPrefix(b, "messages") ||
		strings.HasPrefix(b, "dmesg") || strings.HasPrefix(b, "journal"):
		return FormatKernel
	}
	return ""
}
