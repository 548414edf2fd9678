package watch_test

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/hostile"
	"github.com/coroner-dev/coroner/internal/service/watch"
)

// addressSpaceLimits finds, for the coroner binary bin, an RLIMIT_AS under
// which the isolated analysis of valid ends with a report and that of
// hostile dies. The Go runtime alone reserves some 800 MiB of address
// space at start, so the limit is searched above what `coroner version`
// needs.
func addressSpaceLimit(t *testing.T, bin, valid, hostileCore string) int64 {
	t.Helper()
	if _, err := exec.LookPath("prlimit"); err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	const mib = 1 << 20
	run := func(limit int64, args ...string) int {
		cmd := exec.Command("prlimit", append([]string{"--as=" + strconv.FormatInt(limit, 10), bin}, args...)...)
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	}
	base := int64(0)
	for l := int64(400 * mib); l <= 4096*mib; l += 25 * mib {
		if run(l, "version") == 0 && run(l+25*mib, "version") == 0 {
			base = l
			break
		}
	}
	if base == 0 {
		t.Fatal("coroner version does not start under 4 GiB of address space")
	}
	analyse := []string{"analyze", "--json", "--isolated", "--no-diagnosis"}
	for l := base + 150*mib; l <= base+400*mib; l += 50 * mib {
		if run(l, "version") != 0 {
			continue // the Go runtime refuses a few odd limits
		}
		if run(l, append(analyse, valid)...) == 0 && run(l, append(analyse, hostileCore)...) != 0 {
			t.Logf("Go runtime base %d MiB; watcher run under %d MiB of address space", base/mib, l/mib)
			return l
		}
	}
	t.Fatalf("no address-space limit above %d MiB lets the valid core's analysis end and stops the hostile one's", base/mib)
	return 0
}

// TestIsolatedWatcherUnderMemoryLimit runs `coroner watch` as a process
// under an address-space limit (prlimit --as, as a unit's memory limit
// would), with a core crafted to exhaust memory (a real 80,000-frame stack
// repeated in 4,096 threads) next to a valid core. The analysis of each
// core runs in a child process: the hostile one makes its child die, twice,
// and is quarantined (in the state directory, the log and /metrics); the
// watcher stays up, records the valid core, and after a restart does not
// analyse the quarantined core again.
func TestIsolatedWatcherUnderMemoryLimit(t *testing.T) {
	dir := t.TempDir()
	valid, many, err := hostile.DeepCores(dir)
	if errors.Is(err, hostile.ErrNoTools) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	bin := buildCoroner(t)
	limit := addressSpaceLimit(t, bin, valid.Path, many.Path)
	coresDir := filepath.Join(dir, "cores")
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(coresDir, 0o755); err != nil {
		t.Fatal(err)
	}
	hostilePath := filepath.Join(coresDir, "core.deep.1000")
	validPath := filepath.Join(coresDir, "core.deep.2000")
	linkCore(t, many.Path, hostilePath)
	linkCore(t, valid.Path, validPath)
	args := []string{"--db", "sqlite:" + filepath.Join(dir, "coroner.db"), "--state-dir", state, "--cores", coresDir,
		"--no-logs", "--discover=false", "--poll", "200ms", "--nice", "-1"}
	wrapper := []string{"prlimit", "--as=" + strconv.FormatInt(limit, 10)}
	p := startWatchUnder(t, wrapper, bin, args...)
	p.waitLine("quarantined " + hostilePath)
	for deadline := time.Now().Add(2 * time.Minute); p.metric("coroner_recorded_crashes_total") < 1; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the valid core was not recorded")
		}
	}
	if n := p.metric("coroner_cores_quarantined"); n != 1 {
		t.Errorf("coroner_cores_quarantined %d", n)
	}
	if n := p.metric("coroner_analysis_process_failures_total"); n != 2 {
		t.Errorf("coroner_analysis_process_failures_total %d, want 2", n)
	}
	if code, page := p.get("/"); code != 200 || !strings.Contains(page, "down") {
		t.Errorf("dashboard: %d, no group of the valid core (its top frame, down)", code)
	}
	var q []watch.Quarantined
	b, err := os.ReadFile(filepath.Join(state, "quarantine.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &q); err != nil || len(q) != 1 || q[0].Path != hostilePath || q[0].Failures != 2 || !q[0].Quarantined {
		t.Fatalf("quarantine file: %v %s", err, b)
	}
	// No analysis process nor decompressed copy is left behind.
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "coroner-analysis-*")); len(left) > 0 {
		for _, d := range left {
			if st, err := os.Stat(d); err == nil && time.Since(st.ModTime()) < time.Minute {
				t.Errorf("analysis directory left: %s", d)
			}
		}
	}
	p.cmd.Process.Signal(os.Interrupt)
	<-p.done

	p = startWatchUnder(t, wrapper, bin, args...)
	p.waitLine(hostilePath + " stays quarantined")
	time.Sleep(3 * time.Second) // several polls and the settle time
	if n := p.metric("coroner_analysis_process_failures_total"); n != 0 {
		t.Errorf("the quarantined core was analysed again after a restart (%d failures)", n)
	}
}
