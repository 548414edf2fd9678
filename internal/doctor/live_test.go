package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// TestBusyWorkers runs doctor on the hang lab: the workers busy beyond the
// pool's request_slowlog_timeout are snapshotted and diagnosed, and FPM's
// slowlog line and nginx's 504 for each request are linked to the worker
// that is still serving it.
func TestBusyWorkers(t *testing.T) {
	l := labtest.Hang(t, "--scenario", "sleep", "--scenario", "curl")
	res, err := Run(context.Background(), Options{
		Logs: []string{l.NginxErrorLog, l.FPMLog}, FPMConfig: l.FPMConfig, PHPIniScanDir: l.PHPIniDir, NoCores: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]string{l.Hangs["sleep"].PID: "hang-sleep", l.Hangs["curl"].PID: "hang-curl-blocking"}
	pidFile, err := os.ReadFile(filepath.Join(l.Dir, "run", "php-fpm.pid"))
	if err != nil {
		t.Fatal(err)
	}
	master, _ := strconv.Atoi(strings.TrimSpace(string(pidFile)))
	seen := map[int]bool{}
	for _, b := range res.Busy {
		if b.Master != master {
			continue // another pool on this machine
		}
		rule, ok := want[b.Worker.PID]
		if !ok {
			t.Errorf("busy worker %d (%s) is none of the lab's hangs", b.Worker.PID, b.Worker.URI)
			continue
		}
		seen[b.Worker.PID] = true
		if b.Report == nil || len(b.Report.Diagnosis) == 0 || b.Report.Diagnosis[0].Rule != rule {
			t.Errorf("worker %d: report %v, error %q; want %s", b.Worker.PID, b.Report != nil, b.Error, rule)
		}
		if b.Threshold != "request_slowlog_timeout 2s" {
			t.Errorf("worker %d picked by %q", b.Worker.PID, b.Threshold)
		}
		kinds := map[logs.Kind]int{}
		for _, ev := range b.Events {
			kinds[ev.Kind]++
			if ev.Kind == logs.KindUpstreamTimeout && !strings.Contains(ev.Text, b.Worker.URI) {
				t.Errorf("worker %d (%s): nginx line of another request linked: %s", b.Worker.PID, b.Worker.URI, ev.Text)
			}
		}
		if kinds[logs.KindSlowRequest] != 1 || kinds[logs.KindUpstreamTimeout] != 1 {
			t.Errorf("worker %d: linked events %v, want one FPM slowlog line and one nginx 504", b.Worker.PID, kinds)
		}
	}
	if len(seen) != len(want) {
		t.Fatalf("busy workers %d of %d found: %+v", len(seen), len(want), res.Busy)
	}
	var b strings.Builder
	if err := Text(&b, res); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "BUSY RIGHT NOW: ") || !strings.Contains(b.String(), "upstream timed out") {
		t.Errorf("text report:\n%s", b.String())
	}
}
