package watch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/schemacheck"
	"github.com/coroner-dev/coroner/internal/service/server"
	"github.com/coroner-dev/coroner/internal/service/server/apicheck"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/store/storetest"
	"github.com/coroner-dev/coroner/internal/service/watch"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// env is a running watcher + dashboard over the lab's cores and logs.
type env struct {
	lab       *labtest.Lab
	st        store.Store
	w         *watch.Watcher
	url       string
	coresDir  string
	scenarios []*labtest.Scenario
	alerts    chan watch.Alert
	hookFile  string
	// regFile collects what --on-regression writes.
	regFile string
	// pages are test pages served on the dashboard's origin (browser
	// tests: a page that clicks the dashboard's buttons).
	pagesMu sync.Mutex
	pages   map[string]string
}

// copyFile copies src to dst the way a kernel writes a core (the file grows
// while it is written) and gives it src's mtime.
func copyFile(t *testing.T, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(dst, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
}

func compressFile(t *testing.T, src, dst string) {
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	zw, err := zstd.NewWriter(out, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(zw, in); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	fi, _ := in.Stat()
	os.Chtimes(dst, fi.ModTime(), fi.ModTime())
}

func appendFile(t *testing.T, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(dst, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond until it holds; it fails the test after a minute
// (a hang guard, not a performance assertion).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

// startEnv starts the watcher on empty core and log directories, then feeds
// it the lab's real logs and cores, one core at a time.
func startEnv(t *testing.T, dsn string) *env {
	lab := labtest.Get(t)
	e := &env{lab: lab, alerts: make(chan watch.Alert, 100)}
	schemas, err := schemacheck.Load("../../../docs/schema")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kill-segv", "ffi-null-code", "abort", "method-closure-include", "shortcode-recursion", "ffi-null-code-2"} {
		if sc := lab.Scenarios[name]; sc != nil && sc.Core != "" {
			e.scenarios = append(e.scenarios, sc)
		}
	}
	if len(e.scenarios) < 3 {
		t.Fatalf("lab has only %d scenarios with cores", len(e.scenarios))
	}
	dir := t.TempDir()
	e.coresDir = filepath.Join(dir, "cores")
	logDir := filepath.Join(dir, "log")
	for _, d := range []string{e.coresDir, logDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// A file in the managed directory that is not a core: never touched.
	if err := os.WriteFile(filepath.Join(e.coresDir, "README"), []byte("not a core\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var inputs []logs.Input
	for _, src := range []string{lab.NginxErrorLog, lab.FPMLog, lab.KernelLog} {
		if src == "" {
			continue
		}
		dst := filepath.Join(logDir, filepath.Base(src))
		if err := os.WriteFile(dst, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, logs.Input{Path: dst, Format: logs.FormatAuto})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })

	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e.st = st

	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var a watch.Alert
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("webhook body: %v", err)
		}
		if err := schemas.Validate("alert", body); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		if err := json.Unmarshal(body, &a); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		e.alerts <- a
	}))
	t.Cleanup(hook.Close)
	e.hookFile = filepath.Join(dir, "hook.out")
	e.regFile = filepath.Join(dir, "regressed.out")
	e.pages = map[string]string{}

	e.w, err = watch.New(watch.Config{
		Store: st, Host: "lab-host", CoreDirs: []string{e.coresDir}, Logs: inputs,
		Workers: 2, Poll: 200 * time.Millisecond, Settle: 500 * time.Millisecond,
		KeepCores: len(e.scenarios) - 1, Webhook: hook.URL,
		OnNewGroup:   `echo "$CORONER_FINGERPRINT $CORONER_PID" >> ` + e.hookFile,
		OnRegression: `echo "$CORONER_EVENT $CORONER_FINGERPRINT $CORONER_PID" >> ` + e.regFile,
		HookUser:     "root", // writes into the test's private directory (TestHookUser: the default, nobody)
		Nice:         -1, Logger: log.New(testWriter{t}, "", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st, Metrics: e.w.Metrics.WritePrometheus})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	wg.Add(2)
	go func() { defer wg.Done(); e.w.Run(ctx) }()
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/_test/") {
			e.pagesMu.Lock()
			page, ok := e.pages[r.URL.Path]
			e.pagesMu.Unlock()
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, page)
			return
		}
		srv.ServeHTTP(w, r)
	})}
	go func() { defer wg.Done(); hs.Serve(ln) }()
	t.Cleanup(func() { hs.Close() })

	time.Sleep(time.Second) // let the followers open the (empty) logs at their end
	for i, src := range []string{lab.NginxErrorLog, lab.FPMLog, lab.KernelLog} {
		if src != "" && i < len(inputs) {
			appendFile(t, src, inputs[i].Path)
		}
	}
	for i, sc := range e.scenarios {
		if sc.Name == "abort" {
			// As systemd-coredump stores them: zstd-compressed.
			compressFile(t, sc.Core, filepath.Join(e.coresDir, filepath.Base(sc.Core)+".zst"))
		} else {
			copyFile(t, sc.Core, filepath.Join(e.coresDir, filepath.Base(sc.Core)))
		}
		n := i + 1
		waitFor(t, fmt.Sprintf("crash %d (%s) recorded", n, sc.Name), func() bool {
			cs, err := st.Crashes(ctx, "", 100)
			return err == nil && len(cs) >= n
		})
	}
	return e
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestWatchLabSQLite(t *testing.T) {
	e := startEnv(t, "sqlite:"+filepath.Join(t.TempDir(), "coroner.db"))
	e.check(t)
	t.Run("browser", func(t *testing.T) { e.browser(t) })
	t.Run("states", func(t *testing.T) { e.browserStates(t) })
	t.Run("api-schemas", func(t *testing.T) { e.apiSchemas(t) }) // last: it changes group states
}

func TestWatchLabPostgres(t *testing.T) {
	dsn := storetest.Postgres(t)
	e := startEnv(t, dsn)
	e.check(t)
	t.Run("api-schemas", func(t *testing.T) { e.apiSchemas(t) })
}

func (e *env) check(t *testing.T) {
	ctx := context.Background()
	cs, err := e.st.Crashes(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != len(e.scenarios) {
		t.Fatalf("%d crashes recorded, want %d", len(cs), len(e.scenarios))
	}
	byPID := map[int]store.Crash{}
	for _, c := range cs {
		byPID[c.PID] = c
	}
	fps := map[string]bool{}
	for _, sc := range e.scenarios {
		c, ok := byPID[sc.PID]
		if !ok {
			t.Errorf("%s: no crash with pid %d", sc.Name, sc.PID)
			continue
		}
		if c.Signal != sc.Signal || c.Fingerprint == "" || c.Host != "lab-host" || c.AnalysisMS <= 0 {
			t.Errorf("%s: crash %+v", sc.Name, c)
		}
		path := sc.URL
		if i := strings.IndexByte(path, '?'); i >= 0 {
			path = path[:i]
		}
		if !strings.HasPrefix(c.URI, path) {
			t.Errorf("%s: URI %q, want %q", sc.Name, c.URI, sc.URL)
		}
		t.Logf("%-24s pid %-6d %-8s fp %s rule %q uri %q analysis %.0f ms", sc.Name, c.PID, c.SignalName, c.Fingerprint, c.Rule, c.URI, c.AnalysisMS)
		fps[c.Fingerprint] = true
		full, err := e.st.Crash(ctx, c.ID)
		if err != nil || full.Report == nil || full.Report.Process.PID != sc.PID {
			t.Fatalf("%s: stored report: %v", sc.Name, err)
		}
		if sc.Name == "abort" && !strings.HasSuffix(full.CorePath, ".zst") {
			t.Errorf("%s: compressed core recorded as %s", sc.Name, full.CorePath)
		}
		// Deep recursions are stored with bounded stacks.
		if th := full.Report.CrashedThread(); th == nil || len(th.Frames) > 1050 || (full.Report.PHP != nil && len(full.Report.PHP.Frames) > 1050) {
			t.Errorf("%s: stored stacks not bounded", sc.Name)
		}
	}
	if a, b := byPID[pidOf(e, "ffi-null-code")], byPID[pidOf(e, "ffi-null-code-2")]; a.ID != 0 && b.ID != 0 && a.Fingerprint != b.Fingerprint {
		t.Errorf("the two ffi-null-code crashes have different fingerprints %s, %s", a.Fingerprint, b.Fingerprint)
	}
	gs, err := e.st.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(gs) != len(fps) {
		t.Errorf("%d groups, want %d", len(gs), len(fps))
	}
	total := 0
	for _, g := range gs {
		total += g.Count
	}
	if total != len(e.scenarios) {
		t.Errorf("group counts sum to %d, want %d", total, len(e.scenarios))
	}

	// The log incidents of every scenario's worker arrive (after FollowOptions.Grace)
	// and their pool reaches the crash.
	waitFor(t, "log incidents of all scenarios", func() bool {
		ins, err := e.st.Incidents(ctx, 1000)
		if err != nil {
			return false
		}
		have := map[int]bool{}
		for _, in := range ins {
			have[in.PID] = true
		}
		for _, sc := range e.scenarios {
			if !have[sc.PID] {
				return false
			}
		}
		return true
	})
	for _, sc := range e.scenarios {
		in, err := e.st.FindIncident(ctx, "lab-host", sc.PID, byPID[sc.PID].Time)
		if err != nil {
			t.Errorf("%s: incident: %v", sc.Name, err)
			continue
		}
		c, _ := e.st.Crash(ctx, byPID[sc.PID].ID)
		if in.Pool != "" && c.Pool != in.Pool {
			t.Errorf("%s: crash pool %q, incident pool %q", sc.Name, c.Pool, in.Pool)
		}
	}

	// Alerts: one webhook POST and one hook run per new group.
	got := map[string]bool{}
	for len(got) < len(fps) {
		select {
		case a := <-e.alerts:
			if a.Event != "new-group" || !fps[a.Fingerprint] || got[a.Fingerprint] {
				t.Errorf("unexpected alert %+v", a)
			}
			got[a.Fingerprint] = true
		case <-time.After(30 * time.Second):
			t.Fatalf("webhook got %d alerts, want %d", len(got), len(fps))
		}
	}
	waitFor(t, "on-new-group hook runs", func() bool {
		b, _ := os.ReadFile(e.hookFile)
		return strings.Count(string(b), "\n") == len(fps)
	})

	// Retention kept the newest KeepCores cores and left the other file alone.
	waitFor(t, "retention", func() bool {
		m := get(t, e.url+"/metrics")
		return strings.Contains(m, fmt.Sprintf("\ncoroner_cores_on_disk %d\n", len(e.scenarios)-1))
	})
	if _, err := os.Stat(filepath.Join(e.coresDir, "README")); err != nil {
		t.Errorf("retention touched a non-core file: %v", err)
	}
	left, _ := filepath.Glob(filepath.Join(e.coresDir, "core*"))
	if len(left) != len(e.scenarios)-1 {
		t.Errorf("%d cores left, want %d", len(left), len(e.scenarios)-1)
	}
	if _, err := os.Stat(filepath.Join(e.coresDir, filepath.Base(oldest(e.scenarios).Core))); !os.IsNotExist(err) {
		t.Errorf("retention did not delete the oldest core: %v", err)
	}

	// /metrics.
	m := get(t, e.url+"/metrics")
	sum := 0
	for _, line := range strings.Split(m, "\n") {
		if strings.HasPrefix(line, "coroner_crashes_total{") {
			var n int
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%d", &n)
			sum += n
		}
	}
	if sum != len(e.scenarios) {
		t.Errorf("/metrics coroner_crashes_total sums to %d, want %d:\n%s", sum, len(e.scenarios), m)
	}
	for fp := range fps {
		if !strings.Contains(m, `,fingerprint="`+fp+`",`) {
			t.Errorf("/metrics lacks fingerprint %s", fp)
		}
	}
	for _, want := range []string{
		fmt.Sprintf("coroner_analysis_duration_seconds_count %d\n", len(e.scenarios)),
		"coroner_analysis_queue_length 0\n", "coroner_cores_deleted_total 1\n", "coroner_cores_on_disk_bytes ",
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// Dashboard.
	home := get(t, e.url+"/")
	for fp := range fps {
		if !strings.Contains(home, `href="/group/`+fp+`"`) {
			t.Errorf("dashboard lacks group %s", fp)
		}
	}
	if !strings.Contains(home, "<svg class=\"timeline\"") || strings.Contains(home, "no crashes in the last 48 hours") && time.Since(scenarioTime(oldest(e.scenarios))) < 47*time.Hour {
		t.Error("dashboard timeline missing or empty")
	}
	for _, g := range gs {
		page := get(t, e.url+"/group/"+g.Fingerprint)
		if g.Title != "" && !strings.Contains(page, htmlEscape(g.Title)) {
			t.Errorf("group page %s lacks title %q", g.Fingerprint, g.Title)
		}
		if g.Diagnosis != nil && len(g.Diagnosis.Fix) > 0 && !strings.Contains(page, "<h3>Fix</h3>") {
			t.Errorf("group page %s lacks the fix", g.Fingerprint)
		}
		for _, u := range g.URIs {
			if u.Value != "" && !strings.Contains(page, htmlEscape(u.Value)) {
				t.Errorf("group page %s lacks URI %q", g.Fingerprint, u.Value)
			}
		}
	}
	for _, sc := range e.scenarios {
		c := byPID[sc.PID]
		page := get(t, fmt.Sprintf("%s/crash/%d", e.url, c.ID))
		for _, want := range []string{fmt.Sprintf("pid %d", sc.PID), `id="native-stack"`, `id="fault"`, `id="php-stack"`} {
			if !strings.Contains(page, want) {
				t.Errorf("%s: crash page lacks %q", sc.Name, want)
			}
		}
	}
}

func pidOf(e *env, name string) int {
	if sc := e.lab.Scenarios[name]; sc != nil {
		return sc.PID
	}
	return -1
}

func oldest(scs []*labtest.Scenario) *labtest.Scenario {
	s := append([]*labtest.Scenario(nil), scs...)
	sort.Slice(s, func(i, j int) bool { return scenarioTime(s[i]).Before(scenarioTime(s[j])) })
	return s[0]
}

func scenarioTime(sc *labtest.Scenario) time.Time {
	fi, err := os.Stat(sc.Core)
	if err != nil {
		return time.Time{}
	}
	return fi.ModTime()
}

func htmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// apiSchemas validates the dashboard's API answers on the crashes the
// watcher recorded from the lab against docs/schema/api-*.json: every
// endpoint before any state change; then a group resolved through the API
// crashes again (the watcher records one of its reports anew: regressed),
// another is ignored, and every endpoint is asked again. Each schema must
// then reject mutated copies of the real answers.
func (e *env) apiSchemas(t *testing.T) {
	ctx := context.Background()
	c, err := apicheck.New("../../../docs/schema", e.url)
	if err != nil {
		t.Fatal(err)
	}
	c.Walk(t)
	cs, err := e.st.Crashes(ctx, "", 100)
	if err != nil || len(cs) < 2 {
		t.Fatalf("crashes: %d %v", len(cs), err)
	}
	var again *store.Crash
	for i := range cs {
		if cs[i].PID == pidOf(e, "ffi-null-code") || again == nil {
			again = &cs[i]
		}
	}
	c.SetState(t, again.Fingerprint, store.StateResolved, "lab")
	full, err := e.st.Crash(ctx, again.ID)
	if err != nil {
		t.Fatal(err)
	}
	rep := full.Report
	rep.Process.PID += 1 << 20 // another worker of the same crash
	rc, err := e.w.Record(ctx, rep, watch.RecordInfo{CorePath: filepath.Join(e.coresDir, "core.again"), CoreMTime: time.Now()})
	if err != nil || !rc.Regressed {
		t.Fatalf("the crash of a resolved group: %+v %v", rc, err)
	}
	for i := range cs {
		if cs[i].Fingerprint != again.Fingerprint {
			c.SetState(t, cs[i].Fingerprint, store.StateIgnored, "lab")
			break
		}
	}
	groups, crashes := c.Walk(t)
	if crashes != len(cs)+1 {
		t.Errorf("the API lists %d crashes, want %d", crashes, len(cs)+1)
	}
	for _, what := range []string{"group new", "group regressed", "group ignored", "group with regressions", "crash with report"} {
		if c.Seen(what) == 0 {
			t.Errorf("no validated answer shows a %s", what)
		}
	}
	t.Logf("%d groups, %d crashes; answers validated: %s", groups, crashes, c.Counts())
	c.CheckMutations(t)
}
