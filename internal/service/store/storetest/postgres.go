// Package storetest starts a real, throw-away PostgreSQL server for tests of
// the store and of the packages built on it.
package storetest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// Postgres starts a PostgreSQL server from Debian's postgresql package
// (installing it with apt-get when missing and running as root) on a free
// 127.0.0.1 port, in a temporary directory owned by the user it runs as
// (postgres for root, else the current user), and returns its DSN once it
// accepts connections. The server is stopped (by its pid) when the test ends.
// It calls t.Skip with a clear message when no server can be had.
func Postgres(t testing.TB) string {
	t.Helper()
	bin := pgBinDir()
	if bin == "" && os.Geteuid() == 0 {
		out, err := exec.Command("apt-get", "install", "-y", "-q", "postgresql").CombinedOutput()
		if err != nil {
			t.Skipf("PostgreSQL not installed and apt-get install postgresql failed: %v\n%s", err, tail(out))
		}
		bin = pgBinDir()
	}
	if bin == "" {
		t.Skip("PostgreSQL server binaries (Debian package postgresql) not found under /usr/lib/postgresql")
	}
	// PostgreSQL refuses to run as root: root runs it as the postgres
	// user, anyone else as themselves.
	uid, gid := os.Geteuid(), os.Getegid()
	cred := &syscall.SysProcAttr{}
	if uid == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
		cred.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	dir, err := os.MkdirTemp("", "coroner-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = cred
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, tail(out))
	}
	port := freePort(t)
	logPath := filepath.Join(dir, "postgres.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	os.Chown(logPath, uid, gid)
	srv := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-p", strconv.Itoa(port),
		"-h", "127.0.0.1", "-k", dir, "-c", "fsync=off")
	srv.SysProcAttr = cred
	srv.Dir = dir
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	t.Cleanup(func() {
		srv.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			srv.Process.Kill()
			<-done
		}
	})
	// Listening is not enough: during start-up the server answers
	// "the database system is starting up". pg_isready says when it
	// accepts connections.
	deadline := time.Now().Add(30 * time.Second)
	for {
		ready := exec.Command(filepath.Join(bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "postgres", "-d", "postgres")
		if err := ready.Run(); err == nil {
			break
		} else if _, ok := err.(*exec.ExitError); !ok {
			// no pg_isready: fall back to the port
			c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second)
			if err == nil {
				c.Close()
				time.Sleep(time.Second)
				break
			}
		}
		select {
		case <-done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("postgres exited:\n%s", tail(b))
		default:
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("postgres did not listen on port %d:\n%s", port, tail(b))
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

func pgBinDir() string {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	sort.Strings(m)
	if len(m) == 0 {
		return ""
	}
	return filepath.Dir(m[len(m)-1])
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
