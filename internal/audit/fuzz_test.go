package audit

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

func FuzzParseINI(f *testing.F) {
	for _, s := range []string{
		"[PHP]\nmemory_limit = 128M ; comment\n",
		"opcache.jit=\"tracing\"\nx='a;b'\ny=${HOME}/x\n",
		"[www]\nphp_admin_value[memory_limit] = 1G\nuser = \"www-data\n",
		"=\n[\n\"\n'\n${\n",
		"a = \"b\\\"c\" d ; e\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		ini := ParseINI("fuzz.ini", data, map[string]string{"HOME": "/root"})
		for _, e := range ini.Entries {
			if e.Line <= 0 || e.Key == "" {
				t.Fatalf("bad entry %+v", e)
			}
		}
		for _, e := range ini.Entries {
			iniBool(e.Value)
			parseSize(e.Value)
			decodeJIT(e.Value)
			fpmRlimit(e.Value)
		}
	})
}

func FuzzParseUnit(f *testing.F) {
	for _, s := range []string{
		"[Service]\nLimitCORE=infinity\n",
		"[Service]\nExecStart=/usr/sbin/php-fpm \\\n  --nodaemonize\n",
		"[Service\nLimitCORE=1G:2G\n[Coredump]\nStorage=none\n\\",
		"[Service]\nLimitCORE=0:infinity\n# c \\\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, _ := ParseUnit("fuzz.service", data)
		for _, e := range entries {
			if e.Line <= 0 || e.Section == "" {
				t.Fatalf("bad entry %+v", e)
			}
			parseRlimit(e.Value)
			parseBytes(e.Value)
		}
	})
}

// FuzzAuditPool runs the whole audit on a tree whose pool file is the
// fuzz input: it must never fail or panic on a broken pool file.
func FuzzAuditPool(f *testing.F) {
	f.Add([]byte("[www]\nuser = www-data\nrlimit_core = unlimited\nprocess.dumpable = yes\n"))
	f.Add([]byte("[www]\ninclude=/etc/php/8.2/fpm/pool.d/*.conf\n[a]\n[a]\nphp_value[opcache.jit]=1205\n"))
	f.Add([]byte("[global]\nrlimit_core = 5\n[x]\nuser=\nchdir = $pool\n"))
	root := f.TempDir()
	src, err := filepath.Abs("testdata/debian12-clean")
	if err != nil {
		f.Fatal(err)
	}
	err = filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(root, rel)
		if info.Mode()&os.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			return os.Symlink(l, out)
		}
		if info.IsDir() {
			return os.MkdirAll(out, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(out, b, 0o644)
	})
	if err != nil {
		f.Fatal(err)
	}
	pool := filepath.Join(root, "etc/php/8.2/fpm/pool.d/www.conf")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(pool, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Run(Options{Root: root})
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
		var b strings.Builder
		if err := r.WriteText(&b, true); err != nil {
			t.Fatal(err)
		}
		if _, err := PlanFix(r, FixOptions{Capture: true, Mitigate: crash.MitigateNoJIT}); err != nil && !strings.Contains(err.Error(), "fix:") {
			t.Fatalf("PlanFix: %v", err)
		}
	})
}

func FuzzUnifiedDiff(f *testing.F) {
	f.Add("a\nb\nc\n", "a\nx\nc\n")
	f.Add("", "new\n")
	f.Fuzz(func(t *testing.T, a, b string) {
		var sb strings.Builder
		if err := unifiedDiff(&sb, "a", "b", splitLines([]byte(a)), splitLines([]byte(b))); err != nil {
			t.Fatal(err)
		}
	})
}

func FuzzWebRoots(f *testing.F) {
	f.Add([]byte("http {\n include /etc/nginx/sites-enabled/*;\n server { root /var/www/html; }\n}\n"))
	f.Add([]byte("root \"/srv/a b\";\ninclude nginx.conf;\nroot $document_root;\n"))
	f.Add([]byte("DocumentRoot /var/www\nInclude conf.d/*.conf\n"))
	root := f.TempDir()
	conf := filepath.Join(root, "etc/nginx/nginx.conf")
	if err := os.MkdirAll(filepath.Dir(conf), 0o755); err != nil {
		f.Fatal(err)
	}
	h := &host{root: root}
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(conf, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, e := range webRoots(h, "", func(string) {}) {
			if rootDir(e) == "" || e.Line <= 0 {
				t.Fatalf("bad root evidence %+v", e)
			}
		}
	})
}

// FuzzListenSocket: any listen value gives a unix path or a HOST:PORT a
// client can dial, or an error; never a panic.
func FuzzListenSocket(f *testing.F) {
	for _, s := range []string{"/run/php/php8.2-fpm.sock", "127.0.0.1:9000", "9000", "[::1]:9000", "[::]:9000", "*:9000",
		"0.0.0.0:65535", "run/x.sock", ":9000", "127.0.0.1:0", "127.0.0.1:+90", "[::1", "a:b:c:9000", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, listen string) {
		network, address, err := ListenSocket(listen)
		if err != nil {
			return
		}
		switch network {
		case "unix":
			if !strings.HasPrefix(address, "/") {
				t.Fatalf("%q: unix socket %q is not absolute", listen, address)
			}
		case "tcp":
			if _, port, err := net.SplitHostPort(address); err != nil || port == "" {
				t.Fatalf("%q: tcp address %q: %v", listen, address, err)
			}
		default:
			t.Fatalf("%q: network %q", listen, network)
		}
	})
}
