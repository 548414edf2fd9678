package snapshot

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/fpmworkers"
)

// hangWant is what a snapshot of each hang scenario must show: the
// internal function the worker is in (the innermost PHP frame, "" for
// PHP code), the system call ("" when running on a CPU) and the rule.
var hangWant = map[string]struct {
	internal string
	syscall  string
	rule     string
}{
	"sleep":          {"sleep", "clock_nanosleep", "hang-sleep"},
	"usleep":         {"usleep", "clock_nanosleep", "hang-sleep"},
	"pcre-backtrack": {"preg_match", "", "hang-pcre-backtracking"},
	"curl":           {"curl_exec", "poll", "hang-curl-blocking"},
	"mysqli":         {"mysqli_connect", "poll", "hang-mysql-blocking"},
	"pgsql":          {"pg_connect", "poll", "hang-pgsql-blocking"},
	"redis":          {"Redis->get", "poll", "hang-redis-blocking"},
	"session-holder": {"sleep", "clock_nanosleep", "hang-sleep"},
	"session-lock":   {"session_start", "flock", "hang-session-lock"},
	"loop":           {"", "", "hang-busy-loop"},
}

// TestHangLab snapshots every worker the hang lab left hanging and
// compares what coroner reads of it with what its PHP script wrote just
// before the hang (debug_backtrace, $_SERVER) and with FPM's status page;
// checks the hang family found; writes a core of one and checks that it
// analyses like the live process and that gdb reads it; and checks that a
// worker serving a slow request completes it after a snapshot, with no
// 502.
func TestHangLab(t *testing.T) {
	l := labtest.Hang(t)
	ctx := context.Background()
	pools, warns := fpmworkers.List(ctx, fpmworkers.Options{Timeout: 10 * time.Second})
	if len(warns) > 0 {
		t.Logf("warnings: %q", warns)
	}
	var pool *fpmworkers.Pool
	for _, p := range pools {
		for _, w := range p.Workers {
			if w.PID == l.Hangs["sleep"].PID {
				pool = p
			}
		}
	}
	if pool == nil {
		t.Fatalf("fpmworkers.List does not list the lab's workers: %+v", pools)
	}
	if pool.Status != "fpm-status" || pool.Name != l.FPMPool || pool.StatusPath != l.StatusPath || pool.SlowlogTimeout != 2*time.Second {
		t.Fatalf("pool %+v: want the status page read, pool %s, status path %s, slowlog timeout 2s", pool, l.FPMPool, l.StatusPath)
	}
	if len(pool.Workers) != l.Workers {
		t.Errorf("%d workers listed, pm.max_children is %d", len(pool.Workers), l.Workers)
	}
	kb, err := diagnose.Load()
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(l.Hangs))
	for k := range l.Hangs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var pauses []float64
	for _, key := range keys {
		h := l.Hangs[key]
		t.Run(key, func(t *testing.T) {
			want, ok := hangWant[h.Name]
			if !ok {
				t.Fatalf("no expectation for hang %s", h.Name)
			}
			targets, _ := Select(ctx, Selection{PIDs: []int{h.PID}}, pools)
			if len(targets) != 1 || targets[0].Worker == nil {
				t.Fatalf("select pid %d: %+v", h.PID, targets)
			}
			w := targets[0].Worker
			if !fpmworkers.Busy(*w) || w.RequestMS < 2000 || w.URI != h.URL || w.Method != "GET" || w.Source != "fpm-status" {
				t.Errorf("FPM's view of worker %d: %+v, want busy for more than 2 s on GET %s", h.PID, *w, h.URL)
			}
			rep, err := Take(targets[0], Options{})
			if err != nil {
				t.Fatal(err)
			}
			lv := rep.Live
			pauses = append(pauses, lv.PauseMS)
			t.Logf("pause %.1f ms (registers %.1f ms, coroner's CPU %.1f ms), %d bytes copied; %s", lv.PauseMS, lv.RegistersMS, lv.PauseCPUMS, lv.CopiedBytes, lv.Syscall)
			if lv.Threads != 1 || lv.PauseMS <= 0 || lv.Memory != "frozen" || lv.CopiedBytes == 0 || lv.Worker != w {
				t.Errorf("live %+v", *lv)
			}
			if lv.Syscall != want.syscall {
				t.Errorf("system call %q, want %q", lv.Syscall, want.syscall)
			}
			checkPHP(t, rep, h, want.internal)
			ds := kb.Diagnose(rep, diagnose.Evidence{})
			if len(ds) == 0 || ds[0].Rule != want.rule {
				var top []string
				if th := rep.CrashedThread(); th != nil {
					for _, f := range th.Frames[:min(4, len(th.Frames))] {
						top = append(top, f.Function+"@"+f.Module)
					}
				}
				t.Errorf("diagnosis %v, want %s (process %+v, top frames %q)", ruleIDs(ds), want.rule, rep.Process, top)
			} else {
				t.Logf("%s: %s", ds[0].Rule, ds[0].Explanation)
			}
			if h.HTTPStatus != 504 || len(h.NginxError) == 0 || !strings.Contains(h.NginxError[0], "upstream timed out") {
				t.Errorf("the lab's request: HTTP %d, nginx %q", h.HTTPStatus, h.NginxError)
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", h.PID)); err != nil {
				t.Errorf("worker %d is gone after the snapshot", h.PID)
			}
		})
	}
	sort.Float64s(pauses)
	if len(pauses) > 0 {
		t.Logf("pauses of %d workers: median %.1f ms, max %.1f ms", len(pauses), pauses[len(pauses)/2], pauses[len(pauses)-1])
	}

	t.Run("core", func(t *testing.T) { testCore(t, l, pools) })
	t.Run("serves-on", func(t *testing.T) { testServesOn(t, l) })
	t.Run("busy-over", func(t *testing.T) {
		// Only the lab's pool: other pools may run on this machine.
		targets, warns := Select(ctx, Selection{BusyOver: 2 * time.Second}, []*fpmworkers.Pool{pool})
		got := map[int]bool{}
		for _, tg := range targets {
			got[tg.PID] = true
		}
		for key, h := range l.Hangs {
			if !got[h.PID] && h.Name != "pcre-backtrack" && h.Name != "loop" {
				t.Errorf("--busy-over 2s misses %s (pid %d)", key, h.PID)
			}
		}
		if len(targets) > len(l.Hangs) || len(warns) > 0 {
			t.Errorf("--busy-over 2s selects %d workers for %d hangs (warnings %q)", len(targets), len(l.Hangs), warns)
		}
	})
}

func ruleIDs(ds []crash.Diagnosis) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Rule)
	}
	return out
}

// checkPHP compares the PHP stack and request read from the live worker
// with the ground truth its script wrote before the hang.
func checkPHP(t *testing.T, rep *crash.Report, h *labtest.HangingWorker, internal string) {
	t.Helper()
	ph := rep.PHP
	if ph == nil {
		t.Fatalf("no PHP runtime read (warnings %q)", rep.Warnings)
	}
	frames := ph.Frames
	if internal != "" {
		if len(frames) == 0 || frames[0].Kind != crash.PHPInternal || frames[0].QualifiedName() != internal {
			t.Fatalf("innermost PHP frame %+v, want the internal function %s", frames, internal)
		}
		frames = frames[1:]
	}
	tr := h.Truth.Frames
	if len(frames) != len(tr) {
		t.Fatalf("%d PHP frames, truth has %d: %+v", len(frames), len(tr), frames)
	}
	for i, f := range tr {
		g := frames[i]
		if g.Function != f.Function || g.Class != f.Class || g.CallType != f.CallType || g.File != f.File || g.Line != f.Line {
			t.Errorf("frame %d: %s%s%s at %s:%d, truth %s%s%s at %s:%d", i, g.Class, g.CallType, g.Function, g.File, g.Line,
				f.Class, f.CallType, f.Function, f.File, f.Line)
		}
	}
	r := ph.Request
	if r == nil || r.URI != h.Truth.RequestURI || r.Method != h.Truth.Method || r.Host != h.Truth.Host || r.Script != h.Truth.ScriptFilename {
		t.Errorf("request %+v, truth %s %s on %s (%s)", r, h.Truth.Method, h.Truth.RequestURI, h.Truth.Host, h.Truth.ScriptFilename)
	}
}

// testCore writes a core of a hanging worker and checks that coroner reads
// the same native and PHP frames from it as from the live worker, and that
// gdb reads its stack.
func testCore(t *testing.T, l *labtest.Lab, pools []*fpmworkers.Pool) {
	h := l.Hangs["curl"]
	targets, _ := Select(context.Background(), Selection{PIDs: []int{h.PID}}, pools)
	dir := t.TempDir()
	rep, err := Take(targets[0], Options{CoreDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	path := rep.Live.CorePath
	if filepath.Dir(path) != dir {
		t.Fatalf("core %q, want it in %s", path, dir)
	}
	fromCore, err := analyze.Core(path, analyze.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if fromCore.Signal.Number != 0 || fromCore.Process.PID != h.PID || len(fromCore.Threads) != 1 {
		t.Errorf("core: signal %d, pid %d, %d threads", fromCore.Signal.Number, fromCore.Process.PID, len(fromCore.Threads))
	}
	live, core := rep.Threads[0].Frames, fromCore.Threads[0].Frames
	if len(live) != len(core) {
		t.Fatalf("%d native frames live, %d from the core", len(live), len(core))
	}
	for i := range live {
		if live[i].PC != core[i].PC || live[i].Function != core[i].Function {
			t.Errorf("native frame %d: live %s %s, core %s %s", i, live[i].PC, live[i].Function, core[i].PC, core[i].Function)
		}
	}
	if fromCore.PHP == nil || len(fromCore.PHP.Frames) != len(rep.PHP.Frames) {
		t.Fatalf("PHP from the core: %+v", fromCore.PHP)
	}
	for i, f := range rep.PHP.Frames {
		g := fromCore.PHP.Frames[i]
		if f.QualifiedName() != g.QualifiedName() || f.File != g.File || f.Line != g.Line {
			t.Errorf("PHP frame %d: live %s at %s:%d, core %s at %s:%d", i, f.QualifiedName(), f.File, f.Line, g.QualifiedName(), g.File, g.Line)
		}
	}
	if fromCore.PHP.Request == nil || fromCore.PHP.Request.URI != h.URL {
		t.Errorf("request from the core: %+v", fromCore.PHP.Request)
	}
	if _, err := exec.LookPath("gdb"); err != nil {
		t.Skip("gdb is not installed")
	}
	out, err := exec.Command("gdb", "-nx", "-batch", "-ex", "bt", l.PHPFPM, path).CombinedOutput()
	if err != nil {
		t.Fatalf("gdb: %v\n%s", err, out)
	}
	// gdb's frames from #1 on print their pc: each must be one of ours.
	re := regexp.MustCompile(`(?m)^#(\d+)\s+0x([0-9a-f]+) in (\S+)`)
	ours := map[string]bool{}
	for _, f := range live {
		ours[strings.TrimPrefix(f.PC.String(), "0x")] = true
	}
	n := 0
	for _, m := range re.FindAllStringSubmatch(string(out), -1) {
		n++
		if !ours[strings.TrimLeft(m[2], "0")] {
			t.Errorf("gdb's frame #%s at 0x%s (%s) is not in coroner's stack", m[1], m[2], m[3])
		}
	}
	if n < 5 || !strings.Contains(string(out), "curl_multi_poll") {
		t.Errorf("gdb read %d frames of the core:\n%s", n, out)
	}
}

// testServesOn sends a slow request (4 s) through nginx, snapshots the
// worker serving it, and checks that the request completes (200, its
// body) with no 502 in nginx's log and no worker death in FPM's.
func testServesOn(t *testing.T, l *labtest.Lab) {
	nginxBefore, _ := os.ReadFile(l.NginxErrorLog)
	fpmBefore, _ := os.ReadFile(l.FPMLog)
	key := fmt.Sprintf("serves-on-%d", time.Now().UnixNano())
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		c := &http.Client{Timeout: 60 * time.Second}
		resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/slow.php?secs=4&key=%s", l.Port, key))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode, body: string(b)}
	}()
	// The worker writes its truth file before it sleeps.
	var pid int
	for i := 0; i < 300 && pid == 0; i++ {
		files, _ := filepath.Glob(filepath.Join(l.Dir, "cores", "truth.*.json"))
		for _, f := range files {
			b, _ := os.ReadFile(f)
			if strings.Contains(string(b), "key="+key+`"`) {
				fmt.Sscanf(filepath.Base(f), "truth.%d.json", &pid)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatalf("no worker took the slow request")
	}
	rep, err := Take(Target{PID: pid}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.PHP == nil || len(rep.PHP.Frames) == 0 || rep.PHP.Frames[0].Function != "sleep" {
		t.Errorf("snapshot of the slow worker: %+v", rep.PHP)
	}
	res := <-done
	if res.err != nil || res.status != 200 || res.body != "done after 4 s\n" {
		t.Fatalf("the slow request after the snapshot: HTTP %d %q, %v", res.status, res.body, res.err)
	}
	nginxAfter, _ := os.ReadFile(l.NginxErrorLog)
	fpmAfter, _ := os.ReadFile(l.FPMLog)
	newNginx := strings.TrimPrefix(string(nginxAfter), string(nginxBefore))
	newFPM := strings.TrimPrefix(string(fpmAfter), string(fpmBefore))
	if strings.Contains(newNginx, "slow.php") || strings.Contains(newFPM, "exited") {
		t.Errorf("after the snapshot, nginx logged %q and FPM %q", newNginx, newFPM)
	}
}
