package warmstart

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

func TestWanted(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"analyze", "core"}, true},
		{[]string{"--cpuprofile", "f", "analyze"}, true}, // "f" is taken for the command: a short run either way
		{[]string{"--help"}, true},
		{[]string{"watch", "--db", "sqlite:x"}, false},
		{[]string{"serve"}, false},
		{[]string{"-v", "serve"}, false},
		{[]string{"doctor", "watch"}, true},
	} {
		if got := wanted(c.args); got != c.want {
			t.Errorf("wanted(%q) = %v, want %v", c.args, got, c.want)
		}
	}
	t.Setenv("CORONER_WARMSTART", "off")
	if wanted([]string{"analyze"}) {
		t.Error("CORONER_WARMSTART=off: wanted")
	}
}

// mapping is one entry of /proc/self/smaps.
type mapping struct {
	start, end uintptr
	path       string
	fields     map[string]int64 // kB
}

func smaps(t *testing.T) []mapping {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skipf("no /proc/self/smaps: %v", err)
	}
	defer f.Close()
	var ms []mapping
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(fs[0], "-"); ok && !strings.HasSuffix(fs[0], ":") {
			s, err1 := strconv.ParseUint(lo, 16, 64)
			e, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 == nil && err2 == nil {
				m := mapping{start: uintptr(s), end: uintptr(e), fields: map[string]int64{}}
				if len(fs) >= 6 {
					m.path = fs[5]
				}
				ms = append(ms, m)
				continue
			}
		}
		if len(ms) > 0 && len(fs) >= 2 && strings.HasSuffix(fs[0], ":") {
			n, _ := strconv.ParseInt(fs[1], 10, 64)
			ms[len(ms)-1].fields[strings.TrimSuffix(fs[0], ":")] = n
		}
	}
	return ms
}

// TestPrepared checks, in this test process (whose init ran prepare),
// that the heap is in huge pages after GrowHeap and the executable's
// mappings are resident.
func TestPrepared(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("Linux only")
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	GrowHeap()
	// Fill 6 MB of heap beyond what the tests allocated: inside the
	// advised range.
	var keep [][]byte
	for range 6 {
		b := make([]byte, 1<<20)
		for i := range b {
			b[i] = 1
		}
		keep = append(keep, b)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	heap := uintptr(unsafe.Pointer(unsafe.SliceData(keep[0])))
	var sawHeap, sawText bool
	for _, m := range smaps(t) {
		if m.start <= heap && heap < m.end {
			sawHeap = true
			thp, _ := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
			if strings.Contains(string(thp), "[never]") || len(thp) == 0 {
				t.Logf("transparent huge pages are off here (%q): the heap stays in small pages", thp)
			} else if m.fields["AnonHugePages"] < 2048 {
				t.Errorf("heap mapping %x-%x: AnonHugePages %d kB, want huge pages", m.start, m.end, m.fields["AnonHugePages"])
			}
		}
		if m.path == exe && m.fields["Size"] > 1024 && m.fields["Rss"] < m.fields["Size"]*9/10 {
			t.Errorf("executable mapping %x-%x: %d of %d kB resident, want all", m.start, m.end, m.fields["Rss"], m.fields["Size"])
		}
		if m.path == exe {
			sawText = true
		}
	}
	runtime.KeepAlive(keep)
	if !sawHeap || !sawText {
		t.Errorf("no heap (%v) or executable (%v) mapping in /proc/self/smaps", sawHeap, sawText)
	}
}

// TestNoAllocationProfile: a short run samples no allocations (this test
// process is one: its init ran with the package's rules).
func TestNoAllocationProfile(t *testing.T) {
	if !wanted(os.Args[1:]) {
		t.Skip("CORONER_WARMSTART=off")
	}
	if runtime.MemProfileRate != 0 {
		t.Fatalf("MemProfileRate %d, want 0", runtime.MemProfileRate)
	}
}
