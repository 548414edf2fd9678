package watch_test

import (
	"bytes"
	"context"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// syncBuffer is a bytes.Buffer written by the watcher's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWatchSince starts watching at --since: a managed core of a crash
// before it is not analysed, one after it is; the PHP-FPM log is read from
// its beginning and only its deaths at or after it are recorded.
func TestWatchSince(t *testing.T) {
	dir := t.TempDir()
	managed := filepath.Join(dir, "cores")
	os.Mkdir(managed, 0o755)
	since := time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)
	// core-a comes first in the directory: were it queued, the one worker
	// would analyse it before core-b.
	fakeCore(t, filepath.Join(managed, "core-a"), 4096, since.Add(-time.Hour))
	fakeCore(t, filepath.Join(managed, "core-b"), 4096, since.Add(time.Hour))
	fpmLog := filepath.Join(dir, "php-fpm.log")
	os.WriteFile(fpmLog, []byte(`[31-Dec-2026 23:50:00] NOTICE: fpm is running, pid 870
[31-Dec-2026 23:59:58] WARNING: [pool www] child 4101 exited on signal 11 (SIGSEGV - core dumped) after 512.310044 seconds from start
[01-Jan-2027 00:00:03] WARNING: [pool www] child 4102 exited on signal 11 (SIGSEGV) after 3.000101 seconds from start
[01-Jan-2027 00:02:20] WARNING: [pool www] child 4199 exited on signal 6 (SIGABRT) after 9.000101 seconds from start
`), 0o644)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(dir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var out syncBuffer
	w, err := watch.New(watch.Config{Store: st, CoreDirs: []string{managed}, Poll: 50 * time.Millisecond,
		Settle: 100 * time.Millisecond, Workers: 1, Nice: -1, Logger: log.New(&out, "", 0), Since: since,
		Logs: []logs.Input{{Path: fpmLog, Format: logs.FormatAuto}}, LogsFromStart: false})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	waitFor(t, "core-b's analysis", func() bool { return strings.Contains(out.String(), "core-b") })
	if strings.Contains(out.String(), "core-a") {
		t.Errorf("the core of a crash before --since was analysed:\n%s", out.String())
	}
	var pids []int
	waitFor(t, "the log's incidents after --since", func() bool {
		incs, err := st.Incidents(ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		pids = pids[:0]
		for _, inc := range incs {
			pids = append(pids, inc.PID)
		}
		return len(pids) >= 2
	})
	sort.Ints(pids)
	if len(pids) != 2 || pids[0] != 4102 || pids[1] != 4199 {
		t.Errorf("incidents of pids %v, want 4102 and 4199 (4101 died before --since; the log is read from its start)", pids)
	}
}
