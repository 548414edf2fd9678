package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/schemacheck"
)

// jsonRun is one command whose standard output is a JSON document.
type jsonRun struct {
	doc  string   // the schema it must satisfy (docs/schema/DOC.json)
	args []string // coroner's arguments
	// exits are the exit statuses allowed (0 when empty).
	exits []int
	// lines: one document a line (logs --follow --json), read until
	// the process is stopped after the first one.
	lines bool
}

// TestJSONOutputsMatchSchemas runs every command that prints JSON on real
// inputs (the checked-in lab cores, the audit and log test trees, the
// lab's own cores and logs when it runs) and validates what it printed
// against docs/schema: one run per document kind at least. Then it checks
// that each schema rejects a mutated copy of a real document (a wrong
// schema version, an unknown field, an address as a number, a time that
// is not RFC 3339, a value outside a closed vocabulary).
func TestJSONOutputsMatchSchemas(t *testing.T) {
	set, err := schemacheck.Load(schemaDir)
	if err != nil {
		t.Fatal(err)
	}
	bin := buildBinary(t)
	runs := fixtureRuns(t)
	if os.Getenv("CORONER_NO_LAB") == "" && os.Geteuid() == 0 {
		runs = append(runs, labRuns(t)...)
	} else {
		t.Log("no lab (CORONER_NO_LAB or not root): the checked-in cores and test trees only")
	}
	counts := map[string]int{}
	samples := map[string][][]byte{}
	for _, r := range runs {
		docs, err := runJSON(t, bin, r)
		if err != nil {
			t.Errorf("coroner %s: %v", strings.Join(r.args, " "), err)
			continue
		}
		for _, d := range docs {
			if err := set.Validate(r.doc, d); err != nil {
				t.Errorf("coroner %s: %v", strings.Join(r.args, " "), err)
				continue
			}
			counts[r.doc]++
			samples[r.doc] = append(samples[r.doc], d)
		}
	}
	var names []string
	total := 0
	for _, n := range set.Names() {
		names = append(names, fmt.Sprintf("%s %d", n, counts[n]))
		total += counts[n]
		if counts[n] == 0 && !optionalDocs[n] && !strings.HasPrefix(n, "api-") {
			t.Errorf("no real %s document was validated", n)
		}
	}
	t.Logf("%d documents validated from %d runs: %s", total, len(runs), strings.Join(names, ", "))
	for _, n := range set.Names() {
		checkMutations(t, set, n, samples[n])
	}
}

// optionalDocs are the documents not always validated here: a snapshot
// needs a live process to read (root, ptrace: with the lab only); watch's
// alerts are validated by its lab test (the webhook's body). The
// dashboard's API answers (api-*) are validated by the tests of
// internal/service/server and internal/service/watch.
var optionalDocs = map[string]bool{"snapshot": true, "alert": true}

// runJSON runs coroner and returns the documents it printed.
func runJSON(t *testing.T, bin string, r jsonRun) ([][]byte, error) {
	cmd := exec.Command(bin, r.args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if r.lines {
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 16<<20)
		var docs [][]byte
		if sc.Scan() {
			docs = append(docs, append([]byte(nil), sc.Bytes()...))
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if len(docs) == 0 {
			return nil, fmt.Errorf("no line printed; stderr: %s", stderr.String())
		}
		return docs, nil
	}
	out, err := cmd.Output()
	exit := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		exit = ee.ExitCode()
	} else if err != nil {
		return nil, err
	}
	allowed := r.exits
	if len(allowed) == 0 {
		allowed = []int{0}
	}
	ok := false
	for _, e := range allowed {
		ok = ok || e == exit
	}
	if !ok {
		return nil, fmt.Errorf("exit status %d; stderr: %s", exit, stderr.String())
	}
	return [][]byte{out}, nil
}

// fixtureRuns are the runs on what the repository holds: the checked-in
// lab cores, the audit test trees, the log test tree.
func fixtureRuns(t *testing.T) []jsonRun {
	fixtures := labtest.Fixtures(t)
	internal, err := filepath.Abs("../../internal")
	if err != nil {
		t.Fatal(err)
	}
	var runs []jsonRun
	coreDir := t.TempDir()
	for _, f := range fixtures {
		sys := []string{"--sysroot", f.Sysroot, "--no-host-debug"}
		runs = append(runs,
			jsonRun{doc: "report", args: append([]string{"analyze", "--json", f.Core}, sys...)},
			jsonRun{doc: "report", args: append([]string{"report", "--json", f.Core}, sys...)})
		if strings.HasPrefix(f.Name, "php-") {
			runs = append(runs,
				jsonRun{doc: "php", args: append([]string{"php", "--json", f.Core}, sys...)},
				jsonRun{doc: "php-layout", args: append([]string{"php", "--layout", "--json", f.Core}, sys...)},
				jsonRun{doc: "replay-plan", args: []string{"replay", "--dry-run", "--json", "--socket", "unix:/nonexistent.sock", f.Core}},
				// No FPM listens there: every attempt is an error (exit 1), reported.
				jsonRun{doc: "replay", args: []string{"replay", "--json", "--count", "2", "--socket", "unix:" + filepath.Join(coreDir, "no.sock"), f.Core}, exits: []int{1}})
		}
		if err := os.Symlink(f.Core, filepath.Join(coreDir, "core."+f.Name+".zst")); err != nil {
			t.Fatal(err)
		}
	}
	runs = append(runs, jsonRun{doc: "cores", args: []string{"cores", "--json", "--quick", "--no-journal", "--core-pattern", "core", "--cores", coreDir}},
		jsonRun{doc: "version", args: []string{"version", "--json"}})

	host := filepath.Join(internal, "source/logs/testdata/host")
	hostLogs, err := filepath.Glob(filepath.Join(host, "*"))
	if err != nil {
		t.Fatal(err)
	}
	nginx, _ := filepath.Glob(filepath.Join(host, "nginx", "*"))
	hostLogs = append(hostLogs, nginx...)
	var files []string
	for _, p := range hostLogs {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			files = append(files, p)
		}
	}
	runs = append(runs,
		jsonRun{doc: "logs", args: append([]string{"logs", "--json", "--no-symbolize"}, files...)},
		jsonRun{doc: "logs", args: append([]string{"logs", "--json", "--events", "--cores", coreDir}, files...)},
		jsonRun{doc: "logs-incident", args: append([]string{"logs", "--json", "--follow", "--from-start"}, files...), lines: true})

	trees, err := filepath.Glob(filepath.Join(internal, "audit/testdata/*"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tree := range trees {
		if st, err := os.Stat(tree); err != nil || !st.IsDir() {
			continue
		}
		name := filepath.Base(tree)
		if name == "hostile" {
			continue // crafted to break readers, not a host
		}
		runs = append(runs,
			jsonRun{doc: "audit", args: []string{"audit", "--json", "--root", tree}, exits: []int{0, 4}},
			jsonRun{doc: "fix", args: []string{"fix", "--json", "--root", tree, "--capture"}},
			jsonRun{doc: "fix", args: []string{"fix", "--json", "--root", tree, "--mitigate", "no-jit"}},
			jsonRun{doc: "doctor", args: []string{"doctor", "--json", "--root", tree, "--no-live", "--cores", coreDir,
				"--logs", filepath.Join(host, "php8.2-fpm.log"), "--logs", filepath.Join(host, "kern.log")}})
	}
	// --apply and --rollback on a copy of a tree.
	tree := filepath.Join(t.TempDir(), "tree")
	if out, err := exec.Command("cp", "-a", filepath.Join(internal, "audit/testdata/debian12-defects"), tree).CombinedOutput(); err != nil {
		t.Fatalf("copy tree: %v\n%s", err, out)
	}
	runs = append(runs,
		jsonRun{doc: "fix", args: []string{"fix", "--json", "--root", tree, "--capture", "--apply"}},
		jsonRun{doc: "fix", args: []string{"fix", "--json", "--root", tree, "--rollback"}})
	return runs
}

// labRuns are the runs on the lab's cores and logs, and a snapshot of a
// live process.
func labRuns(t *testing.T) []jsonRun {
	lab := labtest.Get(t)
	var runs []jsonRun
	coreDir := t.TempDir()
	var names []string
	for n := range lab.Scenarios {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		sc := lab.Scenarios[n]
		if sc.Core == "" {
			continue
		}
		runs = append(runs,
			jsonRun{doc: "report", args: []string{"analyze", "--json", sc.Core}},
			jsonRun{doc: "php", args: []string{"php", "--json", sc.Core}},
			jsonRun{doc: "php-layout", args: []string{"php", "--layout", "--json", sc.Core}})
		if err := os.Symlink(sc.Core, filepath.Join(coreDir, filepath.Base(sc.Core))); err != nil {
			t.Fatal(err)
		}
	}
	names = names[:0]
	for n := range lab.CPrograms {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if c := lab.CPrograms[n]; c.Core != "" {
			runs = append(runs, jsonRun{doc: "report", args: []string{"analyze", "--json", c.Core}})
		}
	}
	var logs []string
	for _, p := range []string{lab.NginxErrorLog, lab.NginxAccessLog, lab.FPMLog, lab.KernelLog} {
		if p != "" {
			logs = append(logs, p)
		}
	}
	runs = append(runs,
		jsonRun{doc: "cores", args: []string{"cores", "--json", "--quick", "--no-journal", "--core-pattern", "core", "--cores", coreDir}},
		jsonRun{doc: "logs", args: append([]string{"logs", "--json", "--events", "--cores", coreDir}, logs...)},
		jsonRun{doc: "doctor", args: []string{"doctor", "--json", "--no-live", "--no-audit", "--cores", coreDir, "--max-cores", "2",
			"--logs", lab.FPMLog, "--logs", lab.KernelLog}})

	// A live process to snapshot: a child of this test, stopped only for
	// the snapshot.
	sleep := exec.Command("sleep", "600")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sleep.Process.Kill()
		_ = sleep.Wait()
	})
	runs = append(runs, jsonRun{doc: "snapshot", args: []string{"snapshot", "--json", fmt.Sprint(sleep.Process.Pid)}})
	return runs
}

var (
	addrString = regexp.MustCompile(`^0x[0-9a-f]+$`)
)

// checkMutations checks that the schema name rejects mutated copies of
// real documents: a wrong version, an unknown field, a required field
// missing, an address as a number, a time that is not RFC 3339, a value
// outside a closed vocabulary. Each mutation is made where the documents
// have such a value; the first two on every document kind.
func checkMutations(t *testing.T, set *schemacheck.Set, name string, docs [][]byte) {
	if len(docs) == 0 {
		return
	}
	type mutation struct {
		what string
		edit func(v any) bool // false: the document has no place for it
	}
	muts := []mutation{
		{"schema version + 1", func(v any) bool {
			m := v.(map[string]any)
			m["schema"] = json.Number("999")
			return true
		}},
		{"unknown field", func(v any) bool {
			v.(map[string]any)["no_such_field"] = true
			return true
		}},
		{"schema missing", func(v any) bool {
			delete(v.(map[string]any), "schema")
			return true
		}},
		{"address as a number", func(v any) bool {
			return schemacheck.ReplaceFirst(v, func(k string, x any) (any, bool) {
				s, ok := x.(string)
				if ok && addrString.MatchString(s) {
					return json.Number("4096"), true
				}
				return nil, false
			})
		}},
		{"time without a zone", func(v any) bool {
			return schemacheck.ReplaceFirst(v, func(k string, x any) (any, bool) {
				s, ok := x.(string)
				if !ok {
					return nil, false
				}
				if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
					return "2026-12-06 14:00:00", true
				}
				return nil, false
			})
		}},
		{"closed vocabulary", func(v any) bool {
			for _, key := range vocabularyKeys[name] {
				if schemacheck.ReplaceFirst(v, func(k string, x any) (any, bool) {
					if _, ok := x.(string); ok && k == key {
						return "no-such-value", true
					}
					return nil, false
				}) {
					return true
				}
			}
			return false
		}},
	}
	done := map[string]bool{}
	for _, d := range docs {
		for _, m := range muts {
			if done[m.what] {
				continue
			}
			v, err := schemacheck.Decode(d)
			if err != nil {
				t.Fatal(err)
			}
			if !m.edit(v) {
				continue
			}
			done[m.what] = true
			if err := set.ValidateValue(name, v); err == nil {
				t.Errorf("%s: a document with %s is accepted", name, m.what)
			}
		}
	}
	var made []string
	for _, m := range muts {
		if done[m.what] {
			made = append(made, m.what)
		}
	}
	t.Logf("%s: rejects %s", name, strings.Join(made, ", "))
}

// vocabularyKeys are, for each document, fields whose values are a closed
// vocabulary wherever that document has them.
var vocabularyKeys = map[string][]string{
	"report": {"trust"}, "snapshot": {"trust"}, "php": {"kind"}, "php-layout": {"source"},
	"replay": {"outcome"}, "audit": {"layer"}, "fix": {"action"}, "cores": {"analysable"},
	"logs": {"detected"}, "logs-incident": {"source"}, "doctor": {"trust", "layer", "analysable"},
}
