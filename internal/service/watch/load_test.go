package watch_test

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/service/server"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
)

// labReport analyses one real lab core once.
func labReport(t testing.TB) (*crash.Report, []byte) {
	lab := labtest.Get(t)
	sc := lab.Scenarios["ffi-null-code"]
	if sc == nil || sc.Core == "" {
		t.Fatal("lab has no ffi-null-code core")
	}
	rep, err := analyze.Core(sc.Core, analyze.Options{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return rep, b
}

func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// TestLoadBurst records 1,000 crashes (one real analysed report with 1,000
// different pids) in a burst from 16 goroutines through Watcher.Record, the
// path every analysed core takes, while the dashboard is being read. All
// must be stored; heap growth must stay bounded (it does not grow with the
// number of crashes: reports are not kept in memory).
func TestLoadBurst(t *testing.T) {
	const n = 1000
	_, body := labReport(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "load.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := watch.New(watch.Config{Store: st, Host: "load", Nice: -1, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st, Metrics: w.Metrics.WritePrometheus})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ctx, ln)
	url := "http://" + ln.Addr().String()

	before := heapInUse()
	var peak atomic.Uint64
	stopSampler := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-stopSampler:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	// The dashboard is read all along the burst.
	var pages atomic.Int64
	var maxPage atomic.Int64
	stopReader := make(chan struct{})
	var reader sync.WaitGroup
	reader.Add(1)
	go func() {
		defer reader.Done()
		for {
			select {
			case <-stopReader:
				return
			default:
			}
			t0 := time.Now()
			resp, err := http.Get(url + "/")
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("dashboard: %s", resp.Status)
				return
			}
			d := time.Since(t0).Microseconds()
			if d > maxPage.Load() {
				maxPage.Store(d)
			}
			pages.Add(1)
		}
	}()

	start := time.Now()
	jobs := make(chan int)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				var rep crash.Report
				if err := json.Unmarshal(body, &rep); err != nil {
					t.Error(err)
					return
				}
				rep.Process.PID = 100000 + i
				if _, err := w.Record(ctx, &rep, watch.RecordInfo{CorePath: "/load/core." + itoa(i), CoreMTime: start}); err != nil {
					failed.Add(1)
					t.Error(err)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	elapsed := time.Since(start)
	close(stopReader)
	reader.Wait()
	close(stopSampler)
	sampler.Wait()
	after := heapInUse()

	cs, err := st.Crashes(ctx, "", 2*n)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != n || failed.Load() != 0 {
		t.Fatalf("%d of %d crashes stored (%d failed)", len(cs), n, failed.Load())
	}
	pids := map[int]bool{}
	for _, c := range cs {
		pids[c.PID] = true
	}
	if len(pids) != n {
		t.Errorf("%d distinct pids stored, want %d", len(pids), n)
	}
	gs, err := st.Groups(ctx)
	if err != nil || len(gs) != 1 || gs[0].Count != n {
		t.Fatalf("groups %+v, %v", gs, err)
	}
	t0 := time.Now()
	page := get(t, url+"/")
	pageAfter := time.Since(t0)
	t1 := time.Now()
	get(t, url+"/group/"+gs[0].Fingerprint)
	groupAfter := time.Since(t1)
	if len(page) == 0 {
		t.Fatal("empty dashboard")
	}
	growth := int64(after) - int64(before)
	t.Logf("recorded %d crashes (report JSON %d KiB each) in %v: %.0f crashes/s", n, len(body)/1024, elapsed, float64(n)/elapsed.Seconds())
	t.Logf("heap in use: before %d MiB, peak %d MiB, after GC %d MiB (growth %d KiB)", before>>20, peak.Load()>>20, after>>20, growth>>10)
	t.Logf("dashboard during burst: %d page loads, slowest %.1f ms; after: / %v, /group %v", pages.Load(), float64(maxPage.Load())/1000, pageAfter, groupAfter)
	// Bounded: nothing per crash is kept in memory (1,000 reports would be
	// len(body)*1000 bytes).
	if growth > int64(len(body))*n/4 && growth > 32<<20 {
		t.Errorf("heap grew by %d MiB after recording %d crashes", growth>>20, n)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

// BenchmarkRecord measures the recording path (diagnosis, fingerprint,
// SQLite insert, group upsert) of one analysed lab report.
func BenchmarkRecord(b *testing.B) {
	_, body := labReport(b)
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	w, err := watch.New(watch.Config{Store: st, Host: "bench", Nice: -1, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var rep crash.Report
		if err := json.Unmarshal(body, &rep); err != nil {
			b.Fatal(err)
		}
		rep.Process.PID = i
		i++
		if _, err := w.Record(ctx, &rep, watch.RecordInfo{}); err != nil {
			b.Fatal(err)
		}
	}
}
