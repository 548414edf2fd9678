package logs

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestFollow appends crash lines to live files (and rotates one of them)
// while Follow watches, and expects one incident per crash.
func TestFollow(t *testing.T) {
	dir := t.TempDir()
	fpm := filepath.Join(dir, "php-fpm.log")
	ngx := filepath.Join(dir, "error.log")
	os.WriteFile(fpm, []byte("[26-Nov-2026 19:00:00] NOTICE: ready to handle connections\n"), 0o644)
	os.WriteFile(ngx, nil, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan *Incident, 4)
	go Follow(ctx, Options{Inputs: []Input{{Path: fpm, Format: FormatFPM}, {Path: ngx, Format: FormatNginxError}}, Location: time.UTC},
		FollowOptions{Poll: 20 * time.Millisecond, Grace: 200 * time.Millisecond}, func(inc *Incident) { got <- inc })
	appendLine := func(p, s string) {
		f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(s + "\n")
		f.Close()
	}
	time.Sleep(100 * time.Millisecond) // let the followers open the files at their end
	appendLine(ngx, `2026/11/26 19:27:44 [error] 1#1: *7 recv() failed (104: Connection reset by peer) while reading response header from upstream, client: 127.0.0.1, server: x, request: "GET /first HTTP/1.1", upstream: "fastcgi://unix:/s:", host: "h"`)
	appendLine(fpm, "[26-Nov-2026 19:27:44] WARNING: [pool www] child 501 exited on signal 11 (SIGSEGV) after 1.0 seconds from start")
	inc := waitIncident(t, ctx, got)
	if inc.PID != 501 || inc.URI != "/first" {
		t.Errorf("first incident: pid %d uri %q", inc.PID, inc.URI)
	}
	// Rotate the FPM log: the follower must pick up the new file.
	os.Rename(fpm, fpm+".1")
	os.WriteFile(fpm, nil, 0o644)
	time.Sleep(100 * time.Millisecond)
	appendLine(fpm, "[26-Nov-2026 19:30:00] WARNING: [pool www] child 502 exited on signal 6 (SIGABRT) after 2.0 seconds from start")
	inc = waitIncident(t, ctx, got)
	if inc.PID != 502 || inc.Signal != 6 {
		t.Errorf("second incident: pid %d signal %d", inc.PID, inc.Signal)
	}
}

func waitIncident(t *testing.T, ctx context.Context, c <-chan *Incident) *Incident {
	t.Helper()
	select {
	case inc := <-c:
		return inc
	case <-ctx.Done():
		t.Fatal("no incident reported")
		return nil
	}
}

// TestFollowForensic: watching Apache's error log and its forensic log, a
// child's death gets the request it never finished, and a finished request
// of the same child is not taken.
func TestFollowForensic(t *testing.T) {
	dir := t.TempDir()
	errLog, fLog := filepath.Join(dir, "error.log"), filepath.Join(dir, "forensic.log")
	os.WriteFile(errLog, nil, 0o644)
	os.WriteFile(fLog, nil, 0o644)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	got := make(chan *Incident, 4)
	go Follow(ctx, Options{Inputs: []Input{{Path: errLog, Format: FormatApacheError}, {Path: fLog, Format: FormatAuto}}, Location: time.UTC, AllProcesses: true},
		FollowOptions{Poll: 20 * time.Millisecond, Grace: 200 * time.Millisecond}, func(inc *Incident) { got <- inc })
	time.Sleep(100 * time.Millisecond)
	f, err := os.OpenFile(fLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("+4242:6b08882b:0|GET /done HTTP/1.1|Host:h\n-4242:6b08882b:0\n+4242:6b08882c:1|GET /wp-admin/boom?token=abc HTTP/1.1|Host:shop.example\n")
	f.Close()
	time.Sleep(100 * time.Millisecond)
	f, err = os.OpenFile(errLog, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("[Thu Nov 26 19:27:44.000001 2026] [core:notice] [pid 1:tid 1] AH00052: child pid 4242 exit signal Segmentation fault (11)\n")
	f.Close()
	inc := waitIncident(t, ctx, got)
	if inc.PID != 4242 || inc.URI != "/wp-admin/boom?token=abc" || inc.Host != "shop.example" {
		t.Errorf("incident pid %d uri %q host %q", inc.PID, inc.URI, inc.Host)
	}
}
