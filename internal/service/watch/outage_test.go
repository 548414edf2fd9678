package watch_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/store/storetest"
)

// buildCoroner builds the coroner binary into a temporary directory.
func buildCoroner(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build coroner: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "coroner")
	cmd := exec.Command(goBin, "build", "-o", bin, "github.com/coroner-dev/coroner/cmd/coroner")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// watcherProc is a `coroner watch` child process.
type watcherProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	url  string
	done chan struct{}

	mu    sync.Mutex
	lines []string
	cond  *sync.Cond
}

func startWatch(t *testing.T, bin string, args ...string) *watcherProc {
	t.Helper()
	return startWatchUnder(t, nil, bin, args...)
}

// startWatchUnder starts `coroner watch` through wrapper (a command and its
// arguments that run the rest, such as prlimit --as=N).
func startWatchUnder(t *testing.T, wrapper []string, bin string, args ...string) *watcherProc {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	argv := append(append(append([]string{}, wrapper...), bin, "watch", "--listen", addr), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &watcherProc{t: t, cmd: cmd, url: "http://" + addr, done: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.cond.Broadcast()
			p.mu.Unlock()
			t.Logf("watch[%d]: %s", cmd.Process.Pid, sc.Text())
		}
		cmd.Wait()
		p.mu.Lock()
		close(p.done)
		p.cond.Broadcast()
		p.mu.Unlock()
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				<-p.done
			}
		}
	})
	return p
}

// waitLine waits until the process logged a line containing s (it fails
// the test when the process exits first, or after two minutes: a hang
// guard).
func (p *watcherProc) waitLine(s string) string {
	p.t.Helper()
	timer := time.AfterFunc(2*time.Minute, func() { p.mu.Lock(); p.cond.Broadcast(); p.mu.Unlock() })
	defer timer.Stop()
	deadline := time.Now().Add(2 * time.Minute)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; ; {
		for ; i < len(p.lines); i++ {
			if strings.Contains(p.lines[i], s) {
				return p.lines[i]
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("coroner watch exited before logging %q", s)
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("coroner watch did not log %q", s)
		}
		p.cond.Wait()
	}
}

func (p *watcherProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

// get returns the status and body of a dashboard URL (0 when it does not
// answer).
func (p *watcherProc) get(path string) (int, string) {
	resp, err := http.Get(p.url + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// metric reads one unlabelled metric (-1 when absent).
func (p *watcherProc) metric(name string) int64 {
	_, m := p.get("/metrics")
	for _, line := range strings.Split(m, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// linkCore puts a lab core into dir under a new name (a hard link: the
// lab's cores are ~200 MB; a copy when the link fails).
func linkCore(t *testing.T, src, dst string) {
	if err := os.Link(src, dst); err == nil {
		return
	}
	copyFile(t, src, dst)
}

// TestWatchOutage runs `coroner watch` as a separate process against a
// real PostgreSQL server that it meets refusing connections (57P03, as at
// boot), that stops in the middle of a burst of crashes (the lab's real
// cores under new names, and its real log lines) and stays away for 30
// seconds, and that is away again when the watcher is killed with SIGKILL
// while its spool holds crashes whose cores are then deleted. Every crash
// must be in the database exactly once, every incident once.
func TestWatchOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: no PostgreSQL server")
	}
	lab := labtest.Get(t)
	var cores []string
	for _, name := range []string{"kill-segv", "ffi-null-code", "abort", "method-closure-include", "shortcode-recursion", "ffi-null-code-2"} {
		if sc := lab.Scenarios[name]; sc != nil && sc.Core != "" {
			cores = append(cores, sc.Core)
		}
	}
	if len(cores) < 3 {
		t.Fatalf("lab has only %d scenarios with cores", len(cores))
	}
	bin := buildCoroner(t)
	pg := storetest.NewServer(t)
	dir := t.TempDir()
	coresDir := filepath.Join(dir, "cores")
	logDir := filepath.Join(dir, "log")
	stateDir := filepath.Join(dir, "state")
	for _, d := range []string{coresDir, logDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"--db", pg.DSN, "--db-wait", "5m", "--state-dir", stateDir, "--cores", coresDir,
		"--discover=false", "--host", "lab-host", "--nice", "-1", "--poll", "200ms", "--workers", "2",
		"--keep-cores", "0", "--max-core-bytes", "0", "--max-core-age", "0"}
	var logFiles []string
	for _, src := range []string{lab.NginxErrorLog, lab.FPMLog, lab.KernelLog} {
		if src == "" {
			continue
		}
		dst := filepath.Join(logDir, filepath.Base(src))
		if err := os.WriteFile(dst, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		logFiles = append(logFiles, src, dst)
		args = append(args, "--logs", dst)
	}

	// 1. The server is up but refuses connections (57P03): the watcher waits.
	pg.StartStandby()
	w := startWatch(t, bin, args...)
	w.waitLine("database not ready (57P03), retrying in ")
	pg.Promote()
	w.waitLine("dashboard on http://")
	waitFor(t, "healthz ok", func() bool { code, _ := w.get("/healthz"); return code == 200 })

	// 2. A burst of crashes in three waves: the first is recorded, the
	// server stops as the second arrives (its analyses are under way), the
	// third and the log lines arrive while it is away.
	var burst []string
	for i := range 3 {
		for _, c := range cores {
			burst = append(burst, filepath.Join(coresDir, fmt.Sprintf("%s.burst%d", filepath.Base(c), i)))
			linkCore(t, c, burst[len(burst)-1])
		}
		if i == 0 {
			waitFor(t, "the first wave recorded", func() bool {
				return w.metric("coroner_recorded_crashes_total") == int64(len(cores))
			})
		}
		if i == 1 {
			pg.Stop()
		}
	}
	stopped := time.Now()
	for i := 0; i < len(logFiles); i += 2 {
		appendFile(t, logFiles[i], logFiles[i+1])
	}
	waitFor(t, "every crash of the burst recorded or spooled", func() bool {
		return w.metric("coroner_recorded_crashes_total") == int64(len(burst))
	})
	code, body := w.get("/healthz")
	if code != 503 || !strings.Contains(body, "\ndatabase: unavailable since ") || !strings.Contains(body, "\nspool: ") {
		t.Errorf("healthz with the database away: %d %q", code, body)
	}
	_, m := w.get("/metrics")
	spooled := w.metric("coroner_spool_records")
	if spooled <= 0 || w.metric("coroner_database_errors_total") <= 0 || !strings.Contains(m, "\ncoroner_database_up 0\n") {
		t.Errorf("metrics with the database away:\n%s", m)
	}
	t.Logf("database away: %d records spooled; healthz %q", spooled, body)
	if d := 30*time.Second - time.Since(stopped); d > 0 {
		time.Sleep(d) // the outage lasts 30 s
	}
	pg.Start()
	waitFor(t, "spool written", func() bool { code, _ := w.get("/healthz"); return code == 200 })
	if n := w.metric("coroner_spool_records"); n != 0 {
		t.Errorf("spool holds %d records after the outage", n)
	}

	ctx := context.Background()
	st, err := store.Open(ctx, pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	checkOnce := func(want []string) {
		t.Helper()
		cs, err := st.Crashes(ctx, "", 10000)
		if err != nil {
			t.Fatal(err)
		}
		n := map[string]int{}
		for _, c := range cs {
			n[c.CorePath]++
		}
		for _, p := range want {
			if n[p] != 1 {
				t.Errorf("%s recorded %d times", p, n[p])
			}
		}
		if len(cs) != len(want) {
			t.Errorf("%d crashes in the database, want %d", len(cs), len(want))
		}
		gs, err := st.Groups(ctx)
		if err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, g := range gs {
			total += g.Count
		}
		if total != len(want) {
			t.Errorf("group counts sum to %d, want %d", total, len(want))
		}
		ins, err := st.Incidents(ctx, 10000)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		for _, in := range ins {
			k := fmt.Sprintf("%s %d %s %s", in.Kind, in.PID, in.Time, in.JSON)
			if seen[k] {
				t.Errorf("incident recorded twice: %s", k)
			}
			seen[k] = true
		}
		if len(ins) == 0 {
			t.Error("no incidents recorded")
		}
	}
	checkOnce(burst)
	// The crashes of the outage took their pool from the spooled incidents.
	cs, _ := st.Crashes(ctx, "", 10000)
	for _, c := range cs {
		if c.Pool == "" {
			t.Errorf("crash of %s (pid %d) has no pool", c.CorePath, c.PID)
		}
	}

	// 3. The database goes away again; the watcher is killed with records
	// in its spool, and their cores disappear (as retention would delete
	// them): the spool is the only copy left.
	pg.Stop()
	var later []string
	for _, c := range cores {
		later = append(later, filepath.Join(coresDir, filepath.Base(c)+".later"))
		linkCore(t, c, later[len(later)-1])
	}
	waitFor(t, "the new crashes spooled", func() bool { return w.metric("coroner_spool_records") == int64(len(later)) })
	w.kill()
	for _, p := range later {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	pg.Start()
	pg.WaitReady()
	w = startWatch(t, bin, args...)
	w.waitLine(fmt.Sprintf("holds %d records", len(later)))
	waitFor(t, "spool written after the restart", func() bool { code, _ := w.get("/healthz"); return code == 200 })
	checkOnce(append(burst, later...))
	if segs, _ := filepath.Glob(filepath.Join(stateDir, "spool", "*.seg")); len(segs) != 0 {
		t.Errorf("spool segments left: %v", segs)
	}
}
