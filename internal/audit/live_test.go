package audit

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLiveFPMVerdict starts a real php-fpm (127.0.0.1, user nobody) with and
// without process.dumpable, audits it live, then kills a worker with
// SIGSEGV and checks that a core appears exactly when the audit said so.
// It does not touch kernel.core_pattern: it runs only while the machine's
// pattern is a plain relative name, so the core lands in the pool's chdir.
func TestLiveFPMVerdict(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: php-fpm switches workers to user nobody")
	}
	bins, _ := filepath.Glob("/usr/sbin/php-fpm[0-9]*")
	if len(bins) == 0 {
		t.Skip("no php-fpm installed (apt-get install php8.2-fpm)")
	}
	if _, err := user("nobody"); err != nil {
		t.Skip("no user nobody")
	}
	for _, dumpable := range []bool{true, false} {
		name := "not-dumpable"
		if dumpable {
			name = "dumpable"
		}
		t.Run(name, func(t *testing.T) {
			liveFPM(t, bins[0], dumpable)
		})
	}
}

func user(name string) (string, error) {
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		return "", err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, name+":") {
			return l, nil
		}
	}
	return "", fmt.Errorf("no user %s", name)
}

func corePattern(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func liveFPM(t *testing.T, bin string, dumpable bool) {
	pat := corePattern(t)
	if strings.HasPrefix(pat, "/") || strings.HasPrefix(pat, "|") || strings.Contains(pat, "/") {
		t.Skipf("kernel.core_pattern is %q: this test checks that the kernel writes a worker's core exactly when the audit says it will, into the pool's chdir, which needs a relative pattern (such as Debian's default \"core\"); it does not change the machine-wide pattern (only the lab does)", pat)
	}
	dir := t.TempDir()
	// the workers (user nobody) must reach their chdir
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	work := filepath.Join(dir, "work")
	if err := os.Mkdir(work, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(work, 0o777); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	ini := filepath.Join(dir, "php.ini")
	scan := filepath.Join(dir, "conf.d")
	if err := os.WriteFile(ini, []byte("memory_limit = 64M\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(scan, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "fpm.log")
	conf := filepath.Join(dir, "php-fpm.conf")
	pool := fmt.Sprintf("[global]\nerror_log = %s\npid = %s/fpm.pid\n\n[www]\nuser = nobody\ngroup = nogroup\nlisten = 127.0.0.1:%d\npm = static\npm.max_children = 1\nchdir = %s\nrlimit_core = unlimited\n",
		log, dir, port, work)
	if dumpable {
		pool += "process.dumpable = yes\n"
	}
	if err := os.WriteFile(conf, []byte(pool), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-F", "-c", ini, "-y", conf)
	cmd.Env = append(os.Environ(), "PHP_INI_SCAN_DIR="+scan)
	cmd.Dir = dir
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	master := cmd.Process.Pid
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(log)
			t.Logf("php-fpm log:\n%s\noutput:\n%s", b, stderr.String())
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(master, syscall.SIGQUIT)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(master, syscall.SIGKILL)
			<-done
		}
	}()
	worker := waitFor(t, func() (int, bool) {
		for _, p := range fpmProcesses(&host{root: "/"}, func(string) {}) {
			if p.Role == "worker" && p.PPID == master {
				return p.PID, true
			}
		}
		return 0, false
	})

	// The web server's document root is the work directory too: a crash
	// during a request would land there, like the idle one below.
	nginx := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(nginx, []byte("http {\n  server {\n    listen 127.0.0.1:1;\n    root "+work+";\n  }\n}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, Options{FPMConfig: conf, PHPIni: ini, PHPIniScanDir: scan, Binary: bin, NginxConfig: nginx})
	if len(r.Installations) != 1 || len(r.Installations[0].Pools) != 1 {
		t.Fatalf("installations: %+v", r.Installations)
	}
	in := r.Installations[0]
	var seen *Process
	for i, p := range in.Processes {
		if p.PID == worker {
			seen = &in.Processes[i]
		}
	}
	if seen == nil || seen.Dumpable == nil {
		t.Fatalf("worker %d not audited: %+v", worker, in.Processes)
	}
	if *seen.Dumpable != dumpable {
		t.Errorf("worker dumpable = %v, want %v", *seen.Dumpable, dumpable)
	}
	verdict := in.Pools[0].CoresWritten
	if verdict != dumpable {
		t.Errorf("audit verdict cores_written = %v, want %v; findings:\n%s", verdict, dumpable, strings.Join(problems(r), "\n"))
	}
	if !dumpable && !hasStatus(r, "fpm.process_dumpable", StatusBlocks) {
		t.Errorf("missing process.dumpable not reported as blocking")
	}

	// Now the real thing: crash the worker and see what the kernel does.
	if err := syscall.Kill(worker, syscall.SIGSEGV); err != nil {
		t.Fatal(err)
	}
	line := waitFor(t, func() (string, bool) {
		b, _ := os.ReadFile(log)
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "child "+strconv.Itoa(worker)+" exited on signal 11") {
				return l, true
			}
		}
		return "", false
	})
	if pat != corePattern(t) {
		t.Skipf("kernel.core_pattern changed during the test (%q -> %q)", pat, corePattern(t))
	}
	cores, _ := filepath.Glob(filepath.Join(work, "core*"))
	for _, c := range cores {
		defer os.Remove(c)
	}
	gotCore := strings.Contains(line, "core dumped") && len(cores) > 0
	if gotCore != verdict {
		t.Errorf("audit said cores_written=%v, but the crash gave core=%v (FPM: %q, files %v)", verdict, gotCore, line, cores)
	}
}

// waitFor polls cond until it holds (the test's own deadline bounds it).
func waitFor[T any](t *testing.T, cond func() (T, bool)) T {
	t.Helper()
	for i := 0; i < 3000; i++ {
		if v, ok := cond(); ok {
			return v
		}
		time.Sleep(10 * time.Millisecond)
	}
	var zero T
	t.Fatalf("condition not reached after 30 s")
	return zero
}
