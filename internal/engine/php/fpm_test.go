package php

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
)

// fcgiRequest sends one FastCGI request over a unix socket and reads until
// the connection closes (the worker dies).
func fcgiRequest(sock string, params map[string]string) error {
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var buf bytes.Buffer
	record := func(typ byte, content []byte) {
		buf.Write([]byte{1, typ, 0, 1, byte(len(content) >> 8), byte(len(content)), 0, 0})
		buf.Write(content)
	}
	record(1, []byte{0, 1, 0, 0, 0, 0, 0, 0}) // FCGI_BEGIN_REQUEST, responder
	var p bytes.Buffer
	length := func(n int) {
		if n < 128 {
			p.WriteByte(byte(n))
			return
		}
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(n)|1<<31)
		p.Write(b[:])
	}
	for k, v := range params {
		length(len(k))
		length(len(v))
		p.WriteString(k)
		p.WriteString(v)
	}
	record(4, p.Bytes()) // FCGI_PARAMS
	record(4, nil)
	record(5, nil) // FCGI_STDIN
	if _, err := c.Write(buf.Bytes()); err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, c) // the worker dies: EOF or connection reset
	return nil
}

// fpmCore runs php-fpm with one pool in a temporary directory (as the
// current user, root included), attaches gdb to its worker, sends it a request for testdata/cli/main.php and
// returns the core gdb dumped when the worker crashed (labtest.AttachCore:
// kernel.core_pattern does not matter; the pool's rlimit_core = 0 keeps the
// kernel from writing one anywhere).
func fpmCore(t testing.TB, params map[string]string) (corePath, truthPath string) {
	t.Helper()
	var fpm string
	if m, _ := filepath.Glob("/usr/sbin/php-fpm*"); len(m) > 0 {
		fpm = m[0]
	} else {
		t.Skip("php-fpm not installed")
	}
	dir := t.TempDir()
	src, _ := filepath.Abs("testdata/cli")
	for _, f := range []string{"main.php", "lib.php", "view.php"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, f), b, 0o644)
	}
	sock := filepath.Join(dir, "fpm.sock")
	conf := filepath.Join(dir, "fpm.conf")
	// As root the pool runs as root (-R); as another user, workers stay
	// that user (php-fpm ignores no user line then) and gdb may attach.
	poolUser := ""
	if os.Geteuid() == 0 {
		poolUser = "user = root\n"
	}
	os.WriteFile(conf, []byte(fmt.Sprintf(`[global]
error_log = %s/fpm.log
daemonize = no
[t]
%slisten = %s
pm = static
pm.max_children = 1
rlimit_core = 0
chdir = %s
clear_env = no
`, dir, poolUser, sock, dir)), 0o644)
	args := []string{"--nodaemonize", "-y", conf, "-d", "opcache.jit=tracing", "-d", "opcache.jit_buffer_size=16M", "-d", "opcache.enable=1"}
	if os.Geteuid() == 0 {
		args = append([]string{"-R"}, args...) // the pool runs as root
	}
	cmd := exec.Command(fpm, args...)
	cmd.Dir = dir
	out, err := os.Create(filepath.Join(dir, "fpm.out"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start php-fpm: %v", err)
	}
	pgid := cmd.Process.Pid
	defer func() {
		// SIGTERM lets the master stop and reap its workers; then make sure
		// nothing of the process group this test created is left.
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			syscall.Kill(-pgid, syscall.SIGKILL)
			<-done
		}
		syscall.Kill(-pgid, syscall.SIGKILL)
	}()
	for i := 0; i < 100; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	worker := 0
	for i := 0; i < 100 && worker == 0; i++ {
		worker = childOf(pgid)
		if worker == 0 {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if worker == 0 {
		b, _ := os.ReadFile(filepath.Join(dir, "fpm.log"))
		t.Fatalf("php-fpm started no worker; fpm log:\n%s", b)
	}
	corePath = filepath.Join(dir, "core")
	wait := labtest.AttachCore(t, worker, corePath)
	truthPath = filepath.Join(dir, "truth.json")
	params["SCRIPT_FILENAME"] = filepath.Join(dir, "main.php")
	params["CORONER_TRUTH"] = truthPath
	if err := fcgiRequest(sock, params); err != nil {
		b, _ := os.ReadFile(filepath.Join(dir, "fpm.out"))
		t.Fatalf("FastCGI request: %v\n%s", err, b)
	}
	wait()
	return corePath, truthPath
}

// childOf returns a child process of pid (0 when there is none yet).
func childOf(pid int) int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return child
		}
	}
	return 0
}

func TestFPMCore(t *testing.T) {
	corePath, truthPath := fpmCore(t, map[string]string{
		"REQUEST_METHOD": "POST", "REQUEST_URI": "/teachers/profile-sarah/?tab=2", "QUERY_STRING": "tab=2",
		"SCRIPT_NAME": "/main.php", "HTTP_HOST": "lab.example", "REMOTE_ADDR": "127.0.0.9",
		"HTTP_USER_AGENT": "coroner-test/1", "CONTENT_TYPE": "application/x-www-form-urlencoded", "CONTENT_LENGTH": "0",
		"HTTP_COOKIE": "session=very-secret", "HTTP_AUTHORIZATION": "Basic c2VjcmV0",
		"SERVER_NAME": "lab.example", "GATEWAY_INTERFACE": "CGI/1.1", "SERVER_PROTOCOL": "HTTP/1.1",
	})
	var want []truthFrame
	b, err := os.ReadFile(truthPath)
	if err != nil {
		t.Fatalf("truth: %v", err)
	}
	if err := json.Unmarshal(b, &want); err != nil || len(want) < 6 {
		t.Fatalf("truth %s: %v", b, err)
	}
	for _, secrets := range []bool{false, true} {
		in := inputFromCore(t, corePath)
		in.ShowSecrets = secrets
		res, err := Analyze(in)
		if err != nil || res == nil {
			t.Fatalf("Analyze = %v, %v", res, err)
		}
		if res.SAPI != "fpm-fcgi" {
			t.Errorf("SAPI %q", res.SAPI)
		}
		var got []truthFrame
		for _, f := range res.Frames {
			got = append(got, truthFrame{f.Function, f.Class, f.CallType, f.File, f.Line})
		}
		compareFrames(t, got, want)
		r := res.Request
		if r == nil {
			t.Fatalf("no request; warnings %q", res.Warnings)
		}
		if r.Source != SourceFastCGI || r.URI != "/teachers/profile-sarah/?tab=2" || r.Method != "POST" || r.Query != "tab=2" ||
			r.Host != "lab.example" || r.RemoteAddr != "127.0.0.9" || r.UserAgent != "coroner-test/1" ||
			r.ContentType != "application/x-www-form-urlencoded" || !strings.HasSuffix(r.Script, "/main.php") {
			t.Errorf("request = %+v", r)
		}
		cookie, auth := r.Params["HTTP_COOKIE"], r.Params["HTTP_AUTHORIZATION"]
		if secrets && (cookie != "session=very-secret" || auth != "Basic c2VjcmV0") {
			t.Errorf("ShowSecrets: cookie %q authorization %q", cookie, auth)
		}
		if !secrets && (strings.Contains(cookie, "secret") || strings.Contains(auth, "c2VjcmV0") || cookie == "") {
			t.Errorf("secrets not redacted: cookie %q authorization %q", cookie, auth)
		}
		if res.INI["opcache.jit"] != "tracing" || res.JIT == nil || !res.JIT.Active {
			t.Errorf("INI %v JIT %+v", res.INI, res.JIT)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("warnings: %q", res.Warnings)
		}
	}
}
