package doctor

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
)

// TestDoctorOnApacheLab: doctor on the Apache lab (Apache httpd + mod_php,
// lab/run.sh --apache) with Apache's error log, its children's cores and
// its configuration: every death is a PHP death linked to its core, with
// the request read from the core (Apache logs none for a request whose
// child died), diagnosed with the rule of its real fault (not the
// re-raised signal), and the audit of Apache's layers agrees with the
// cores that exist.
func TestDoctorOnApacheLab(t *testing.T) {
	l := labtest.Apache(t)
	var cores []string
	for _, s := range l.Scenarios {
		cores = append(cores, s.Core)
	}
	res, err := Run(context.Background(), Options{Logs: []string{l.ApacheErrorLog}, CoreDirs: cores, ApacheConfig: l.ApacheConfig, MaxCores: 10})
	if err != nil {
		t.Fatal(err)
	}
	if res.Logs == nil || res.Logs.Summary.Incidents != len(l.Scenarios) {
		t.Fatalf("logs %+v, want %d PHP deaths", res.Logs, len(l.Scenarios))
	}
	for _, c := range res.Logs.Summary.ByURI {
		if c.Key == "(unknown)" {
			t.Errorf("a death without its request: %+v (the cores hold them)", res.Logs.Summary.ByURI)
		}
	}
	if len(res.Others) != 0 {
		t.Errorf("Apache's children counted as other programs: %+v", res.Others)
	}
	want := map[string]string{
		"ffi-null-code": "ffi-call-crash", "method-closure-include": "ffi-call-crash", "kill-segv": "signal-sent-by-process",
		"abort": "abort", "shortcode-recursion": "callback-recursion-stack-overflow", "deep-comments": "callback-recursion-stack-overflow",
	}
	for name, rule := range want {
		s := l.Scenarios[name]
		found := false
		for _, g := range res.Groups {
			for _, inc := range g.Incidents {
				if inc.PID != s.PID {
					continue
				}
				found = true
				if len(g.Diagnosis) == 0 || g.Diagnosis[0].Rule != rule {
					t.Errorf("%s: group %s diagnosed %+v, want %s", name, g.Key, g.Diagnosis, rule)
				}
				if inc.URI != s.Truth.RequestURI {
					t.Errorf("%s: incident URI %q, PHP saw %q", name, inc.URI, s.Truth.RequestURI)
				}
				for _, d := range g.Diagnosis {
					for _, f := range d.Fix {
						if strings.Contains(f.Description, "php-fpm") || f.Mitigation != "" && f.SAPI != "apache2handler" {
							t.Errorf("%s: a fix for PHP-FPM: %+v", name, f)
						}
					}
				}
			}
		}
		if !found {
			t.Errorf("%s: pid %d in no group", name, s.PID)
		}
	}
	if res.Audit == nil || len(res.Audit.Installations) != 1 || res.Audit.Installations[0].SAPI != "apache2handler" {
		t.Fatalf("audit %+v, want Apache's", res.Audit)
	}
	if len(res.Pools) != 1 {
		t.Fatalf("crashed pools %+v, want Apache's children", res.Pools)
	}
	cp := res.Pools[0]
	if cp.Installation != res.Audit.Installations[0].Name || cp.CoresDumped != len(l.Scenarios) || cp.CoresWritten == nil {
		t.Fatalf("Apache's children: %+v", cp)
	}
	// The lab sets CoreDumpDirectory: the children are dumpable, and their
	// cores exist; the audit must not say otherwise (the machine-wide
	// core_pattern may be anything now, but no layer of Apache blocks).
	for _, f := range res.Audit.Findings {
		if f.Layer == "apache" && f.Check == "apache.core_dump_directory" && f.Status != "ok" {
			t.Errorf("CoreDumpDirectory is set in the lab: %+v", f)
		}
		if strings.HasPrefix(f.Check, "fpm.") {
			t.Errorf("an FPM layer judged Apache: %+v", f)
		}
	}
	if !*cp.CoresWritten && !strings.Contains(strings.Join(cp.Notes, "\n"), "Apache logged \"possible coredump\" (AH00051)") {
		t.Errorf("the audit says no cores but Apache logged AH00051: no mismatch note in %q", cp.Notes)
	}
}

// TestDoctorApacheDeathsNeedModPHP: Apache's record of a dead child is a
// PHP death only when PHP runs inside Apache. Without the cores, the
// configuration decides: the lab's (LoadModule php_module) makes every
// death PHP's; one that loads no PHP module (PHP behind proxy_fcgi, or no
// PHP) makes them crashes of another program.
func TestDoctorApacheDeathsNeedModPHP(t *testing.T) {
	l := labtest.Apache(t)
	noPHP := filepath.Join(t.TempDir(), "apache2.conf")
	if err := os.WriteFile(noPHP, []byte("LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		config string
		php    int
	}{{l.ApacheConfig, len(l.Scenarios)}, {noPHP, 0}} {
		res, err := Run(context.Background(), Options{Logs: []string{l.ApacheErrorLog}, NoCores: true, ApacheConfig: c.config})
		if err != nil {
			t.Fatal(err)
		}
		if res.Logs == nil || res.Logs.Summary.Incidents != c.php {
			t.Fatalf("%s: logs %+v, want %d PHP deaths", c.config, res.Logs, c.php)
		}
		others := 0
		for _, o := range res.Others {
			others += o.Crashes
			if o.Name != "Apache httpd" {
				t.Errorf("%s: other program %q, want Apache httpd", c.config, o.Name)
			}
		}
		if others != len(l.Scenarios)-c.php {
			t.Errorf("%s: %d crashes of other programs (%+v), want %d", c.config, others, res.Others, len(l.Scenarios)-c.php)
		}
		for _, inc := range res.Logs.Incidents {
			if !strings.Contains(inc.ProcessWhy, c.config) {
				t.Errorf("%s: pid %d classified because %q, which names not the configuration", c.config, inc.PID, inc.ProcessWhy)
			}
		}
	}
}

// TestDoctorOnApacheForensicLab: with no core at all (NoCores), the
// forensic log alone gives every death of the Apache lab the request its
// child died serving.
func TestDoctorOnApacheForensicLab(t *testing.T) {
	l := labtest.Apache(t)
	res, err := Run(context.Background(), Options{Logs: []string{l.ApacheErrorLog, l.ApacheForensicLog}, NoCores: true, ApacheConfig: l.ApacheConfig})
	if err != nil {
		t.Fatal(err)
	}
	if res.Logs == nil || res.Logs.Summary.Incidents != len(l.Scenarios) {
		t.Fatalf("logs %+v, want %d PHP deaths", res.Logs, len(l.Scenarios))
	}
	byPID := map[int]string{}
	for _, inc := range res.Logs.Incidents {
		byPID[inc.PID] = inc.Method + " " + inc.URI
	}
	for name, s := range l.Scenarios {
		if got := byPID[s.PID]; got != s.Method+" "+s.URL {
			t.Errorf("%s: pid %d request %q, want %q", name, s.PID, got, s.Method+" "+s.URL)
		}
	}
}
