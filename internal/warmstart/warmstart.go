// Package warmstart readies the memory of a short coroner process at its
// start, before the other packages initialise: a one-shot analysis runs
// for tens of milliseconds, and on a virtual machine a page fault costs
// 10-20 µs (measured here: 11 µs to fault in an anonymous page, 18 µs a
// page of the executable with the kernel's fault-around), so the ~1,700
// faults of an analysis of a php-fpm core were a third of its time. Two
// requests to the kernel take most of them away:
//
//   - the Go heap's first mapping (4 MB) is advised to transparent huge
//     pages at start (a 2 MB page fault instead of 512 small ones), the
//     part the runtime already touched collapsed into huge pages at once,
//     and GrowHeap extends that to 16 MB more for a command about to
//     analyse;
//   - the executable's mappings are populated in one call (0.2 µs a page)
//     instead of faulted in one by one as code runs.
//
// Importing the package does the first part (cmd/coroner imports it
// first); GrowHeap the second. It does nothing for the long-running
// commands (watch, serve), nothing when CORONER_WARMSTART=off, and nothing
// on a kernel that refuses the requests.
package warmstart

// Its imports are few and low in the standard library, so that it
// initialises before most packages (Go initialises packages in the order
// of their import paths, each after its imports).
import (
	"os"
	"runtime"
	"sync"
)

// longRunning are the commands that run for hours: their memory is left
// to the runtime.
var longRunning = []string{"watch", "serve"}

// wanted says whether the command line is of a short run.
func wanted(args []string) bool {
	if os.Getenv("CORONER_WARMSTART") == "off" {
		return false
	}
	for _, a := range args {
		if len(a) > 0 && a[0] != '-' {
			for _, c := range longRunning {
				if a == c {
					return false
				}
			}
			return true
		}
	}
	return true
}

func init() {
	if len(os.Args) > 0 && wanted(os.Args[1:]) {
		// No allocation profile (--memprofile turns it back on): its
		// samples, one every 512 KB allocated, each unwind the stack
		// (-3.6% CPU of a one-shot analysis of a php-fpm core).
		runtime.MemProfileRate = 0
		prepare()
	}
}

// GrowHeap gives the next 16 MB of heap huge pages too, with one garbage
// collection (1-2 ms), the first time it is called. Call it with the
// collector off (debug.SetGCPercent(-1)), before a one-shot analysis: the
// allocation it makes would otherwise start a collection of its own.
var GrowHeap = sync.OnceFunc(growHeap)
