package logs

import (
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// TestLinkCores: cores go to the crash of their pid nearest in time (not to
// the first incident of that pid), to the crash of one of their threads, not
// to a crash of another program that had the same pid; every core not
// linked says why.
func TestLinkCores(t *testing.T) {
	base := time.Date(2026, 12, 6, 9, 0, 0, 0, time.UTC)
	incs := []*Incident{
		{ID: 1, PID: 100, Comm: "php-fpm8.2", Time: base},                    // an earlier death of pid 100
		{ID: 2, PID: 100, Pool: "www", Time: base.Add(time.Hour)},            // its core is this one's
		{ID: 3, PID: 205, Comm: "worker-3", Time: base.Add(2 * time.Hour)},   // a thread of process 200, named
		{ID: 4, PID: 300, Comm: "python3", Time: base.Add(3 * time.Hour)},    // pid 300 reused by php-fpm later
		{ID: 5, PID: 400, Comm: "php-fpm8.2", Time: base.Add(4 * time.Hour)}, // no core
	}
	cores := []*coredumps.Entry{
		{Path: "/c/core.100", PID: 100, PIDFrom: "core", Comm: "php-fpm8.2", Time: base.Add(time.Hour + time.Second)},
		{Path: "/c/core.200", PID: 200, PIDFrom: "core", TIDs: []int{201, 205, 200}, Comm: "thread-crash", Time: base.Add(2 * time.Hour)},
		{Path: "/c/core.300", PID: 300, PIDFrom: "core", Comm: "php-fpm8.2", Time: base.Add(3*time.Hour + time.Second)},
		{Path: "/c/core.999", PID: 999, PIDFrom: "name", Comm: "php-fpm8.2", Time: base.Add(5 * time.Hour)},
		{ID: "kept-nothing", PID: 500, Time: base},
	}
	byInc, cl := linkCores(incs, cores)
	if incs[0].Core != "" || incs[1].Core != "/c/core.100" || incs[1].CoreConfidence != ConfHigh {
		t.Errorf("pid 100: first death core %q, second %q (%s)", incs[0].Core, incs[1].Core, incs[1].CoreConfidence)
	}
	if incs[2].Core != "/c/core.200" || byInc[incs[2]] != cores[1] || !strings.Contains(incs[2].Links[0].Reason, "thread 205") {
		t.Errorf("thread 205: core %q, links %+v", incs[2].Core, incs[2].Links)
	}
	if incs[3].Core != "" {
		t.Errorf("python3's pid 300 took php-fpm's core %s", incs[3].Core)
	}
	if cl.Cores != 4 || cl.Linked != 2 || cl.NotKept != 1 || len(cl.Unlinked) != 2 {
		t.Fatalf("core links %+v", cl)
	}
	why := map[string]string{}
	for _, u := range cl.Unlinked {
		why[u.Path] = u.Why
	}
	if w := why["/c/core.300"]; !strings.Contains(w, "reused by another program") {
		t.Errorf("core.300: %q", w)
	}
	if w := why["/c/core.999"]; !strings.Contains(w, "no crash of pid 999") || !strings.Contains(w, "file name") || !strings.Contains(w, "newer than the logs' last crash") {
		t.Errorf("core.999: %q", w)
	}
}

// TestIsPHPCommand: the command names (15-character comm) and executables
// of the programs that run PHP, and some that do not.
func TestIsPHPCommand(t *testing.T) {
	for name, want := range map[string]bool{
		"php-fpm8.2": true, "php-fpm": true, "php8.3": true, "php": true, "php-cgi8.2": true, "php-cgi": true,
		"/usr/sbin/php-fpm8.2": true, "/usr/bin/php8.2": true, "php-fpm: pool www": true, "lsphp": true, "frankenphp": true,
		"/opt/remi/php82/root/usr/sbin/php-fpm": true, "python3": false, "perl": false, "phpstorm": false, "apache2": false, "": false, "/usr/bin/phpize": false,
	} {
		if got := IsPHPCommand(name); got != want {
			t.Errorf("IsPHPCommand(%q) = %v, want %v", name, got, want)
		}
	}
}

// TestClassify: how an incident is known to be of a PHP process, or not.
// An Apache child is PHP's only with mod_php: its core maps libphp, it
// crashed in it, or Apache's configuration loads it.
func TestClassify(t *testing.T) {
	loaded := &ModPHP{Loaded: true, Why: "/etc/apache2/mods-enabled/php8.2.load:3: LoadModule php_module ... loads mod_php"}
	absent := &ModPHP{Why: "/etc/apache2/apache2.conf loads no PHP module"}
	apacheCore := &coredumps.Entry{Exe: "/usr/sbin/apache2", Comm: "apache2", MapsKnown: true, PHPModule: "/usr/lib/apache2/modules/libphp8.2.so"}
	plainApacheCore := &coredumps.Entry{Exe: "/usr/sbin/apache2", Comm: "apache2", MapsKnown: true}
	cases := []struct {
		inc    Incident
		core   *coredumps.Entry
		modPHP *ModPHP
		php    bool
		why    string
	}{
		{Incident{Pool: "www", PID: 1}, nil, nil, true, "pool www"},
		{Incident{apache: true, PID: 1}, nil, nil, false, "no Apache configuration read"},
		{Incident{apache: true, PID: 1}, nil, loaded, true, "Apache child with mod_php (/etc/apache2/mods-enabled/php8.2.load:3"},
		{Incident{apache: true, PID: 1}, nil, absent, false, "Apache child without mod_php (/etc/apache2/apache2.conf loads no PHP module)"},
		{Incident{apache: true, PID: 1}, apacheCore, absent, true, "apache2 with libphp8.2.so loaded (the core's mappings)"},
		{Incident{apache: true, PID: 1}, plainApacheCore, loaded, false, "core maps no PHP library"},
		{Incident{apache: true, PID: 1, Fault: &KernelFault{Module: "libphp8.2.so"}}, nil, absent, true, "crashed in libphp8.2.so"},
		{Incident{Comm: "php8.2", PID: 1}, nil, nil, true, "command php8.2"},
		{Incident{Comm: "apache2", PID: 1, Fault: &KernelFault{Module: "libphp8.2.so"}}, nil, nil, true, "libphp8.2.so"},
		{Incident{Comm: "apache2", PID: 1, Fault: &KernelFault{Module: "libc.so.6"}}, nil, nil, false, "no sign of PHP"},
		{Incident{Comm: "apache2", PID: 1, Fault: &KernelFault{Module: "libc.so.6"}}, nil, loaded, true, "apache2 with mod_php"},
		{Incident{Comm: "httpd", PID: 1}, nil, absent, false, "httpd without mod_php"},
		{Incident{Comm: "sh", PID: 1}, &coredumps.Entry{Exe: "/usr/sbin/php-fpm8.2"}, nil, true, "the core's executable"},
		{Incident{Comm: "python3", PID: 1}, nil, loaded, false, "python3 is not PHP"},
		{Incident{Comm: "svc", PID: 1, buildIDs: map[string]string{"/usr/lib/apache2/modules/libphp8.2.so": "ab"}}, nil, nil, true, "systemd-coredump"},
	}
	for _, c := range cases {
		inc := c.inc
		classify(&inc, c.core, c.modPHP)
		if inc.PHP != c.php || !strings.Contains(inc.ProcessWhy, c.why) {
			t.Errorf("%+v (core %+v, mod_php %+v): PHP %v (%s), want %v (%s)", c.inc, c.core, c.modPHP, inc.PHP, inc.ProcessWhy, c.php, c.why)
		}
	}
}
