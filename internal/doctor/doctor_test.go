package doctor

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// expectations are the rules each lab crash must get first
// (diagnose/testdata/lab-expectations.json, shared with the diagnose tests).
type expectations struct {
	Scenarios map[string]struct {
		Rule         string   `json:"rule"`
		Alternatives []string `json:"alternatives"`
	} `json:"scenarios"`
}

func loadExpectations(t *testing.T) expectations {
	b, err := os.ReadFile(filepath.Join("..", "diagnose", "testdata", "lab-expectations.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e expectations
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func labOptions(l *labtest.Lab) Options {
	var cores []string
	for _, s := range l.Scenarios {
		cores = append(cores, s.Core)
	}
	return Options{
		Logs:          []string{l.NginxErrorLog, l.FPMLog, l.KernelLog},
		CoreDirs:      cores,
		FPMConfig:     l.FPMConfig,
		PHPIniScanDir: l.PHPIniDir,
		MaxCores:      10,
	}
}

// TestDoctorOnLab: with the lab's logs, cores and configuration, every
// scenario lands in a group diagnosed with its expected rule, on the URL
// that was really requested (read from the core), with a fix.
func TestDoctorOnLab(t *testing.T) {
	l := labtest.Get(t)
	want := loadExpectations(t)
	res, err := Run(context.Background(), labOptions(l))
	if err != nil {
		t.Fatal(err)
	}
	if res.Audit == nil {
		t.Errorf("no audit: %v", res.Warnings)
	}
	// The lab's pool is audited from the lab's php-fpm.conf; its workers
	// dumped core into the lab's directory while the lab held
	// kernel.core_pattern, whatever the audit says of the pattern now.
	if len(res.Pools) != 1 || res.Pools[0].Pool != "www" || res.Pools[0].Config != l.FPMConfig || res.Pools[0].CoresWritten == nil {
		t.Fatalf("crashed pools %+v", res.Pools)
	}
	www := res.Pools[0]
	notes := strings.Join(www.Notes, "\n")
	if www.CoresDumped != len(l.Scenarios) {
		t.Errorf("pool www: %d deaths logged \"core dumped\", want %d", www.CoresDumped, len(l.Scenarios))
	}
	if !*www.CoresWritten && !strings.Contains(notes, "will NOT be written, but the FPM master logged \"core dumped\"") {
		t.Errorf("the audit says no cores, the FPM log says core dumped: no mismatch in %q", www.Notes)
	}
	if www.CoreDir == "(cwd)" && !strings.Contains(notes, filepath.Join(l.Dir, "www")+" (from the cores' requests), which the audit did not check") {
		t.Errorf("relative core_pattern: the lab's document root is not named in %q", www.Notes)
	}
	for name, s := range l.Scenarios {
		exp := want.Scenarios[s.Name]
		var found *Group
		for _, g := range res.Groups {
			if g.Report != nil && g.Report.Process.PID == s.PID {
				found = g
			}
			for _, inc := range g.Incidents {
				if inc.PID == s.PID && found == nil {
					found = g
				}
			}
		}
		if found == nil {
			t.Errorf("%s (pid %d): in no group", name, s.PID)
			continue
		}
		if len(found.Diagnosis) == 0 {
			t.Errorf("%s: no diagnosis", name)
			continue
		}
		rule := found.Diagnosis[0].Rule
		ok := rule == exp.Rule
		for _, alt := range exp.Alternatives {
			ok = ok || rule == alt
		}
		if !ok {
			t.Errorf("%s: diagnosed %s, want %s", name, rule, exp.Rule)
		}
		uriOK := false
		for _, u := range found.URIs {
			if strings.HasSuffix(u.Key, " "+s.URL) || strings.HasSuffix(u.Key, s.URL) {
				uriOK = true
			}
		}
		if !uriOK {
			t.Errorf("%s: group URIs %v lack %s", name, found.URIs, s.URL)
		}
		if found.Report == nil {
			t.Errorf("%s: its core was not analysed", name)
		}
	}
	var text bytes.Buffer
	if err := Text(&text, res); err != nil {
		t.Fatal(err)
	}
	out := text.String()
	for _, w := range []string{"WHAT IS CRASHING", "/teachers/profile-sarah/", "Fix:", "WILL THE NEXT CRASH LEAVE EVIDENCE?",
		// the PHP loop once, in call order, and the frames outside it down to {main}
		"a loop of 12 frames", "one turn, in call order:", "TeacherPage->render()", "{main}()"} {
		if !strings.Contains(out, w) {
			t.Errorf("text report lacks %q", w)
		}
	}
	if strings.Contains(out, "more PHP frames") {
		t.Errorf("text report cuts a PHP stack with \"more PHP frames\"")
	}
	var md bytes.Buffer
	if err := Markdown(&md, res); err != nil || !strings.Contains(md.String(), "## What is crashing") {
		t.Errorf("markdown: %v", err)
	}
}

// TestDoctorWithoutCores: from logs, kernel lines and configuration alone
// the doctor still groups and explains the crashes, and says that cores are
// missing.
func TestDoctorWithoutCores(t *testing.T) {
	l := labtest.Get(t)
	opts := labOptions(l)
	opts.NoCores = true
	opts.CoreDirs = nil
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Groups) == 0 {
		t.Fatal("no groups from logs")
	}
	explained := 0
	for _, g := range res.Groups {
		if g.Report != nil {
			t.Errorf("group %s has a core analysis with cores disabled", g.Key)
		}
		if len(g.Diagnosis) > 0 && g.Diagnosis[0].Rule != "unknown-crash" {
			explained++
		}
	}
	if explained == 0 {
		t.Error("no group explained from the logs")
	}
	missing := strings.Join(res.Missing, "\n")
	if !strings.Contains(missing, "no core") {
		t.Errorf("missing evidence does not say that cores are missing: %q", missing)
	}
}

// TestDoctorWithoutLogs: cores only.
func TestDoctorWithoutLogs(t *testing.T) {
	l := labtest.Get(t)
	opts := labOptions(l)
	opts.NoLogs = true
	opts.Logs = nil
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.Analysed == 0 || len(res.Groups) == 0 {
		t.Fatalf("analysed %d cores, %d groups; warnings %v", res.Analysed, len(res.Groups), res.Warnings)
	}
	if !strings.Contains(strings.Join(res.Missing, "\n"), "no logs") {
		t.Errorf("missing evidence does not mention logs: %v", res.Missing)
	}
}

// TestFingerprintsOnLab: the same scenario crashed twice (different pids,
// ASLR, and for the recursion a different frame where the stack ran out)
// has one fingerprint; different scenarios have different ones.
func TestFingerprintsOnLab(t *testing.T) {
	l := labtest.Get(t)
	byScenario := map[string]map[string]bool{} // scenario -> fingerprints
	owner := map[string]string{}               // fingerprint -> scenario
	eng := newEngine(Options{})
	for key, s := range l.Scenarios {
		rep, err := eng.Run(context.Background(), engine.Request{Core: engine.Core{Path: s.Core}, NoDiagnosis: true})
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		fp := diagnose.Fingerprint(rep)
		if fp == "" {
			t.Fatalf("%s: empty fingerprint", key)
		}
		if byScenario[s.Name] == nil {
			byScenario[s.Name] = map[string]bool{}
		}
		byScenario[s.Name][fp] = true
		if other, ok := owner[fp]; ok && other != s.Name {
			t.Errorf("%s and %s share fingerprint %s", other, s.Name, fp)
		}
		owner[fp] = s.Name
		t.Logf("%-28s pid %-6d %s", key, s.PID, fp)
	}
	repeated := 0
	for name, fps := range byScenario {
		if len(fps) != 1 {
			t.Errorf("%s: %d different fingerprints for the same crash: %v", name, len(fps), fps)
		}
	}
	for key, s := range l.Scenarios {
		if key != s.Name {
			repeated++
		}
	}
	if repeated == 0 {
		t.Error("the lab crashed no scenario twice")
	}
}
