package watch_test

import (
	"context"
	"encoding/binary"
	"io"
	"log"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
)

// fakeCore writes an ELF header of type ET_CORE followed by junk: a file the
// watcher takes for a core (its analysis then fails).
func fakeCore(t *testing.T, path string, size int, mtime time.Time) {
	b := make([]byte, size)
	copy(b, "\x7fELF\x02\x01\x01")
	binary.LittleEndian.PutUint16(b[16:], 4)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

// TestRetention checks the count, size and age limits on a managed
// directory: oldest cores go first, other files and other directories are
// never touched.
func TestRetention(t *testing.T) {
	dir := t.TempDir()
	managed := filepath.Join(dir, "managed")
	other := filepath.Join(dir, "other")
	os.Mkdir(managed, 0o755)
	os.Mkdir(other, 0o755)
	now := time.Now()
	// core0 is 30 days old (age limit), core1..core4 are recent.
	fakeCore(t, filepath.Join(managed, "core0"), 4096, now.Add(-30*24*time.Hour))
	for i, name := range []string{"core1", "core2", "core3", "core4"} {
		fakeCore(t, filepath.Join(managed, name), 4096, now.Add(time.Duration(i-10)*time.Minute))
	}
	fakeCore(t, filepath.Join(other, "core-elsewhere"), 4096, now.Add(-60*24*time.Hour))
	os.WriteFile(filepath.Join(managed, "notes.txt"), []byte("hello"), 0o644)
	os.Chtimes(filepath.Join(managed, "notes.txt"), now.Add(-90*24*time.Hour), now.Add(-90*24*time.Hour))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, filepath.Join(dir, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := watch.New(watch.Config{Store: st, CoreDirs: []string{managed}, Poll: 50 * time.Millisecond,
		Settle: 100 * time.Millisecond, KeepCores: 3, MaxCoreBytes: 4 * 4096, MaxCoreAge: 7 * 24 * time.Hour,
		Nice: -1, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	// The first scan finds core0 too old: it goes before its analysis. core1
	// is beyond the count: it goes once analysed (which fails: not a real core).
	waitFor(t, "retention to settle", func() bool {
		var b strings.Builder
		w.Metrics.WritePrometheus(&b)
		m := b.String()
		return strings.Contains(m, "\ncoroner_cores_deleted_total 2\n") && strings.Contains(m, "\ncoroner_cores_on_disk 3\n") &&
			strings.Contains(m, "\ncoroner_analysis_failures_total 4\n")
	})
	for name, want := range map[string]bool{"managed/core0": false, "managed/core1": false, "managed/core2": true,
		"managed/core3": true, "managed/core4": true, "managed/notes.txt": true, "other/core-elsewhere": true} {
		_, err := os.Stat(filepath.Join(dir, name))
		if (err == nil) != want {
			t.Errorf("%s exists = %v, want %v", name, err == nil, want)
		}
	}
	var b strings.Builder
	w.Metrics.WritePrometheus(&b)
	if !strings.Contains(b.String(), "coroner_cores_on_disk_bytes 12288\n") ||
		!strings.Contains(b.String(), "coroner_cores_deleted_unanalysed_total 1\n") {
		t.Errorf("metrics:\n%s", b.String())
	}
}
