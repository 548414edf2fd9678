// Package storetest starts a real, throw-away PostgreSQL server for tests of
// the store and of the packages built on it.
package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // PostgreSQL driver "pgx"
)

// Postgres starts a PostgreSQL server (see NewServer), waits until it
// answers a query and returns its DSN. The server is stopped (by its pid)
// when the test ends. It calls t.Skip with a clear message when no server
// can be had.
func Postgres(t testing.TB) string {
	t.Helper()
	s := NewServer(t)
	s.Start()
	s.WaitReady()
	return s.DSN
}

// Server is a throw-away PostgreSQL server owned by one test. It can be
// stopped and started again on the same port and data directory, so that a
// test can take the database away from a client and give it back.
type Server struct {
	// DSN is the server's address, valid before the server is started.
	DSN string

	t       testing.TB
	bin     string
	dir     string
	data    string
	logPath string
	port    int
	cred    *syscall.SysProcAttr
	uid     int
	gid     int
	proc    *exec.Cmd
	done    chan struct{}
}

// NewServer creates (initdb) a PostgreSQL cluster from Debian's postgresql
// package, installing the package with apt-get when it is missing and the
// test runs as root, in a temporary directory owned by the user it runs as
// (postgres for root, else the current user),
// and picks a free 127.0.0.1 port. It does not start the server. The
// server, if running, is stopped and the directory removed when the test
// ends. It calls t.Skip with a clear message when no server can be had.
func NewServer(t testing.TB) *Server {
	t.Helper()
	bin := pgBinDir()
	if bin == "" && os.Geteuid() == 0 {
		out, err := exec.Command("apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-q", "postgresql").CombinedOutput()
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
	s := &Server{t: t, bin: bin, dir: dir, data: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "postgres.log"),
		cred: cred, uid: uid, gid: gid}
	t.Cleanup(func() {
		s.stop()
		os.RemoveAll(dir)
	})
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", s.data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	initdb.SysProcAttr = cred
	initdb.Dir = dir
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, tail(out))
	}
	s.port = freePort(t)
	s.DSN = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	return s
}

// Start starts the server and returns once the process runs: it may still
// refuse connections (SQLSTATE 57P03, "the database system is starting
// up") or not listen yet. WaitReady waits for it.
func (s *Server) Start() {
	s.t.Helper()
	s.start()
}

// StartStandby starts the server as a standby without hot standby: it
// listens but refuses every connection with SQLSTATE 57P03 ("the database
// system is not accepting connections") until Promote. This is how a test
// holds a real server in the state clients meet while it starts up.
func (s *Server) StartStandby() {
	s.t.Helper()
	if err := os.WriteFile(filepath.Join(s.data, "standby.signal"), nil, 0o600); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(s.data, "standby.signal"), s.uid, s.gid); err != nil {
		s.t.Fatal(err)
	}
	s.start("-c", "hot_standby=off")
}

// Promote ends the standby mode of a server started with StartStandby and
// waits until it accepts queries.
func (s *Server) Promote() {
	s.t.Helper()
	// A server that has just started refuses connections with 57P03
	// before it has entered standby mode, and pg_ctl then answers "server
	// is not in standby mode": try again until it is.
	deadline := time.Now().Add(time.Minute)
	for {
		cmd := exec.Command(filepath.Join(s.bin, "pg_ctl"), "promote", "-w", "-t", "60", "-D", s.data)
		cmd.SysProcAttr = s.cred
		cmd.Dir = s.dir
		out, err := cmd.CombinedOutput()
		if err == nil {
			break
		}
		if !strings.Contains(string(out), "not in standby mode") || time.Now().After(deadline) {
			s.t.Fatalf("pg_ctl promote: %v\n%s\n%s", err, out, s.log())
		}
		time.Sleep(200 * time.Millisecond)
	}
	s.WaitReady()
}

func (s *Server) start(args ...string) {
	s.t.Helper()
	if s.proc != nil {
		s.t.Fatal("storetest: server already running")
	}
	logf, err := os.OpenFile(s.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	os.Chown(s.logPath, s.uid, s.gid)
	argv := append([]string{"-D", s.data, "-p", strconv.Itoa(s.port), "-h", "127.0.0.1", "-k", s.dir, "-c", "fsync=off"}, args...)
	srv := exec.Command(filepath.Join(s.bin, "postgres"), argv...)
	srv.SysProcAttr = s.cred
	srv.Dir = s.dir
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		s.t.Fatalf("start postgres: %v", err)
	}
	done := make(chan struct{})
	go func() { srv.Wait(); close(done) }()
	s.proc, s.done = srv, done
}

// WaitReady waits until the server answers SELECT 1: a listening port is
// not a ready server (it refuses connections while it starts up). It fails
// the test when the server exits or is not ready within two minutes.
func (s *Server) WaitReady() {
	s.t.Helper()
	if s.proc == nil {
		s.t.Fatal("storetest: WaitReady on a stopped server")
	}
	db, err := sql.Open("pgx", s.DSN)
	if err != nil {
		s.t.Fatal(err)
	}
	defer db.Close()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var one int
		err = db.QueryRowContext(ctx, "SELECT 1").Scan(&one)
		cancel()
		if err == nil {
			return
		}
		select {
		case <-s.done:
			s.proc = nil
			s.t.Fatalf("postgres exited:\n%s", s.log())
		default:
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("postgres on port %d not ready: %v\n%s", s.port, err, s.log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop shuts the server down (fast shutdown: open connections are closed)
// and waits until it exited. The data stay; Start starts it again.
func (s *Server) Stop() {
	s.t.Helper()
	if s.proc == nil {
		s.t.Fatal("storetest: Stop on a stopped server")
	}
	s.stop()
}

func (s *Server) stop() {
	if s.proc == nil {
		return
	}
	s.proc.Process.Signal(syscall.SIGINT) // fast shutdown
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.proc.Process.Kill()
		<-s.done
	}
	s.proc = nil
}

func (s *Server) log() string {
	b, _ := os.ReadFile(s.logPath)
	return tail(b)
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
