package warmstart

import (
	"os"
	"runtime"
	"syscall"
	"unsafe"
)

const (
	// hugePage is the size of a transparent huge page on x86-64 and the
	// usual arm64 kernels.
	hugePage = 2 << 20
	// heapChunk is the alignment of the heap's first mapping: the runtime
	// maps its arena 4 MB at a time.
	heapChunk = 4 << 20
	// hugeHeap is how much heap GrowHeap advises to huge pages past what
	// is mapped: what an analysis of a php-fpm core allocates.
	// Not more: a deep stack's analysis fills the heap up to its limit,
	// and huge pages there would only add to its peak.
	hugeHeap = 16 << 20
	// The advice values of madvise(2) (syscall names none of them).
	madvHugepage     = 14
	madvPopulateRead = 22 // Linux 5.14
	madvCollapse     = 25 // Linux 6.1
)

// probe is a heap object whose address tells where the heap is; base is
// the start of the heap's first mapping.
var (
	probe *[64]byte
	base  uintptr
)

// prepare advises the heap's first mapping to huge pages and populates the
// executable's mappings (see the package comment). Every failure is
// ignored: the process then runs as it would have.
func prepare() {
	probe = new([64]byte)
	p := uintptr(unsafe.Pointer(probe))
	base = p &^ (heapChunk - 1)
	if madvise(base, heapChunk, madvHugepage) == nil {
		// Ranges the runtime touched get small pages on fault from now
		// on; copy them into huge pages.
		collapse(base, p+1)
	}
	populateExecutable()
}

// growHeap makes the runtime map hugeHeap more bytes of heap (the mapping
// the advice must be given to: a mapping made later would not keep it),
// advises them to huge pages, then frees them with a collection of a
// still small heap (1-2 ms: less than the faults it saves, ~6 ms on an
// analysis of a php-fpm core); the runtime allocates from the lowest free
// addresses, so the analysis fills the advised range first.
func growHeap() {
	if base == 0 {
		return // prepare did not run
	}
	b := make([]byte, hugeHeap)
	q := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	end := (q + hugeHeap) &^ (hugePage - 1)
	if q > base && end-base <= 4*hugeHeap {
		if madvise(base, end-base, madvHugepage) == nil {
			// The heap the runtime mapped before b (a second chunk
			// when the packages' initialisation filled the first) has
			// small pages where it was touched: the analysis, which
			// allocates from the lowest free addresses, would fault
			// in the rest of them one by one (~100 faults).
			collapse(base, q)
		}
	} // else not one range after the first mapping: leave it
	runtime.KeepAlive(b)
	b = nil
	runtime.GC()
}

// collapse copies the pages of [from, to) that are in small pages into
// huge pages (MADV_COLLAPSE, Linux 6.1+; EINVAL before), one huge page at
// a time: over a range, the kernel gives up at the first huge page it
// cannot make (one with nothing in it yet, for one) and leaves the rest.
func collapse(from, to uintptr) {
	for a := from &^ (hugePage - 1); a < to; a += hugePage {
		_ = madvise(a, hugePage, madvCollapse)
	}
}

// populateExecutable maps every page of the executable's mappings (the
// first file in /proc/self/maps, whose mappings come first and together)
// in one madvise each.
func populateExecutable() {
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return
	}
	var exe string
	for len(maps) > 0 {
		line := maps
		if i := indexByte(maps, '\n'); i >= 0 {
			line, maps = maps[:i], maps[i+1:]
		} else {
			maps = nil
		}
		// start-end perms offset dev inode path
		start, rest := hexPrefix(line)
		if len(rest) == 0 || rest[0] != '-' {
			continue
		}
		stop, _ := hexPrefix(rest[1:])
		path := ""
		if i := indexByte(line, '/'); i >= 0 {
			path = string(line[i:])
		}
		if path == "" {
			continue
		}
		if exe == "" {
			exe = path
		}
		if path != exe {
			break
		}
		if stop > start {
			_ = madvise(start, stop-start, madvPopulateRead)
		}
	}
}

// hexPrefix parses the hexadecimal number b starts with (at most 16
// digits) and returns the rest of b.
func hexPrefix(b []byte) (uintptr, []byte) {
	var n uintptr
	i := 0
	for ; i < len(b) && i < 16; i++ {
		c := b[i]
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | uintptr(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | uintptr(c-'a'+10)
		default:
			return n, b[i:]
		}
	}
	return n, b[i:]
}

// indexByte is bytes.IndexByte (package bytes would initialise later).
func indexByte(b []byte, c byte) int {
	for i, x := range b {
		if x == c {
			return i
		}
	}
	return -1
}

// madvise is madvise(2) on an address range that Go did not allocate as a
// slice (unix.Madvise takes a []byte).
func madvise(addr, n uintptr, advice int) error {
	if n == 0 {
		return nil
	}
	_, _, errno := syscall.Syscall(syscall.SYS_MADVISE, addr, n, uintptr(advice))
	if errno != 0 {
		return errno
	}
	return nil
}
