package budget

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestNilBudget(t *testing.T) {
	var b *Budget
	if b.Exceeded() || b.Err() != nil {
		t.Fatal("a nil budget is exceeded")
	}
	b.Stop()
}

// waitExceeded waits (up to a minute, on a loaded machine) for b to be
// used up.
func waitExceeded(t *testing.T, b *Budget) {
	t.Helper()
	for i := 0; i < 6000 && !b.Exceeded(); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	if !b.Exceeded() {
		t.Fatal("budget never exceeded")
	}
}

func TestTimeout(t *testing.T) {
	b := Start(20*time.Millisecond, 0)
	defer b.Stop()
	waitExceeded(t, b)
	var e *Error
	if err := b.Err(); !errors.As(err, &e) || !strings.Contains(err.Error(), "wall-clock budget of 20ms") {
		t.Fatalf("%v", err)
	}
}

var keep [][]byte

// TestMemory: live heap past the limit uses the budget up; the same
// amount of garbage does not.
func TestMemory(t *testing.T) {
	b := Start(0, 64<<20)
	defer b.Stop()
	for i := 0; i < 16; i++ {
		_ = make([]byte, 8<<20) // garbage
		time.Sleep(5 * time.Millisecond)
	}
	runtime.GC()
	time.Sleep(3 * every)
	if b.Exceeded() {
		t.Fatalf("garbage used the budget up: %v", b.Err())
	}
	for i := 0; i < 16; i++ {
		keep = append(keep, make([]byte, 8<<20))
	}
	waitExceeded(t, b)
	keep = nil
	if !strings.Contains(b.Err().Error(), "memory budget of 64.0 MiB") {
		t.Fatal(b.Err())
	}
}

// TestNotifyGC: notifyGC says each collection, again and again, until
// stopped.
func TestNotifyGC(t *testing.T) {
	c := make(chan struct{}, 1)
	stop := make(chan struct{})
	notifyGC(c, stop)
	for i := 0; i < 3; i++ {
		runtime.GC()
		select {
		case <-c:
		case <-time.After(time.Minute):
			t.Fatalf("collection %d not told", i+1)
		}
	}
	close(stop)
	runtime.GC() // runs the cleanup, which no longer sends or re-arms
	runtime.GC()
	time.Sleep(10 * time.Millisecond)
	select {
	case <-c:
		t.Fatal("told after stop")
	default:
	}
}
