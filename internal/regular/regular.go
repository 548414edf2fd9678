// Package regular opens files for reading only when they are regular files.
//
// Paths coroner reads come from places an attacker may write: a core's
// NT_FILE note, a log line, a world-writable core directory (mode 1733,
// like /var/crash). Opening a FIFO blocks until a writer comes (forever),
// reading /dev/zero or /dev/urandom never ends, /proc/kmsg blocks, and
// opening a tty may change the controlling terminal. Open never blocks:
// it opens with O_NONBLOCK|O_NOCTTY, checks with fstat that what it opened
// is a regular file (no race between a check and the open), and refuses
// files of procfs and sysfs, whose sizes are not their contents.
package regular

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrNotRegular is wrapped by errors for paths that are not regular files.
var ErrNotRegular = errors.New("not a regular file")

// Open opens path for reading if it is a regular file. The error wraps
// ErrNotRegular (and names the kind of file) when it is not.
//
// What path names is examined before it is opened: an O_PATH descriptor
// does not open a device (opening some, like /dev/watchdog, has effects),
// and the file is then opened through that descriptor (/proc/self/fd), so
// the file checked is the file read even if the path changes meanwhile.
// Without /proc, the path is opened again (O_NONBLOCK, O_NOCTTY) and must
// still be the same file.
func Open(path string) (*os.File, error) { return open(path, false) }

// OpenHostFile is Open for readers of the host's own state (kernel
// settings, process limits): it also accepts files of /proc and /sys,
// which stay non-blocking (a read of /proc/kmsg fails instead of waiting).
func OpenHostFile(path string) (*os.File, error) { return open(path, true) }

func open(path string, pseudo bool) (*os.File, error) {
	pfd, err := openRetry(path, unix.O_PATH|unix.O_CLOEXEC)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(pfd)
	var want unix.Stat_t
	if err := unix.Fstat(pfd, &want); err != nil {
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if want.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (%s)", ErrNotRegular, kind(want.Mode))}
	}
	// procfs and sysfs are mounted on anonymous devices (major 0): a
	// file of a block device's filesystem needs no fstatfs. fstatfs works
	// on the O_PATH descriptor, so the kind is known before the open.
	isPseudo := false
	if unix.Major(want.Dev) == 0 {
		var sfs unix.Statfs_t
		if err := unix.Fstatfs(pfd, &sfs); err == nil && (sfs.Type == unix.PROC_SUPER_MAGIC || sfs.Type == unix.SYSFS_MAGIC) {
			if !pseudo {
				return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (a file of /proc or /sys)", ErrNotRegular)}
			}
			isPseudo = true
		}
	}
	// Through /proc/self/fd the open reaches the very inode checked above
	// (a regular file, which cannot block): it needs no O_NONBLOCK, and
	// the *os.File stays in blocking mode (no poller registration). A file
	// of /proc or /sys stays non-blocking (a read of /proc/kmsg fails
	// instead of waiting).
	flags := unix.O_RDONLY | unix.O_NOCTTY | unix.O_CLOEXEC
	if isPseudo {
		flags |= unix.O_NONBLOCK
	}
	if !procFD() {
		return reopen(path, &want, isPseudo)
	}
	fd, err := openRetry("/proc/self/fd/"+strconv.Itoa(pfd), flags)
	if err == unix.ENOENT || err == unix.ENOTDIR {
		return reopen(path, &want, isPseudo)
	}
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	return os.NewFile(uintptr(fd), path), nil
}

// procFD reports whether /proc/self/fd is procfs's (checked once): only
// then does a name in it lead to the descriptor's own file.
var procFD = sync.OnceValue(func() bool {
	var sfs unix.Statfs_t
	return unix.Statfs("/proc/self/fd", &sfs) == nil && sfs.Type == unix.PROC_SUPER_MAGIC
})

// reopen opens path again when /proc is not mounted: the path may name
// another file by now, so the open is non-blocking and what it opened must
// be the file checked.
func reopen(path string, want *unix.Stat_t, isPseudo bool) (*os.File, error) {
	fd, err := openRetry(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "stat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Dev != want.Dev || st.Ino != want.Ino {
		unix.Close(fd)
		return nil, &fs.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (it changed while it was opened)", ErrNotRegular)}
	}
	if !isPseudo {
		// Reads of a regular file ignore O_NONBLOCK; clearing it keeps the
		// *os.File in blocking mode (no poller registration).
		if err := unix.SetNonblock(fd, false); err != nil {
			unix.Close(fd)
			return nil, &fs.PathError{Op: "fcntl", Path: path, Err: err}
		}
	}
	return os.NewFile(uintptr(fd), path), nil
}

func openRetry(path string, flags int) (int, error) {
	for {
		fd, err := unix.Open(path, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

func kind(mode uint32) string {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return "it is a directory"
	case unix.S_IFIFO:
		return "it is a named pipe"
	case unix.S_IFCHR:
		return "it is a character device"
	case unix.S_IFBLK:
		return "it is a block device"
	case unix.S_IFSOCK:
		return "it is a socket"
	}
	return fmt.Sprintf("file type %#o", mode&unix.S_IFMT)
}

// ReadFile reads a regular file whole, refusing one larger than max bytes
// (max <= 0: no bound).
func ReadFile(path string, max int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if max > 0 && st.Size() > max {
		return nil, fmt.Errorf("read %s: %d bytes, more than the %d this reader accepts", path, st.Size(), max)
	}
	limit := st.Size() + 1 // the file may grow while it is read
	if max > 0 {
		limit = max + 1
	}
	b, err := io.ReadAll(io.LimitReader(f, limit))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if max > 0 && int64(len(b)) > max {
		return nil, fmt.Errorf("read %s: more than the %d bytes this reader accepts", path, max)
	}
	return b, nil
}

// ELF is an ELF file opened through Open; Close closes the file.
type ELF struct {
	*elf.File
	f *os.File
}

// Close closes the underlying file.
func (e *ELF) Close() error { return e.f.Close() }

// OpenELF opens the ELF file at path if it is a regular file.
func OpenELF(path string) (*ELF, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	ef, err := elf.NewFile(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("read ELF %s: %w", path, err)
	}
	return &ELF{File: ef, f: f}, nil
}

// IsRegular reports whether path names a regular file, without following
// a final symbolic link further than os.Stat does and without opening it.
func IsRegular(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// Within joins a path of another host (from a core or a log) below root
// without letting "..", however many, climb above root: Within("/sys",
// "/../../etc/shadow") is "/sys/etc/shadow". An empty root returns the
// path cleaned.
func Within(root, p string) string {
	clean := filepath.Clean("/" + strings.TrimLeft(p, "/"))
	if root == "" {
		if filepath.IsAbs(p) {
			return clean
		}
		return filepath.Clean(p)
	}
	return filepath.Join(root, clean)
}
