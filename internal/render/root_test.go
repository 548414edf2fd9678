package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestRootShown names the container a crash came from in the text and
// Markdown reports, and says when the report is partial.
func TestRootShown(t *testing.T) {
	rep := &crash.Report{Schema: crash.SchemaVersion, Process: crash.Process{PID: 7, Executable: "/usr/sbin/php-fpm8.4"},
		Signal: crash.Signal{Number: 11, Name: "SIGSEGV"},
		Root: &crash.Root{Dir: "/var/lib/docker/overlay2/7a6b/merged", Runtime: "docker", Name: "shop-fpm",
			ID: "5e1f0a7c9b3d2e4f6a8b0c1d", Image: "php:8.4-fpm", Unresolved: []string{"/usr/lib/libx.so"}}}
	want := "docker container shop-fpm (5e1f0a7c9b3d, image php:8.4-fpm) at /var/lib/docker/overlay2/7a6b/merged"
	var text, md bytes.Buffer
	if err := Text(&text, rep, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, rep); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "root:     "+want) {
		t.Errorf("text report:\n%s", text.String())
	}
	if !strings.Contains(md.String(), want) || !strings.Contains(md.String(), "Partial") {
		t.Errorf("Markdown report:\n%s", md.String())
	}
	rep.Root = &crash.Root{Runtime: "host", Unresolved: []string{"/usr/lib/libx.so"}}
	if RootLine(rep.Root) != "" {
		t.Errorf("the host named as a root: %q", RootLine(rep.Root))
	}
}
