package fastcgi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fpm is a php-fpm master started by a test.
type fpm struct {
	Socket, Docroot, Log string
}

const echoScript = `<?php
http_response_code(201);
header('X-Replay-Test: yes');
$keys = ['REQUEST_METHOD', 'REQUEST_URI', 'QUERY_STRING', 'HTTP_X_LONG', 'HTTP_X_SHORT', 'HTTP_X_BIG1', 'HTTP_X_BIG2', 'CONTENT_LENGTH', 'CONTENT_TYPE'];
$out = [];
foreach ($keys as $k) { if (isset($_SERVER[$k])) { $out[$k] = $_SERVER[$k]; } }
$out['body'] = file_get_contents('php://input');
error_log("to stderr");
echo json_encode($out);
`

const crashScript = `<?php
echo "before the crash";
flush();
posix_kill(getmypid(), 11);
echo "survived";
`

const sleepScript = `<?php
sleep(5);
echo "slept";
`

// startFPM starts php-fpm8.2 on a unix socket in a temporary directory, with
// one static worker running as www-data (or nobody), and stops it by pid at
// the end of the test.
func startFPM(t *testing.T) *fpm {
	t.Helper()
	bin, err := exec.LookPath("php-fpm8.2")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/php-fpm8.2"); err2 != nil {
			t.Skip("php-fpm8.2 is not installed")
		}
		bin = "/usr/sbin/php-fpm8.2"
	}
	if os.Geteuid() != 0 {
		t.Skip("starting php-fpm workers as another user needs root")
	}
	worker := "www-data"
	if _, err := user.Lookup(worker); err != nil {
		worker = "nobody"
	}
	dir := t.TempDir()
	// t.TempDir makes 0700 directories: the workers must reach the docroot.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f := &fpm{Socket: filepath.Join(dir, "fpm.sock"), Docroot: filepath.Join(dir, "www"), Log: filepath.Join(dir, "fpm.log")}
	if err := os.Mkdir(f.Docroot, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, src := range map[string]string{"echo.php": echoScript, "crash.php": crashScript, "sleep.php": sleepScript} {
		if err := os.WriteFile(filepath.Join(f.Docroot, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "php-fpm.conf")
	err = os.WriteFile(conf, []byte(fmt.Sprintf(`[global]
pid = %[1]s/fpm.pid
error_log = %[2]s
log_level = notice
daemonize = no

[test]
user = %[3]s
listen = %[4]s
listen.mode = 0666
pm = static
pm.max_children = 1
rlimit_core = 0
catch_workers_output = yes
`, dir, f.Log, worker, f.Socket)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--nodaemonize", "-y", conf)
	out, err := os.Create(filepath.Join(dir, "fpm-stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start php-fpm: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGQUIT) // graceful stop of the master and its workers
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(f.Socket); err == nil {
			return f
		}
		select {
		case <-done:
			b, _ := os.ReadFile(f.Log)
			t.Fatalf("php-fpm exited at start: %s", b)
		case <-time.After(50 * time.Millisecond):
		}
	}
	b, _ := os.ReadFile(f.Log)
	t.Fatalf("php-fpm did not create %s: %s", f.Socket, b)
	return nil
}

func (f *fpm) params(script, method, query string) []Param {
	return []Param{
		{"GATEWAY_INTERFACE", "CGI/1.1"},
		{"SERVER_PROTOCOL", "HTTP/1.1"},
		{"REQUEST_METHOD", method},
		{"SCRIPT_FILENAME", filepath.Join(f.Docroot, script)},
		{"SCRIPT_NAME", "/" + script},
		{"DOCUMENT_ROOT", f.Docroot},
		{"REQUEST_URI", "/" + script + "?" + query},
		{"QUERY_STRING", query},
	}
}

func TestFPMEcho(t *testing.T) {
	f := startFPM(t)
	c := &Client{Network: "unix", Address: f.Socket, Timeout: 10 * time.Second}
	long := strings.Repeat("L", 300)   // needs a 4-byte length
	big1 := strings.Repeat("1", 40000) // together with big2, more than one PARAMS record
	big2 := strings.Repeat("2", 40000)
	body := []byte(strings.Repeat("body-", 30000)) // 150000 bytes: three STDIN records
	params := append(f.params("echo.php", "POST", "a=1&b=2"),
		Param{"HTTP_X_SHORT", "s"}, Param{"HTTP_X_LONG", long}, Param{"HTTP_X_BIG1", big1}, Param{"HTTP_X_BIG2", big2},
		Param{"CONTENT_TYPE", "application/octet-stream"}, Param{"CONTENT_LENGTH", fmt.Sprint(len(body))})
	resp, err := c.Do(context.Background(), params, body)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if !resp.Ended || resp.AppStatus != 0 {
		t.Errorf("Ended=%v AppStatus=%d", resp.Ended, resp.AppStatus)
	}
	h := ParseHTTP(resp.Stdout)
	if h.Status != 201 || h.StatusLine != "201 Created" || !h.Complete {
		t.Errorf("status %d %q complete=%v; headers %q", h.Status, h.StatusLine, h.Complete, h.Headers)
	}
	found := false
	for _, l := range h.Headers {
		found = found || l == "X-Replay-Test: yes"
	}
	if !found {
		t.Errorf("header X-Replay-Test missing: %q", h.Headers)
	}
	var got map[string]string
	if err := json.Unmarshal(h.Body, &got); err != nil {
		t.Fatalf("body %.200q: %v (stdout %.300q, stderr %.300q)", h.Body, err, resp.Stdout, resp.Stderr)
	}
	want := map[string]string{"REQUEST_METHOD": "POST", "QUERY_STRING": "a=1&b=2", "REQUEST_URI": "/echo.php?a=1&b=2",
		"HTTP_X_SHORT": "s", "HTTP_X_LONG": long, "HTTP_X_BIG1": big1, "HTTP_X_BIG2": big2,
		"CONTENT_LENGTH": fmt.Sprint(len(body)), "CONTENT_TYPE": "application/octet-stream", "body": string(body)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %d bytes %.40q, want %d bytes %.40q", k, len(got[k]), got[k], len(v), v)
		}
	}
	if !strings.Contains(string(resp.Stderr), "to stderr") && !strings.Contains(readFile(t, f.Log), "to stderr") {
		t.Errorf("the script's stderr is neither in FCGI_STDERR (%q) nor in the FPM log", resp.Stderr)
	}
}

func TestFPMWorkerDies(t *testing.T) {
	f := startFPM(t)
	c := &Client{Network: "unix", Address: f.Socket, Timeout: 10 * time.Second}
	resp, err := c.Do(context.Background(), f.params("crash.php", "GET", ""), nil)
	if !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("Do on a crashing script: err = %v, want ErrWorkerDied (response %+v)", err, resp)
	}
	if resp == nil || resp.Ended {
		t.Errorf("partial response %+v: want one without FCGI_END_REQUEST", resp)
	}
	// the FPM master confirms the death
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(readFile(t, f.Log), "exited on signal 11") {
		if time.Now().After(deadline) {
			t.Fatalf("no 'exited on signal 11' in the FPM log:\n%s", readFile(t, f.Log))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// and the next request is served by the new worker
	resp, err = c.Do(context.Background(), f.params("echo.php", "GET", "after=crash"), nil)
	if err != nil || ParseHTTP(resp.Stdout).Status != 201 {
		t.Fatalf("request after the crash: %v", err)
	}
}

func TestFPMTimeout(t *testing.T) {
	f := startFPM(t)
	c := &Client{Network: "unix", Address: f.Socket, Timeout: 300 * time.Millisecond}
	_, err := c.Do(context.Background(), f.params("sleep.php", "GET", ""), nil)
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("err = %v, want ErrTimeout", err)
	}
}

func TestConnectError(t *testing.T) {
	c := &Client{Network: "unix", Address: filepath.Join(t.TempDir(), "none.sock")}
	_, err := c.Do(context.Background(), nil, nil)
	if err == nil || errors.Is(err, ErrWorkerDied) || !strings.Contains(err.Error(), "connect to unix:") {
		t.Fatalf("err = %v, want a connect error", err)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
