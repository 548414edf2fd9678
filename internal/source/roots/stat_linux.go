package roots

import (
	"os"
	"syscall"
)

// dirKey identifies a directory by device and inode.
type dirKey struct{ dev, ino uint64 }

// fileKey returns the device and inode of st.
func fileKey(st os.FileInfo) (dirKey, bool) {
	s, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return dirKey{}, false
	}
	return dirKey{uint64(s.Dev), s.Ino}, true
}
