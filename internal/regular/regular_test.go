package regular

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestOpenRefuses: a FIFO (which blocks an ordinary open forever), devices,
// a directory, a socket and /proc files are refused at once; a regular
// file and a symbolic link to one are opened.
func TestOpenRefuses(t *testing.T) { testOpenRefuses(t) }

// TestOpenRefusesWithoutProc: the same without /proc/self/fd (the path is
// opened again, non-blocking, and must still be the file checked).
func TestOpenRefusesWithoutProc(t *testing.T) {
	saved := procFD
	procFD = func() bool { return false }
	defer func() { procFD = saved }()
	testOpenRefuses(t)
}

func testOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for _, p := range []string{fifo, sock, dir, "/dev/zero", "/dev/null", "/dev/tty", "/proc/kmsg", "/proc/self/status", "/sys/kernel/mm/transparent_hugepage/enabled"} {
		f, err := Open(p)
		if err == nil {
			f.Close()
			t.Errorf("%s: opened", p)
			continue
		}
		if _, statErr := os.Stat(p); statErr == nil && !errors.Is(err, ErrNotRegular) {
			t.Errorf("%s: %v, want ErrNotRegular", p, err)
		}
	}
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("hello"), 0o600)
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	for _, p := range []string{file, link} {
		b, err := ReadFile(p, 0)
		if err != nil || string(b) != "hello" {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	if _, err := ReadFile(file, 4); err == nil {
		t.Error("ReadFile ignored its bound")
	}
	if _, err := Open(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	// A link to a FIFO is refused too.
	os.Symlink(fifo, filepath.Join(dir, "fifolink"))
	if _, err := Open(filepath.Join(dir, "fifolink")); !errors.Is(err, ErrNotRegular) {
		t.Errorf("link to a FIFO: %v", err)
	}
}

func TestWithin(t *testing.T) {
	for _, c := range []struct{ root, p, want string }{
		{"/sys", "/../../etc/shadow", "/sys/etc/shadow"},
		{"/sys", "/usr/lib/x.so", "/sys/usr/lib/x.so"},
		{"/sys", "../../x", "/sys/x"},
		{"", "/../../etc/shadow", "/etc/shadow"},
		{"", "/usr/lib/./x.so", "/usr/lib/x.so"},
	} {
		if got := Within(c.root, c.p); got != c.want {
			t.Errorf("Within(%q, %q) = %q, want %q", c.root, c.p, got, c.want)
		}
	}
}
