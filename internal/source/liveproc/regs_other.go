//go:build !amd64

package liveproc

import (
	"golang.org/x/sys/unix"

	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// regsSupported: a coroner built for another architecture (arm64, to
// analyse x86-64 cores copied there) cannot snapshot live processes.
const regsSupported = false

func regsOf(*unix.PtraceRegs) elfcore.Regs { return elfcore.Regs{} }
