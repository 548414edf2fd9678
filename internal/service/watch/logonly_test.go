package watch_test

import (
	"context"
	"encoding/json"
	"log"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/service/server"
	"github.com/coroner-dev/coroner/internal/service/server/apicheck"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// TestLogOnlyGroups feeds a watcher the lab's nginx, FPM and kernel lines
// of four deaths as a host that dumps no core writes them (FPM's line
// without "- core dumped"): each becomes a log-only crash, grouped by the
// symbolized crash site and the request path. The two runs of
// ffi-null-code share a group; the libc crash is named by its function, as
// `coroner logs` names it, not by its file offset.
func TestLogOnlyGroups(t *testing.T) {
	lab := labtest.Get(t)
	names := []string{"ffi-null-code", "ffi-null-code-2", "method-closure-include", "shortcode-recursion"}
	var scs []*labtest.Scenario
	for _, n := range names {
		sc := lab.Scenarios[n]
		if sc == nil || len(sc.Kernel) == 0 || len(sc.FPMLog) == 0 {
			t.Skipf("lab scenario %s has no kernel or FPM lines (the kernel rate-limits them)", n)
		}
		scs = append(scs, sc)
	}
	dir := t.TempDir()
	files := map[string][]string{}
	for _, sc := range scs {
		files["nginx-error.log"] = append(files["nginx-error.log"], sc.NginxError...)
		for _, l := range sc.FPMLog {
			files["fpm.log"] = append(files["fpm.log"], strings.Replace(l, " - core dumped)", ")", 1))
		}
		files["kernel.log"] = append(files["kernel.log"], sc.Kernel...)
	}
	var inputs []logs.Input
	for name, lines := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, logs.Input{Path: p, Format: logs.FormatAuto})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	w, err := watch.New(watch.Config{Store: st, Host: "lab-host", Logs: inputs, LogsFromStart: true, Nice: -1,
		Logger: log.New(testWriter{t}, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	wg.Add(2)
	go func() { defer wg.Done(); w.Run(ctx) }()
	go func() { defer wg.Done(); srv.Serve(ctx, ln) }()
	waitFor(t, "4 log-only crashes", func() bool {
		cs, err := st.Crashes(ctx, "", 100)
		return err == nil && len(cs) >= len(scs)
	})
	cs, _ := st.Crashes(ctx, "", 100)
	byPID := map[int]store.Crash{}
	for _, c := range cs {
		if !c.LogOnly || c.CorePath != "" {
			t.Errorf("crash %+v is not log-only", c)
		}
		byPID[c.PID] = c
	}
	if len(cs) != len(scs) {
		t.Errorf("%d crashes, want %d", len(cs), len(scs))
	}
	fp := map[string]string{}
	for i, sc := range scs {
		c, ok := byPID[sc.PID]
		if !ok {
			t.Fatalf("%s: no crash of pid %d", sc.Name, sc.PID)
		}
		path, _, _ := strings.Cut(sc.URL, "?")
		if !strings.HasPrefix(c.URI, path) || c.Signal != sc.Signal || c.Pool == "" {
			t.Errorf("%s: crash %+v, want URI %s", sc.Name, c, sc.URL)
		}
		fp[names[i]] = c.Fingerprint
		g, err := st.Group(ctx, c.Fingerprint)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%-24s pid %d fp %s site %q uri %q", sc.Name, sc.PID, c.Fingerprint, g.Frame, c.URI)
		// opcache.so has no symbol table: its site stays module+offset.
		if !g.LogOnly || g.Frame == "" || sc.Name != "shortcode-recursion" && !strings.Contains(g.Frame, "!") {
			t.Errorf("%s: group %+v: not log-only, or its site is not symbolized", sc.Name, g)
		}
	}
	if fp["ffi-null-code"] != fp["ffi-null-code-2"] || fp["ffi-null-code"] == fp["method-closure-include"] || fp["shortcode-recursion"] == fp["ffi-null-code"] {
		t.Errorf("fingerprints: %v", fp)
	}
	libc, _ := st.Group(ctx, fp["method-closure-include"])
	if !strings.HasPrefix(libc.Frame, "libc.so.6!") || strings.HasPrefix(libc.Frame, "libc.so.6!+") {
		t.Errorf("libc crash site %q, want libc.so.6!FUNCTION+0xOFF", libc.Frame)
	}
	ffi, _ := st.Group(ctx, fp["ffi-null-code"])
	if ffi.Count != 2 {
		t.Errorf("ffi-null-code group: %d crashes, want 2", ffi.Count)
	}
	// The lists mark them.
	page := get(t, url+"/")
	if strings.Count(page, `class="badge logonly"`) != 3 || !strings.Contains(page, strings.ReplaceAll(libc.Frame, "+", "&#43;")) {
		t.Errorf("groups page lacks the log-only marks or the libc site")
	}
	var ans struct {
		Groups []server.APIGroup `json:"groups"`
	}
	if err := json.Unmarshal([]byte(get(t, url+"/api/v1/groups")), &ans); err != nil || len(ans.Groups) != 3 {
		t.Fatalf("API groups: %+v %v", ans, err)
	}
	for _, g := range ans.Groups {
		if !g.LogOnly || g.Site == "" {
			t.Errorf("API group %+v", g)
		}
	}
	// The API's answers on log-only crashes (no report) match its schemas;
	// a log-only group resolved through the API too.
	ac, err := apicheck.New("../../../docs/schema", url)
	if err != nil {
		t.Fatal(err)
	}
	ac.SetState(t, fp["ffi-null-code"], store.StateResolved, "lab")
	ac.Walk(t)
	if ac.Seen("log-only crash") == 0 || ac.Seen("log-only group") == 0 || ac.Seen("group resolved") == 0 {
		t.Errorf("the API's answers show no log-only crash, log-only group or resolved group")
	}
	t.Logf("answers validated: %s", ac.Counts())
	ac.CheckMutations(t)
	// Worker deaths are still counted as such; no analysed crash is.
	m := get(t, url+"/metrics")
	if strings.Contains(m, "coroner_crashes_total{") || !strings.Contains(m, "coroner_worker_deaths_total{") {
		t.Errorf("/metrics counts log-only crashes as analysed, or lacks the deaths")
	}
}
