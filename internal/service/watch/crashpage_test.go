package watch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/service/server"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// maxCrashPage is the weight budget of a crash page (issue 15): the page of
// a 41k-frame crash stays under it.
const maxCrashPage = 300 << 10

var (
	recursionOnce sync.Once
	recursionRep  []byte
)

// recursionReport analyses the checked-in core of the lab's shortcode
// recursion (41,226 native frames) as TestGolden does, once per process,
// and returns a fresh copy of its report.
func recursionReport(tb testing.TB) *crash.Report {
	tb.Helper()
	recursionOnce.Do(func() {
		f := labtest.GetFixture(tb, "php-shortcode-recursion")
		rep, err := analyze.Core(f.PlainCore(tb), analyze.Options{Sysroot: f.Sysroot, NoHostDebugFiles: true})
		if err != nil {
			tb.Fatalf("analyse %s: %v", f.Name, err)
		}
		kb, err := diagnose.Load()
		if err != nil {
			tb.Fatal(err)
		}
		rep.Diagnosis = kb.Diagnose(rep, diagnose.Evidence{})
		rep.Fingerprint = diagnose.Fingerprint(rep)
		recursionRep, _ = json.Marshal(rep)
	})
	var rep crash.Report
	if err := json.Unmarshal(recursionRep, &rep); err != nil {
		tb.Fatal(err)
	}
	return &rep
}

// crashPageServer records the recursion crash twice, as the watcher stores
// it (its stacks trimmed to the innermost and outermost frames) and whole
// (a report of 41,226 native frames in the database), and serves the
// dashboard.
func crashPageServer(tb testing.TB) (url string, stored, whole int64) {
	tb.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(tb.TempDir(), "p.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { st.Close() })
	w, err := watch.New(watch.Config{Store: st, Host: "h", Nice: -1, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		tb.Fatal(err)
	}
	rep := recursionReport(tb)
	if n := len(rep.CrashedThread().Frames); n < 40000 {
		tb.Fatalf("the recursion has %d native frames, want 41k", n)
	}
	c, err := w.Record(ctx, rep, watch.RecordInfo{CorePath: "/var/lib/coroner/cores/core.php-fpm8.2.12935", CoreMTime: time.Unix(1796564276, 0)})
	if err != nil {
		tb.Fatal(err)
	}
	full := recursionReport(tb)
	wc := &store.Crash{Host: "h", Time: time.Unix(1796564300, 0), PID: full.Process.PID + 1, Signal: 11, SignalName: "SIGSEGV",
		Fingerprint: full.Fingerprint, Report: full}
	if _, err := st.RecordCrash(ctx, wc); err != nil {
		tb.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st})
	if err != nil {
		tb.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	tb.Cleanup(ts.Close)
	return ts.URL, c.ID, wc.ID
}

func getPage(tb testing.TB, url string) []byte {
	tb.Helper()
	resp, err := http.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		tb.Fatalf("GET %s: %s %s", url, resp.Status, body)
	}
	return body
}

// TestCrashPageWeight: the crash page of the 41k-frame recursion, stored
// as the watcher stores it or whole, weighs less than 300 KB (bytes are
// deterministic; the time is BenchmarkCrashPage's) and still shows the
// folded cycles, the PHP arguments and the frames after the recursion.
func TestCrashPageWeight(t *testing.T) {
	url, stored, whole := crashPageServer(t)
	for name, id := range map[string]int64{"stored": stored, "whole": whole} {
		page := getPage(t, fmt.Sprintf("%s/crash/%d", url, id))
		t.Logf("%s report: crash page of %d bytes", name, len(page))
		if len(page) >= maxCrashPage {
			t.Errorf("%s report: the crash page weighs %d bytes, over the %d budget", name, len(page), maxCrashPage)
		}
		text := string(page)
		for _, want := range []string{"cycle of 12 frames × 3,434", "do_shortcode(<span class=\"args\">&#34;[teacher_card name=\\&#34;sarah\\&#34;]&#34;</span>)",
			"{main}", "← php: <code>", "Copy Markdown bug report"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s report: crash page lacks %q", name, want)
			}
		}
	}
}

// BenchmarkCrashPage measures the server time of the crash page of the
// 41k-frame recursion (go test -bench CrashPage ./internal/service/watch/):
// as the watcher stores it, and whole.
func BenchmarkCrashPage(b *testing.B) {
	url, stored, whole := crashPageServer(b)
	for _, c := range []struct {
		name string
		id   int64
	}{{"stored", stored}, {"whole", whole}} {
		b.Run(c.name, func(b *testing.B) {
			var size int
			for b.Loop() {
				size = len(getPage(b, fmt.Sprintf("%s/crash/%d", url, c.id)))
			}
			b.ReportMetric(float64(size), "bytes/page")
		})
	}
}

// TestCrashPageBrowser drives headless Chromium (DevTools protocol) on the
// crash pages of real lab crashes recorded by the watcher from the lab's
// cores and logs: the page shows what `coroner analyze` prints for the
// same report (PHP arguments, native frames named and annotated, folded
// cycles, fixes and their commands), the log lines of the worker's death,
// copies the Markdown bug report and downloads the JSON; screenshots at
// 1400 and 420 px (CORONER_ARTIFACTS keeps them).
func TestCrashPageBrowser(t *testing.T) {
	bin := chromium(t)
	e := startEnv(t, "sqlite:"+filepath.Join(t.TempDir(), "coroner.db"))
	ctx := context.Background()
	cs, err := e.st.Crashes(ctx, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*store.Crash{}
	for _, sc := range e.scenarios {
		for i := range cs {
			if strings.Contains(filepath.Base(sc.Core), fmt.Sprint(cs[i].PID)) && byName[sc.Name] == nil {
				byName[sc.Name] = &cs[i]
			}
		}
	}
	browser := startCDP(t, bin)
	dir := os.Getenv("CORONER_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ffi-null-code", "shortcode-recursion"} {
		sum := byName[name]
		if sum == nil {
			t.Errorf("no crash recorded for the lab's %s", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			browser.t = t
			c, err := e.st.Crash(ctx, sum.ID)
			if err != nil {
				t.Fatal(err)
			}
			var cli bytes.Buffer
			if err := render.Text(&cli, c.Report, render.TextOptions{}); err != nil {
				t.Fatal(err)
			}
			page := fmt.Sprintf("%s/crash/%d", e.url, c.ID)
			browser.navigate(page)
			checkLikeCLI(t, browser, cli.String())
			checkLogLines(t, browser, e.st, c)
			checkCopyReport(t, browser, page)
			checkDownload(t, browser, c)
			for _, s := range []struct{ width, height string }{{"1400", "2600"}, {"420", "3000"}} {
				shot := filepath.Join(dir, fmt.Sprintf("dashboard-crash-%s-%s.png", name, s.width))
				headless(t, bin, "--window-size="+s.width+","+s.height, "--screenshot="+shot, "--hide-scrollbars", page)
				fi, err := os.Stat(shot)
				if err != nil || fi.Size() < 10000 {
					t.Errorf("screenshot %s: %v", shot, err)
					continue
				}
				t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
			}
		})
	}
}

var (
	cliPHPLine    = regexp.MustCompile(`^    #\d+\s+(.+\))(?:  (\S+:\d+))?$`)
	cliNativeLine = regexp.MustCompile(`^  #\d+\s+0x[0-9a-f]+  (\S+)\s+(\S+) \[[a-z-]+\](?: at \S+)?(?:  <- php: (.+))?$`)
	cliCycleLine  = regexp.MustCompile(`^ {2,4}#(\d+)\.\.#(\d+): cycle of (\d+) frames x ([0-9,]+)$`)
	cliFixLine    = regexp.MustCompile(`^     fix: (.+)$`)
)

// checkLikeCLI checks that the page the browser rendered shows each line
// of the text report's stacks and fixes.
func checkLikeCLI(t *testing.T, b *cdp, cli string) {
	t.Helper()
	php, native, diag := b.text("#php-stack"), b.text("#native-stack"), b.text("#diagnosis")
	var args, fixes, annotations, cycles int
	for _, line := range strings.Split(cli, "\n") {
		if m := cliPHPLine.FindStringSubmatch(line); m != nil {
			if !strings.Contains(php, m[1]) || (m[2] != "" && !strings.Contains(php, m[2])) {
				t.Errorf("the page's PHP stack lacks %q %q (the CLI: %q)", m[1], m[2], line)
			}
			if !strings.HasSuffix(m[1], "()") {
				args++
			}
			continue
		}
		if m := cliNativeLine.FindStringSubmatch(line); m != nil {
			if !strings.Contains(native, m[1]) || (m[3] != "" && !strings.Contains(native, "← php: "+m[3])) {
				t.Errorf("the page's native stack lacks %q / %q (the CLI: %q)", m[1], m[3], line)
			}
			if m[3] != "" {
				annotations++
			}
			continue
		}
		if m := cliCycleLine.FindStringSubmatch(line); m != nil {
			want := fmt.Sprintf("#%s..#%s: cycle of %s frames × %s", m[1], m[2], m[3], m[4])
			if !strings.Contains(php+native, want) {
				t.Errorf("the page lacks the cycle %q", want)
			}
			cycles++
			continue
		}
		if m := cliFixLine.FindStringSubmatch(line); m != nil {
			fixes++
			fix := m[1]
			if i := strings.Index(fix, " (coroner fix "); i >= 0 {
				cmd := strings.TrimSuffix(fix[i+2:], ")")
				if !strings.Contains(diag, cmd) {
					t.Errorf("the page lacks the command %q the CLI prints", cmd)
				}
				fix = fix[:i]
			}
			if _, desc, ok := strings.Cut(fix, ": "); ok && strings.Contains(fix, " = ") {
				fix = desc
			}
			if !strings.Contains(diag, fix) {
				t.Errorf("the page lacks the fix %q", fix)
			}
		}
	}
	t.Logf("the page shows the CLI's %d PHP frames with arguments, %d native frames annotated with PHP, %d cycles, %d fixes", args, annotations, cycles, fixes)
	if args == 0 || annotations == 0 || fixes == 0 {
		t.Errorf("nothing to compare: %d PHP frames with arguments, %d annotated native frames, %d fixes in the CLI's report", args, annotations, fixes)
	}
}

// checkLogLines checks that the page shows the log lines of the incident
// the logs recorded for the worker's death.
func checkLogLines(t *testing.T, b *cdp, st store.Store, c *store.Crash) {
	t.Helper()
	in, err := st.FindIncident(context.Background(), c.Host, c.PID, c.Time)
	if err != nil {
		t.Fatalf("no incident in the logs for pid %d: %v", c.PID, err)
	}
	var li logs.Incident
	if err := json.Unmarshal([]byte(in.JSON), &li); err != nil {
		t.Fatal(err)
	}
	section := b.text("#logs")
	sources := map[logs.Source]bool{}
	for _, l := range li.Links {
		if !strings.Contains(section, l.Text) {
			t.Errorf("the page lacks the log line %q", l.Text)
		}
		sources[l.Source] = true
	}
	if len(li.Links) < 2 {
		t.Errorf("the incident has %d log lines, want the FPM and the nginx/kernel ones", len(li.Links))
	}
	t.Logf("%d log lines from %d logs shown", len(li.Links), len(sources))
}

// checkCopyReport clicks "Copy Markdown bug report" and checks what was
// copied is the Markdown served at /crash/ID.md: through the Clipboard
// API, then with the API missing (the textarea fallback).
func checkCopyReport(t *testing.T, b *cdp, page string) {
	t.Helper()
	want := string(getPage(t, page+".md"))
	if !strings.HasPrefix(want, "### Crash: SIGSEGV") {
		t.Fatalf("/crash/ID.md is not the Markdown bug report: %.200q", want)
	}
	origin := page[:strings.Index(page, "/crash/")]
	b.call("", "Browser.grantPermissions", map[string]any{"origin": origin,
		"permissions": []string{"clipboardReadWrite", "clipboardSanitizedWrite"}}, nil)
	b.eval(`document.getElementById("copy-report").click()`, nil)
	var how string
	waitFor(t, "the copy", func() bool {
		b.eval(`document.getElementById("copy-report").dataset.copied || ""`, &how)
		return how != ""
	})
	var got string
	switch how {
	case "clipboard":
		b.eval(`navigator.clipboard.readText()`, &got)
	default:
		b.eval(`(function(){var a=document.getElementById("bug-report");return a.value.substring(a.selectionStart,a.selectionEnd)})()`, &got)
	}
	if got != want {
		t.Errorf("copied (%s) %d bytes, not the %d of /crash/ID.md:\n%.300q", how, len(got), len(want), got)
	}
	t.Logf("copy-report: %s, %d bytes; status %q", how, len(got), b.text("#copy-status"))

	// Without the Clipboard API: the report is selected in its textarea.
	b.navigate(page)
	b.eval(`Object.defineProperty(navigator, "clipboard", {value: undefined, configurable: true}); document.getElementById("copy-report").click()`, nil)
	var sel struct {
		How, Text string
		Open      bool
	}
	b.eval(`(function(){var a=document.getElementById("bug-report");return {How: document.getElementById("copy-report").dataset.copied || "",
		Text: a.value.substring(a.selectionStart, a.selectionEnd), Open: a.closest("details").open}})()`, &sel)
	if sel.How == "" || sel.How == "clipboard" || sel.Text != want || !sel.Open {
		t.Errorf("fallback copy: %q, open %v, %d of %d bytes selected", sel.How, sel.Open, len(sel.Text), len(want))
	}
}

// checkDownload clicks "Download JSON" and checks the file Chromium saved.
func checkDownload(t *testing.T, b *cdp, c *store.Crash) {
	t.Helper()
	dir := t.TempDir()
	b.call("", "Browser.setDownloadBehavior", map[string]any{"behavior": "allow", "downloadPath": dir, "eventsEnabled": true}, nil)
	b.eval(`document.getElementById("download-json").click()`, nil)
	b.wait("Browser.downloadProgress", func(p json.RawMessage) bool {
		var s struct{ State string }
		json.Unmarshal(p, &s)
		return s.State == "completed"
	})
	name := filepath.Join(dir, fmt.Sprintf("coroner-crash-%d.json", c.ID))
	data, err := os.ReadFile(name)
	if err != nil {
		ents, _ := os.ReadDir(dir)
		t.Fatalf("download: %v (the directory holds %v)", err, ents)
	}
	var got struct {
		APIVersion int `json:"api_version"`
		Crash      struct {
			ID     int64         `json:"id"`
			Report *crash.Report `json:"report"`
		} `json:"crash"`
	}
	if err := json.Unmarshal(data, &got); err != nil || got.Crash.ID != c.ID || got.Crash.Report == nil ||
		got.Crash.Report.Fingerprint != c.Report.Fingerprint {
		t.Errorf("downloaded %s (%d bytes): %v, crash %d", name, len(data), err, got.Crash.ID)
	}
	t.Logf("download: %s, %d bytes", filepath.Base(name), len(data))
}
