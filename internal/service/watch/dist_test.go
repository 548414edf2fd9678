package watch_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/service/server"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
)

// distDir is the repository's dist directory.
var distDir = filepath.Join("..", "..", "..", "dist")

// scrapeWatcher scrapes the /metrics of a real watcher and dashboard (over
// HTTP on 127.0.0.1) on a SQLite store holding a crash and a worker death,
// and returns the label names of each metric it exports.
func scrapeWatcher(t *testing.T) map[string]map[string]bool {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w, err := watch.New(watch.Config{Store: st, Host: "web1", SpoolDir: filepath.Join(t.TempDir(), "spool")})
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().Add(-time.Minute)
	if _, err := st.RecordCrash(ctx, &store.Crash{Host: "web1", Time: at, PID: 7, Signal: 11, SignalName: "SIGSEGV",
		Pool: "www", Fingerprint: "ab12", Rule: "opcache-jit", Title: "JIT crash"}); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordIncident(ctx, &store.Incident{Host: "web1", Time: at, Kind: "crash", PID: 7, Pool: "www",
		Signal: 11, SignalName: "SIGSEGV", Source: "php-fpm", JSON: "{}"}); err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st, MetricsHost: w.Host(), Version: "test",
		Metrics: w.Metrics.WritePrometheus, Health: func(context.Context) (bool, []string) { return true, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	resp, err := ts.Client().Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	metrics := map[string]map[string]bool{}
	series := regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? `)
	label := regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="`)
	for _, line := range strings.Split(string(body), "\n") {
		m := series.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if metrics[m[1]] == nil {
			metrics[m[1]] = map[string]bool{}
		}
		for _, l := range label.FindAllStringSubmatch(m[2], -1) {
			metrics[m[1]][l[1]] = true
		}
	}
	if len(metrics) < 20 {
		t.Fatalf("scraped %d metrics:\n%s", len(metrics), body)
	}
	return metrics
}

var (
	quoted       = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	metricRef    = regexp.MustCompile(`\bcoroner_[a-z0-9_]+`)
	selectorRef  = regexp.MustCompile(`\b(coroner_[a-z0-9_]+)\{([^}]*)\}`)
	matcherLabel = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)`)
	groupingRef  = regexp.MustCompile(`\b(?:by|on|ignoring|group_left|group_right)\s*\(([^)]*)\)`)
)

// checkQuery checks that a PromQL expression names only metrics coroner
// exports, with labels they have: in selectors, the labels of that metric;
// in by/on/group_left clauses, a label of one of the metrics it names (or
// one Prometheus adds).
func checkQuery(t *testing.T, where, expr string, metrics map[string]map[string]bool) {
	t.Helper()
	named := map[string]bool{}
	for _, name := range metricRef.FindAllString(expr, -1) {
		if metrics[name] == nil {
			t.Errorf("%s: %s is not a metric coroner exports: %s", where, name, expr)
		}
		named[name] = true
	}
	if len(named) == 0 {
		t.Errorf("%s: names no coroner metric: %s", where, expr)
	}
	for _, sel := range selectorRef.FindAllStringSubmatch(expr, -1) {
		for _, l := range matcherLabel.FindAllStringSubmatch(quoted.ReplaceAllString(sel[2], `""`), -1) {
			if !metrics[sel[1]][l[1]] {
				t.Errorf("%s: %s has no label %q: %s", where, sel[1], l[1], expr)
			}
		}
	}
	for _, g := range groupingRef.FindAllStringSubmatch(expr, -1) {
		for _, l := range strings.Split(g[1], ",") {
			l = strings.TrimSpace(l)
			if l == "" || l == "instance" || l == "job" || l == "le" {
				continue
			}
			ok := false
			for name := range named {
				ok = ok || metrics[name][l]
			}
			if !ok {
				t.Errorf("%s: no metric it names has the label %q: %s", where, l, expr)
			}
		}
	}
}

// TestGrafanaDashboard loads dist/grafana/coroner.json and checks that
// every query of its panels and variables names metrics and labels a real
// watcher exports.
func TestGrafanaDashboard(t *testing.T) {
	metrics := scrapeWatcher(t)
	b, err := os.ReadFile(filepath.Join(distDir, "grafana", "coroner.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Title  string `json:"title"`
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("dashboard JSON: %v", err)
	}
	if dash.Title == "" || dash.UID == "" || len(dash.Panels) < 8 {
		t.Fatalf("dashboard: title %q uid %q, %d panels", dash.Title, dash.UID, len(dash.Panels))
	}
	used := map[string]bool{}
	for _, p := range dash.Panels {
		if p.Datasource.UID != "${datasource}" {
			t.Errorf("panel %q: data source %q, want the ${datasource} variable", p.Title, p.Datasource.UID)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			checkQuery(t, "panel "+p.Title, tg.Expr, metrics)
			for _, name := range metricRef.FindAllString(tg.Expr, -1) {
				used[name] = true
			}
		}
	}
	for _, v := range dash.Templating.List {
		if q, ok := v.Query.(map[string]any); ok {
			checkQuery(t, "variable "+v.Name, q["query"].(string), metrics)
		}
	}
	// The series an SRE builds on are all on the dashboard.
	for _, name := range []string{"coroner_worker_deaths_total", "coroner_crashes_total", "coroner_group_info",
		"coroner_last_crash_timestamp_seconds", "coroner_analysis_duration_seconds_bucket", "coroner_spool_records",
		"coroner_database_up", "coroner_build_info"} {
		if !used[name] {
			t.Errorf("the dashboard does not show %s", name)
		}
	}
}

// TestAlertRules checks dist/prometheus/alerts.yml with promtool (Debian's
// prometheus package): the rules parse (check rules), fire and stay quiet
// as alerts_test.yml and alerts_regression_test.yml say (test rules), and name metrics and labels a real
// watcher exports.
func TestAlertRules(t *testing.T) {
	metrics := scrapeWatcher(t)
	path := filepath.Join(distDir, "prometheus", "alerts.yml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var exprs []string
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		if !strings.HasPrefix(l, "expr:") {
			continue
		}
		e := strings.TrimSpace(strings.TrimPrefix(l, "expr:"))
		if e == "|" {
			e = ""
			indent := len(lines[i]) - len(strings.TrimLeft(lines[i], " "))
			for i+1 < len(lines) && (strings.TrimSpace(lines[i+1]) == "" || len(lines[i+1])-len(strings.TrimLeft(lines[i+1], " ")) > indent) {
				i++
				e += lines[i] + "\n"
			}
		}
		exprs = append(exprs, e)
	}
	if len(exprs) < 6 {
		t.Fatalf("%d alert expressions in %s", len(exprs), path)
	}
	for _, e := range exprs {
		checkQuery(t, "alerts.yml", e, metrics)
	}
	for _, want := range []string{"PHPWorkersCrashing", "CoronerNewCrashGroup", "CoronerCrashGroupRegressed", "CoronerCoreCaptureBlocked"} {
		if !strings.Contains(string(b), "alert: "+want+"\n") {
			t.Errorf("alerts.yml lacks %s", want)
		}
	}

	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool not installed (Debian's prometheus package; make deps installs it): rules not checked by Prometheus")
	}
	for _, args := range [][]string{{"check", "rules", "alerts.yml"}, {"test", "rules", "alerts_test.yml", "alerts_regression_test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = filepath.Join(distDir, "prometheus")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	// Every alert has a test.
	var tb []byte
	for _, f := range []string{"alerts_test.yml", "alerts_regression_test.yml"} {
		b, err := os.ReadFile(filepath.Join(distDir, "prometheus", f))
		if err != nil {
			t.Fatal(err)
		}
		tb = append(tb, b...)
	}
	var untested []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\w+)`).FindAllStringSubmatch(string(b), -1) {
		if !strings.Contains(string(tb), "alertname: "+m[1]+"\n") {
			untested = append(untested, m[1])
		}
	}
	sort.Strings(untested)
	if len(untested) > 0 {
		t.Errorf("alerts without a promtool test: %v", untested)
	}
}

// unitDirectives returns the values of a directive of
// dist/coroner-watch.service (every occurrence).
func unitDirectives(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(distDir, "coroner-watch.service"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+"="); ok {
			out = append(out, v)
		}
	}
	return out
}

// TestUnitHardening: systemd's own rating of dist/coroner-watch.service
// is 2.5 or better, and the sandbox keeps what the watcher needs.
func TestUnitHardening(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed")
	}
	unit, err := filepath.Abs(filepath.Join(distDir, "coroner-watch.service"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "security", "--offline=yes", unit).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for coroner-watch.service: (\d+\.\d)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in:\n%s", out)
	}
	if string(m[1]) > "2.5" || len(m[1]) != 3 {
		t.Errorf("exposure %s, want 2.5 or better:\n%s", m[1], out)
	}
	t.Logf("systemd-analyze security --offline=yes: exposure %s", m[1])
	for name, want := range map[string]string{"ProtectSystem": "strict", "NoNewPrivileges": "yes", "PrivateTmp": "yes",
		"ProtectHome": "read-only", "SystemCallFilter": "@system-service", "StateDirectory": "coroner"} {
		if got := unitDirectives(t, name); len(got) != 1 || got[0] != want {
			t.Errorf("%s=%v, want %s", name, got, want)
		}
	}
	if caps := unitDirectives(t, "CapabilityBoundingSet"); len(caps) != 1 || strings.Contains(caps[0], "CAP_SYS_ADMIN") || strings.Contains(caps[0], "CAP_DAC_OVERRIDE") {
		t.Errorf("CapabilityBoundingSet=%v", caps)
	}
}

// TestWatcherWithUnitCapabilities runs the real `coroner watch` as root
// with only the capabilities of the unit's CapabilityBoundingSet (setpriv)
// and no new privileges, on a core owned by another user (mode 0600) in a
// world-writable sticky directory like /var/crash: the core is analysed and
// recorded, retention deletes the older core, and the --on-new-group hook
// runs as nobody. With --log-format json, each of those is one JSON line.
func TestWatcherWithUnitCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	var bounding []string
	for _, c := range strings.Fields(unitDirectives(t, "CapabilityBoundingSet")[0]) {
		bounding = append(bounding, "+"+strings.ToLower(strings.TrimPrefix(c, "CAP_")))
	}
	wrapper := []string{setpriv, "--bounding-set=-all," + strings.Join(bounding, ","), "--inh-caps=-all", "--no-new-privs", "--"}

	dir := t.TempDir()
	src := filepath.Join(dir, "segv.c")
	if err := os.WriteFile(src, []byte("int main(void) { volatile int *p = 0; return *p; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "segv")
	if out, err := exec.Command("gcc", "-g", "-O0", "-o", prog, src).CombinedOutput(); err != nil {
		t.Skipf("gcc: %v %s", err, out)
	}
	core, _ := labtest.CrashCore(t, dir, nil, prog)
	cores := filepath.Join(dir, "crash")
	if err := os.Mkdir(cores, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cores, 0o1733); err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{"core.segv.100", "core.segv.200"} {
		p := filepath.Join(cores, name)
		b, err := os.ReadFile(core)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(time.Duration(i-10) * time.Minute)
		os.Chtimes(p, mt, mt)
	}
	// The sandbox is real: without CAP_DAC_READ_SEARCH root cannot read the core.
	if out, err := exec.Command(setpriv, "--bounding-set=-all", "--inh-caps=-all", "--", "head", "-c1", filepath.Join(cores, "core.segv.100")).CombinedOutput(); err == nil {
		t.Fatalf("root without capabilities read a core of nobody's: %s", out)
	}
	p := startWatchUnder(t, wrapper, buildCoroner(t), "--db", "sqlite:"+filepath.Join(dir, "coroner.db"),
		"--state-dir", filepath.Join(dir, "state"), "--cores", cores, "--no-logs", "--discover=false", "--poll", "200ms",
		"--nice", "-1", "--all-processes", "--keep-cores", "1", "--log-format", "json",
		"--on-new-group", `echo "hook uid=$(id -u) fp=$CORONER_FINGERPRINT"; exit 3`)
	p.waitLine("hook uid=" + nobody.Uid + " fp=")
	for deadline := time.Now().Add(2 * time.Minute); p.metric("coroner_recorded_crashes_total") < 2; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the cores were not recorded (recorded %d, failures %d)", p.metric("coroner_recorded_crashes_total"), p.metric("coroner_analysis_failures_total"))
		}
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(filepath.Join(cores, "core.segv.100")); os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("retention did not delete the older core of nobody's in the sticky directory")
		}
	}
	if _, err := os.Stat(filepath.Join(cores, "core.segv.200")); err != nil {
		t.Errorf("retention deleted the newest core: %v", err)
	}

	// The log: one JSON object a line, one event per analysis, new group
	// and deletion.
	p.waitLine(`"event":"core-deleted"`)
	p.mu.Lock()
	lines := append([]string(nil), p.lines...)
	p.mu.Unlock()
	events := map[string][]map[string]any{}
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("not a JSON line: %s", l)
			continue
		}
		if m["time"] == nil || m["level"] == nil || m["msg"] == nil {
			t.Errorf("JSON line without time, level or msg: %s", l)
		}
		if ev, ok := m["event"].(string); ok {
			events[ev] = append(events[ev], m)
		}
	}
	if rec := events[watch.EventCrashRecorded]; len(rec) != 2 || rec[0]["fingerprint"] == "" || rec[0]["signal"] != "SIGSEGV" ||
		rec[0]["crash_id"] == nil || rec[0]["analysis_ms"] == nil || rec[0]["new_group"] != true || rec[1]["new_group"] != false {
		t.Errorf("crash-recorded events: %v", rec)
	}
	if ng := events[watch.EventNewGroup]; len(ng) != 1 || ng[0]["fingerprint"] != events[watch.EventCrashRecorded][0]["fingerprint"] {
		t.Errorf("new-group events: %v", ng)
	}
	if del := events[watch.EventCoreDeleted]; len(del) != 1 || del[0]["core"] != filepath.Join(cores, "core.segv.100") ||
		del[0]["reason"] != "keep-cores" || del[0]["analysed"] != true {
		t.Errorf("core-deleted events: %v", del)
	}
}
