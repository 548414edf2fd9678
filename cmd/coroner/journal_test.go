package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
)

// coronerCmd runs the coroner command (the test binary, which TestMain's
// testscript.Main put in $PATH under that name) and returns its stdout,
// failing the test on a non-zero exit status.
func coronerCmd(t *testing.T, args ...string) []byte {
	t.Helper()
	bin, err := exec.LookPath("coroner")
	if err != nil {
		t.Fatalf("coroner is not in PATH: %v", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "TZ=UTC")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("coroner %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// crashedFrames are the function names of the crashed thread of a JSON
// report, and the report's core path.
func crashedFrames(t *testing.T, report []byte) ([]string, string) {
	t.Helper()
	var rep struct {
		Process struct {
			CorePath string `json:"core_path"`
		} `json:"process"`
		Threads []struct {
			Crashed bool `json:"crashed"`
			Frames  []struct {
				PC       string `json:"pc"`
				Function string `json:"function"`
			} `json:"frames"`
		} `json:"threads"`
	}
	if err := json.Unmarshal(report, &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	var out []string
	for _, th := range rep.Threads {
		if th.Crashed {
			for _, f := range th.Frames {
				out = append(out, f.Function+"@"+f.PC)
			}
		}
	}
	return out, rep.Process.CorePath
}

// TestJournalCoreCommands: a core systemd-coredump kept in the journal
// (Storage=journal; here a real crash's core in a journal file written by
// systemd-journal-remote) is listed by `coroner cores` as analysable under
// its name, and analyze (by that name, --pid, --latest), report, php and
// doctor take it, with the frames of the original core.
func TestJournalCoreCommands(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "crash.c")
	code := "static int depth(volatile int *p, int n) { if (n == 0) { *p = 42; return 0; } return depth(p, n - 1) + 1; }\n" +
		"int main(void) { return depth((volatile int *)0, 3); }\n"
	if err := os.WriteFile(src, []byte(code), 0o644); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(dir, "crash")
	if out, err := exec.Command("gcc", "-g", "-O0", "-o", prog, src).CombinedOutput(); err != nil {
		t.Skipf("gcc: %v %s", err, out)
	}
	core, pid := labtest.CrashCore(t, dir, nil, prog)
	// An hour ahead: no other core of this host is newer (--latest).
	ts := time.Now().Add(time.Hour).Truncate(time.Microsecond)
	journal := labtest.CoredumpJournal(t, dir, "system",
		labtest.CoredumpRecord{PID: pid, Signal: 11, Exe: prog, Comm: "crash", Time: ts, Core: core})
	name := "journal:" + strconv.Itoa(pid) + ":" + strconv.FormatInt(ts.UnixMicro(), 10)
	since := ts.Add(-time.Minute).Format(time.RFC3339)

	var list struct {
		Cores []struct {
			Journal, Analysable, Truncated string
			PID                            int
		} `json:"cores"`
	}
	if err := json.Unmarshal(coronerCmd(t, "cores", "--journal", journal, "--since", since, "--json"), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Cores) != 1 || list.Cores[0].Journal != name || list.Cores[0].Analysable != "yes" || list.Cores[0].Truncated != "no" || list.Cores[0].PID != pid {
		t.Errorf("cores: %+v, want %s analysable", list.Cores, name)
	}
	if table := coronerCmd(t, "cores", "--journal", journal, "--since", since); !bytes.Contains(table, []byte(name)) {
		t.Errorf("the table does not name %s:\n%s", name, table)
	}

	want, _ := crashedFrames(t, coronerCmd(t, "analyze", "--json", core))
	if len(want) < 5 || !strings.HasPrefix(want[0], "depth@") {
		t.Fatalf("frames of the original core: %v", want)
	}
	for _, args := range [][]string{{name}, {"--pid", strconv.Itoa(pid)}, {"--latest"}} {
		got, path := crashedFrames(t, coronerCmd(t, append([]string{"analyze", "--json", "--journal", journal}, args...)...))
		if strings.Join(got, " ") != strings.Join(want, " ") || path != name {
			t.Errorf("analyze %v: core %s frames %v, want %s %v", args, path, got, name, want)
		}
	}
	if out := coronerCmd(t, "report", "--journal", journal, name); !bytes.Contains(out, []byte("depth")) {
		t.Errorf("report:\n%s", out)
	}
	// php on a program that is not PHP says so (exit status 0 or not).
	cmd := exec.Command("coroner", "php", "--journal", journal, name)
	if out, _ := cmd.CombinedOutput(); !bytes.Contains(out, []byte("not PHP")) {
		t.Errorf("php: %s", out)
	}

	var doc struct {
		Analysed int `json:"analysed"`
		Cores    []struct {
			Journal string `json:"journal"`
		} `json:"cores"`
	}
	out := coronerCmd(t, "doctor", "--journal", journal, "--no-logs", "--no-audit", "--no-live", "--all-processes", "--since", since, "--json")
	if err := json.Unmarshal(out, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Analysed != 1 || len(doc.Cores) != 1 || doc.Cores[0].Journal != name {
		t.Errorf("doctor analysed %d cores: %+v", doc.Analysed, doc.Cores)
	}
}
