package watch_test

import (
	"bytes"
	"context"
	"fmt"
	"html"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/service/server"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/watch"
)

// phpRecursionCore crashes the PHP CLI with the shortcode recursion of the
// knowledge-base tests (preg_replace_callback nesting until the C stack
// runs out: ~40,000 native and ~20,000 PHP frames) and returns its core.
func phpRecursionCore(t *testing.T) string {
	t.Helper()
	php, err := exec.LookPath("php")
	if err != nil {
		t.Skip("php CLI not installed")
	}
	pattern, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if p := strings.TrimSpace(string(pattern)); err != nil || p == "" || strings.ContainsAny(p, "|/") {
		t.Skipf("kernel.core_pattern is %q: cores do not land in the crashing program's directory (this test never changes it)", p)
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "diagnose", "testdata", "php", "shortcode_recursion.php"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("sh", "-c", `ulimit -c unlimited && exec "$0" -n -d pcre.jit=1 "$1"`, php, script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("php did not crash: %s", out)
	}
	cores, _ := filepath.Glob(filepath.Join(dir, "core*"))
	if len(cores) != 1 {
		t.Skipf("%d core files in %s (RLIMIT_CORE may be capped)", len(cores), dir)
	}
	return cores[0]
}

// TestDashboardFoldsLikeTheCLI: a deep recursion analysed by the engine,
// recorded by the watcher (which stores only the innermost and outermost
// frames) is shown on the dashboard folded as `coroner analyze` folds it:
// the first repetition of each cycle, one line with the repeat count, the
// frames after the recursion, and native frames annotated with the PHP
// function they run.
func TestDashboardFoldsLikeTheCLI(t *testing.T) {
	core := phpRecursionCore(t)
	ctx := context.Background()
	rep, err := engine.New(engine.Options{}).Run(ctx, engine.Request{Core: engine.Core{Path: core}, NoDiagnosis: true})
	if err != nil {
		t.Fatal(err)
	}
	th := rep.CrashedThread()
	if th == nil || len(th.Cycles) == 0 || rep.PHP == nil || len(rep.PHP.Cycles) == 0 || len(th.Frames) < 2000 || len(rep.PHP.Frames) < 2000 {
		t.Fatalf("not a deep recursion: %+v", rep.Warnings)
	}
	var cli bytes.Buffer
	if err := render.Text(&cli, rep, render.TextOptions{}); err != nil {
		t.Fatal(err)
	}
	nativeCycle, phpCycle := th.Cycles[0], rep.PHP.Cycles[0]
	outermost := th.Frames[len(th.Frames)-1].Function
	annotated := ""
	for i := range th.Frames {
		if pf := render.PHPFrameOf(rep, &th.Frames[i]); pf != nil {
			annotated = render.PHPLocation(pf)
			break
		}
	}
	for _, want := range []string{
		fmt.Sprintf("cycle of %d frames x %s", nativeCycle.Length, thousands(nativeCycle.Repeats)),
		fmt.Sprintf("cycle of %d frames x %s", phpCycle.Length, thousands(phpCycle.Repeats)),
		"<- php: " + annotated,
	} {
		if annotated == "" || !strings.Contains(cli.String(), want) {
			t.Fatalf("the CLI report lacks %q", want)
		}
	}

	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "d.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := watch.New(watch.Config{Store: st, Host: "h", Nice: -1, Logger: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	c, err := w.Record(ctx, rep, watch.RecordInfo{CorePath: core})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := server.New(server.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	resp, err := ts.Client().Get(fmt.Sprintf("%s/crash/%d", ts.URL, c.ID))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	page := html.UnescapeString(string(body))
	if resp.StatusCode != 200 {
		t.Fatalf("crash page: %d %s", resp.StatusCode, page)
	}
	for _, want := range []string{
		fmt.Sprintf("#%d..#%d: cycle of %d frames × %s", nativeCycle.Start, nativeCycle.End, nativeCycle.Length, thousands(nativeCycle.Repeats)),
		fmt.Sprintf("cycle of %d frames × %s", phpCycle.Length, thousands(phpCycle.Repeats)),
		"← php: <code>" + annotated + "</code>",
		outermost, // the frames after the recursion are shown
		"{main}",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("crash page lacks %q", want)
		}
	}
	if rows := len(regexp.MustCompile(`<tr>`).FindAllString(page, -1)); rows > 2*250 {
		t.Errorf("%d table rows: the stacks are not folded", rows)
	}
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
