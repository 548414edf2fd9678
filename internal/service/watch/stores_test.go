package watch_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// TestWatchStores: the watcher analyses what the host's crash stores keep,
// as `coroner analyze` does: a systemd-coredump core compressed with zstd
// and an Apport .crash report whose CoreDump field embeds the core
// (base64 of gzip), both of a real crashing program.
func TestWatchStores(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "segv.c")
	if err := os.WriteFile(src, []byte("int main(void) { volatile int *p = 0; return *p; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "segv")
	if out, err := exec.Command("gcc", "-g", "-O0", "-o", prog, src).CombinedOutput(); err != nil {
		t.Skipf("gcc: %v %s", err, out)
	}
	core, pid := labtest.CrashCore(t, dir, nil, prog)
	raw, err := os.ReadFile(core)
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Now().Add(-time.Minute)

	// systemd-coredump: core.COMM.UID.BOOTID.PID.USEC.zst
	systemdDir := filepath.Join(dir, "systemd")
	os.Mkdir(systemdDir, 0o755)
	var zb bytes.Buffer
	zw, _ := zstd.NewWriter(&zb)
	zw.Write(raw)
	zw.Close()
	zname := filepath.Join(systemdDir, fmt.Sprintf("core.segv.0.0123456789abcdef0123456789abcdef.%d.%d.zst", pid, mtime.UnixMicro()))
	if err := os.WriteFile(zname, zb.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}

	// Apport: /var/crash/_path_to_segv.0.crash
	apportDir := filepath.Join(dir, "apport")
	os.Mkdir(apportDir, 0o755)
	var gz bytes.Buffer
	gw := gzip.NewWriter(&gz)
	gw.Write(raw)
	gw.Close()
	var rep bytes.Buffer
	fmt.Fprintf(&rep, "ProblemType: Crash\nDate: %s\nExecutablePath: %s\nProcStatus:\n Name:\tsegv\n Pid:\t%d\nSignal: 11\nCoreDump: base64",
		mtime.Format("Mon Jan  2 15:04:05 2006"), prog, pid+1)
	for b := gz.Bytes(); len(b) > 0; {
		n := min(len(b), 3*1024)
		rep.WriteString("\n " + base64.StdEncoding.EncodeToString(b[:n]))
		b = b[n:]
	}
	rep.WriteString("\n")
	crashFile := filepath.Join(apportDir, "_tmp_segv.0.crash")
	if err := os.WriteFile(crashFile, rep.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{zname, crashFile} {
		os.Chtimes(p, mtime, mtime)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := watch.New(watch.Config{Store: st, Discover: true, DiscoverEvery: 200 * time.Millisecond,
		Stores: coredumps.DiscoverOptions{Sources: []string{coredumps.SourceSystemd, coredumps.SourceApport},
			SystemdDir: systemdDir, ApportCrashDir: apportDir, ApportCoreDir: filepath.Join(dir, "none"), NoJournal: true},
		AllProcesses: true, Poll: 100 * time.Millisecond, Settle: 200 * time.Millisecond, Nice: -1,
		Logger: log.New(testWriter{t}, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var cs []store.Crash
	for deadline := time.Now().Add(2 * time.Minute); len(cs) < 2; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("recorded %d crashes, want 2", len(cs))
		}
		cs, _ = st.Crashes(ctx, "", 10)
	}
	cancel()
	<-done
	got := map[string]store.Crash{}
	for _, c := range cs {
		got[c.CorePath] = c
	}
	for _, p := range []string{zname, crashFile} {
		c, ok := got[p]
		if !ok {
			t.Errorf("%s not recorded: %+v", p, cs)
			continue
		}
		if c.PID != pid || c.SignalName != "SIGSEGV" || c.Fingerprint == "" {
			t.Errorf("%s: pid %d signal %s fingerprint %q, want pid %d SIGSEGV", p, c.PID, c.SignalName, c.Fingerprint, pid)
		}
	}
	if len(cs) == 2 && cs[0].Fingerprint != cs[1].Fingerprint {
		t.Errorf("the same crash in two stores has two fingerprints: %s %s", cs[0].Fingerprint, cs[1].Fingerprint)
	}
}
