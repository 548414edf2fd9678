package watch

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/service/spool"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// tlog writes a logger's lines to the test log and keeps them.
type tlog struct {
	t  *testing.T
	mu sync.Mutex
	b  strings.Builder
}

func (w *tlog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *tlog) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// fakeReport is a small report of a SIGSEGV in pid; fp picks its crash site
// (and so its group).
func fakeReport(pid int, fp string) *crash.Report {
	return &crash.Report{
		Schema:  crash.SchemaVersion,
		Process: crash.Process{PID: pid, Executable: "/usr/sbin/php-fpm8.2"},
		Signal:  crash.Signal{Number: 11, Name: "SIGSEGV"},
		Threads: []crash.Thread{{TID: pid, Crashed: true, Frames: []crash.Frame{{Function: "site_" + fp}, {Function: "execute_ex"}}}},
	}
}

// locker holds the write lock of a SQLite database from another connection,
// as another process would.
type locker struct {
	db *sql.DB
	tx *sql.Tx
}

func lockSQLite(t *testing.T, path string) *locker {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE schema_version SET version = version`); err != nil { // takes the write lock
		t.Fatal(err)
	}
	return &locker{db, tx}
}

func (l *locker) release() {
	l.tx.Rollback()
	l.db.Close()
}

// running is a watcher started on a spool directory, without cores or logs.
type running struct {
	w      *Watcher
	log    *tlog
	cancel context.CancelFunc
	done   chan struct{}
}

func startWatcher(t *testing.T, st store.Store, spoolDir string) *running {
	tl := &tlog{t: t}
	w, err := New(Config{Store: st, Host: "h1", SpoolDir: spoolDir, DBTimeout: 300 * time.Millisecond,
		Nice: -1, Logger: log.New(tl, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, log: tl, cancel: cancel, done: make(chan struct{})}
	go func() { w.Run(ctx); close(r.done) }()
	return r
}

func (r *running) stop() {
	r.cancel()
	<-r.done
}

func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func metrics(w *Watcher) string {
	var b strings.Builder
	w.Metrics.WritePrometheus(&b)
	return b.String()
}

// TestSpoolWhileLocked records crashes and incidents while another process
// holds the SQLite write lock: they go to the spool (health, metrics, the
// spool's index answer for them), and reach the database once, in order,
// when the lock is released. Then it stops a watcher with records in the
// spool, some of which had reached the database without being consumed
// (as after a kill at the wrong moment): a new watcher writes each once.
func TestSpoolWhileLocked(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "coroner.db")
	spoolDir := filepath.Join(dir, "spool")
	ctx := context.Background()
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := startWatcher(t, st, spoolDir)
	base := time.Now().Add(-time.Hour).Truncate(time.Second)

	lk := lockSQLite(t, dbPath)
	var want []*store.Crash
	for i := range 6 {
		pid := 1000 + i
		at := base.Add(time.Duration(i) * time.Second)
		if err := r.w.RecordIncident(ctx, &logs.Incident{Time: at, Kind: "crash", CoreDumped: true, PID: pid, Pool: "www", Signal: 11,
			SignalName: "SIGSEGV", Method: "GET", URI: fmt.Sprintf("/page/%d", i)}); err != nil {
			t.Fatal(err)
		}
		c, err := r.w.Record(ctx, fakeReport(pid, fmt.Sprint(i%2)), RecordInfo{CorePath: fmt.Sprintf("/cores/core.%d", pid),
			CoreSize: 4096, CoreMTime: at})
		if err != nil {
			t.Fatalf("record while locked: %v", err)
		}
		want = append(want, c)
	}
	h := r.w.Health(ctx)
	if h.Up || h.Spooled != 12 || (h.Reason != "timeout" && h.Reason != "SQLITE_BUSY") {
		t.Errorf("health while locked: %+v", h)
	}
	if p := h.Problems(); len(p) != 2 || !strings.HasPrefix(p[0], "database: unavailable since ") ||
		!strings.HasPrefix(p[1], "spool: 12 records (") {
		t.Errorf("problems: %q", p)
	}
	m := metrics(r.w)
	for _, s := range []string{"\ncoroner_spool_records 12\n", "\ncoroner_spooled_total 12\n"} {
		if !strings.Contains(m, s) {
			t.Errorf("metrics lack %q:\n%s", s, m)
		}
	}
	if strings.Contains(m, "\ncoroner_database_errors_total 0\n") {
		t.Error("no database errors counted")
	}
	// The spool's index answers while the database cannot.
	if has, err := r.w.cfg.Store.HasCore(ctx, "/cores/core.1003", base.Add(3*time.Second)); !has || err != nil {
		t.Errorf("HasCore of a spooled core: %v %v", has, err)
	}
	if in, err := r.w.cfg.Store.FindIncident(ctx, "h1", 1002, base.Add(2*time.Second)); err != nil || in.URI != "/page/2" {
		t.Errorf("FindIncident of a spooled incident: %+v %v", in, err)
	}
	// The crash took its request from the spooled incident (the core has none).
	if want[4].URI != "/page/4" || want[4].Pool != "www" {
		t.Errorf("crash not linked to its spooled incident: %+v", want[4])
	}

	lk.release()
	until(t, "spool written", func() bool { return r.w.Health(ctx).Spooled == 0 })
	if h := r.w.Health(ctx); !h.Up || len(h.Problems()) != 0 {
		t.Errorf("health after: %+v", h)
	}
	check := func(n int) {
		t.Helper()
		cs, err := st.Crashes(ctx, "", 100)
		if err != nil || len(cs) != n {
			t.Fatalf("%d crashes in the database (want %d), %v", len(cs), n, err)
		}
		perCore := map[string]int{}
		for _, c := range cs {
			perCore[c.CorePath]++
			if c.Pool != "www" || !strings.HasPrefix(c.URI, "/page/") {
				t.Errorf("crash %d: pool %q uri %q", c.PID, c.Pool, c.URI)
			}
		}
		for p, k := range perCore {
			if k != 1 {
				t.Errorf("%s recorded %d times", p, k)
			}
		}
		gs, _ := st.Groups(ctx)
		total := 0
		for _, g := range gs {
			total += g.Count
		}
		if len(gs) != 2 || total != n {
			t.Errorf("%d groups counting %d crashes, want 2 and %d", len(gs), total, n)
		}
		ins, _ := st.Incidents(ctx, 100)
		if len(ins) != n {
			t.Errorf("%d incidents, want %d", len(ins), n)
		}
	}
	check(6)
	// In order: the database assigned increasing ids in spool order.
	cs, _ := st.Crashes(ctx, "", 100)
	for i := 1; i < len(cs); i++ {
		if cs[i-1].PID > cs[i].PID != (cs[i-1].ID > cs[i].ID) {
			t.Errorf("crash ids not in spool order: %+v", cs)
		}
	}
	if !strings.Contains(metrics(r.w), "\ncoroner_new_groups_total 2\n") {
		t.Errorf("new groups from the spool not counted:\n%s", metrics(r.w))
	}

	// Second outage, then the watcher stops with the records spooled.
	lk = lockSQLite(t, dbPath)
	var second []*store.Crash
	for i := 6; i < 10; i++ {
		pid := 1000 + i
		at := base.Add(time.Duration(i) * time.Second)
		r.w.RecordIncident(ctx, &logs.Incident{Time: at, Kind: "crash", CoreDumped: true, PID: pid, Pool: "www", URI: fmt.Sprintf("/page/%d", i)})
		c, err := r.w.Record(ctx, fakeReport(pid, fmt.Sprint(i%2)), RecordInfo{CorePath: fmt.Sprintf("/cores/core.%d", pid),
			CoreSize: 4096, CoreMTime: at})
		if err != nil {
			t.Fatal(err)
		}
		second = append(second, c)
	}
	r.stop()
	lk.release()
	// Two of them reached the database before the watcher died.
	for _, c := range second[:2] {
		cp := *c
		cp.ID = 0
		if _, err := st.RecordCrash(ctx, &cp); err != nil {
			t.Fatal(err)
		}
	}
	r = startWatcher(t, st, spoolDir)
	defer r.stop()
	until(t, "spool written after restart", func() bool { return r.w.Health(ctx).Spooled == 0 })
	check(10)
	if _, err := os.Stat(spoolDir); err != nil {
		t.Fatal(err)
	}
	if segs, _ := filepath.Glob(filepath.Join(spoolDir, "*.seg")); len(segs) != 0 {
		t.Errorf("segments left: %v", segs)
	}
}

// TestSpoolFull fills a small spool while the database is locked: the
// crash that does not fit is refused with errSpoolFull (its core waits on
// disk), HasCore says so for new cores, and nothing is lost of what was
// spooled.
func TestSpoolFull(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "coroner.db")
	ctx := context.Background()
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := New(Config{Store: st, Host: "h1", SpoolDir: filepath.Join(dir, "spool"), SpoolMaxBytes: 6000,
		DBTimeout: 200 * time.Millisecond, Nice: -1, Logger: log.New(&tlog{t: t}, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	lk := lockSQLite(t, dbPath)
	n := 0
	for i := 0; ; i++ {
		_, err := w.Record(ctx, fakeReport(2000+i, "a"), RecordInfo{CorePath: fmt.Sprintf("/cores/core.%d", i), CoreMTime: time.Now()})
		if err != nil {
			if !strings.Contains(err.Error(), errSpoolFull.Error()) {
				t.Fatalf("crash %d: %v", i, err)
			}
			break
		}
		n++
		if i > 100 {
			t.Fatal("spool never full")
		}
	}
	if _, err := w.cfg.Store.HasCore(ctx, "/cores/new", time.Now()); err != errSpoolFull {
		t.Errorf("HasCore with a full spool: %v", err)
	}
	lk.release()
	var wg sync.WaitGroup
	rctx, cancel := context.WithCancel(ctx)
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(rctx) }()
	until(t, "spool written", func() bool { return w.Health(ctx).Spooled == 0 })
	cancel()
	wg.Wait()
	cs, _ := st.Crashes(ctx, "", 1000)
	if n == 0 || len(cs) != n {
		t.Errorf("%d crashes stored, %d spooled", len(cs), n)
	}
	if !strings.Contains(metrics(w), "\ncoroner_spool_dropped_total 1\n") {
		t.Errorf("metrics:\n%s", metrics(w))
	}
}

// TestSpoolUndecodable puts records the watcher cannot decode into its
// spool: they are reported and skipped, the valid ones are written.
func TestSpoolUndecodable(t *testing.T) {
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	sp, err := spool.Open(spoolDir, spool.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sp.Append(kindCrash, []byte(`{"key":`))
	sp.Append(9, []byte(`{}`))
	sp.Append(kindIncident, []byte(`{"host":"h1","pid":5}`)) // no key
	sp.Append(kindIncident, []byte(`{"key":"k1","host":"h1","pid":6,"kind":"crash","time":"2026-11-27T10:00:00Z","json":"{}"}`))
	sp.Close()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(dir, "coroner.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := startWatcher(t, st, spoolDir)
	defer r.stop()
	until(t, "spool written", func() bool { return r.w.Health(ctx).Spooled == 0 })
	ins, _ := st.Incidents(ctx, 10)
	if len(ins) != 1 || ins[0].PID != 6 {
		t.Errorf("incidents %+v", ins)
	}
	if !strings.Contains(metrics(r.w), "\ncoroner_spool_damaged_total 3\n") || !strings.Contains(r.log.String(), "0000000000000001.seg: offset 0: decode spooled crash") {
		t.Errorf("metrics:\n%s", metrics(r.w))
	}
}

// TestSpoolWhileDiskFull puts the SQLite database on a small tmpfs and
// fills it: crashes go to the spool (on another file system) and reach the
// database once space is freed.
func TestSpoolWhileDiskFull(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root")
	}
	dir := t.TempDir()
	mnt := filepath.Join(dir, "small")
	if err := os.Mkdir(mnt, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", mnt).CombinedOutput(); err != nil {
		t.Skipf("mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", mnt).Run() })
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(mnt, "coroner.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := startWatcher(t, st, filepath.Join(dir, "spool"))
	defer r.stop()
	// Fill the file system.
	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 64<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			break
		}
	}
	f.Close()
	at := time.Now().Add(-time.Minute)
	for i := range 5 {
		big := fakeReport(3000+i, "full")
		big.Threads[0].Frames = append(big.Threads[0].Frames, make([]crash.Frame, 2000)...) // ~100 KB of JSON
		if _, err := r.w.Record(ctx, big, RecordInfo{CorePath: fmt.Sprintf("/cores/core.%d", i), CoreMTime: at}); err != nil {
			t.Fatalf("record on a full disk: %v", err)
		}
	}
	h := r.w.Health(ctx)
	if h.Up || h.Spooled == 0 {
		t.Fatalf("health on a full disk: %+v", h)
	}
	t.Logf("full disk: %+v", h)
	if h.Reason != "SQLITE_FULL" && h.Reason != "SQLITE_IOERR" && h.Reason != "disk full" {
		t.Errorf("reason %q", h.Reason)
	}
	os.Remove(filler)
	until(t, "spool written", func() bool { return r.w.Health(ctx).Spooled == 0 })
	cs, err := st.Crashes(ctx, "", 100)
	if err != nil || len(cs) != 5 {
		t.Fatalf("%d crashes after the disk was freed, %v", len(cs), err)
	}
}

// TestNoSpool: without a spool directory a write the database cannot take
// fails with the database's reason, and health still tells.
func TestNoSpool(t *testing.T) {
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "coroner.db")
	ctx := context.Background()
	st, err := store.Open(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := New(Config{Store: st, Host: "h1", DBTimeout: 200 * time.Millisecond, Nice: -1, Logger: log.New(&tlog{t: t}, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	lk := lockSQLite(t, dbPath)
	defer lk.release()
	_, err = w.Record(ctx, fakeReport(1, "a"), RecordInfo{CorePath: "/cores/core.1", CoreMTime: time.Now()})
	if err == nil || !strings.Contains(err.Error(), "context deadline exceeded (no spool to keep it)") {
		t.Errorf("record: %v", err)
	}
	if h := w.Health(ctx); h.Up || h.Spooled != 0 {
		t.Errorf("health: %+v", h)
	}
	if !strings.Contains(metrics(w), "\ncoroner_spool_dropped_total 1\n") {
		t.Errorf("metrics:\n%s", metrics(w))
	}
}
