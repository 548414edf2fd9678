package audit

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestApacheFixtures audits PHP inside Apache httpd (mod_php): Debian's
// apache2 as installed (no CoreDumpDirectory, so the children are not
// dumpable after the switch to www-data; systemd's LimitCORE soft 0), and
// RHEL's httpd with CoreDumpDirectory and LimitCORE=infinity, where cores
// are written. The layers named are Apache's, not PHP-FPM's.
func TestApacheFixtures(t *testing.T) {
	r := mustRun(t, Options{Root: "testdata/debian12-apache"})
	if len(r.Installations) != 1 {
		t.Fatalf("installations %d, want Debian's Apache with mod_php (warnings %v)", len(r.Installations), r.Warnings)
	}
	in := r.Installations[0]
	if in.SAPI != SAPIApache || in.Version != "8.2" || in.Name != "apache2 (mod_php 8.2)" || in.MPM != "prefork" {
		t.Errorf("installation %s sapi %s version %s mpm %s", in.Name, in.SAPI, in.Version, in.MPM)
	}
	if in.PHPIni != "/etc/php/8.2/apache2/php.ini" || !slices.Equal(in.ScanDirs, []string{"/etc/php/8.2/apache2/conf.d"}) {
		t.Errorf("mod_php's ini files %s %v", in.PHPIni, in.ScanDirs)
	}
	if len(in.Pools) != 1 || in.Pools[0].User.Value != "www-data" {
		t.Fatalf("children %+v, want user www-data (from envvars)", in.Pools)
	}
	if !in.JIT.Tracing || !in.JIT.Active {
		t.Errorf("JIT %+v, want the tracing JIT of mod_php's conf.d", in.JIT)
	}
	for _, w := range []struct {
		check string
		st    Status
	}{
		{"apache.core_dump_directory", StatusBlocks}, {"apache.core_limit", StatusBlocks}, {"systemd.limitcore", StatusBlocks},
		{"php.pool_override", StatusRisky}, {"php.tracing_jit_pcre_jit", StatusRisky},
	} {
		if !hasStatus(r, w.check, w.st) {
			t.Errorf("%s: statuses %v, want %s", w.check, statusOf(r, w.check), w.st)
		}
	}
	for _, f := range r.Findings {
		if strings.HasPrefix(f.Check, "fpm.") || strings.Contains(f.Message, "process.dumpable") && f.Status == StatusBlocks {
			t.Errorf("an FPM layer judged Apache: %+v", f)
		}
	}
	if r.CoresWritten() {
		t.Error("cores reported as written without CoreDumpDirectory")
	}

	// git keeps no directory modes: the crash directories get theirs (1733,
	// as `coroner fix --capture` makes them) on a copy.
	rhel := copyTree(t, "testdata/rhel9-httpd")
	for _, d := range []string{"var/crash", "var/crash/httpd"} {
		if err := os.Chmod(filepath.Join(rhel, d), 0o1733); err != nil {
			t.Fatal(err)
		}
	}
	r = mustRun(t, Options{Root: rhel})
	if len(r.Installations) != 1 {
		t.Fatalf("installations %d (warnings %v)", len(r.Installations), r.Warnings)
	}
	in = r.Installations[0]
	if in.Name != "httpd (mod_php 8.1.27)" || in.PHPIni != "/etc/php.ini" || in.CoreDumpDirectory.Value != "/var/crash/httpd" || in.Pools[0].User.Value != "apache" {
		t.Errorf("installation %s ini %s CoreDumpDirectory %q user %q", in.Name, in.PHPIni, in.CoreDumpDirectory.Value, in.Pools[0].User.Value)
	}
	if !r.CoresWritten() || r.Count(StatusBlocks) != 0 {
		t.Errorf("RHEL httpd with CoreDumpDirectory and LimitCORE=infinity: cores written %v, blocking %v", r.CoresWritten(), r.Blocking())
	}
	if in.Pools[0].CoreDir != "/var/crash" {
		t.Errorf("core dir %q, want the core_pattern's /var/crash", in.Pools[0].CoreDir)
	}
}

// TestApacheFix: fix --capture on Debian's Apache writes CoreDumpDirectory
// in a file Apache includes and the LimitCORE drop-in, and the audit then
// says cores are written; --mitigate=function-jit writes mod_php's conf.d
// (not FPM's), disables the vhost's php_admin_value opcache.jit with an
// Apache comment, and reloads Apache.
func TestApacheFix(t *testing.T) {
	root := copyTree(t, "testdata/debian12-apache")
	r := mustRun(t, Options{Root: root})
	plan, err := PlanFix(r, FixOptions{Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, c := range plan.Changes {
		paths = append(paths, c.Path)
	}
	for _, want := range []string{"/etc/apache2/conf-enabled/coroner-coredump.conf", "/etc/systemd/system/apache2.service.d/60-coroner-core.conf", DefaultCoreDir} {
		if !slices.Contains(paths, want) {
			t.Errorf("capture plan %v lacks %s", paths, want)
		}
	}
	if !slices.Contains(plan.Reload, "systemctl restart apache2.service") {
		t.Errorf("reload %v, want Apache restarted", plan.Reload)
	}
	if _, err := plan.Apply(r); err != nil {
		t.Fatal(err)
	}
	after := mustRun(t, Options{Root: root})
	if !hasStatus(after, "apache.core_dump_directory", StatusOK) || !hasStatus(after, "apache.core_limit", StatusOK) {
		t.Errorf("after the fix: %v %v", statusOf(after, "apache.core_dump_directory"), statusOf(after, "apache.core_limit"))
	}
	if _, err := Rollback(root, "", false); err != nil {
		t.Fatal(err)
	}

	r = mustRun(t, Options{Root: root})
	// --sapi fpm-fcgi leaves Apache alone
	if plan, err := PlanFix(r, FixOptions{Mitigate: crash.MitigateFunctionJIT, SAPI: SAPIFPM}); err != nil || len(plan.Changes) != 0 {
		t.Errorf("--sapi fpm-fcgi changes Apache: %v %+v", err, plan)
	}
	plan, err = PlanFix(r, FixOptions{Mitigate: crash.MitigateFunctionJIT, SAPI: SAPIApache})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(plan.Reload, "systemctl reload apache2.service") || slices.ContainsFunc(plan.Reload, func(c string) bool { return strings.Contains(c, "fpm") }) {
		t.Errorf("reload %v, want Apache's", plan.Reload)
	}
	if _, err := plan.Apply(r); err != nil {
		t.Fatal(err)
	}
	after = mustRun(t, Options{Root: root})
	in := after.Installations[0]
	if last := in.INIFiles[len(in.INIFiles)-1]; last != "/etc/php/8.2/apache2/conf.d/99-coroner-mitigation.ini" {
		t.Errorf("mitigation file %s, want the last of mod_php's conf.d", last)
	}
	if in.JIT.Mode != "function" {
		t.Errorf("JIT %+v after function-jit", in.JIT)
	}
	vhost, err := os.ReadFile(filepath.Join(root, "etc/apache2/sites-enabled/000-default.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(vhost), "# disabled by coroner fix --mitigate=function-jit: php_admin_value opcache.jit") {
		t.Errorf("the vhost's php_admin_value opcache.jit is not disabled:\n%s", vhost)
	}
	if _, ok := in.Pools[0].INI["opcache.jit"]; ok {
		t.Errorf("php_admin_value opcache.jit still read after the fix")
	}
}

// TestApacheDirectives: quoting, continuations, ${VAR} and sections.
func TestApacheDirectives(t *testing.T) {
	ds := parseApacheDirectives("f", []byte("# c\nUser ${U}\n  CoreDumpDirectory \"/var/crash/my dir\"\nphp_admin_value \\\n  opcache.jit 'function'\n<IfModule mod_php.c>\n</IfModule>\n"), map[string]string{"U": "www-data"})
	var got []string
	for _, d := range ds {
		got = append(got, d.name+"|"+strings.Join(d.args, "|"))
	}
	want := []string{"User|www-data", "CoreDumpDirectory|/var/crash/my dir", "php_admin_value|opcache.jit|function", "<IfModule|mod_php.c>", "</IfModule|"}
	if !slices.Equal(got, want) {
		t.Errorf("directives %q, want %q", got, want)
	}
	if ds[2].ev.Line != 4 {
		t.Errorf("a continued directive is at line %d, want 4 (where it starts)", ds[2].ev.Line)
	}
}

func FuzzApacheConfig(f *testing.F) {
	f.Add([]byte("User ${APACHE_RUN_USER}\nInclude mods-enabled/*.load\nCoreDumpDirectory /tmp\n"))
	f.Add([]byte("php_admin_value opcache.jit \"tracing\nLoadModule php_module modules/libphp.so\\\n"))
	f.Add([]byte("<IfModule\n\"\n'\n\\\n\\"))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, d := range parseApacheDirectives("f", data, map[string]string{"A": "b"}) {
			if d.name == "" {
				t.Fatalf("empty directive name from %q", data)
			}
		}
	})
}
