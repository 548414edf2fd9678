package logs

import (
	"compress/gzip"
	"context"
	"debug/elf"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// copyTree copies testdata/host into a temporary directory so that tests
// can set modification times and append to files.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if fi.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		in, err := os.Open(p)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.Create(target)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			return err
		}
		return out.Close()
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

func paris(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Paris")
	if err != nil {
		t.Skipf("no tzdata: %v", err)
	}
	return loc
}

// TestHostFixtures reads a whole host's logs (nginx error with rotations,
// one gzipped; access log with a different zone offset; PHP-FPM master log
// and slowlog; kern.log across a year boundary; journal JSON with
// systemd-coredump) with truncated lines, binary junk and a line longer
// than the scanner's buffer, and checks every incident.
func TestHostFixtures(t *testing.T) {
	loc := paris(t)
	dir := copyTree(t, "testdata/host")
	// kern.log has no years: its mtime (just after the newest line) decides.
	if err := os.Chtimes(filepath.Join(dir, "kern.log"), time.Now(), time.Date(2027, 1, 1, 1, 0, 0, 0, loc)); err != nil {
		t.Fatal(err)
	}
	// A line longer than the scanner's buffer, then one more real error.
	f, err := os.OpenFile(filepath.Join(dir, "nginx/error.log"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(strings.Repeat("junk upstream ", 3<<20/14) + "\n")
	f.WriteString(`2027/01/01 00:05:00 [error] 882#882: *190 upstream prematurely closed connection while reading response header from upstream, client: 198.51.100.40, server: shop.example, request: "GET /after-long-line HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "shop.example"` + "\n")
	f.Close()
	// Cores (as coredumps.Discover lists them): one of the pid of the first
	// crash, one unrelated.
	crash1 := time.Date(2026, 12, 31, 23, 59, 58, 0, loc)
	core1 := filepath.Join(dir, "cores", "core.php-fpm8.2.4101."+itoa(crash1.Unix()))
	cores := []*coredumps.Entry{
		{Source: coredumps.SourceDir, Path: core1, PID: 4101, Time: crash1},
		{Source: coredumps.SourceDir, Path: filepath.Join(dir, "cores", "core.9999"), PID: 9999, Time: crash1},
	}

	var inputs []Input
	for _, p := range SortRotated([]string{"nginx/error.log", "nginx/error.log.2.gz", "nginx/access.log", "nginx/error.log.1",
		"php8.2-fpm.log", "php8.2-fpm.slow.log", "kern.log", "journal.json"}) {
		inputs = append(inputs, Input{Path: filepath.Join(dir, p), Format: FormatAuto})
	}
	if !strings.HasSuffix(inputs[0].Path, "error.log.2.gz") || !strings.HasSuffix(inputs[2].Path, "nginx/error.log") {
		t.Fatalf("rotation order: %v", inputs[:3])
	}
	sym := NewObjectSymbolizer()
	defer sym.Close()
	res, err := Analyze(context.Background(), Options{Inputs: inputs, Location: loc, Cores: cores, Symbolizer: sym})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range res.Inputs {
		if in.Error != "" {
			t.Errorf("%s: %s", in.Path, in.Error)
		}
	}
	byPID := map[int]*Incident{}
	for _, inc := range res.Incidents {
		byPID[inc.PID] = inc
	}
	if len(res.Incidents) != 5 {
		for _, inc := range res.Incidents {
			t.Logf("incident pid %d %s %s", inc.PID, inc.Time, inc.Kind)
		}
		t.Fatalf("got %d incidents, want 5", len(res.Incidents))
	}
	check := func(pid int, uri string, sig int, site string) *Incident {
		t.Helper()
		inc := byPID[pid]
		if inc == nil {
			t.Fatalf("no incident for pid %d", pid)
		}
		if inc.URI != uri || inc.Signal != sig || !strings.Contains(inc.Site, site) {
			t.Errorf("pid %d: uri %q signal %d site %q; want %q %d %q", pid, inc.URI, inc.Signal, inc.Site, uri, sig, site)
		}
		return inc
	}
	a := check(4101, "/search?q=%C3%A9t%C3%A9", 11, "libpcre2-8.so.0.11.2!pcre2_jit_match_8+0x41")
	if !a.Time.Equal(crash1) {
		t.Errorf("4101 time %s, want %s", a.Time, crash1)
	}
	if a.Core != core1 || a.CoreConfidence != ConfHigh {
		t.Errorf("4101 core %q (%s), want %q", a.Core, a.CoreConfidence, core1)
	}
	if a.Status != 502 || a.Pool != "www" || !a.CoreDumped {
		t.Errorf("4101: status %d pool %q dumped %v", a.Status, a.Pool, a.CoreDumped)
	}
	if a.Fault == nil || a.Fault.BuildID == "" || !strings.Contains(a.Fault.Explanation, "NULL pointer") {
		t.Errorf("4101 fault: %+v", a.Fault)
	}
	sources := map[Source]string{}
	for _, l := range a.Links {
		sources[l.Source] = l.Confidence
	}
	for _, s := range []Source{SrcFPM, SrcKernel, SrcNginxError, SrcNginxAccess} {
		if sources[s] != ConfHigh {
			t.Errorf("4101: link from %s has confidence %q, want high", s, sources[s])
		}
	}
	b := check(4102, "/blog/post-1?x=1", 11, "[anon-exec]/JIT")
	if want := time.Date(2027, 1, 1, 0, 0, 3, 0, loc); !b.Time.Equal(want) || b.Fault == nil {
		t.Errorf("4102 time %s (year rollover), want %s", b.Time, want)
	}
	if !strings.Contains(b.Fault.Explanation, "stack overflow") {
		t.Errorf("4102 explanation: %s", b.Fault.Explanation)
	}
	c := check(4103, "/report?slow=1", 15, "")
	if c.Kind != "terminated" || c.Cause == "" || len(c.Stack) != 3 || c.Stack[1].Function != "Report->build" || c.Status != 504 {
		t.Errorf("4103: kind %s cause %q stack %+v status %d", c.Kind, c.Cause, c.Stack, c.Status)
	}
	d := check(4104, "/cart", 6, "libc.so.6!__pthread_kill_implementation")
	if !strings.HasSuffix(d.Core, ".4104.1798758140000000.zst") || len(d.Stderr) != 1 || d.Pool != "api" {
		t.Errorf("4104: core %q stderr %v pool %q", d.Core, d.Stderr, d.Pool)
	}
	e := check(4199, "", 11, "pcre2_jit_match_8+0x41") // old-style bracket [START+SIZE]
	if e.Fault.Type != "general protection fault" {
		t.Errorf("4199 fault type %q", e.Fault.Type)
	}
	s := res.Summary
	if s.EmergencyRestarts != 1 || s.MaxChildren != 1 || s.ExecTimeouts != 1 || s.PtraceFailures != 1 ||
		s.HTTPStatus[502] != 4 || s.HTTPStatus[504] != 1 || s.HTTPStatus[500] != 1 {
		t.Errorf("summary counters: %+v", s)
	}
	if s.Crashes != 4 || s.Incidents != 5 || len(s.ByPool) != 3 {
		t.Errorf("summary: crashes %d incidents %d pools %v", s.Crashes, s.Incidents, s.ByPool)
	}
	// The error after the long line was read, and the connect() errors were
	// classified with their errno.
	found := map[int]bool{}
	after := false
	for _, ev := range res.Events {
		if ev.Kind == KindConnectFailed {
			found[ev.Errno] = true
		}
		if ev.URI == "/after-long-line" {
			after = true
		}
	}
	if !found[11] || !found[111] || !found[2] || !after {
		t.Errorf("connect errnos %v, after long line %v", found, after)
	}
	// Zone offsets: the access line written at 23:00:04 +0000 is the same
	// instant as nginx's local 00:00:04 (Europe/Paris) connect() error.
	var acc, conn time.Time
	for _, ev := range res.Events {
		if ev.Kind == KindHTTPError && ev.Client == "198.51.100.24" {
			acc = ev.Time
		}
		if ev.Kind == KindConnectFailed && ev.Client == "198.51.100.24" {
			conn = ev.Time
		}
	}
	if acc.IsZero() || !acc.Equal(conn) {
		t.Errorf("access %s vs error log %s", acc, conn)
	}
	// --since/--until.
	res2, err := Analyze(context.Background(), Options{Inputs: inputs, Location: loc,
		Since: time.Date(2027, 1, 1, 0, 0, 0, 0, loc), Until: time.Date(2027, 1, 1, 0, 2, 0, 0, loc)})
	if err != nil {
		t.Fatal(err)
	}
	if len(res2.Incidents) != 2 {
		t.Errorf("since/until: %d incidents, want 2", len(res2.Incidents))
	}
}

// TestApacheFrontEnd checks Apache as the front end: mod_proxy_fcgi errors
// carry no request line, so the URI comes from the access log (same
// client, same second).
func TestApacheFrontEnd(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(s), 0o644)
		return p
	}
	el := write("error.log", "[Thu Nov 26 19:27:44.123456 2026] [proxy_fcgi:error] [pid 2201:tid 140] (104)Connection reset by peer: [client 192.0.2.9:50412] AH01075: Error dispatching request to : (polling)\n"+
		"[Thu Nov 26 19:27:50.000001 2026] [proxy_fcgi:error] [pid 2202:tid 141] [client 192.0.2.10:50413] AH01067: Failed to read FastCGI header\n"+
		"[Thu Nov 26 19:28:00.5 2026] [core:notice] [pid 2000:tid 1] AH00052: child pid 2203 exit signal Segmentation fault (11), possible coredump in /etc/apache2\n")
	al := write("access.log", `192.0.2.9 - - [26/Nov/2026:19:27:44 +0000] "GET /wp-admin/admin-ajax.php?action=x HTTP/1.1" 503 299 "-" "Mozilla/5.0"`+"\n"+
		`192.0.2.10 - - [26/Nov/2026:19:27:50 +0000] "POST /checkout HTTP/1.1" 503 299 "-" "Mozilla/5.0"`+"\n")
	fl := write("php-fpm.log", "[26-Nov-2026 19:27:44] WARNING: [pool www] child 3301 exited on signal 11 (SIGSEGV) after 9.1 seconds from start\n"+
		"[26-Nov-2026 19:27:50] WARNING: [pool www] child 3302 exited on signal 7 (SIGBUS) after 1.2 seconds from start\n")
	res, err := Analyze(context.Background(), Options{Inputs: []Input{{Path: el}, {Path: al}, {Path: fl}}, Location: time.UTC})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inputs[0].Detected != FormatApacheError {
		t.Errorf("detected %s", res.Inputs[0].Detected)
	}
	want := map[int]string{3301: "/wp-admin/admin-ajax.php?action=x", 3302: "/checkout", 2203: ""}
	if len(res.Incidents) != 3 {
		t.Fatalf("%d incidents", len(res.Incidents))
	}
	for _, inc := range res.Incidents {
		if u, ok := want[inc.PID]; !ok || inc.URI != u {
			t.Errorf("pid %d uri %q", inc.PID, inc.URI)
		}
		if inc.PID == 3301 && (inc.Client != "192.0.2.9" || inc.Status != 503) {
			t.Errorf("3301: client %q status %d", inc.Client, inc.Status)
		}
		if inc.PID == 2203 && (inc.Signal != 11 || !inc.CoreDumped) {
			t.Errorf("apache child: %+v", inc)
		}
	}
}

// TestTruncatedGzip reads a rotated log whose gzip stream was cut short:
// the lines before the cut are used and the error is reported.
func TestTruncatedGzip(t *testing.T) {
	var buf strings.Builder
	for i := 0; i < 2000; i++ {
		buf.WriteString("[26-Nov-2026 19:27:44] WARNING: [pool www] child " + itoa(int64(1000+i)) + " exited on signal 11 (SIGSEGV) after 1.0 seconds from start\n")
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "php-fpm.log.2.gz")
	f, _ := os.Create(p)
	zw := gzip.NewWriter(f)
	zw.Write([]byte(buf.String()))
	zw.Close()
	f.Close()
	fi, _ := os.Stat(p)
	os.Truncate(p, fi.Size()/2)
	evs, st, err := ReadInput(Input{Path: p}, time.UTC, nil)
	if err == nil || len(evs) == 0 || len(evs) >= 2000 || st.Detected != FormatFPM {
		t.Errorf("events %d, format %s, err %v", len(evs), st.Detected, err)
	}
}

func TestCrashLoop(t *testing.T) {
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	site := "libpcre2-8.so.0.11.2!pcre2_jit_match_8+0x41"
	var incs []*Incident
	for i, d := range []int{0, 5, 10, 15, 20, 25, 200, 400, 410, 420, 430, 440} {
		incs = append(incs, &Incident{ID: i + 1, Pool: "www", PID: 100 + i, Time: base.Add(time.Duration(d) * time.Second), Kind: "crash",
			Signal: 11, SignalName: "SIGSEGV", Site: site, PHP: true})
	}
	s := summarize(nil, incs, nil, false)
	if len(s.Loops) != 2 || s.Loops[0].N != 6 || s.Loops[1].N != 5 || !s.Loops[1].Start.Equal(base.Add(400*time.Second)) ||
		!s.Loops[0].CauseKnown || s.Loops[0].Cause != site {
		t.Errorf("loops %+v", s.Loops)
	}
	// 12 deaths in 440 seconds: no rate (a rate over 7 minutes means nothing).
	if s.PerHour != 0 || s.SpanSeconds != 440 || s.Crashes != 12 || s.BySignal[0].Key != "SIGSEGV" {
		t.Errorf("per hour %v span %v crashes %d", s.PerHour, s.SpanSeconds, s.Crashes)
	}
	// The same deaths spread over two hours have a rate.
	for i, inc := range incs {
		inc.Time = base.Add(time.Duration(i) * 12 * time.Minute)
	}
	s = summarize(nil, incs, nil, false)
	if want := 12 / (11 * 12.0 / 60); s.PerHour < want-0.01 || s.PerHour > want+0.01 || len(s.Loops) != 0 {
		t.Errorf("per hour %v (want %.2f), loops %+v", s.PerHour, want, s.Loops)
	}
}

// TestCrashLoopNeedsOneCause: deaths of one pool in a minute from
// different crash sites are not a crash loop; deaths whose site is unknown
// are a burst whose cause is not known.
func TestCrashLoopNeedsOneCause(t *testing.T) {
	base := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	sites := []string{"libpcre2-8.so.0.11.2!pcre2_jit_match_8+0x41", "opcache.so+0xc8fec", "libc.so.6!__strlen_evex+0x18",
		"libpcre2-8.so.0.11.2!pcre2_jit_match_8+0x41", "opcache.so+0xc8fec", "libc.so.6!__strlen_evex+0x18"}
	var incs []*Incident
	for i, site := range sites {
		incs = append(incs, &Incident{ID: i + 1, Pool: "www", PID: 100 + i, Time: base.Add(time.Duration(i) * 5 * time.Second),
			Kind: "crash", Signal: 11, SignalName: "SIGSEGV", Site: site, PHP: true})
	}
	if s := summarize(nil, incs, nil, false); len(s.Loops) != 0 {
		t.Errorf("6 deaths from 3 causes: loops %+v", s.Loops)
	}
	for _, inc := range incs {
		inc.Site = ""
	}
	s := summarize(nil, incs, nil, false)
	if len(s.Loops) != 1 || s.Loops[0].CauseKnown || s.Loops[0].N != 6 {
		t.Errorf("6 deaths of unknown site: loops %+v", s.Loops)
	}
	if txt := LoopText(s.Loops[0], func(t time.Time) string { return t.Format("15:04:05") }); !strings.Contains(txt, "not known") {
		t.Errorf("loop text %q", txt)
	}
}

// TestBuildIDCheck links a kernel line with a systemd-coredump record that
// lists module build-ids: the library on disk must match, else the symbol
// is withdrawn.
func TestBuildIDCheck(t *testing.T) {
	lib := FindLibrary("libpcre2-8.so.0.11.2", DefaultLibDirs)
	if lib == "" {
		t.Skip("libpcre2-8.so.0.11.2 not installed")
	}
	ef, err := elf.Open(lib)
	if err != nil {
		t.Fatal(err)
	}
	real := buildID(ef)
	ef.Close()
	for _, c := range []struct {
		id, note string
		named    bool
	}{{real, "build-id matches", true}, {"deadbeefdeadbeef", "BUILD-ID MISMATCH", false}} {
		dir := t.TempDir()
		kern := filepath.Join(dir, "kern.log")
		os.WriteFile(kern, []byte("2026-11-26T19:27:44.100000+00:00 web1 kernel: php-fpm8.2[4101]: segfault at 20 ip 00007f955df21fe1 sp 00007ffdbf020490 error 4 in libpcre2-8.so.0.11.2[51fe1,7f955ded2000+6b000] likely on CPU 1 (core 1, socket 0)\n"), 0o644)
		msg := "Process 4101 (php-fpm8.2) of user 33 dumped core.\n\nModule /usr/sbin/php-fpm8.2 with build-id 0123\nModule " + lib + " from deb libpcre2-8-0-10.42-1 with build-id " + c.id + "\nStack trace of thread 4101:\n#0  0x00007f955df21fe1 pcre2_jit_match_8 (libpcre2-8.so.0 + 0x51fe1)\n"
		j, _ := json.Marshal(map[string]string{"__REALTIME_TIMESTAMP": "1795721265000000", "COREDUMP_PID": "4101", "COREDUMP_SIGNAL": "11", "MESSAGE": msg})
		jf := filepath.Join(dir, "journal.json")
		os.WriteFile(jf, append(j, '\n'), 0o644)
		fpm := filepath.Join(dir, "fpm.log")
		os.WriteFile(fpm, []byte("[26-Nov-2026 19:27:44] WARNING: [pool www] child 4101 exited on signal 11 (SIGSEGV - core dumped) after 1.0 seconds from start\n"), 0o644)
		sym := NewObjectSymbolizer()
		res, err := Analyze(context.Background(), Options{Inputs: []Input{{Path: kern}, {Path: jf}, {Path: fpm}}, Location: time.UTC, Symbolizer: sym})
		sym.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Incidents) != 1 || res.Incidents[0].Fault == nil {
			t.Fatalf("incidents: %+v", res.Incidents)
		}
		f := res.Incidents[0].Fault
		if !strings.Contains(strings.Join(f.Notes, "|"), c.note) || (f.Symbol != "") != c.named {
			t.Errorf("id %s: notes %q symbol %q links %+v", c.id, f.Notes, f.Symbol, res.Incidents[0].Links)
		}
	}
}
