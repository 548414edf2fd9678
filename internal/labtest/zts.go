package labtest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ZTSThreadsCore is the core of lab/zts-embed/threads.c: one process on a
// thread-safe (ZTS) libphp running PHP in two threads at once, one of which
// crashed inside PHP.
type ZTSThreadsCore struct {
	// Core is the core file; Binary the host program.
	Core, Binary string
	// Crashed and Sleeping are the PHP stacks of the two threads,
	// innermost first, as "function file:line" ("crash_now" for the
	// internal function, without a file).
	Crashed, Sleeping []string
}

// ZTSThreads builds lab/zts-embed/threads.c against the ZTS libphp with the
// embed SAPI that lab/zts-embed/build.sh installs ($CORONER_ZTS_EMBED,
// default /var/cache/coroner/php-zts-embed), runs it until it crashes and
// returns its core. It skips, saying what to run, when that libphp is not
// built, and when kernel.core_pattern pipes cores away.
func ZTSThreads(t testing.TB) *ZTSThreadsCore {
	t.Helper()
	root := os.Getenv("CORONER_ZTS_EMBED")
	if root == "" {
		root = "/var/cache/coroner/php-zts-embed"
	}
	if _, err := os.Stat(filepath.Join(root, ".complete")); err != nil {
		t.Skipf("no ZTS libphp with the embed SAPI under %s (run lab/zts-embed/build.sh, or set CORONER_ZTS_EMBED)", root)
	}
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	repo, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	pat, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err != nil {
		t.Skipf("read core_pattern: %v", err)
	}
	pattern := strings.TrimSpace(string(pat))
	if strings.HasPrefix(pattern, "|") {
		t.Skipf("kernel.core_pattern pipes cores to a program (%s): no core file to read", pattern)
	}
	dir := t.TempDir()
	inc := filepath.Join(root, "include", "php")
	bin := filepath.Join(dir, "threads")
	args := []string{"-O1", "-o", bin, filepath.Join(repo, "lab", "zts-embed", "threads.c")}
	for _, d := range []string{"", "main", "Zend", "TSRM"} {
		args = append(args, "-I"+filepath.Join(inc, d))
	}
	lib := filepath.Join(root, "lib")
	args = append(args, "-L"+lib, "-Wl,-rpath,"+lib, "-lphp", "-lpthread")
	if out, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("build threads.c: %v\n%s", err, out)
	}
	coreDir := dir
	if strings.HasPrefix(pattern, "/") {
		coreDir = filepath.Dir(pattern)
	}
	cmd := exec.Command("sh", "-c", `ulimit -c unlimited && exec "$0"`, bin)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now().Add(-time.Second)
	if err := cmd.Start(); err != nil {
		t.Fatalf("start threads: %v", err)
	}
	pid := strconv.Itoa(cmd.Process.Pid) // sh execs the program: same pid
	const limit = 2 * time.Minute
	timer := time.AfterFunc(limit, func() { cmd.Process.Kill() })
	err = cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("threads did not crash within %v (killed): %s", limit, out.String())
	}
	if err == nil {
		t.Fatalf("threads did not crash: %s", out.String())
	}
	ents, _ := os.ReadDir(coreDir)
	for _, e := range ents {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || info.ModTime().Before(start) || !strings.Contains(e.Name(), "core") {
			continue
		}
		if coreDir != dir && !strings.Contains(e.Name(), pid) {
			continue // a shared core directory: only this process's core
		}
		p := filepath.Join(coreDir, e.Name())
		if coreDir != dir {
			t.Cleanup(func() { os.Remove(p) })
		}
		return &ZTSThreadsCore{Core: p, Binary: bin,
			Crashed:  []string{"crash_now", "boom crasher.php:2", "{main} crasher.php:4"},
			Sleeping: []string{"usleep", "wait_here sleeper.php:3", "{main} sleeper.php:5"}}
	}
	t.Skipf("threads crashed (%v) but no core appeared in %s (core_pattern %q): %s", err, coreDir, pattern, out.String())
	return nil
}
