package symbols

import (
	"os"
	"syscall"
)

// OpenFile opens a file for reading like os.Open, without registering it
// with the runtime's network poller: os.Open tries that for every file
// (and fails for regular files), which is most of the cost of opening the
// forty-odd objects a php-fpm process maps.
func OpenFile(path string) (*os.File, error) {
	for {
		fd, err := syscall.Open(path, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: path, Err: err}
		}
		return os.NewFile(uintptr(fd), path), nil
	}
}
