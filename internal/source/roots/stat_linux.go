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

// trustedOwner reports whether st belongs to root or to the user running
// coroner: a directory another user owns may be a root they made up
// (in a user namespace) to have their files read as the process's.
func trustedOwner(st os.FileInfo) bool {
	s, ok := st.Sys().(*syscall.Stat_t)
	return ok && (s.Uid == 0 || int(s.Uid) == os.Geteuid())
}
