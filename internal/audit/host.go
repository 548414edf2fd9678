package audit

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/coroner-dev/coroner/internal/regular"
)

// maxConfigFile bounds how much of one configuration file is read; real
// php.ini files are ~75 KB, unit files a few KB.
const maxConfigFile = 4 << 20

// host gives access to the files of the audited system: the live machine
// (root "/") or a tree given with --root, where /proc and /sys values come
// from files inside the tree.
type host struct {
	root string // absolute, cleaned; "/" for the live machine
}

func newHost(root string) (*host, error) {
	if root == "" {
		root = "/"
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("root %s: %w", root, err)
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("root: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("root %s is not a directory", abs)
	}
	return &host{root: abs}, nil
}

// given is a path named on the command line as the audited system sees
// it: on this machine a relative one is taken from the working directory
// (inside a root, every path is the root's, relative ones from its top).
func (h *host) given(p string) string {
	if p == "" || !h.live() || filepath.IsAbs(p) {
		return p
	}
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// live reports whether the audited system is this machine.
func (h *host) live() bool { return h.root == "/" }

// real maps a path of the audited system to a path on this machine.
func (h *host) real(p string) string {
	if h.live() {
		return path.Clean("/" + p)
	}
	return filepath.Join(h.root, path.Clean("/"+p))
}

// maxSymlinks bounds symlink resolution (the kernel's limit is 40).
const maxSymlinks = 40

// resolve maps a path of the audited system to this machine like real, but
// follows symlinks inside the tree the way the audited system would: an
// absolute link target is taken inside the root, and ".." never leaves it.
// Missing components are kept as they are.
func (h *host) resolve(p string) string {
	if h.live() {
		return path.Clean("/" + p)
	}
	rest := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	cur := "/"
	for links := 0; len(rest) > 0; {
		comp := rest[0]
		rest = rest[1:]
		if comp == "" || comp == "." {
			continue
		}
		next := path.Join(cur, comp) // Join cleans "..", never above "/"
		fi, err := os.Lstat(filepath.Join(h.root, next))
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		links++
		if links > maxSymlinks {
			cur = next
			continue
		}
		target, err := os.Readlink(filepath.Join(h.root, next))
		if err != nil {
			cur = next
			continue
		}
		if strings.HasPrefix(target, "/") {
			cur = "/"
		}
		rest = append(strings.Split(strings.Trim(target, "/"), "/"), rest...)
	}
	return filepath.Join(h.root, cur)
}

// display maps a path on this machine back to the audited system's view.
func (h *host) display(real string) string {
	if h.live() {
		return real
	}
	if rel, err := filepath.Rel(h.root, real); err == nil && !strings.HasPrefix(rel, "..") {
		return "/" + filepath.ToSlash(rel)
	}
	return real
}

// readFile reads a file of the audited system (path in its view), bounded.
func (h *host) readFile(p string) ([]byte, error) {
	f, err := regular.OpenHostFile(h.resolve(p))
	if err != nil {
		return nil, describeOpenErr(p, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", p, err)
	}
	if st.IsDir() {
		return nil, fmt.Errorf("read %s: is a directory", p)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	if len(data) > maxConfigFile {
		return data[:maxConfigFile], fmt.Errorf("read %s: file larger than %d bytes, only the start was read", p, maxConfigFile)
	}
	return data, nil
}

func describeOpenErr(p string, err error) error {
	// The *PathError names the path on this machine (inside --root);
	// the message names p, the audited system's path, instead.
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist (%w)", p, err)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%s is not readable (permission denied; run as root) (%w)", p, err)
	}
	return fmt.Errorf("open %s: %w", p, err)
}

// exists reports whether p exists (following symlinks) in the audited system.
func (h *host) exists(p string) bool {
	_, err := os.Stat(h.resolve(p))
	return err == nil
}

// isDir reports whether p is a directory.
func (h *host) isDir(p string) bool {
	st, err := os.Stat(h.resolve(p))
	return err == nil && st.IsDir()
}

// readTrim reads a small value file (like /proc/sys/kernel/core_pattern).
func (h *host) readTrim(p string) (string, error) {
	b, err := h.readFile(p)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// glob expands a pattern in the audited system's view, sorted by name.
func (h *host) glob(pattern string) []string {
	dir, base := path.Split(path.Clean("/" + pattern))
	if !strings.ContainsAny(dir, "*?[\\") {
		// The usual case (pool.d/*.conf): resolve the directory as the
		// audited system would, and report matches under the path as
		// written, the way FPM names them.
		m, err := filepath.Glob(filepath.Join(h.resolve(dir), base))
		if err != nil {
			return nil
		}
		out := make([]string, 0, len(m))
		for _, r := range m {
			out = append(out, path.Join(dir, filepath.Base(r)))
		}
		sort.Strings(out)
		return out
	}
	m, err := filepath.Glob(h.real(pattern))
	if err != nil {
		return nil
	}
	out := make([]string, 0, len(m))
	for _, r := range m {
		out = append(out, h.display(r))
	}
	sort.Strings(out)
	return out
}

// listDir lists the regular files (or symlinks to them) in dir whose names
// end in suffix, sorted the way PHP and systemd sort them (byte order).
func (h *host) listDir(dir, suffix string) ([]string, error) {
	ents, err := os.ReadDir(h.resolve(dir))
	if err != nil {
		return nil, describeOpenErr(dir, err)
	}
	var out []string
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), suffix) {
			continue
		}
		p := path.Join(dir, e.Name())
		if st, err := os.Stat(h.resolve(p)); err != nil || st.IsDir() {
			continue
		}
		out = append(out, p)
	}
	sort.Strings(out)
	return out, nil
}
