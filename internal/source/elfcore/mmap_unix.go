//go:build unix

package elfcore

import (
	"os"
	"syscall"
)

// maxMmap bounds what is memory-mapped; larger files are read with pread.
const maxMmap = 1 << 40

func mmapFile(f *os.File, size int64) ([]byte, error) {
	if size <= 0 || size > maxMmap || int64(int(size)) != size {
		return nil, syscall.EINVAL
	}
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmap(b []byte) { _ = syscall.Munmap(b) }
