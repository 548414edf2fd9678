// Package labtest gives tests the artifacts of the crash lab (lab/run.sh):
// real php-fpm worker cores with the ground truth their PHP scripts wrote,
// small C program cores, the log lines each crash produced, and gdb's view
// of each core as the oracle for native frames.
//
// The lab runs at most once per `go test` invocation: test binaries of all
// packages share one cache directory (keyed by a hash of the lab's files)
// under a file lock, and a later run reuses it while the lab is unchanged.
package labtest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// Lab is the result of one lab run (manifest.json).
type Lab struct {
	// Dir is the artifact root; manifest.json lives here.
	Dir string `json:"dir"`
	// PHPVersion is the version of the php-fpm that crashed ("8.2.29").
	PHPVersion string `json:"php_version"`
	// PHPFPM is the path of the php-fpm binary.
	PHPFPM string `json:"php_fpm"`
	// FPMConfig is the php-fpm.conf used (global section and pool).
	FPMConfig string `json:"fpm_config"`
	// PHPIniDir is the PHP_INI_SCAN_DIR value the pool ran with.
	PHPIniDir   string `json:"php_ini_dir"`
	NginxConfig string `json:"nginx_config"`
	Port        int    `json:"port"`
	// Dumpable is false for runs with --no-dumpable (no cores expected).
	Dumpable bool `json:"dumpable"`
	// Scenarios are the crashed requests by name ("ffi-null-code", ...).
	Scenarios map[string]*Scenario `json:"scenarios"`
	// CPrograms are the crashed C programs by name ("pcre-null", ...).
	CPrograms map[string]*CCore `json:"c_programs"`
	// Whole-run log files.
	NginxErrorLog  string             `json:"nginx_error_log"`
	NginxAccessLog string             `json:"nginx_access_log"`
	FPMLog         string             `json:"fpm_log"`
	KernelLog      string             `json:"kernel_log"`
	Timings        map[string]float64 `json:"timings"`
}

// Scenario is one worker killed by one HTTP request.
type Scenario struct {
	Name   string `json:"name"`
	Method string `json:"method"`
	// URL is the path and query requested through nginx.
	URL       string `json:"url"`
	Core      string `json:"core"`
	PID       int    `json:"pid"`
	Signal    int    `json:"signal"`
	TruthPath string `json:"truth_path"`
	// GDB is the output of gdb -batch bt / info registers / x/6i $pc.
	GDB        string   `json:"gdb"`
	NginxError []string `json:"nginx_error"`
	FPMLog     []string `json:"fpm_log"`
	Kernel     []string `json:"kernel"`
	Truth      *Truth   `json:"-"`
}

// Truth is what the crashing PHP script wrote about itself just before the
// crashing call, from PHP's own debug_backtrace() and $_SERVER.
type Truth struct {
	// Frames are the executing PHP frames, innermost first: Function is
	// the function running ("{main}" for the script, "{closure}",
	// "require"...), File and Line the current position inside it. With
	// Outermost, they are the outermost frames of a stack too deep to dump
	// at crash time (from the first recursion level down to {main}).
	Frames             []TruthFrame `json:"frames"`
	Outermost          bool         `json:"outermost"`
	RecursionFunctions []string     `json:"recursion_functions"`
	RequestURI         string       `json:"request_uri"`
	Method             string       `json:"method"`
	Query              string       `json:"query"`
	ScriptFilename     string       `json:"script_filename"`
	Host               string       `json:"host"`
	PID                int          `json:"pid"`
}

// TruthFrame is one PHP frame of the ground truth.
type TruthFrame struct {
	Function string `json:"function"`
	Class    string `json:"class"`
	CallType string `json:"call_type"`
	File     string `json:"file"`
	Line     int    `json:"line"`
}

// CCore is one crashed C/C++ program.
type CCore struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	Binary string `json:"binary"`
	Core   string `json:"core"`
	GDB    string `json:"gdb"`
	Signal int    `json:"signal"`
	// Debug is true when the program was built with -g.
	Debug bool `json:"debug"`
}

var (
	once   sync.Once
	cached *Lab
	errLab error
	skip   string
)

// Get runs the crash lab at most once per test invocation and returns its
// artifacts. It skips t when not root or when CORONER_NO_LAB is set; a lab
// failure fails t with the lab's log.
func Get(t testing.TB) *Lab {
	t.Helper()
	once.Do(func() { cached, errLab, skip = load() })
	if skip != "" {
		t.Skip(skip)
	}
	if errLab != nil {
		t.Fatalf("crash lab: %v", errLab)
	}
	return cached
}

func load() (*Lab, error, string) {
	if os.Getenv("CORONER_NO_LAB") != "" {
		return nil, nil, "CORONER_NO_LAB is set: integration tests on the crash lab are skipped"
	}
	if dir := os.Getenv("CORONER_LAB_DIR"); dir != "" {
		l, err := Read(dir)
		return l, err, ""
	}
	if os.Geteuid() != 0 {
		return nil, nil, "the crash lab needs root (it runs php-fpm workers and sets kernel.core_pattern): run the tests as root, or set CORONER_LAB_DIR to a lab output"
	}
	root, err := repoRoot()
	if err != nil {
		return nil, err, ""
	}
	hash, err := hashDir(filepath.Join(root, "lab"))
	if err != nil {
		return nil, err, ""
	}
	dir := filepath.Join(os.TempDir(), "coroner-lab-"+hash[:12])
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock lab cache: %w", err), ""
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock lab cache: %w", err), ""
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if l, err := Read(dir); err == nil && l.complete() == nil {
		return l, nil, ""
	}
	cmd := exec.Command(filepath.Join(root, "lab", "run.sh"), "--out", dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("lab/run.sh --out %s: %v\n%s", dir, err, tail(string(out), 40)), ""
	}
	l, err := Read(dir)
	if err != nil {
		return nil, err, ""
	}
	if err := l.complete(); err != nil {
		return nil, fmt.Errorf("lab output incomplete: %v\n%s", err, tail(string(out), 40)), ""
	}
	return l, nil, ""
}

// Read loads the manifest of a lab output directory and the ground truth
// of its scenarios.
func Read(dir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("read lab manifest: %w", err)
	}
	var l Lab
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("parse %s/manifest.json: %w", dir, err)
	}
	for name, s := range l.Scenarios {
		if s.TruthPath == "" {
			continue
		}
		tb, err := os.ReadFile(s.TruthPath)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: %w", name, err)
		}
		var tr Truth
		if err := json.Unmarshal(tb, &tr); err != nil {
			return nil, fmt.Errorf("scenario %s: parse truth: %w", name, err)
		}
		s.Truth = &tr
	}
	return &l, nil
}

// complete checks that every scenario and C program has what tests need.
func (l *Lab) complete() error {
	want := []string{"ffi-null-code", "shortcode-recursion", "kill-segv", "abort", "method-closure-include"}
	for _, name := range want {
		s := l.Scenarios[name]
		if s == nil {
			return fmt.Errorf("scenario %s missing", name)
		}
		for _, p := range []string{s.Core, s.GDB, s.TruthPath} {
			if st, err := os.Stat(p); err != nil || st.Size() == 0 {
				return fmt.Errorf("scenario %s: %q missing or empty", name, p)
			}
		}
		if s.Truth == nil || len(s.Truth.Frames) == 0 {
			return fmt.Errorf("scenario %s: no ground truth frames", name)
		}
	}
	for _, name := range []string{"pcre-null", "null-write", "stack-overflow", "thread-crash", "cpp-namespace"} {
		c := l.CPrograms[name]
		if c == nil {
			return fmt.Errorf("C program %s missing", name)
		}
		if _, err := os.Stat(c.Core); err != nil {
			return fmt.Errorf("C program %s: %v", name, err)
		}
	}
	return nil
}

// repoRoot finds the module root from the working directory (a package dir).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "lab", "run.sh")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("cannot find the repository root (go.mod with lab/run.sh) above the working directory")
		}
		dir = parent
	}
}

// hashDir hashes the names and contents of the lab's files (not labtest).
func hashDir(dir string) (string, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "labtest" {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("hash lab files: %w", err)
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		rel, _ := filepath.Rel(dir, f)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
