package watch_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// chromium returns Debian's chromium, installing it when missing (as root).
func chromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Geteuid() == 0 {
		if out, err := exec.Command("apt-get", "install", "-y", "-q", "chromium").CombinedOutput(); err != nil {
			t.Skipf("chromium not installed and apt-get install chromium failed: %v\n%s", err, out)
		}
		if p, err := exec.LookPath("chromium"); err == nil {
			return p
		}
	}
	t.Skip("headless browser test needs Debian's chromium package (apt-get install chromium)")
	return ""
}

func headless(t *testing.T, bin string, args ...string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir(), "--window-size=1280,900"}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// browser opens the dashboard in headless Chromium: the group list, a group
// page and a crash page, checks what the browser rendered (its DOM after
// scripts ran) and saves screenshots.
func (e *env) browser(t *testing.T) {
	bin := chromium(t)
	ctx := context.Background()
	gs, err := e.st.Groups(ctx)
	if err != nil || len(gs) == 0 {
		t.Fatalf("groups: %v", err)
	}
	cs, err := e.st.Crashes(ctx, gs[0].Fingerprint, 1)
	if err != nil || len(cs) == 0 {
		t.Fatalf("crashes: %v", err)
	}
	dom := headless(t, bin, "--dump-dom", e.url+"/")
	for _, g := range gs {
		if !strings.Contains(dom, "/group/"+g.Fingerprint) {
			t.Errorf("browser DOM of the group list lacks group %s", g.Fingerprint)
		}
	}
	if !strings.Contains(dom, `<table class="groups" id="groups">`) || !strings.Contains(dom, "<rect") {
		t.Error("browser DOM lacks the group table or timeline bars")
	}
	crashURL := fmt.Sprintf("%s/crash/%d", e.url, cs[0].ID)
	dom = headless(t, bin, "--dump-dom", crashURL)
	for _, want := range []string{`id="native-stack"`, `id="php-stack"`, fmt.Sprintf("pid %d", cs[0].PID)} {
		if !strings.Contains(dom, want) {
			t.Errorf("browser DOM of %s lacks %q", crashURL, want)
		}
	}
	dir := os.Getenv("CORONER_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, url := range map[string]string{
		"dashboard-groups.png": e.url + "/",
		"dashboard-group.png":  e.url + "/group/" + gs[0].Fingerprint,
		"dashboard-crash.png":  crashURL,
	} {
		shot := filepath.Join(dir, name)
		headless(t, bin, "--screenshot="+shot, "--hide-scrollbars", url)
		fi, err := os.Stat(shot)
		if err != nil || fi.Size() < 10000 {
			t.Errorf("screenshot %s: %v (size %v)", shot, err, fi)
			continue
		}
		t.Logf("screenshot: %s (%d bytes)", shot, fi.Size())
	}
}
