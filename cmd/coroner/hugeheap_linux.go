package main

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// hugeHeapBytes is the part of the heap that transparent huge pages back
// in a one-shot run.
const hugeHeapBytes = 16 << 20

// hugeHeap makes the next hugeHeapBytes of the heap come in transparent
// huge pages (when the kernel gives them on madvise, the common default).
// A one-shot analysis runs without the garbage collector, so each page of
// the ~15 MB it allocates is a fresh page fault, and a page fault costs
// several microseconds (far more in a virtual machine): 2 MB pages take
// about 1250 of the 3000 faults of a cold analysis of a php-fpm core away
// (measured: 97 -> 90 ms CPU). 16 MB, not more: a deep stack's analysis
// fills the heap up to its limit, and huge pages there would only add to
// its peak. The runtime maps its heap as it grows, in mappings that would
// not keep the advice, so the range is first mapped by one large
// allocation, advised, and given back to the heap by one collection of a
// still tiny heap (about 1 ms); the runtime then allocates from the lowest
// free addresses, into the advised range.
func hugeHeap() {
	b := make([]byte, hugeHeapBytes)
	const huge = 2 << 20
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	start := (p+huge-1)&^(huge-1) - p
	end := (p+hugeHeapBytes)&^(huge-1) - p
	if end > start {
		_ = unix.Madvise(b[start:end], unix.MADV_HUGEPAGE)
	}
	runtime.KeepAlive(b) // b is dead from here: the collection frees it
	// On one P: runtime.GC sweeps span by span, yielding after each, and
	// every yield woke the idle P (a futex round trip each, 4% of a run).
	procs := runtime.GOMAXPROCS(1)
	runtime.GC()
	runtime.GOMAXPROCS(procs)
}
