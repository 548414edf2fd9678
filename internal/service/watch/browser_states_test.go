package watch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/service/store"
)

// clickPage is a test page of the dashboard's origin that opens a
// dashboard page in a frame, clicks one of its buttons (a real form POST
// of the browser, with its Origin and Sec-Fetch-Site), and copies the
// state the page shows afterwards into its own DOM.
const clickPage = `<!doctype html><html><body><div id="result">pending</div>
<iframe id="f" src="%s" width="1200" height="800"></iframe>
<script>
var loads = 0;
document.getElementById('f').addEventListener('load', function () {
  loads++;
  var d = this.contentDocument;
  if (loads === 1) { d.getElementById('%s').click(); return; }
  var st = d.getElementById('group-state');
  document.getElementById('result').textContent = 'state=' + (st ? st.textContent : 'none: ' + d.body.textContent.slice(0, 200)) + ' loads=' + loads;
});
</script></body></html>`

// crossSitePage is a page of another site that posts the state form of
// the dashboard as soon as it loads.
const crossSitePage = `<!doctype html><html><body>
<form id="x" method="post" action="%s"><input type="hidden" name="state" value="new"></form>
<script>document.getElementById('x').submit();</script></body></html>`

// browserStates drives headless Chromium over the lab's real crashes:
// it resolves one group and ignores another with the group page's buttons,
// sees a page of another site refused when it posts the same form, makes
// the resolved group regress with a new core of the same crash, and checks
// the states, the default list (ignored hidden), the state filter, the
// --on-regression hook and /metrics; screenshots at 1400 and 420 px.
func (e *env) browserStates(t *testing.T) {
	bin := chromium(t)
	ctx := context.Background()
	cs, err := e.st.Crashes(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int]store.Crash{}
	for _, c := range cs {
		byPID[c.PID] = c
	}
	// The group to resolve (and make regress) and the one to ignore: two
	// scenarios of other groups, the first with a core still on the lab's disk.
	var resolve, ignore *labtest.Scenario
	for _, sc := range e.scenarios {
		c, ok := byPID[sc.PID]
		if !ok {
			continue
		}
		switch {
		case resolve == nil && !strings.HasSuffix(sc.Core, ".zst"):
			resolve = sc
		case ignore == nil && resolve != nil && c.Fingerprint != byPID[resolve.PID].Fingerprint:
			ignore = sc
		}
	}
	if resolve == nil || ignore == nil {
		t.Fatal("the lab's crashes form fewer than two groups")
	}
	fpR, fpI := byPID[resolve.PID].Fingerprint, byPID[ignore.PID].Fingerprint

	click := func(name, fp, button string) string {
		t.Helper()
		e.pagesMu.Lock()
		e.pages["/_test/"+name] = fmt.Sprintf(clickPage, "/group/"+fp, button)
		e.pagesMu.Unlock()
		dom := headless(t, bin, "--virtual-time-budget=10000", "--dump-dom", e.url+"/_test/"+name)
		i := strings.Index(dom, `<div id="result">`)
		if i < 0 {
			t.Fatalf("%s: no result in the test page:\n%s", name, dom)
		}
		res := dom[i+len(`<div id="result">`):]
		return res[:strings.Index(res, "<")]
	}
	if got := click("resolve", fpR, "state-resolved"); got != "state=resolved loads=2" {
		t.Errorf("resolve in the browser: %s", got)
	}
	if got := click("ignore", fpI, "state-ignored"); got != "state=ignored loads=2" {
		t.Errorf("ignore in the browser: %s", got)
	}
	g, err := e.st.Group(ctx, fpR)
	if err != nil || g.State != store.StateResolved || g.StateBy != "dashboard" || g.ResolvedAt.IsZero() {
		t.Fatalf("resolved group: %+v, %v", g, err)
	}
	if g, err := e.st.Group(ctx, fpI); err != nil || g.State != store.StateIgnored {
		t.Fatalf("ignored group: %+v, %v", g, err)
	}

	// A page of another origin (another port of 127.0.0.1: same site, not
	// same origin) posting the form: refused, the state stays.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, crossSitePage, e.url+"/group/"+fpI+"/state")
	}))
	defer evil.Close()
	dom := headless(t, bin, "--virtual-time-budget=5000", "--dump-dom", evil.URL+"/")
	if !strings.Contains(dom, "cross-site request refused") {
		t.Errorf("the other site's form POST was not refused:\n%s", dom)
	}
	if g, _ := e.st.Group(ctx, fpI); g.State != store.StateIgnored {
		t.Errorf("a page of another site changed the state to %s", g.State)
	}

	// The resolved group crashes again: a new core of the same crash.
	again := filepath.Join(e.coresDir, filepath.Base(resolve.Core)+".again")
	copyFile(t, resolve.Core, again)
	now := time.Now()
	if err := os.Chtimes(again, now, now); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the resolved group to regress", func() bool {
		g, err := e.st.Group(ctx, fpR)
		return err == nil && g.State == store.StateRegressed
	})
	g, _ = e.st.Group(ctx, fpR)
	if g.Regressions != 1 || g.StateBy != "coroner" {
		t.Errorf("regressed group: %+v", g)
	}
	waitFor(t, "--on-regression", func() bool {
		b, _ := os.ReadFile(e.regFile)
		return strings.Contains(string(b), "regressed "+fpR+" ")
	})
	m := get(t, e.url+"/metrics")
	for _, want := range []string{"coroner_regressed_groups_total 1\n", `coroner_group_state{fingerprint="` + fpR + `",state="regressed"} 1`,
		`coroner_group_regressions_total{fingerprint="` + fpR + `"} 1`, `coroner_group_state{fingerprint="` + fpI + `",state="ignored"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	// What the browser shows: the regressed group marked, the ignored one
	// hidden by default and shown by the state filter.
	dom = headless(t, bin, "--dump-dom", e.url+"/")
	if !strings.Contains(dom, `data-fingerprint="`+fpR+`" data-state="regressed"`) || strings.Contains(dom, `data-fingerprint="`+fpI+`"`) ||
		!strings.Contains(dom, `id="ignored-note"`) || !strings.Contains(dom, `<svg class="spark"`) {
		t.Errorf("groups page: want %s regressed, %s hidden, the ignored note and sparklines", fpR, fpI)
	}
	dom = headless(t, bin, "--dump-dom", e.url+"/?state=ignored")
	if !strings.Contains(dom, `data-fingerprint="`+fpI+`" data-state="ignored"`) || strings.Contains(dom, `data-fingerprint="`+fpR+`"`) {
		t.Errorf("state=ignored: want %s only", fpI)
	}
	dom = headless(t, bin, "--dump-dom", e.url+"/?state=regressed")
	if !strings.Contains(dom, `data-fingerprint="`+fpR+`"`) || strings.Count(dom, "data-fingerprint=") != 1 {
		t.Errorf("state=regressed: want %s only", fpR)
	}
	dom = headless(t, bin, "--dump-dom", e.url+"/group/"+fpR)
	if !strings.Contains(dom, `id="group-state">regressed`) || !strings.Contains(dom, "regressed 1 time") || !strings.Contains(dom, `id="state-resolved"`) {
		t.Errorf("group page of the regressed group lacks its state or the resolve button")
	}

	dir := os.Getenv("CORONER_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, s := range []struct{ name, size, path string }{
		{"dashboard-states-1400.png", "1400,1100", "/?state=all"},
		{"dashboard-states-420.png", "420,1600", "/?state=all"},
		{"dashboard-regressed-1400.png", "1400,1000", "/group/" + fpR},
		{"dashboard-regressed-420.png", "420,1400", "/group/" + fpR},
	} {
		shot := filepath.Join(dir, s.name)
		headless(t, bin, "--window-size="+s.size, "--screenshot="+shot, "--hide-scrollbars", e.url+s.path)
		fi, err := os.Stat(shot)
		if err != nil || fi.Size() < 10000 {
			t.Errorf("screenshot %s: %v", shot, err)
			continue
		}
		t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
	}
}
