package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
)

// serviceOnly are packages that only watch and serve need: the command
// line's build (-tags noservice) must not link them, or every analysis
// pays their start-up again (cmd/coroner/service.go).
var serviceOnly = []string{
	"github.com/coroner-dev/coroner/internal/service/store",
	"github.com/coroner-dev/coroner/internal/service/server",
	"github.com/coroner-dev/coroner/internal/service/watch",
	"modernc.org/sqlite",
	"github.com/jackc/pgx/v5",
	"html/template", // the dashboard's pages
	// The opt-in debuginfod client's (coroner runs coroner-service's
	// __debuginfod-get for each download: TestAgainstDebuginfodServer).
	"net/http",
	"github.com/coroner-dev/coroner/internal/engine/debuginfod/httpget",
}

// goList returns the packages `go list -deps` builds into cmd/coroner
// with the given build tags.
func goList(t *testing.T, tags string) map[string]bool {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps", "-tags", tags, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -deps -tags %q: %v", tags, err)
	}
	deps := map[string]bool{}
	for _, p := range strings.Fields(string(out)) {
		deps[p] = true
	}
	return deps
}

// TestCommandLineBuildLinksNoService checks that the command line's build
// leaves the database drivers and the web server out, and that the
// service build has them (the check would pass vacuously otherwise).
func TestCommandLineBuildLinksNoService(t *testing.T) {
	lean, full := goList(t, "noservice"), goList(t, "")
	for _, p := range serviceOnly {
		if lean[p] {
			t.Errorf("coroner (-tags noservice) links %s", p)
		}
		if !full[p] {
			t.Errorf("coroner-service does not link %s", p)
		}
	}
	if !lean["github.com/coroner-dev/coroner/internal/engine/analyze"] {
		t.Error("coroner (-tags noservice) does not link the analysis")
	}
}

// buildBoth builds the command line (-tags noservice) as DIR/coroner and
// the service build as DIR/coroner-service, as make build and the
// packages do.
func buildBoth(t *testing.T) (lean, service string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build coroner: %v", err)
	}
	dir := t.TempDir()
	lean, service = filepath.Join(dir, "coroner"), filepath.Join(dir, "coroner-service")
	for _, b := range []struct{ out, tags string }{{lean, "noservice"}, {service, ""}} {
		cmd := exec.Command(goBin, "build", "-tags", b.tags, "-o", b.out, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build -tags %q: %v\n%s", b.tags, err, out)
		}
	}
	return lean, service
}

// runBin runs bin with args and returns its stdout, stderr and exit status.
func runBin(t *testing.T, bin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return stdout.String(), stderr.String(), 0
	case errors.As(err, &ee):
		return stdout.String(), stderr.String(), ee.ExitCode()
	}
	t.Fatalf("%s %v: %v", bin, args, err)
	return "", "", 0
}

// TestServiceCommandsThroughCoroner runs watch and serve, their help,
// completions and man pages through the command line's build, which
// executes the coroner-service next to it, and checks what the command
// line's build says and does without it.
func TestServiceCommandsThroughCoroner(t *testing.T) {
	lean, service := buildBoth(t)
	same := func(args ...string) string {
		t.Helper()
		lo, le, lc := runBin(t, lean, args...)
		so, se, sc := runBin(t, service, args...)
		if lo != so || le != se || lc != sc {
			t.Errorf("coroner %v differs from coroner-service's:\n%d %q %q\n%d %q %q", args, lc, lo, le, sc, so, se)
		}
		return lo + le
	}
	if out := same("watch", "--help"); !strings.Contains(out, "--keep-cores") {
		t.Errorf("coroner watch --help does not list --keep-cores:\n%s", out)
	}
	if out := same("help", "serve"); !strings.Contains(out, "--db-wait") {
		t.Errorf("coroner help serve does not list --db-wait:\n%s", out)
	}
	if out := same("__complete", "serve", "--db-w"); !strings.Contains(out, "--db-wait") {
		t.Errorf("completion of coroner serve --db-w: %q", out)
	}
	missing := filepath.Join(t.TempDir(), "none.db")
	_, stderr, code := runBin(t, lean, "serve", "--db", "sqlite:"+missing)
	if code != exitError || !strings.Contains(stderr, "no database at "+missing) {
		t.Errorf("coroner serve on a missing database: exit %d, %q", code, stderr)
	}
	// Flags before the command: the stub command forwards the whole line.
	_, stderr, code = runBin(t, lean, "--cpuprofile", filepath.Join(t.TempDir(), "p"), "serve", "--db", "sqlite:"+missing)
	if code != exitError || !strings.Contains(stderr, "no database at "+missing) {
		t.Errorf("coroner --cpuprofile F serve: exit %d, %q", code, stderr)
	}
	help, _, _ := runBin(t, lean, "--help")
	for _, c := range []string{watchShort, serveShort} {
		if !strings.Contains(help, c) {
			t.Errorf("coroner --help does not list %q", c)
		}
	}
	man := t.TempDir()
	if _, stderr, code := runBin(t, lean, "man", "--dir", man); code != 0 {
		t.Fatalf("coroner man: exit %d: %s", code, stderr)
	}
	page, err := os.ReadFile(filepath.Join(man, "coroner-watch.1"))
	if err != nil || !bytes.Contains(page, []byte(`\-\-keep\-cores`)) {
		t.Errorf("coroner-watch.1 written through coroner does not document --keep-cores (%v)", err)
	}
	var lv, sv map[string]any
	lo, _, _ := runBin(t, lean, "version", "--json")
	so, _, _ := runBin(t, service, "version", "--json")
	if json.Unmarshal([]byte(lo), &lv) != nil || json.Unmarshal([]byte(so), &sv) != nil || lo != so {
		t.Errorf("version --json of the two builds differ:\n%s\n%s", lo, so)
	}

	// The same analysis from both builds.
	fx := labtest.GetFixture(t, "php-ffi-null-code")
	core := fx.PlainCore(t)
	timings := regexp.MustCompile(`(?s)\n  "timings": \[.*?\n  \],?`)
	la, _, lc := runBin(t, lean, "analyze", "--json", "--cache-dir", "off", "--sysroot", fx.Sysroot, "--no-host-debug", core)
	sa, _, sc := runBin(t, service, "analyze", "--json", "--cache-dir", "off", "--sysroot", fx.Sysroot, "--no-host-debug", core)
	if lc != 0 || sc != 0 || timings.ReplaceAllString(la, "") != timings.ReplaceAllString(sa, "") {
		t.Errorf("analyze --json differs between the builds (exit %d, %d)", lc, sc)
	}
	if _, stderr, code := runBin(t, lean, "analyze", "--isolated", core); code != exitError || !strings.Contains(stderr, "coroner-service") {
		t.Errorf("coroner analyze --isolated: exit %d, %q", code, stderr)
	}

	// Without coroner-service: watch and serve say what is missing, man
	// still writes every page.
	alone := filepath.Join(t.TempDir(), "coroner")
	b, err := os.ReadFile(lean)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(alone, b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"watch"}, {"serve", "--help"}} {
		_, stderr, code := runBin(t, alone, args...)
		if _, err := os.Stat("/usr/lib/coroner/coroner-service"); err == nil {
			t.Skipf("%s is installed on this host: coroner finds it", "/usr/lib/coroner/coroner-service")
		}
		if code != exitError || !strings.Contains(stderr, "coroner-service, the service build of coroner, which is not installed") {
			t.Errorf("coroner %v without coroner-service: exit %d, %q", args, code, stderr)
		}
	}
	man = t.TempDir()
	if _, stderr, code := runBin(t, alone, "man", "--dir", man); code != 0 {
		t.Fatalf("coroner man without coroner-service: exit %d: %s", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(man, "coroner-serve.1")); err != nil {
		t.Errorf("coroner man without coroner-service: %v", err)
	}
}

// TestCommandsBuiltOnDemand checks what the command line shows now that
// main builds only the command a line names (buildCommands): one
// command's help, the root's help with every command, and an unknown
// command as a usage error.
func TestCommandsBuiltOnDemand(t *testing.T) {
	lean, _ := buildBoth(t)
	// --help of one command lists no sibling; the root's lists them all.
	out, _, code := runBin(t, lean, "cores", "--help")
	if code != 0 || !strings.Contains(out, "cores") {
		t.Fatalf("cores --help: exit %d: %s", code, out)
	}
	out, _, _ = runBin(t, lean, "--help")
	for name := range commandBuilders {
		if strings.HasPrefix(name, "__") { // hidden: coroner-service's own
			continue
		}
		if !strings.Contains(out, "  "+name+" ") {
			t.Errorf("coroner --help does not list %s", name)
		}
	}
	_, stderr, code := runBin(t, lean, "analyse")
	if code != exitUsage || !strings.Contains(stderr, `unknown command "analyse"`) || !strings.Contains(stderr, "did you mean analyze?") {
		t.Errorf("coroner analyse: exit %d: %s", code, stderr)
	}
}
