package watch_test

import (
	"context"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// TestWatchJournalCore: the watcher analyses a core systemd-coredump kept in
// the journal (Storage=journal: a real crash's core in a journal file
// written by systemd-journal-remote) as it does core files, in this process
// and in an isolated analysis process: it records the crash under the
// core's journal name, with the frames and fingerprint of the same core
// analysed from a file of a managed directory, once.
func TestWatchJournalCore(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "segv.c")
	code := "static int depth(volatile int *p, int n) { if (n == 0) { *p = 42; return 0; } return depth(p, n - 1) + 1; }\n" +
		"int main(void) { return depth((volatile int *)0, 3); }\n"
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "segv")
	if out, err := exec.Command("gcc", "-g", "-O0", "-o", prog, src).CombinedOutput(); err != nil {
		t.Skipf("gcc: %v %s", err, out)
	}
	core, pid := labtest.CrashCore(t, dir, nil, prog)
	ts := time.Now().Add(-time.Minute).Truncate(time.Microsecond)
	journal := labtest.CoredumpJournal(t, dir, "system",
		labtest.CoredumpRecord{PID: pid, Signal: 11, Exe: prog, Comm: "segv", Time: ts, Core: core})
	name := coredumps.JournalName(pid, ts.UnixMicro())
	// The same core as a file of a managed directory: the reference.
	managed := filepath.Join(dir, "cores")
	os.Mkdir(managed, 0o755)
	raw, err := os.ReadFile(core)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(managed, "core.segv."+strconv.Itoa(pid)), raw, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, isolated := range []bool{false, true} {
		t.Run(map[bool]string{false: "in-process", true: "isolated"}[isolated], func(t *testing.T) {
			var iso *watch.Isolation
			if isolated {
				iso = &watch.Isolation{Executable: buildCoroner(t), TempDir: t.TempDir()}
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "w.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			w, err := watch.New(watch.Config{Store: st, Discover: true, DiscoverEvery: 200 * time.Millisecond, CoreDirs: []string{managed},
				Stores:       coredumps.DiscoverOptions{Sources: []string{coredumps.SourceSystemd}, SystemdDir: filepath.Join(dir, "none"), Journal: journal},
				AllProcesses: true, Poll: 100 * time.Millisecond, Settle: 200 * time.Millisecond, Nice: -1, Isolate: iso,
				Logger: log.New(testWriter{t}, "", 0)})
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			var cs []store.Crash
			for deadline := time.Now().Add(3 * time.Minute); len(cs) < 2; time.Sleep(200 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("recorded %d crashes, want 2: %+v", len(cs), cs)
				}
				cs, _ = st.Crashes(ctx, "", 10)
			}
			// More discovery passes: the journal core is not recorded twice.
			time.Sleep(time.Second)
			cs, _ = st.Crashes(ctx, "", 10)
			cancel()
			<-done
			if len(cs) != 2 {
				t.Fatalf("recorded %d crashes, want 2: %+v", len(cs), cs)
			}
			var fromJournal, fromFile *store.Crash
			for i := range cs {
				c, err := st.Crash(context.Background(), cs[i].ID)
				if err != nil {
					t.Fatal(err)
				}
				if c.CorePath == name {
					fromJournal = c
				} else {
					fromFile = c
				}
			}
			if fromJournal == nil || fromFile == nil {
				t.Fatalf("crashes %+v, want one of %s", cs, name)
			}
			if fromJournal.PID != pid || fromJournal.SignalName != "SIGSEGV" || fromJournal.CoreMTime.Unix() != ts.Unix() || fromJournal.Fingerprint != fromFile.Fingerprint {
				t.Errorf("journal core recorded as pid %d %s at %v fingerprint %s; want pid %d SIGSEGV at %v fingerprint %s",
					fromJournal.PID, fromJournal.SignalName, fromJournal.CoreMTime, fromJournal.Fingerprint, pid, ts, fromFile.Fingerprint)
			}
			if got, want := crashedFrames(fromJournal), crashedFrames(fromFile); got != want || !strings.HasPrefix(got, "depth") {
				t.Errorf("frames from the journal core:\n%s\nfrom the file:\n%s", got, want)
			}
		})
	}
}

// crashedFrames lists the functions of the crashed thread of a stored crash.
func crashedFrames(c *store.Crash) string {
	if c.Report == nil {
		return ""
	}
	var fs []string
	for _, th := range c.Report.Threads {
		if th.Crashed {
			for _, f := range th.Frames {
				fs = append(fs, f.Function+"@"+strconv.FormatUint(uint64(f.PC), 16))
			}
		}
	}
	return strings.Join(fs, " ")
}
