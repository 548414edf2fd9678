package coredumps

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPatternGlob(t *testing.T) {
	for _, c := range []struct {
		pattern string
		usesPID bool
		want    string
	}{
		{"core", false, "core"},
		{"core", true, "core.*"},
		{"core.%p", true, "core.*"},
		{"/var/cores/core.%e.%p.%t", false, "/var/cores/core.*.*.*"},
		{"/var/cores/%u/%e-%p%%", false, "/var/cores/*/*-*%"},
		{"/cores/%e%p", false, "/cores/*"},
		{"/cores/[x]*?", false, `/cores/\[x]\*\?`},
		{"core.%z", false, "core."}, // unknown specifiers vanish, as in the kernel
		{"/c/%h.%i.%I.%P.%s.%g.%c.%d.%E.%f", false, "/c/*.*.*.*.*.*.*.*.*.*"},
	} {
		if got := PatternGlob(c.pattern, c.usesPID); got != c.want {
			t.Errorf("PatternGlob(%q, %v) = %q, want %q", c.pattern, c.usesPID, got, c.want)
		}
	}
}

func TestDiscoverCorePattern(t *testing.T) {
	rc := getRealCore(t)
	root := t.TempDir()
	// Absolute pattern with specifiers in a directory component.
	abs := filepath.Join(root, "cores", "%u", "core.%e.%p.%t")
	dir0 := filepath.Join(root, "cores", "0")
	os.MkdirAll(dir0, 0o755)
	name := fmt.Sprintf("core.crash.%d.%d", rc.PID, time.Now().Unix())
	copyFile(rc.Core, filepath.Join(dir0, name))
	os.WriteFile(filepath.Join(dir0, "core.readme.1.2"), []byte("not a core"), 0o644)
	entries, warns := Discover(DiscoverOptions{Sources: []string{SourcePattern}, CorePattern: abs})
	if len(warns) != 0 || len(entries) != 1 || entries[0].Source != SourcePattern || entries[0].ID != name || entries[0].Analysable != Yes {
		t.Fatalf("absolute pattern: %v %v", warns, dump(entries))
	}
	// Relative pattern: the core lands in the cwd of the worker, a
	// subdirectory of a document root.
	docroot := filepath.Join(root, "www", "site")
	sub := filepath.Join(docroot, "wp-admin", "includes")
	os.MkdirAll(sub, 0o755)
	copyFile(rc.Core, filepath.Join(sub, "core"))
	copyFile(rc.Core, filepath.Join(docroot, "core.notmatching"))
	entries, _ = Discover(DiscoverOptions{Sources: []string{SourcePattern}, CorePattern: "core", WorkDirs: []string{docroot}})
	found := false
	for _, e := range entries {
		if e.Path == filepath.Join(sub, "core") {
			found = true
		}
		if strings.HasSuffix(e.Path, "core.notmatching") {
			t.Errorf("matched a file the pattern does not produce: %s", e.Path)
		}
	}
	if !found {
		t.Errorf("relative pattern: core in %s not found: %v", sub, dump(entries))
	}
	// A running PHP-FPM process: its current directory is searched.
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	fpmDir := filepath.Join(root, "fpm-cwd")
	os.MkdirAll(fpmDir, 0o755)
	fake := filepath.Join(root, "php-fpm-coroner-test")
	copyFile(sleep, fake)
	os.Chmod(fake, 0o755)
	cmd := exec.Command(fake, "30")
	cmd.Dir = fpmDir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	copyFile(rc.Core, filepath.Join(fpmDir, "core"))
	found = false
	for try := 0; try < 50 && !found; try++ { // until the child has exec'd
		entries, _ = Discover(DiscoverOptions{Sources: []string{SourcePattern}, CorePattern: "core"})
		for _, e := range entries {
			found = found || e.Path == filepath.Join(fpmDir, "core")
		}
		if !found {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if !found {
		t.Errorf("core in the cwd of a running php-fpm process not found")
	}
	// A pipe to an unknown handler is a warning, not an error.
	_, warns = Discover(DiscoverOptions{Sources: []string{SourcePattern}, CorePattern: "|/usr/local/bin/mydumper %p"})
	if len(warns) != 1 || !strings.Contains(warns[0].Error(), "mydumper") {
		t.Errorf("pipe pattern warnings: %v", warns)
	}
}

func dump(es []*Entry) string {
	var b strings.Builder
	for _, e := range es {
		fmt.Fprintf(&b, "\n  %s %s pid=%d analysable=%s (%s)", e.Source, e.Path, e.PID, e.Analysable, e.Why)
	}
	return b.String()
}

// journalLines are records as `journalctl -o json` prints them for
// systemd-coredump (binary fields are arrays of byte values).
func journalLines(file string, pid int, truncated bool) string {
	tr := ""
	if truncated {
		tr = `"COREDUMP_TRUNCATED":"1",`
	}
	fn := ""
	if file != "" {
		fn = `"COREDUMP_FILENAME":"` + file + `",`
	}
	return `{"__REALTIME_TIMESTAMP":"1795720000000000","MESSAGE_ID":"fc2e22bc6ee647b6b90729ab34a250b1","PRIORITY":"2",` +
		`"COREDUMP_PID":"` + strconv.Itoa(pid) + `","COREDUMP_UID":"33","COREDUMP_GID":"33","COREDUMP_SIGNAL":"11","COREDUMP_SIGNAL_NAME":"SIGSEGV",` +
		`"COREDUMP_TIMESTAMP":"1795719999000000","COREDUMP_COMM":"php-fpm8.2","COREDUMP_EXE":"/usr/sbin/php-fpm8.2",` + tr + fn +
		`"COREDUMP_UNIT":"php8.2-fpm.service","COREDUMP_CMDLINE":"php-fpm: pool www","COREDUMP_ROOT":"/srv/chroot/php","COREDUMP_CGROUP":"/system.slice/php8.2-fpm.service","MESSAGE":"Process ` + strconv.Itoa(pid) + ` (php-fpm8.2) of user 33 dumped core.",` +
		`"COREDUMP_PROC_MAPS":[55,102,48]}` + "\n"
}

func TestJournalMerge(t *testing.T) {
	rc := getRealCore(t)
	dir := t.TempDir()
	name := fmt.Sprintf("core.crash.0.%s.%d.%d", testBootID, rc.PID, time.Now().UnixMicro())
	path := filepath.Join(dir, name)
	copyFile(rc.Core, path)
	data := journalLines(path, rc.PID, true) + journalLines("", 4242, false) + "not json\n" +
		`{"MESSAGE":"unrelated","_PID":"1"}` + "\n"
	recs, warns := ParseJournalJSON([]byte(data))
	if len(recs) != 2 || len(warns) != 1 {
		t.Fatalf("records %d warnings %v", len(recs), warns)
	}
	if recs[0]["COREDUMP_PROC_MAPS"] != "" || recs[0]["COREDUMP_UNIT"] != "php8.2-fpm.service" {
		t.Errorf("record: %v", recs[0])
	}
	fi, _ := os.Stat(path)
	e, _ := systemdEntry(path, fi)
	extra := mergeJournal([]*Entry{e}, recs)
	if e.Truncated != Yes || e.Meta["journal.COREDUMP_UNIT"] != "php8.2-fpm.service" || e.Meta["journal.COREDUMP_ROOT"] != "/srv/chroot/php" {
		t.Errorf("merged entry: truncated %s meta %v", e.Truncated, e.Meta)
	}
	if len(extra) != 1 || extra[0].PID != 4242 || extra[0].Analysable != No || extra[0].Exe != "/usr/sbin/php-fpm8.2" || extra[0].UID != 33 {
		t.Errorf("journal-only entry: %+v", extra)
	}
	inspect(e, false, &buildIDCache{})
	if e.Truncated != Yes || e.Analysable != Yes {
		t.Errorf("after inspection the journal's truncation must stay: %s %s", e.Truncated, e.Analysable)
	}
}

func TestParseSystemdName(t *testing.T) {
	n, ok := ParseSystemdName(`core.php-fpm8\x2e2.33.` + testBootID + `.14502.1795721384000000.zst`)
	if !ok || n.Comm != "php-fpm8.2" || n.UID != 33 || n.PID != 14502 || n.Ext != ".zst" || n.Time.UnixMicro() != 1795721384000000 {
		t.Errorf("got %+v %v", n, ok)
	}
	for _, bad := range []string{"core", "core.a.b.c.d.e", "core.x.0." + testBootID + ".notapid.1", "vmcore.x.0." + testBootID + ".1.2"} {
		if _, ok := ParseSystemdName(bad); ok {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseCoreName(t *testing.T) {
	for _, c := range []struct {
		name string
		pid  int
		ts   int64
	}{
		{"core.php-fpm8.2.14502.1795728000", 14502, 1795728000},
		{"core.14502", 14502, 0},
		{"core", 0, 0},
		{`core.php-fpm8\x2e2.33.0123456789abcdef0123456789abcdef.14502.1795728000123456.zst`, 14502, 1795728000},
		{"core-php-fpm8.2-14502-1795728000.xz", 14502, 1795728000},
	} {
		pid, ts := parseCoreName(c.name)
		var sec int64
		if !ts.IsZero() {
			sec = ts.Unix()
		}
		if pid != c.pid || sec != c.ts {
			t.Errorf("%s: pid %d time %d, want %d %d", c.name, pid, sec, c.pid, c.ts)
		}
	}
}
