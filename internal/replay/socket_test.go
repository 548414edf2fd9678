package replay

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
)

// workerReport is what FindSocket reads of a core: the worker's process
// title (as NT_PRPSINFO records it, padded), its parent and PHP version.
func workerReport(title, version string) *crash.Report {
	return &crash.Report{Process: crash.Process{Args: title + strings.Repeat(" ", 80-len(title)), PPID: 1},
		PHP: &crash.PHP{Version: version, SAPI: "fpm-fcgi"}}
}

func testdata(t *testing.T, dir string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", dir))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFindSocketListenForms: each form of listen FPM accepts, read from a
// real php-fpm.conf, gives the socket a client on this host connects to;
// a relative path, a bad port and no listen at all are errors that say so.
func TestFindSocketListenForms(t *testing.T) {
	conf := filepath.Join(testdata(t, "listen"), "php-fpm.conf")
	for _, c := range []struct{ pool, socket, err string }{
		{pool: "unix", socket: "unix:/run/php/unix.sock"},
		{pool: "quoted", socket: "unix:/run/php/quoted quoted.sock"}, // $pool expands to the pool's name
		{pool: "ipv4", socket: "tcp:127.0.0.1:9001"},
		{pool: "port", socket: "tcp:127.0.0.1:9002"}, // all addresses: loopback
		{pool: "any4", socket: "tcp:127.0.0.1:9003"},
		{pool: "ipv6", socket: "tcp:[::1]:9004"},
		{pool: "any6", socket: "tcp:[::1]:9005"},
		{pool: "star", socket: "tcp:127.0.0.1:9006"},
		{pool: "remote", socket: "tcp:192.0.2.7:9007"}, // found; ParseSocket refuses it without --allow-remote
		{pool: "relative", err: `listen "run/php.sock" is a relative path`},
		{pool: "badport", err: `bad port "99999"`},
		{pool: "unset", err: "listen is not set"},
	} {
		f, err := FindSocket(workerReport("php-fpm: pool "+c.pool, "8.2.36"), SocketSearch{FPMConfig: conf})
		if c.err != "" {
			var se *SocketError
			if err == nil || !errors.As(err, &se) || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), conf) {
				t.Errorf("pool %s: %+v, %v; want an error with %q naming the file", c.pool, f, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("pool %s: %v", c.pool, err)
			continue
		}
		if f.Socket != c.socket || f.Pool != c.pool || f.Listen.Evidence == nil || !strings.HasPrefix(f.Why, "the listen of pool "+c.pool+" in "+conf+":") {
			t.Errorf("pool %s: %s (%s), want %s", c.pool, f.Socket, f.Why, c.socket)
		}
		if c.pool != "remote" {
			if _, _, err := ParseSocket(f.Socket, false); err != nil {
				t.Errorf("pool %s: --socket does not take what FindSocket found: %v", c.pool, err)
			}
		}
	}
}

// TestFindSocketHosts: the pool's socket in trees laid out as hosts are
// (Debian's own php-fpm.conf and www.conf; two PHP versions; RHEL's layout
// next to Debian's; one pool split over two files), and the errors that
// send the user to --socket, each naming what was read.
func TestFindSocketHosts(t *testing.T) {
	for _, c := range []struct {
		name, root, title, version string
		socket, why                string // want
		err                        []string
	}{
		{name: "debian", root: "debian", title: "php-fpm: pool www", version: "8.2.36",
			socket: "unix:ROOT/run/php/php8.2-fpm.sock", why: "the listen of pool www in /etc/php/8.2/fpm/pool.d/www.conf:41"},
		{name: "the core's PHP version", root: "versions", title: "php-fpm: pool www", version: "8.1.31",
			socket: "unix:ROOT/run/php/php8.1-fpm.sock", why: "the listen of pool www in /etc/php/8.1/fpm/pool.d/www.conf:4; the other installations defining it run another PHP version than the core's 8.1.31"},
		{name: "merged sections", root: "merged", title: "php-fpm: pool www", version: "8.2.36",
			socket: "unix:ROOT/run/php/b.sock", why: "the listen of pool www in /etc/php/8.2/fpm/pool.d/b-www.conf:3 (the last of the 2 [www] sections, which FPM merges into one pool)"},
		{name: "version unknown", root: "versions", title: "php-fpm: pool www",
			err: []string{"pool www is defined by 2 PHP-FPM installations", "/etc/php/8.1/fpm/pool.d/www.conf:4 (listen /run/php/php8.1-fpm.sock)", "/etc/php/8.2/fpm/pool.d/www.conf:4 (listen /run/php/php8.2-fpm.sock)"}},
		{name: "two installations", root: "two-installations", title: "php-fpm: pool www", version: "8.2.36",
			err: []string{"pool www is defined by 2 PHP-FPM installations", "/etc/php/8.2/fpm/pool.d/www.conf:4 (listen /run/php/php8.2-fpm.sock)", "/etc/php-fpm.d/www.conf:4 (listen 127.0.0.1:9000)"}},
		{name: "unknown pool", root: "debian", title: "php-fpm: pool shop", version: "8.2.36",
			err: []string{"no pool shop in the PHP-FPM configuration: read /etc/php/8.2/fpm/php-fpm.conf (pools www)"}},
		{name: "no configuration", root: "", title: "php-fpm: pool www", version: "8.2.36",
			err: []string{"pool www: no PHP-FPM configuration found in ", "/etc/php/*/fpm/php-fpm.conf", "--fpm-config"}},
		{name: "no pool in the title", root: "debian", title: "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)", version: "8.2.36",
			err: []string{`the core does not say which PHP-FPM pool its worker served (its process title is "php-fpm: master process`}},
	} {
		root := t.TempDir() // no configuration at all
		if c.root != "" {
			root = testdata(t, c.root)
		}
		f, err := FindSocket(workerReport(c.title, c.version), SocketSearch{Root: root})
		if c.err != nil {
			var se *SocketError
			if err == nil || !errors.As(err, &se) {
				t.Errorf("%s: %+v, %v; want a SocketError", c.name, f, err)
				continue
			}
			for _, want := range c.err {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("%s: error %q lacks %q", c.name, err, want)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if want := strings.Replace(c.socket, "ROOT", root, 1); f.Socket != want || f.Why != c.why {
			t.Errorf("%s: %s: %s\nwant %s: %s", c.name, f.Socket, f.Why, want, c.why)
		}
	}
}

// TestMergedSectionsAsFPM: a pool whose section appears in two included
// files is one pool listening on the last listen; FindSocket takes the
// socket the real php-fpm opens for that configuration, not the other.
func TestMergedSectionsAsFPM(t *testing.T) {
	fpm := ""
	for _, p := range []string{"/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm"} {
		if _, err := os.Stat(p); err == nil {
			fpm = p
			break
		}
	}
	if fpm == "" {
		t.Skip("no php-fpm here (apt-get install php8.2-fpm)")
	}
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "php-fpm.conf")
	write("php-fpm.conf", "[global]\npid = "+dir+"/fpm.pid\nerror_log = "+dir+"/fpm.log\ninclude = "+dir+"/pool.d/*.conf\n")
	write("pool.d/a-www.conf", "[www]\nlisten = "+dir+"/a.sock\npm = static\npm.max_children = 1\n")
	write("pool.d/b-www.conf", "[www]\nlisten = "+dir+"/b.sock\n")
	args := []string{"--nodaemonize", "--fpm-config", conf}
	if os.Geteuid() == 0 {
		args = append(args, "--allow-to-run-as-root")
	}
	cmd := exec.Command(fpm, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
	}()
	// Wait until the master has opened its pool's socket (or exited).
	opened := ""
	for opened == "" {
		select {
		case err := <-exited:
			exited <- err
			log, _ := os.ReadFile(filepath.Join(dir, "fpm.log"))
			t.Fatalf("php-fpm exited: %v\n%s%s", err, out.String(), log)
		case <-time.After(20 * time.Millisecond):
		}
		for _, s := range []string{"a.sock", "b.sock"} {
			if _, err := os.Stat(filepath.Join(dir, s)); err == nil {
				opened = filepath.Join(dir, s)
			}
		}
	}
	f, err := FindSocket(workerReport("php-fpm: pool www", "8.2.36"), SocketSearch{FPMConfig: conf})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("php-fpm opened %s; socket %s: %s", opened, f.Socket, f.Why)
	if f.Socket != "unix:"+opened {
		t.Errorf("FindSocket chose %s, php-fpm listens on %s", f.Socket, opened)
	}
	if _, err := os.Stat(filepath.Join(dir, "a.sock")); err == nil {
		t.Errorf("php-fpm opened both sockets: two pools, not one")
	}
}

// TestFindSocketInContainer: a worker that ran in a container (the core's
// files found in its root) has its pool's socket looked for in that root:
// a unix socket there is reached through it, a TCP listen (another network
// namespace) and a container gone are errors; --root or --fpm-config
// given say where to look instead.
func TestFindSocketInContainer(t *testing.T) {
	in := func(root, runtime string) *crash.Report {
		r := workerReport("php-fpm: pool www", "8.2.36")
		r.Root = &crash.Root{Dir: root, Runtime: runtime, Name: "shop"}
		return r
	}
	debian, port := testdata(t, "debian"), testdata(t, "container-tcp")
	f, err := FindSocket(in(debian, "docker"), SocketSearch{})
	if err != nil || f.Socket != "unix:"+debian+"/run/php/php8.2-fpm.sock" ||
		f.Why != "the listen of pool www in /etc/php/8.2/fpm/pool.d/www.conf:41, in the docker container shop the worker ran in ("+debian+")" {
		t.Errorf("docker: %+v, %v", f, err)
	}
	if _, err := FindSocket(in(port, "docker"), SocketSearch{}); err == nil || !strings.Contains(err.Error(), "listens on 127.0.0.1:9000 inside the docker container shop") {
		t.Errorf("TCP in a container: %v", err)
	}
	if f, err := FindSocket(in(port, "given"), SocketSearch{}); err != nil || f.Socket != "tcp:127.0.0.1:9000" {
		t.Errorf("TCP in a chroot (same network): %+v, %v", f, err)
	}
	if _, err := FindSocket(in(debian, "docker-layer"), SocketSearch{}); err == nil || !strings.Contains(err.Error(), "container that is gone") {
		t.Errorf("a container gone: %v", err)
	}
	if f, err := FindSocket(in(port, "docker"), SocketSearch{Root: debian}); err != nil || f.Socket != "unix:"+debian+"/run/php/php8.2-fpm.sock" {
		t.Errorf("--root given: %+v, %v", f, err)
	}
}
