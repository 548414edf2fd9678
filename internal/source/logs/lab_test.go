package logs

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// sameFile reports whether two paths name the same file.
func sameFile(a, b string) bool {
	if a == "" || b == "" {
		return false
	}
	fa, err1 := os.Stat(a)
	fb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(fa, fb)
}

// TestLab reads the crash lab's whole-run logs (nginx error and access
// logs, the PHP-FPM master log, the kernel lines) and its core directory,
// and checks that every scenario becomes one incident with the right URI,
// pid, signal and core.
func TestLab(t *testing.T) {
	lab := labtest.Get(t)
	var inputs []Input
	for _, p := range []string{lab.NginxErrorLog, lab.NginxAccessLog, lab.FPMLog, lab.KernelLog} {
		if p != "" {
			inputs = append(inputs, Input{Path: p, Format: FormatAuto})
		}
	}
	// The lab keeps each scenario's core in its own directory, renamed
	// "core" (no pid in the name): discover them from their parent, as
	// `coroner logs --cores DIR` does.
	var cores []*coredumps.Entry
	for _, sc := range lab.Scenarios {
		if sc.Core != "" {
			cores, _ = coredumps.Discover(coredumps.DiscoverOptions{Sources: []string{coredumps.SourceDir},
				Dirs: []string{filepath.Dir(filepath.Dir(sc.Core))}, NoJournal: true, Quick: true})
			break
		}
	}
	if len(cores) < len(lab.Scenarios) {
		t.Errorf("discovered %d cores for %d scenarios", len(cores), len(lab.Scenarios))
	}
	sym := NewObjectSymbolizer()
	defer sym.Close()
	res, err := Analyze(context.Background(), Options{Inputs: inputs, Cores: cores, Symbolizer: sym})
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range res.Inputs {
		t.Logf("read %s: %s, %d lines, %d events %s", in.Path, in.Detected, in.Lines, in.Events, in.Error)
	}
	byPID := map[int]*Incident{}
	for _, inc := range res.Incidents {
		byPID[inc.PID] = inc
	}
	for name, sc := range lab.Scenarios {
		t.Run(name, func(t *testing.T) {
			checkScenario(t, byPID[sc.PID], sc)
		})
	}
	// Each scenario's own lines alone give the same answer.
	for name, sc := range lab.Scenarios {
		t.Run(name+"/own-lines", func(t *testing.T) {
			dir := t.TempDir()
			var in []Input
			for f, lines := range map[string][]string{"error.log": sc.NginxError, "php-fpm.log": sc.FPMLog, "kern.log": sc.Kernel} {
				if len(lines) == 0 {
					continue
				}
				p := filepath.Join(dir, f)
				os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o644)
				in = append(in, Input{Path: p})
			}
			res, err := Analyze(context.Background(), Options{Inputs: in, Cores: cores, Symbolizer: sym})
			if err != nil {
				t.Fatal(err)
			}
			var got *Incident
			for _, inc := range res.Incidents {
				if inc.PID == sc.PID {
					got = inc
				}
			}
			checkScenario(t, got, sc)
		})
	}
}

func checkScenario(t *testing.T, inc *Incident, sc *labtest.Scenario) {
	t.Helper()
	if inc == nil {
		t.Fatalf("no incident for pid %d", sc.PID)
	}
	if inc.Signal != sc.Signal {
		t.Errorf("signal %d, want %d", inc.Signal, sc.Signal)
	}
	if inc.URI != sc.URL {
		t.Errorf("URI %q, want %q", inc.URI, sc.URL)
	}
	if sc.Core != "" && !sameFile(inc.Core, sc.Core) {
		t.Errorf("core %q (%s), want %q", inc.Core, inc.CoreConfidence, sc.Core)
	}
	if len(sc.Kernel) > 0 && (inc.Fault == nil || inc.Site == "") {
		t.Errorf("kernel line not linked: %+v", inc.Links)
	}
	for _, l := range inc.Links {
		if l.Source == SrcNginxError && l.Confidence == ConfLow {
			t.Errorf("front-end link only low confidence: %s", l.Reason)
		}
	}
	t.Logf("pid %d %s %s site %q core %q (%s)", inc.PID, inc.SignalName, inc.URI, inc.Site, inc.Core, inc.CoreConfidence)
}

// TestApacheLab reads the Apache lab's error log (lab/run.sh --apache):
// every child death (AH00051, "possible coredump in" the lab's
// CoreDumpDirectory) is one PHP incident of the right pid and signal,
// linked to its core with high confidence, with no URI (Apache writes no
// access-log line for a request whose child died).
func TestApacheLab(t *testing.T) {
	lab := labtest.Apache(t)
	var cores []*coredumps.Entry
	for _, sc := range lab.Scenarios {
		cores, _ = coredumps.Discover(coredumps.DiscoverOptions{Sources: []string{coredumps.SourceDir},
			Dirs: []string{filepath.Dir(filepath.Dir(sc.Core))}, NoJournal: true, Quick: true})
		break
	}
	res, err := Analyze(context.Background(), Options{Inputs: []Input{{Path: lab.ApacheErrorLog, Format: FormatAuto}}, Cores: cores})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Inputs) != 1 || res.Inputs[0].Detected != FormatApacheError {
		t.Errorf("inputs %+v, want one Apache error log", res.Inputs)
	}
	if res.Summary.Incidents != len(lab.Scenarios) || res.Summary.OtherIncidents != 0 {
		t.Errorf("%d PHP incidents (%d others), want %d", res.Summary.Incidents, res.Summary.OtherIncidents, len(lab.Scenarios))
	}
	byPID := map[int]*Incident{}
	for _, inc := range res.Incidents {
		byPID[inc.PID] = inc
	}
	for name, sc := range lab.Scenarios {
		inc := byPID[sc.PID]
		switch {
		case inc == nil:
			t.Errorf("%s: no incident for pid %d", name, sc.PID)
		case !inc.PHP || inc.Signal != sc.Signal || !inc.CoreDumped:
			t.Errorf("%s: incident %+v, want a PHP death by signal %d with a core", name, inc, sc.Signal)
		case !sameFile(inc.Core, sc.Core) || inc.CoreConfidence != "high":
			t.Errorf("%s: core %q (%s), want %s with high confidence", name, inc.Core, inc.CoreConfidence, sc.Core)
		}
		if len(sc.ApacheError) != 1 || !strings.Contains(sc.ApacheError[0], "AH00051") {
			t.Errorf("%s: Apache's lines %q, want one AH00051", name, sc.ApacheError)
		}
		if inc != nil && !strings.Contains(inc.ProcessWhy, "libphp") {
			t.Errorf("%s: known to be PHP because %q, want the core's libphp mapping", name, inc.ProcessWhy)
		}
	}
	for _, c := range cores {
		if !c.MapsKnown || !strings.Contains(filepath.Base(c.PHPModule), "libphp") {
			t.Errorf("core %s: PHP module %q (mappings read: %v), want libphp", c.Path, c.PHPModule, c.MapsKnown)
		}
	}

	// Without the cores, Apache's configuration decides: the lab's loads
	// mod_php; not reading any, an Apache child is not known to run PHP.
	m, err := audit.ApacheModPHP("", lab.ApacheConfig)
	if err != nil || !m.Loaded() {
		t.Fatalf("ApacheModPHP(%s) = %+v, %v: want mod_php loaded", lab.ApacheConfig, m, err)
	}
	for _, modPHP := range []*ModPHP{{Loaded: true, Why: m.Why()}, nil} {
		res, err := Analyze(context.Background(), Options{Inputs: []Input{{Path: lab.ApacheErrorLog, Format: FormatAuto}}, ModPHP: modPHP})
		if err != nil {
			t.Fatal(err)
		}
		want := len(lab.Scenarios)
		if modPHP == nil {
			want = 0
		}
		if res.Summary.Incidents != want || res.Summary.OtherIncidents != len(lab.Scenarios)-want {
			t.Errorf("mod_php %+v: %d PHP incidents (%d others), want %d", modPHP, res.Summary.Incidents, res.Summary.OtherIncidents, want)
		}
		for _, inc := range res.Incidents {
			t.Logf("mod_php %v: pid %d PHP %v: %s", modPHP != nil, inc.PID, inc.PHP, inc.ProcessWhy)
		}
	}
}

// TestApacheForensicLab reads the Apache lab's error log and its
// mod_log_forensic log, without cores: every child death gets the request
// it died serving (method and URI as the lab sent them, through
// mod_rewrite and PATH_INFO), from the forensic log alone, linked with high
// confidence, and the POST's cookie and bearer token appear nowhere.
func TestApacheForensicLab(t *testing.T) {
	lab := labtest.Apache(t)
	if lab.ApacheForensicLog == "" {
		t.Fatal("the Apache lab names no forensic log")
	}
	res, err := Analyze(context.Background(), Options{Inputs: []Input{{Path: lab.ApacheErrorLog, Format: FormatAuto},
		{Path: lab.ApacheForensicLog, Format: FormatAuto}}, ModPHP: &ModPHP{Loaded: true, Why: "the lab loads mod_php"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Inputs) != 2 || res.Inputs[1].Detected != FormatApacheForensic {
		t.Errorf("inputs %+v, want the forensic log detected", res.Inputs)
	}
	byPID := map[int]*Incident{}
	for _, inc := range res.Incidents {
		byPID[inc.PID] = inc
	}
	linked := 0
	for name, sc := range lab.Scenarios {
		inc := byPID[sc.PID]
		if inc == nil {
			t.Errorf("%s: no incident for pid %d", name, sc.PID)
			continue
		}
		if inc.Method != sc.Method || inc.URI != sc.URL || inc.Host == "" {
			t.Errorf("%s: request %s %s (host %q), want %s %s", name, inc.Method, inc.URI, inc.Host, sc.Method, sc.URL)
		}
		for _, l := range inc.Links {
			if l.Kind == KindUnfinishedRequest && l.Confidence == ConfHigh && l.File == lab.ApacheForensicLog {
				linked++
			}
			for _, s := range sc.Secrets {
				if strings.Contains(l.Text, s) {
					t.Errorf("%s: link keeps the secret %q: %s", name, s, l.Text)
				}
			}
		}
	}
	if linked != len(lab.Scenarios) {
		t.Errorf("%d deaths linked to their forensic request with high confidence, want %d", linked, len(lab.Scenarios))
	}
	t.Logf("%d deaths, %d with their request from the forensic log", len(lab.Scenarios), linked)
}
