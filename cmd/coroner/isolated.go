package main

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"

	"github.com/coroner-dev/coroner/internal/source/compressed"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// Virtual memory an isolated analysis may reserve besides its heap budget
// and the core it maps: the Go runtime alone reserves about 800 MiB of
// address space at start, and the mapped files (libraries, debug files)
// add some.
const isolatedBaseAS = 1536 << 20

// enterIsolation prepares this process to analyse one core on behalf of
// `coroner watch` (analyze --isolated): its address space is bounded (a
// core that makes it allocate without end kills it, not the watcher), and
// it is the first process the kernel kills when memory runs out (the
// watcher's cgroup included). core is the file named, for its size (a
// mapped core counts in the address space; one that does not fit is read
// without mapping).
func enterIsolation(core string, maxMemory int64) error {
	limit := uint64(isolatedBaseAS) + 2*uint64(max(maxMemory, 0))
	if _, _, ok := coredumps.ParseJournalName(core); ok {
		limit += compressed.DefaultMaxBytes // extracted from the journal, then mapped
	} else if st, err := os.Stat(core); err == nil && st.Size() > 0 {
		limit += uint64(st.Size())
		if f, err := compressed.Sniff(core); err == nil && f != compressed.Plain {
			limit += compressed.DefaultMaxBytes // decompressed, then mapped
		}
	}
	var cur unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_AS, &cur); err != nil {
		return fmt.Errorf("isolation: read RLIMIT_AS: %w", err)
	}
	// Never raise what was inherited (a watcher run under a limit).
	if cur.Cur != unix.RLIM_INFINITY && cur.Cur < limit {
		limit = cur.Cur
	}
	if cur.Max != unix.RLIM_INFINITY && cur.Max < limit {
		limit = cur.Max
	}
	next := unix.Rlimit{Cur: limit, Max: cur.Max}
	if err := unix.Setrlimit(unix.RLIMIT_AS, &next); err != nil {
		return fmt.Errorf("isolation: set RLIMIT_AS to %d: %w", next.Cur, err)
	}
	// Raising one's own OOM score needs no privilege.
	_ = os.WriteFile("/proc/self/oom_score_adj", []byte("1000"), 0)
	return nil
}
