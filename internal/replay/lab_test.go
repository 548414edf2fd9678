package replay

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// keptLab starts the crash lab with --keep (its php-fpm and nginx stay up)
// and returns its directory and a function that stops it (restoring
// kernel.core_pattern), also called at the end of the test.
func keptLab(t *testing.T, args ...string) (string, func()) {
	t.Helper()
	script, err := labtest.Script()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			if out, err := exec.Command(script, "--stop", dir).CombinedOutput(); err != nil {
				t.Errorf("lab/run.sh --stop %s: %v\n%s", dir, err, out)
			}
		})
	}
	t.Cleanup(stop)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, append([]string{"--out", dir, "--keep", "--no-c"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("lab/run.sh %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "run", "php-fpm.sock")); err != nil {
		t.Fatalf("the kept lab has no FPM socket: %v", err)
	}
	return dir, stop
}

// coreRequest analyses a lab core and builds its request for the kept lab in dir.
func coreRequest(t *testing.T, core, dir string) *Request {
	t.Helper()
	_, req := coreReport(t, core, dir)
	return req
}

// coreReport analyses a lab core: its report and its request for the kept lab in dir.
func coreReport(t *testing.T, core, dir string) (*crash.Report, *Request) {
	t.Helper()
	rep, err := analyze.Core(core, analyze.Options{ShowSecrets: true})
	if err != nil {
		t.Fatalf("analyze %s: %v", core, err)
	}
	req, err := FromReport(rep, Spec{DocRoot: filepath.Join(dir, "www")})
	if err != nil {
		t.Fatal(err)
	}
	return rep, req
}

func replayLab(t *testing.T, req *Request, dir string, count int) *Result {
	t.Helper()
	return replayTo(t, req, "unix:"+filepath.Join(dir, "run", "php-fpm.sock"), dir, count)
}

func replayTo(t *testing.T, req *Request, socket, dir string, count int) *Result {
	t.Helper()
	res, err := Run(context.Background(), req, Options{Socket: socket,
		Count: count, Timeout: 20 * time.Second, FPMLog: filepath.Join(dir, "log", "fpm.log")})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	WriteText(&b, res)
	t.Logf("%s", b.String())
	return res
}

// TestLabReplay replays the cores of the crash lab against a kept lab:
// shortcode-recursion kills its worker every time; with memory_limit=8M the
// same request ends in PHP's "Allowed memory size exhausted" fatal error
// instead (the VM stack outgrows the limit before the C stack overflows),
// while kill-segv still kills and a harmless URL completes.
func TestLabReplay(t *testing.T) {
	lab := labtest.Get(t)
	labtest.HoldExclusive(t, lab) // its kept labs change kernel.core_pattern: one lab at a time
	rec := lab.Scenarios["shortcode-recursion"]
	kill := lab.Scenarios["kill-segv"]
	if rec == nil || kill == nil || rec.Core == "" || kill.Core == "" {
		t.Fatal("the lab has no shortcode-recursion or kill-segv core")
	}

	dir, stop := keptLab(t, "--scenario", "shortcode-recursion")
	rep, req := coreReport(t, rec.Core, dir)
	if got := req.Param("REQUEST_URI"); got != rec.URL {
		t.Errorf("recovered REQUEST_URI %q, the lab requested %q", got, rec.URL)
	}
	// No socket given: the listen of the core's pool in the kept lab's own php-fpm.conf.
	kept, err := labtest.Read(dir)
	if err != nil {
		t.Fatal(err)
	}
	found, err := FindSocket(rep, SocketSearch{FPMConfig: kept.FPMConfig})
	if err != nil {
		t.Fatalf("socket of the lab core's pool in %s: %v", kept.FPMConfig, err)
	}
	t.Logf("socket %s: %s", found.Socket, found.Why)
	if want := "unix:" + filepath.Join(dir, "run", "php-fpm.sock"); found.Socket != want || found.Pool != "www" {
		t.Fatalf("found %s (pool %s), the kept lab listens on %s (pool www)", found.Socket, found.Pool, want)
	}
	res := replayTo(t, req, found.Socket, dir, 2)
	if res.Died != 2 || res.Confirmed != 2 || res.Summary() != "reproduced 2/2" {
		t.Fatalf("shortcode-recursion: %s, %d deaths confirmed by the FPM log", res.Summary(), res.Confirmed)
	}
	for _, a := range res.Attempts {
		// The request reached the pool: its master logged the death of one of its workers.
		if len(a.Deaths) != 1 || a.Deaths[0].Signal != 11 || !strings.Contains(a.Deaths[0].Line, "[pool www] child ") {
			t.Errorf("attempt %d: FPM deaths %+v, want one SIGSEGV of a worker of pool www", a.N, a.Deaths)
		}
	}

	stop() // one lab at a time: kernel.core_pattern is machine-wide

	// The mitigation: a memory_limit below what the recursion needs before the stack overflows.
	dir, _ = keptLab(t, "--scenario", "kill-segv", "--ini", "memory_limit=8M")
	res = replayLab(t, coreRequest(t, rec.Core, dir), dir, 1)
	if res.Reproduced || len(res.Attempts) != 1 || res.Attempts[0].Outcome != OutcomeCompleted ||
		!strings.HasPrefix(res.Attempts[0].Status, "500") || !strings.Contains(res.Attempts[0].StderrText, "Allowed memory size") {
		t.Fatalf("shortcode-recursion with memory_limit=8M: %s %+v", res.Summary(), res.Attempts)
	}
	res = replayLab(t, coreRequest(t, kill.Core, dir), dir, 1)
	if res.Summary() != "reproduced 1/1" || res.Confirmed != 1 {
		t.Fatalf("kill-segv: %s", res.Summary())
	}
	harmless, err := FromSpec(Spec{URI: "/kill.php?mode=none", Script: "kill.php", DocRoot: filepath.Join(dir, "www")})
	if err != nil {
		t.Fatal(err)
	}
	res = replayLab(t, harmless, dir, 2)
	if res.Summary() != "did not reproduce (0/2)" || res.Attempts[0].Status != "200 OK" || res.Attempts[0].Stdout == 0 {
		t.Fatalf("harmless URL: %s %+v", res.Summary(), res.Attempts)
	}
}
