package logs

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func mustParse(t *testing.T, line string, loc *time.Location) Event {
	t.Helper()
	p := newLineParser(loc, time.Date(2026, 11, 30, 0, 0, 0, 0, loc))
	ev, ok := p.parse([]byte(line))
	if !ok {
		t.Fatalf("not parsed: %s", line)
	}
	return ev
}

func TestParseLines(t *testing.T) {
	utc := time.UTC
	seg := "php-fpm8.2[14502]: segfault at 20 ip 00007f955df21fe1 sp 00007ffdbf020490 error 4 in libpcre2-8.so.0.11.2[51fe1,7f955ded2000+6b000] likely on CPU 1 (core 1, socket 0)"
	at := time.Date(2026, 11, 26, 19, 27, 44, 0, utc)
	cases := []struct {
		name, line string
		kind       Kind
		pid        int
		when       time.Time // zero: not checked
		uptime     float64
	}{
		{"nginx reset", `2026/11/26 19:27:44 [error] 14500#14500: *7 recv() failed (104: Connection reset by peer) while reading response header from upstream, client: 127.0.0.1, server: lab.local, request: "GET /search.php?q=teacher HTTP/1.1", upstream: "fastcgi://unix:/tmp/lab/run/php-fpm.sock:", host: "127.0.0.1:18080"`, KindUpstreamReset, 14500, at, 0},
		{"nginx closed", `2026/11/26 19:27:44 [error] 14500#14500: *9 upstream prematurely closed connection while reading response header from upstream, client: ::1, server: _, request: "GET / HTTP/1.1", upstream: "fastcgi://127.0.0.1:9000", host: "localhost"`, KindUpstreamClosed, 14500, at, 0},
		{"fpm signal", `[26-Nov-2026 19:27:44] WARNING: [pool www] child 14502 exited on signal 11 (SIGSEGV - core dumped) after 0.942805 seconds from start`, KindChildSignal, 14502, at, 0},
		{"fpm usec", `[26-Nov-2026 19:27:44.123456] WARNING: [pool www] child 14502 exited with code 255 after 1.5 seconds from start`, KindChildExit, 14502, at.Add(123456 * time.Microsecond), 0},
		{"dmesg raw", "[  652.248812] " + seg, KindSegfault, 14502, time.Time{}, 652.248812},
		{"dmesg -T", "[Thu Nov 26 19:27:44 2026] " + seg, KindSegfault, 14502, at, 0},
		{"dmesg iso", "2026-11-26T19:27:44,248812+00:00 " + seg, KindSegfault, 14502, at.Add(248812 * time.Microsecond), 0},
		{"short-iso", "2026-11-26T20:27:44+0100 web1 kernel: " + seg, KindSegfault, 14502, at, 0},
		{"rsyslog", "2026-11-26T19:27:44.248812+00:00 web1 kernel: [  652.248812] " + seg, KindSegfault, 14502, at.Add(248812 * time.Microsecond), 652.248812},
		{"syslog", "Nov 26 19:27:44 web1 kernel: " + seg, KindSegfault, 14502, at, 0},
		{"fpm via syslog", "Nov 26 19:27:44 web1 php-fpm8.2[870]: WARNING: [pool www] child 14502 exited on signal 11 (SIGSEGV) after 1.0 seconds from start", KindChildSignal, 14502, at, 0},
		{"gpf", "[ 99.5] traps: php-fpm8.2[77] general protection fault ip:7f955df21fe1 sp:7ffdbf020490 error:0 in libc.so.6[7f955de00000+155000]", KindGPF, 77, time.Time{}, 99.5},
		{"trap", "Nov 26 19:27:44 web1 kernel: traps: php[1234] trap invalid opcode ip:55d0c0a0b0c0 sp:7ffd8a0c0d00 error:0 in php8.2[55d0c0800000+300000]", KindTrap, 1234, at, 0},
		{"coredump syslog", "Nov 26 19:27:44 web1 systemd-coredump[999]: Process 14502 (php-fpm8.2) of user 33 dumped core.", KindCoredump, 14502, at, 0},
		{"apache fcgi", "[Thu Nov 26 19:27:44.123456 2026] [proxy_fcgi:error] [pid 1234:tid 5678] (104)Connection reset by peer: [client 127.0.0.1:5555] AH01075: Error dispatching request to : (polling)", KindUpstreamReset, 1234, at.Add(123456 * time.Microsecond), 0},
		{"apache header", "[Thu Nov 26 19:27:44.000001 2026] [proxy_fcgi:error] [pid 1234:tid 5678] [client 10.0.0.1:5555] AH01067: Failed to read FastCGI header", KindUpstreamClosed, 1234, at.Add(time.Microsecond), 0},
		{"apache child", "[Thu Nov 26 19:27:44.5 2026] [core:notice] [pid 1000] AH00052: child pid 1234 exit signal Segmentation fault (11), possible coredump in /tmp", KindApacheChild, 1234, at.Add(500 * time.Millisecond), 0},
		{"access", `127.0.0.1 - - [26/Nov/2026:20:27:44 +0100] "GET /teachers/profile-sarah/ HTTP/1.1" 502 157 "-" "curl/7.88.1"`, KindHTTPError, 0, at, 0},
		{"journal", `{"__REALTIME_TIMESTAMP":"1795728464000000","_TRANSPORT":"kernel","MESSAGE":"` + seg + `"}`, KindSegfault, 14502, time.UnixMicro(1795728464000000), 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ev := mustParse(t, c.line, utc)
			if ev.Kind != c.kind || ev.PID != c.pid {
				t.Errorf("kind %s pid %d, want %s %d", ev.Kind, ev.PID, c.kind, c.pid)
			}
			if !c.when.IsZero() && !ev.Time.Equal(c.when) {
				t.Errorf("time %s, want %s", ev.Time, c.when)
			}
			if ev.Uptime != c.uptime {
				t.Errorf("uptime %v, want %v", ev.Uptime, c.uptime)
			}
		})
	}
}

func TestParseFields(t *testing.T) {
	ev := mustParse(t, `2026/11/26 19:27:44 [error] 14500#14500: *7 connect() to unix:/run/php/php8.2-fpm.sock failed (11: Resource temporarily unavailable) while connecting to upstream, client: 127.0.0.1, server: lab.local, request: "POST /a?b=\"c\" HTTP/2.0", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "example.org"`, time.UTC)
	if ev.Kind != KindConnectFailed || ev.Errno != 11 || ev.Method != "POST" || ev.URI != `/a?b=\"c\"` || ev.Host != "example.org" || ev.Client != "127.0.0.1" || ev.Server != "lab.local" {
		t.Errorf("%+v", ev)
	}
	ev = mustParse(t, `[26-Nov-2026 19:27:44] WARNING: [pool www] child 14502 exited on signal 11 (SIGSEGV - core dumped) after 0.942805 seconds from start`, time.UTC)
	if ev.Signal != 11 || ev.SignalName != "SIGSEGV" || !ev.CoreDumped || ev.Pool != "www" || ev.Lifetime != 0.942805 {
		t.Errorf("%+v", ev)
	}
	ev = mustParse(t, `[26-Nov-2026 19:27:44] WARNING: [pool www] child 14502, script '/srv/a b.php' (request: "GET /index.php?x=1") execution timed out (30.012 sec), terminating`, time.UTC)
	if ev.Kind != KindExecTimeout || ev.Script != "/srv/a b.php" || ev.URI != "/index.php?x=1" || ev.RequestTime != 30.012 {
		t.Errorf("%+v", ev)
	}
	ev = mustParse(t, `10.0.0.1 - bob [26/Nov/2026:19:27:44 -0530] "GET /x HTTP/1.1" 504 0 "-" "ua" rt=60.001 uct="0.000" us="504"`, time.UTC)
	if ev.Status != 504 || ev.RequestTime != 60.001 || ev.UpstreamStat != "504" || !ev.Time.Equal(time.Date(2026, 11, 27, 0, 57, 44, 0, time.UTC)) {
		t.Errorf("%+v", ev)
	}
	ev = mustParse(t, "[ 1.0] php-fpm8.2[1]: segfault at 7ffdbe824ff8 ip 00007f1d605ffb09 sp 00007ffdbe825000 error 6 likely on CPU 0 (core 0, socket 0)", time.UTC)
	if f := ev.Fault; f.Module != "" || f.ErrorCode != 6 || f.Addr != 0x7ffdbe824ff8 || f.CPU != 0 || f.Site() != "[anon-exec]/JIT" {
		t.Errorf("%+v", f)
	}
	ev = mustParse(t, "[ 1.0] php-fpm8.2[1]: segfault at 0 ip 00007f1d605ffb09 sp 00007ffdbe825000 error 4 in libfoo.so (deleted)[7f1d605f0000+20000]", time.UTC)
	if f := ev.Fault; f.Module != "libfoo.so" || !f.Deleted || f.VMAOffset != 0xfb09 || f.HasFileOffset {
		t.Errorf("%+v", f)
	}
	for _, junk := range []string{"", "2026/11/26 19:27:44 [error] 1#1: *7 recv() failed (104: Conn", "\x00\xff upstream", "[99999999999999999999.1] x[1]: segfault at",
		"Nov 99 19:27:44 h kernel: x", `{"MESSAGE": 5}`, "[26-Nov-2026 19:27:44] WARNING: [pool www] child exited on signal"} {
		p := newLineParser(time.UTC, time.Now())
		if ev, ok := p.parse([]byte(junk)); ok && ev.Kind != KindUpstreamOther {
			t.Errorf("junk %q parsed as %+v", junk, ev)
		}
	}
}

func TestYearRollover(t *testing.T) {
	ys := newYearState(time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC))
	var got []int
	for _, m := range []time.Month{12, 12, 1, 1} {
		got = append(got, ys.year(m))
	}
	if got[0] != 2026 || got[1] != 2026 || got[2] != 2027 || got[3] != 2027 {
		t.Errorf("years %v", got)
	}
}

func TestSlowlog(t *testing.T) {
	p := &slowlogParser{loc: time.UTC}
	for i, l := range strings.Split("\n[26-Nov-2026 19:27:44]  [pool www] pid 77\nscript_filename = /a.php\n[0x00007f3a8c213f10] sleep() /a.php:3\n[0x00007f3a8c213e80] {main}() /a.php:10\n\n[26-Nov-2026 19:27:50]  [pool www] pid 78\n[0x1] x() /b.php:1", "\n") {
		p.line([]byte(l), "slow.log", int64(i+1))
	}
	p.flush()
	if len(p.done) != 2 || p.done[0].PID != 77 || p.done[0].Script != "/a.php" || len(p.done[0].Stack) != 2 || p.done[0].Stack[1].Function != "{main}" || p.done[0].Stack[1].Line != 10 || p.done[1].PID != 78 {
		t.Errorf("%+v", p.done)
	}
}

func TestExplainFault(t *testing.T) {
	for _, c := range []struct {
		f    KernelFault
		want string
	}{
		{KernelFault{Type: "segfault", Addr: 0x20, ErrorCode: 4, Module: "x"}, "user-mode read of an unmapped address"},
		{KernelFault{Type: "segfault", Addr: 0x7ffdbe824ff8, SP: 0x7ffdbe825000, ErrorCode: 6, Module: "x"}, "stack overflow"},
		{KernelFault{Type: "segfault", Addr: 0x1234, IP: 0x1234, ErrorCode: 0x14}, "not executable code"},
		{KernelFault{Type: "segfault", Addr: 0x5555, ErrorCode: 7, Module: "x"}, "violating page protection"},
	} {
		if got := ExplainFault(&c.f); !strings.Contains(got, c.want) {
			t.Errorf("%+v: %s", c.f, got)
		}
	}
}

// fuzzParser checks that a parser never panics and keeps its output bounded.
func fuzzParser(f *testing.F, seeds []string, parse func([]byte) (Event, bool)) {
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, ok := parse(b)
		if !ok {
			return
		}
		if len(ev.Text) > maxTextLen || len(ev.Message) > 4096 || len(ev.URI) > 2048 {
			t.Fatalf("unbounded output: %d %d %d", len(ev.Text), len(ev.Message), len(ev.URI))
		}
		_ = utf8.ValidString(ev.URI)
	})
}

func FuzzNginxError(f *testing.F) {
	fuzzParser(f, []string{
		`2026/11/26 19:27:44 [error] 14500#14500: *7 recv() failed (104: Connection reset by peer) while reading response header from upstream, client: 127.0.0.1, server: lab.local, request: "GET / HTTP/1.1", upstream: "fastcgi://unix:/x:", host: "h"`,
		`2026/11/26 19:27:44 [error] 1#1: *7 connect() to unix:/x failed (111: Connection refused) while connecting to upstream, client: 1, request: "GET`,
	}, func(b []byte) (Event, bool) { return parseNginxError(b, time.UTC) })
}

func FuzzAccess(f *testing.F) {
	fuzzParser(f, []string{
		`127.0.0.1 - - [26/Nov/2026:19:27:44 +0000] "GET / HTTP/1.1" 502 157 "-" "curl/7.88.1" 0.5 502`,
		`::1 - - [26/Nov/2026:19:27:44 -0530] "GET /\"x HTTP/1.1" 504 0 "-" "a" rt=1 us=504`,
	}, parseAccess)
}

func FuzzFPM(f *testing.F) {
	fuzzParser(f, []string{
		`[26-Nov-2026 19:27:44] WARNING: [pool www] child 14502 exited on signal 11 (SIGSEGV - core dumped) after 0.942805 seconds from start`,
		`[26-Nov-2026 19:27:44] WARNING: [pool www] child 1, script '/a' (request: "GET /x") execution timed out (3 sec), terminating`,
		`[26-Nov-2026 19:27:44] WARNING: [pool www] child 1 said into stderr: "x"`,
		`[26-Nov-2026 19:27:44] ERROR: failed to ptrace(PEEKDATA) pid 4103: Input/output error (5)`,
	}, func(b []byte) (Event, bool) { return parseFPM(b, time.UTC) })
}

func FuzzKernel(f *testing.F) {
	fuzzParser(f, []string{
		"php-fpm8.2[14502]: segfault at 20 ip 00007f955df21fe1 sp 00007ffdbf020490 error 4 in libpcre2-8.so.0.11.2[51fe1,7f955ded2000+6b000] likely on CPU 1 (core 1, socket 0)",
		"traps: php[1] trap invalid opcode ip:1 sp:2 error:0 in php[1+2]",
		"traps: a b[1] general protection fault ip:1 sp:2 error:0",
	}, parseKernelMessage)
}

func FuzzJournal(f *testing.F) {
	fuzzParser(f, []string{
		`{"__REALTIME_TIMESTAMP":"1795728464000000","_TRANSPORT":"kernel","MESSAGE":"x[1]: segfault at 0 ip 1 sp 2 error 4"}`,
		`{"COREDUMP_PID":"7","COREDUMP_SIGNAL":"11","MESSAGE":[80,114,111]}`,
	}, parseJournalJSON)
}

// TestApacheChildDeaths: every wording of an Apache child's death, with
// and without a core: AH00051 (WCOREDUMP: "possible coredump in DIR"),
// AH00052, the [core:notice] prefix with and without a tid, Apache 2.2
// (no AH code, "[notice]"), RHEL's error_log through syslog, a
// CoreDumpDirectory with parentheses in its name.
func TestApacheChildDeaths(t *testing.T) {
	p := newLineParser(time.UTC, time.Now())
	cases := []struct {
		line        string
		pid, signal int
		core        bool
		dir         string
	}{
		{"[Sun Dec 06 10:35:05.241943 2026] [core:notice] [pid 12841:tid 12841] AH00051: child pid 12853 exit signal Segmentation fault (11), possible coredump in /var/cache/apache2/cores", 12853, 11, true, "/var/cache/apache2/cores"},
		{"[Sun Dec 06 10:35:05.241943 2026] [core:notice] [pid 12841] AH00052: child pid 12853 exit signal Aborted (6)", 12853, 6, false, ""},
		{"[Sun Dec 06 10:35:05 2026] [notice] child pid 4242 exit signal Segmentation fault (11), possible coredump in /etc/httpd", 4242, 11, true, "/etc/httpd"},
		{"[Sun Dec 06 10:35:05 2026] [notice] child pid 4242 exit signal Bus error (7)", 4242, 7, false, ""},
		{"[Sun Dec 06 10:35:05.1 2026] [mpm_event:notice] [pid 1:tid 2] AH00051: child pid 77 exit signal Illegal instruction (4), possible coredump in /srv/cores (web1)", 77, 4, true, "/srv/cores (web1)"},
		{"Dec  6 10:35:05 web1 httpd[900]: [core:notice] [pid 900] AH00051: child pid 78 exit signal Segmentation fault (11), possible coredump in /tmp", 78, 11, true, "/tmp"},
	}
	for _, c := range cases {
		ev, ok := p.parse([]byte(c.line))
		if !ok || ev.Kind != KindApacheChild {
			t.Errorf("%q: kind %q ok %v, want %s", c.line, ev.Kind, ok, KindApacheChild)
			continue
		}
		if ev.PID != c.pid || ev.Signal != c.signal || ev.CoreDumped != c.core || ev.CoreDir != c.dir || ev.Time.IsZero() {
			t.Errorf("%q: pid %d signal %d core %v dir %q time %s; want %d %d %v %q", c.line, ev.PID, ev.Signal, ev.CoreDumped, ev.CoreDir, ev.Time, c.pid, c.signal, c.core, c.dir)
		}
	}
	// the scanner's keywords let every one of them through
	for _, c := range cases {
		found := false
		for _, k := range keywords(FormatApacheError) {
			found = found || strings.Contains(c.line, string(k))
		}
		if !found {
			t.Errorf("%q: no Apache keyword matches", c.line)
		}
	}
}

func FuzzApache(f *testing.F) {
	fuzzParser(f, []string{
		"[proxy_fcgi:error] [pid 1234:tid 5678] (104)Connection reset by peer: [client 127.0.0.1:5555] AH01075: Error dispatching request to : (polling)",
		"[core:notice] [pid 1000] AH00052: child pid 1234 exit signal Segmentation fault (11)",
		"[core:notice] [pid 1000:tid 1000] AH00051: child pid 1234 exit signal Segmentation fault (11), possible coredump in /etc/apache2",
		"[notice] child pid 1234 exit signal Bus error (7), possible coredump in /etc/httpd (old)",
		"child pid 1 exit signal (",
	}, parseApacheRest)
}

func FuzzLine(f *testing.F) {
	p := newLineParser(time.UTC, time.Now())
	fuzzParser(f, []string{
		"Nov 26 19:27:44 web1 kernel: [  652.2] x[1]: segfault at 0 ip 1 sp 2 error 4",
		"2026-11-26T19:27:44,248812+00:00 x[1]: segfault at 0 ip 1 sp 2 error 4",
		"[Thu Nov 26 19:27:44 2026] x[1]: segfault at 0 ip 1 sp 2 error 4",
	}, p.parse)
}

func FuzzSlowlog(f *testing.F) {
	f.Add([]byte("[26-Nov-2026 19:27:44]  [pool www] pid 77\nscript_filename = /a.php\n[0x00007f3a8c213f10] sleep() /a.php:3\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := &slowlogParser{loc: time.UTC}
		for i, l := range strings.Split(string(b), "\n") {
			p.line([]byte(l), "f", int64(i))
		}
		p.flush()
		for _, e := range p.done {
			if len(e.Stack) > maxSlowFrames {
				t.Fatal("unbounded stack")
			}
		}
	})
}
