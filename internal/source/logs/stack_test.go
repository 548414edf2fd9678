package logs

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// freePort returns a free TCP port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startDaemon starts a foreground daemon and stops it (by its pid) at the
// end of the test.
func startDaemon(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
		}
	})
}

func waitPort(t *testing.T, port int) {
	t.Helper()
	for i := 0; i < 100; i++ {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d", port)
}

// TestRealNginxFPM runs a real nginx in front of a real php-fpm on
// 127.0.0.1, requests pretty URLs whose PHP workers die (SIGSEGV sent to
// themselves, SIGABRT, and one request killed by request_terminate_timeout),
// and checks that the real logs give each death its URL, pid and signal.
func TestRealNginxFPM(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to run php-fpm and nginx")
	}
	fpmBin, err := exec.LookPath("php-fpm8.2")
	if err != nil {
		if fpmBin, err = exec.LookPath("php-fpm"); err != nil {
			t.Skip("php-fpm not installed")
		}
	}
	if _, err := exec.LookPath("nginx"); err != nil {
		t.Skip("nginx not installed")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	www := filepath.Join(dir, "www")
	os.Mkdir(www, 0o755)
	os.WriteFile(filepath.Join(www, "index.php"), []byte(`<?php
file_put_contents(__DIR__ . "/pid-" . preg_replace('/\W/', '_', $_SERVER['REQUEST_URI']), getmypid());
switch ($_GET['do'] ?? '') {
case 'segv': posix_kill(getmypid(), 11); break;
case 'abort': posix_kill(getmypid(), 6); break;
case 'slow': sleep(30); break;
}
echo "ok\n";
`), 0o644)
	fpmPort, ngxPort := freePort(t), freePort(t)
	fpmLog := filepath.Join(dir, "php-fpm.log")
	fpmConf := filepath.Join(dir, "php-fpm.conf")
	os.WriteFile(fpmConf, []byte(fmt.Sprintf(`[global]
error_log = %s
pid = %s/php-fpm.pid
[www]
listen = 127.0.0.1:%d
pm = static
pm.max_children = 2
request_terminate_timeout = 2s
catch_workers_output = yes
`, fpmLog, dir, fpmPort)), 0o644)
	errLog, accLog := filepath.Join(dir, "error.log"), filepath.Join(dir, "access.log")
	ngxConf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(ngxConf, []byte(fmt.Sprintf(`worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[2]s error;
events { worker_connections 64; }
http {
  access_log %[3]s combined;
  client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s; uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
  server {
    listen 127.0.0.1:%[4]d;
    server_name test.local;
    root %[5]s;
    location / {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root/index.php;
      fastcgi_param SCRIPT_NAME /index.php;
      fastcgi_pass 127.0.0.1:%[6]d;
    }
  }
}
`, dir, errLog, accLog, ngxPort, www, fpmPort)), 0o644)
	startDaemon(t, fpmBin, "--nodaemonize", "-R", "-y", fpmConf, "-d", "display_errors=0")
	waitPort(t, fpmPort)
	startDaemon(t, "nginx", "-c", ngxConf, "-g", "daemon off;")
	waitPort(t, ngxPort)

	client := &http.Client{Timeout: 20 * time.Second}
	get := func(uri string) int {
		resp, err := client.Get(fmt.Sprintf("http://127.0.0.1:%d%s", ngxPort, uri))
		if err != nil {
			t.Fatalf("GET %s: %v", uri, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	want := map[string]int{"/teachers/profile-sarah/?do=segv": 11, "/shop/cart/?do=abort": 6, "/report/yearly?do=slow": 15}
	get("/warmup/")
	for _, uri := range []string{"/teachers/profile-sarah/?do=segv", "/shop/cart/?do=abort", "/report/yearly?do=slow"} {
		if code := get(uri); code != 502 {
			t.Errorf("GET %s: status %d, want 502", uri, code)
		}
		time.Sleep(1100 * time.Millisecond) // one crash per second, as on a quiet site
	}
	pids := map[string]int{}
	for uri := range want {
		b, err := os.ReadFile(filepath.Join(www, "pid-"+strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
				return r
			}
			return '_'
		}, uri)))
		if err != nil {
			t.Fatalf("pid of %s: %v", uri, err)
		}
		pids[uri], _ = strconv.Atoi(string(b))
	}
	// The master writes its line when it reaps the child: wait for all three.
	for i := 0; i < 100; i++ {
		b, _ := os.ReadFile(fpmLog)
		if strings.Count(string(b), "exited on signal") >= 3 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	res, err := Analyze(context.Background(), Options{Inputs: []Input{{Path: errLog}, {Path: accLog}, {Path: fpmLog}}})
	if err != nil {
		t.Fatal(err)
	}
	byPID := map[int]*Incident{}
	for _, inc := range res.Incidents {
		byPID[inc.PID] = inc
	}
	for uri, sig := range want {
		inc := byPID[pids[uri]]
		if inc == nil {
			b, _ := os.ReadFile(fpmLog)
			e, _ := os.ReadFile(errLog)
			t.Fatalf("no incident for %s (pid %d)\nFPM log:\n%s\nnginx:\n%s", uri, pids[uri], b, e)
		}
		if inc.URI != uri || inc.Signal != sig || inc.Status != 502 || inc.Pool != "www" {
			t.Errorf("%s: uri %q signal %d status %d pool %q", uri, inc.URI, inc.Signal, inc.Status, inc.Pool)
		}
		for _, l := range inc.Links {
			if l.Source == SrcNginxError && l.Confidence != ConfHigh {
				t.Errorf("%s: nginx link %s: %s", uri, l.Confidence, l.Reason)
			}
		}
		if sig == 15 && inc.Cause == "" {
			t.Errorf("%s: no timeout cause", uri)
		}
	}
}
