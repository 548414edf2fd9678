// Package budget bounds one analysis in time and memory. A Budget is
// started with a wall-clock limit and a heap limit; a watchdog marks it
// exceeded when either is passed, and the readers the analysis goes through
// (decompression, the core's memory) check it and stop, so that the
// analysis ends early with a partial report and a warning instead of
// running or growing without end. Exceeded is a cheap atomic load, for
// hot paths.
//
// The heap is measured with runtime.ReadMemStats (its bytes in allocated
// objects) after every garbage collection, and 100 ms after the start and
// then 50 times a second; a heap over the limit is collected once before
// the budget is declared exceeded, so that garbage does not count.
// (runtime/metrics would avoid ReadMemStats' brief stop of the world, but
// its initialisation costs every run ~0.3 ms, 1% of a whole analysis.)
package budget

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coroner-dev/coroner/internal/units"
)

// Defaults of one analysis.
const (
	DefaultTimeout = 2 * time.Minute
	// DefaultMaxMemory is 15 times the live heap of the analysis of a
	// 225 MB php-fpm core with 41,000 frames (17 MiB; 143 MiB before
	// its first collection).
	DefaultMaxMemory = 256 << 20
)

// Budget is the time and memory one analysis may use. The nil *Budget is
// never exceeded.
type Budget struct {
	timeout  time.Duration
	maxHeap  uint64
	exceeded atomic.Bool
	mu       sync.Mutex
	why      string
	done     chan struct{}
	stopOnce sync.Once
}

// Start starts a budget of timeout (0: none) and maxHeap bytes of Go heap
// (0: none). Stop releases its watchdog.
func Start(timeout time.Duration, maxHeap int64) *Budget {
	b := &Budget{timeout: timeout, done: make(chan struct{})}
	if maxHeap > 0 {
		b.maxHeap = uint64(maxHeap)
	}
	if timeout <= 0 && b.maxHeap == 0 {
		return b
	}
	if b.maxHeap > 0 {
		raiseMemoryLimit(int64(b.maxHeap))
	}
	go b.watch()
	return b
}

// raiseMemoryLimit makes the garbage collector's soft limit at least n: a
// limit below the live heap makes it collect without end (a command that
// set a low limit with the collector off, to run it only when needed, ran
// 250 times slower once a hostile core's heap passed it). The limit is
// never lowered again: analyses running at the same time share it.
func raiseMemoryLimit(n int64) {
	limitMu.Lock()
	defer limitMu.Unlock()
	if cur := debug.SetMemoryLimit(-1); cur < n {
		debug.SetMemoryLimit(n)
	}
}

var limitMu sync.Mutex

// every is how often the watchdog looks at the heap after its first
// look: first is later, so that a short analysis (a one-shot analysis of
// a php-fpm core takes ~40 ms) is not slowed by reading the heap, a brief
// stop of the world that also empties every processor's span cache, which
// each then fills again (~4% of such an analysis). A heap that grows
// before then is seen at the first garbage collection it causes (the
// memory limit is at least the budget). A budget under smallHeap, which
// the heap may pass before the analysis has begun (a one-shot run's is
// ~20 MB then), is looked at at once and then every tick.
const (
	every     = 20 * time.Millisecond
	first     = 100 * time.Millisecond
	smallHeap = 64 << 20
)

func (b *Budget) watch() {
	var deadline <-chan time.Time
	if b.timeout > 0 {
		t := time.NewTimer(b.timeout)
		defer t.Stop()
		deadline = t.C
	}
	var tick <-chan time.Time
	var gcs chan struct{}
	if b.maxHeap > 0 {
		wait := first
		if b.maxHeap < smallHeap {
			wait = 0
		}
		t := time.NewTimer(wait)
		defer t.Stop()
		tick = t.C
		gcs = make(chan struct{}, 1)
		notifyGC(gcs, b.done)
	}
	var ms runtime.MemStats
	heap := func() uint64 {
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	overMemory := func() bool {
		if heap() <= b.maxHeap {
			return false
		}
		runtime.GC() // garbage does not count
		if h := heap(); h > b.maxHeap {
			b.exceed(fmt.Sprintf("the memory budget of %s was used up (%s of heap)", units.Bytes(int64(b.maxHeap)), units.Bytes(int64(h))))
			return true
		}
		return false
	}
	var ticker *time.Ticker
	defer func() {
		if ticker != nil {
			ticker.Stop()
		}
	}()
	for {
		select {
		case <-b.done:
			return
		case <-deadline:
			b.exceed(fmt.Sprintf("the wall-clock budget of %v was used up", b.timeout))
			return
		case <-gcs:
			if overMemory() {
				return
			}
		case <-tick:
			if ticker == nil {
				ticker = time.NewTicker(every)
				tick = ticker.C
			}
			if overMemory() {
				return
			}
		}
	}
}

// sentinel is an object made only to be collected: its cleanup says that
// a garbage collection ran. (It holds a pointer so that the allocator
// does not pack it with other small objects into one block.)
type sentinel struct {
	_ *byte
	_ [8]byte
}

// notifyGC sends on c (without waiting) after every garbage collection
// from now until stop is closed.
func notifyGC(c chan<- struct{}, stop <-chan struct{}) {
	runtime.AddCleanup(new(sentinel), func(struct{}) {
		select {
		case <-stop:
			return
		default:
		}
		notifyGC(c, stop) // before telling: the next collection is told too
		select {
		case c <- struct{}{}:
		default:
		}
	}, struct{}{})
}

func (b *Budget) exceed(why string) {
	b.mu.Lock()
	if b.why == "" {
		b.why = why
	}
	b.mu.Unlock()
	b.exceeded.Store(true)
}

// Exceeded reports whether the budget is used up.
func (b *Budget) Exceeded() bool { return b != nil && b.exceeded.Load() }

// Err returns an *Error saying which limit was passed, or nil.
func (b *Budget) Err() error {
	if !b.Exceeded() {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return &Error{Why: b.why}
}

// Stop releases the watchdog; the budget keeps its state.
func (b *Budget) Stop() {
	if b != nil {
		b.stopOnce.Do(func() { close(b.done) })
	}
}

// Error is returned by readers that stopped because the budget was used up.
type Error struct{ Why string }

func (e *Error) Error() string { return "analysis stopped: " + e.Why }
