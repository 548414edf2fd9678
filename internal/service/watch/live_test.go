package watch_test

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// TestWatchLiveLab runs the crash lab and leaves it running (its
// kernel.core_pattern points at its cores directory until it is stopped),
// starts the watcher on that directory and the lab's logs, then kills
// workers with real requests through nginx: the crashes must be recorded
// with the URL read from each core and grouped by fingerprint.
func TestWatchLiveLab(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the crash lab needs root")
	}
	if os.Getenv("CORONER_NO_LAB") != "" {
		t.Skip("CORONER_NO_LAB is set")
	}
	labtest.HoldExclusive(t, labtest.Get(t)) // no other lab while this one holds core_pattern
	dir := t.TempDir()
	script, err := labtest.Script()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(script, "--out", dir, "--scenario", "kill-segv", "--keep", "--no-c").CombinedOutput()
	t.Cleanup(func() { _ = exec.Command(script, "--stop", dir).Run() })
	if err != nil {
		t.Fatalf("lab: %v\n%s", err, out)
	}
	var manifest struct {
		Port          int    `json:"port"`
		NginxErrorLog string `json:"nginx_error_log"`
		FPMLog        string `json:"fpm_log"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err == nil {
		err = json.Unmarshal(b, &manifest)
	}
	if err != nil || manifest.Port == 0 {
		t.Fatalf("lab manifest: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "watch.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w, err := watch.New(watch.Config{
		Store: st, Host: "live-lab", CoreDirs: []string{filepath.Join(dir, "cores")},
		Logs:    []logs.Input{{Path: manifest.NginxErrorLog, Format: logs.FormatAuto}, {Path: manifest.FPMLog, Format: logs.FormatAuto}},
		Workers: 1, Poll: 200 * time.Millisecond, Settle: 500 * time.Millisecond, Nice: -1,
		Logger: log.New(os.Stderr, "watch: ", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	wg.Add(1)
	go func() { defer wg.Done(); w.Run(ctx) }()
	time.Sleep(time.Second)

	base := "http://127.0.0.1:" + strconv.Itoa(manifest.Port)
	urls := []string{"/search.php?q=live", "/kill.php?mode=kill", "/search.php?q=again"}
	for _, u := range urls {
		if resp, err := http.Get(base + u); err == nil {
			resp.Body.Close()
		}
		time.Sleep(1100 * time.Millisecond) // one death per logged second
	}
	var crashes []store.Crash
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		crashes, err = st.Crashes(ctx, "", 100)
		if err == nil && len(crashes) >= len(urls) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if len(crashes) < len(urls) {
		t.Fatalf("%d crashes recorded, want %d", len(crashes), len(urls))
	}
	seen := map[string]string{} // URI -> fingerprint
	for _, c := range crashes {
		seen[c.URI] = c.Fingerprint
		if c.Host != "live-lab" || c.Signal != 11 || c.Fingerprint == "" {
			t.Errorf("crash %+v", c)
		}
	}
	for _, u := range urls {
		if _, ok := seen[u]; !ok {
			t.Errorf("no crash recorded for %s (have %v)", u, keys(seen))
		}
	}
	if seen["/search.php?q=live"] != seen["/search.php?q=again"] || seen["/search.php?q=live"] == seen["/kill.php?mode=kill"] {
		t.Errorf("fingerprints: %v", seen)
	}
	groups, err := st.Groups(ctx)
	if err != nil || len(groups) != 2 {
		t.Errorf("%d groups (%v), want 2", len(groups), err)
	}
}

func keys(m map[string]string) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return strings.Join(out, ", ")
}
