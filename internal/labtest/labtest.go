// Package labtest gives tests the artifacts of the crash lab (lab/run.sh):
// real php-fpm worker cores with the ground truth their PHP scripts wrote,
// small C program cores, the log lines each crash produced, and gdb's view
// of each core as the oracle for native frames.
//
// The lab runs at most once per `go test` invocation: test binaries of all
// packages share one cache directory under os.TempDir() (keyed by a hash of
// the lab's files, its arguments and the php-fpm/PCRE2 binaries) under a file
// lock, and later invocations reuse it while nothing of that changed.
//
// Environment: CORONER_NO_LAB=1 skips every test that calls Get;
// CORONER_LAB_DIR=DIR uses an existing lab output (lab/run.sh --out DIR)
// instead of running the lab.
package labtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
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
	"time"
)

// Lab is the result of one lab run (manifest.json).
type Lab struct {
	// Dir is the artifact root; manifest.json lives here.
	Dir string `json:"dir"`
	// PHPVersion is the version of the php-fpm that crashed ("8.2.29").
	PHPVersion string `json:"php_version"`
	// PHPFPM is the path of the php-fpm binary, as seen from the host (inside
	// Sysroot when there is one).
	PHPFPM string `json:"php_fpm"`
	// Release says which PHP ran: "host" (the host's Debian php-fpm; also
	// when empty, in manifests older than this field), a Debian suite
	// ("bullseye", "bookworm", "trixie", "sid", "experimental") whose
	// php-fpm ran in a chroot (lab/run.sh --release SUITE, see Sysroot), or
	// "custom" (lab/run.sh --fpm BIN, on the host).
	Release string `json:"release,omitempty"`
	// Sysroot is the chroot the php-fpm ran in ("" on the host): the paths
	// a core names are inside it, so analyse with coroner --sysroot Sysroot.
	Sysroot string `json:"sysroot,omitempty"`
	// PHPFPMInSysroot is the path of the php-fpm binary as the crashed
	// process saw it ("/usr/sbin/php-fpm8.4" inside Sysroot); the same as
	// PHPFPM without a sysroot.
	PHPFPMInSysroot string `json:"php_fpm_in_sysroot,omitempty"`
	// ZTS is true when the php-fpm is a thread-safe (ZTS) build.
	ZTS bool `json:"zts,omitempty"`
	// Server is the web server PHP ran behind: "nginx" (php-fpm; also
	// when empty, in manifests older than this field) or "apache" (Apache
	// httpd + mod_php, lab/run.sh --apache: PHPFPM is then the apache2
	// binary, Libphp the PHP module it loaded, and the FPM and nginx
	// fields are empty).
	Server string `json:"server,omitempty"`
	// Libphp is mod_php's libphp8.2.so (Server "apache").
	Libphp string `json:"libphp,omitempty"`
	// ApacheConfig, ApacheErrorLog and ApacheAccessLog are Apache's
	// configuration and logs (Server "apache").
	ApacheConfig    string `json:"apache_config,omitempty"`
	ApacheErrorLog  string `json:"apache_error_log,omitempty"`
	ApacheAccessLog string `json:"apache_access_log,omitempty"`
	// ApacheForensicLog is mod_log_forensic's log (ForensicLog): one
	// "+ID|request|headers" line when a request starts, "-ID" when it ends.
	ApacheForensicLog string `json:"apache_forensic_log,omitempty"`
	// JIT is the opcache.jit mode the lab required of the pool ("tracing"
	// unless --ini opcache.jit=...; "" for PHP 7.4, which has no JIT, and in
	// manifests older than this field).
	JIT string `json:"jit,omitempty"`
	// FPMConfig is the php-fpm.conf used (global section and pool).
	FPMConfig string `json:"fpm_config"`
	// PHPIniDir is the PHP_INI_SCAN_DIR value the pool ran with.
	PHPIniDir string `json:"php_ini_dir"`
	// NginxConfig is the nginx.conf used.
	NginxConfig string `json:"nginx_config"`
	// Port is the 127.0.0.1 port nginx listened on.
	Port int `json:"port"`
	// Dumpable is false for runs with --no-dumpable (no cores expected).
	Dumpable bool `json:"dumpable"`
	// Scenarios are the crashed requests. The key is the scenario name
	// ("ffi-null-code", ...) for its first run and NAME-2, NAME-3, ... for
	// repeated runs of the same scenario (Scenario.Name is always NAME).
	Scenarios map[string]*Scenario `json:"scenarios"`
	// CPrograms are the crashed C programs by name ("pcre-null", ...).
	CPrograms map[string]*CCore `json:"c_programs"`
	// NginxErrorLog is the whole-run nginx error log.
	NginxErrorLog string `json:"nginx_error_log"`
	// NginxAccessLog is the whole-run nginx access log.
	NginxAccessLog string `json:"nginx_access_log"`
	// FPMLog is the whole-run php-fpm master log.
	FPMLog string `json:"fpm_log"`
	// KernelLog holds the kernel (dmesg) lines about the lab's crashed
	// processes, captured during the run.
	KernelLog string `json:"kernel_log"`
	// Timings are the seconds spent per phase (packages, chroot, start,
	// scenarios, c_programs).
	Timings map[string]float64 `json:"timings"`

	// Hang is true for a hang lab (lab/run.sh --hang, see Hang): its
	// workers are alive, hanging in the Hangs scenarios, until it stops.
	Hang bool `json:"hang,omitempty"`
	// FPMSocket is the pool's FastCGI socket; FPMPool its name; Workers
	// its pm.max_children.
	FPMSocket string `json:"fpm_socket,omitempty"`
	FPMPool   string `json:"fpm_pool,omitempty"`
	Workers   int    `json:"workers,omitempty"`
	// StatusPath is the pool's pm.status_path and Slowlog its slowlog
	// file (hang labs).
	StatusPath string `json:"status_path,omitempty"`
	Slowlog    string `json:"slowlog,omitempty"`
	// BlackholePort is the port of the TCP server that never answers.
	BlackholePort int `json:"blackhole_port,omitempty"`
	// Hangs are the hanging workers by scenario key ("sleep", "curl",
	// "sleep-2" for a repeat...).
	Hangs map[string]*HangingWorker `json:"hangs,omitempty"`
}

// HangingWorker is a worker a hang lab left hanging in one scenario.
type HangingWorker struct {
	// Name is the hang scenario ("sleep", "pcre-backtrack", "curl"...).
	Name string `json:"name"`
	// Method and URL are the request through nginx.
	Method string `json:"method"`
	URL    string `json:"url"`
	// PID is the hanging worker.
	PID int `json:"pid"`
	// Truth is what the script wrote just before it entered the hang.
	Truth     *Truth `json:"-"`
	TruthPath string `json:"truth_path"`
	// HTTPStatus is what the client got (504: nginx gave up after 3 s
	// while the worker hangs on).
	HTTPStatus int `json:"http_status"`
	// NginxError and FPMLog are the log lines about the request and the
	// worker (nginx's "upstream timed out", FPM's "executing too slow").
	NginxError []string `json:"nginx_error"`
	FPMLog     []string `json:"fpm_log"`
}

// Scenario is one worker killed by one HTTP request.
type Scenario struct {
	// Name is the scenario ("kill-segv"), also for repeated runs.
	Name string `json:"name"`
	// Method is the HTTP method of the crashing request.
	Method string `json:"method"`
	// URL is the path and query requested through nginx.
	URL string `json:"url"`
	// Core is the core file (core.php-fpm8.2.PID.TIME, as the kernel named it).
	Core string `json:"core"`
	// PID is the worker that died.
	PID int `json:"pid"`
	// Signal is the signal it died of, as the FPM master logged it.
	Signal int `json:"signal"`
	// Truth is the ground truth read from TruthPath.
	Truth *Truth `json:"-"`
	// TruthPath is the truth.json the crashing script wrote.
	TruthPath string `json:"truth_path"`
	// GDB is the output of gdb -batch bt / info registers / x/6i $pc.
	GDB string `json:"gdb"`
	// NginxError, FPMLog and Kernel are the new log lines the crash produced
	// (kernel lines may be missing: the kernel rate-limits them machine-wide).
	NginxError []string `json:"nginx_error"`
	FPMLog     []string `json:"fpm_log"`
	Kernel     []string `json:"kernel"`
	// ApacheError holds Apache's error log lines of the crash (AH00051 or
	// AH00052), with Server "apache".
	ApacheError []string `json:"apache_error,omitempty"`
	// Secrets are credential values the request sent (Cookie,
	// Authorization) that a report must redact.
	Secrets []string `json:"secrets,omitempty"`
}

// Truth is what the crashing PHP script wrote about itself just before the
// crashing call, from PHP's own debug_backtrace() and $_SERVER.
type Truth struct {
	// Frames are the executing PHP frames, innermost first: Function is
	// the function running ("{main}" for the script, "{closure}",
	// "require"...), File and Line the current position inside it. With
	// Outermost, they are the outermost frames of a stack too deep to dump
	// at crash time (from the first recursion level down to {main}).
	Frames    []TruthFrame `json:"frames"`
	Outermost bool         `json:"outermost"`
	// RecursionFunctions are the functions expected to repeat in the cycle.
	RecursionFunctions []string `json:"recursion_functions"`
	// RequestURI, Method, Query, ScriptFilename and Host are $_SERVER's
	// REQUEST_URI, REQUEST_METHOD, QUERY_STRING, SCRIPT_FILENAME, HTTP_HOST.
	RequestURI     string `json:"request_uri"`
	Method         string `json:"method"`
	Query          string `json:"query"`
	ScriptFilename string `json:"script_filename"`
	Host           string `json:"host"`
	// PID is getmypid() of the crashing worker.
	PID int `json:"pid"`
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
	// GDB is gdb's bt / info registers / x/6i $pc (plus `thread apply all
	// bt` for thread-crash).
	GDB    string `json:"gdb"`
	Signal int    `json:"signal"`
	// Debug is true when the program was built with -g.
	Debug bool `json:"debug"`
	// PID is the process that crashed.
	PID int `json:"pid,omitempty"`
	// Kernel holds the kernel lines about the crash (may be rate-limited away).
	Kernel []string `json:"kernel,omitempty"`
}

// Scenario names and C program names the lab always produces.
var (
	ScenarioNames = []string{"ffi-null-code", "shortcode-recursion", "kill-segv", "abort", "method-closure-include"}
	CProgramNames = []string{"pcre-null", "null-write", "stack-overflow", "thread-crash", "cpp-namespace"}
)

// runArgs are the lab/run.sh arguments Get uses (besides --out): every
// scenario once, and a second crash of two of them (different pids, for
// fingerprint tests: the recursion depth differs between the two), and
// deep-comments, a deep but finite recursion (the host's lab only: it is
// not in ScenarioNames, which every release lab must produce).
var runArgs = []string{"--scenario", "ffi-null-code", "--scenario", "shortcode-recursion", "--scenario", "kill-segv",
	"--scenario", "abort", "--scenario", "method-closure-include",
	"--scenario", "ffi-null-code", "--scenario", "shortcode-recursion", "--scenario", "deep-comments"}

var (
	once    sync.Once
	cached  *Lab
	errLab  error
	skipMsg string
	// inUse holds a shared lock on each cache dir this process uses, for
	// as long as it lives.
	inUse   = map[string]*os.File{}
	inUseMu sync.Mutex
)

// Get runs the crash lab at most once per `go test` invocation (shared
// across test binaries through a cache dir + flock; reused when the lab
// scripts are unchanged) and returns its artifacts. It calls t.Skip with a
// clear message when not root or when CORONER_NO_LAB is set; any lab failure
// is t.Fatal with the lab's log tail.
func Get(t testing.TB) *Lab {
	t.Helper()
	once.Do(func() { cached, skipMsg, errLab = load() })
	if skipMsg != "" {
		t.Skip(skipMsg)
	}
	if errLab != nil {
		t.Fatalf("crash lab: %v", errLab)
	}
	return cached
}

func load() (*Lab, string, error) {
	if os.Getenv("CORONER_NO_LAB") != "" {
		return nil, "CORONER_NO_LAB is set: integration tests on the crash lab are skipped", nil
	}
	if dir := os.Getenv("CORONER_LAB_DIR"); dir != "" {
		holdInUse(dir)
		l, err := Read(dir)
		if err != nil {
			return nil, "", fmt.Errorf("CORONER_LAB_DIR: %w", err)
		}
		return l, "", nil
	}
	if os.Geteuid() != 0 {
		return nil, "the crash lab needs root (it runs php-fpm workers and sets kernel.core_pattern): run the tests as root, or set CORONER_LAB_DIR to a lab output", nil
	}
	root, err := repoRoot()
	if err != nil {
		return nil, "", err
	}
	key, err := cacheKey(filepath.Join(root, "lab"), runArgs)
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Join(os.TempDir(), "coroner-lab-"+key)
	l, err := runLocked(filepath.Join(root, "lab", "run.sh"), dir)
	if err != nil {
		return nil, "", err
	}
	removeStale(dir)
	return l, "", nil
}

// Releases are the PHP builds the multi-release lab crashes besides the
// host's, with their PHP version: Debian suites whose php-fpm runs in a
// chroot (lab/run.sh --release SUITE), and "zts", the thread-safe PHP 8.2
// built from Debian's source by lab/zts/build.sh (lab/run.sh --fpm BIN).
var Releases = map[string]string{
	"bullseye":     "7.4",
	"trixie":       "8.4",
	"experimental": "8.5",
	"zts":          "8.2",
}

// releaseArgs are the lab/run.sh arguments of a release lab (besides --out
// and --release): every PHP scenario once (no C programs in a chroot).
var releaseArgs = []string{"--scenario", "ffi-null-code", "--scenario", "shortcode-recursion", "--scenario", "kill-segv",
	"--scenario", "abort", "--scenario", "method-closure-include"}

var (
	releaseMu   sync.Mutex
	releaseLabs = map[string]*Lab{}
)

// Release runs the crash lab's PHP scenarios on the php-fpm of another
// Debian release, inside its chroot (lab/chroot.sh builds it once per
// machine; `make test` prepares all of them first), at most once per
// machine and lab version, and returns the artifacts; analyse its cores
// with Sysroot. Like Get, it skips when not root or when CORONER_NO_LAB is
// set; a release that cannot be set up is t.Fatal with the reason, never a
// silent skip.
func Release(t testing.TB, suite string) *Lab {
	t.Helper()
	if _, ok := Releases[suite]; !ok {
		t.Fatalf("labtest.Release: unknown release %q", suite)
	}
	if os.Getenv("CORONER_NO_LAB") != "" {
		t.Skip("CORONER_NO_LAB is set: integration tests on the crash lab are skipped")
	}
	if os.Geteuid() != 0 {
		t.Skip("the crash lab needs root (chroots, php-fpm workers, kernel.core_pattern): run the tests as root")
	}
	releaseMu.Lock()
	defer releaseMu.Unlock()
	if l := releaseLabs[suite]; l != nil {
		return l
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"--release", suite}, releaseArgs...)
	stamp, _ := os.ReadFile(filepath.Join(chrootRoot(), suite, ".coroner-chroot"))
	if suite == "zts" {
		// lab/zts/build.sh prints the php-fpm path (seconds when built).
		out, err := exec.Command(filepath.Join(root, "lab", "zts", "build.sh")).Output()
		if err != nil {
			t.Fatalf("lab/zts/build.sh: %v", err)
		}
		fpm := strings.TrimSpace(string(out))
		args = append([]string{"--fpm", fpm}, releaseArgs...)
		stamp, _ = os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(fpm)), ".coroner-stamp"))
	}
	key, err := cacheKey(filepath.Join(root, "lab"), append(args, string(stamp)))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(os.TempDir(), "coroner-lab-"+suite+"-"+key)
	l, err := runLockedArgs(filepath.Join(root, "lab", "run.sh"), dir, args, 30*time.Minute)
	if err != nil {
		t.Fatalf("crash lab on %s: %v", suite, err)
	}
	removeStale(dir)
	releaseLabs[suite] = l
	return l
}

// apacheArgs are the lab/run.sh arguments of the Apache lab (besides
// --out): every PHP scenario, and the deep but finite recursion.
var apacheArgs = []string{"--apache", "--scenario", "ffi-null-code", "--scenario", "shortcode-recursion", "--scenario", "kill-segv",
	"--scenario", "abort", "--scenario", "method-closure-include", "--scenario", "deep-comments"}

var (
	apacheOnce sync.Once
	apacheLab  *Lab
	apacheErr  error
)

// Apache runs the crash lab's PHP scenarios on Apache httpd + mod_php
// (lab/run.sh --apache: the host's apache2 and libapache2-mod-php8.2,
// prefork) at most once per `go test` invocation and lab version (cached
// like Get), and returns its artifacts: the children's cores (re-raised by
// Apache's sig_coredump), the truth, and Apache's error log lines. It skips
// like Get; a lab that cannot be set up is t.Fatal with the reason.
func Apache(t testing.TB) *Lab {
	t.Helper()
	if os.Getenv("CORONER_NO_LAB") != "" {
		t.Skip("CORONER_NO_LAB is set: integration tests on the crash lab are skipped")
	}
	if dir := os.Getenv("CORONER_APACHE_LAB_DIR"); dir != "" {
		l, err := Read(dir)
		if err != nil {
			t.Fatalf("CORONER_APACHE_LAB_DIR: %v", err)
		}
		return l
	}
	if os.Geteuid() != 0 {
		t.Skip("the crash lab needs root (Apache children, kernel.core_pattern): run the tests as root")
	}
	apacheOnce.Do(func() {
		root, err := repoRoot()
		if err != nil {
			apacheErr = err
			return
		}
		// the key covers Apache and mod_php too (a package upgrade makes a new lab)
		ids := append([]string(nil), apacheArgs...)
		for _, bin := range []string{"/usr/sbin/apache2", "/usr/lib/apache2/modules/libphp8.2.so"} {
			if st, err := os.Stat(bin); err == nil {
				ids = append(ids, fmt.Sprintf("%s:%d:%d", bin, st.Size(), st.ModTime().UnixNano()))
			}
		}
		key, err := cacheKey(filepath.Join(root, "lab"), ids)
		if err != nil {
			apacheErr = err
			return
		}
		dir := filepath.Join(os.TempDir(), "coroner-lab-apache-"+key)
		apacheLab, apacheErr = runLockedArgs(filepath.Join(root, "lab", "run.sh"), dir, apacheArgs, 15*time.Minute)
		if apacheErr == nil && apacheLab.Server != "apache" {
			apacheErr = fmt.Errorf("the lab in %s ran %q, not Apache", dir, apacheLab.Server)
		}
		if apacheErr == nil {
			removeStale(dir)
		}
	})
	if apacheErr != nil {
		t.Fatalf("crash lab on Apache: %v", apacheErr)
	}
	return apacheLab
}

// chrootRoot is where lab/chroot.sh keeps the release chroots.
func chrootRoot() string {
	if d := os.Getenv("CORONER_LAB_CHROOTS"); d != "" {
		return d
	}
	return "/var/cache/coroner/lab/chroots"
}

// runLocked runs the lab into dir unless a complete output is there, under
// an exclusive lock on dir.lock, then takes the shared in-use lock.
func runLocked(script, dir string) (*Lab, error) {
	return runLockedArgs(script, dir, runArgs, 15*time.Minute)
}

// runLockedArgs is runLocked with the lab's arguments and a time limit.
func runLockedArgs(script, dir string, args []string, limit time.Duration) (*Lab, error) {
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock lab cache: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return nil, fmt.Errorf("lock lab cache %s: %w", dir, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	holdInUse(dir)
	if l, err := Read(dir); err == nil && l.Complete() == nil {
		return l, nil
	}
	logPath := dir + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create lab log: %w", err)
	}
	defer logf.Close()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, append([]string{"--out", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// run.sh restores kernel.core_pattern on SIGTERM; give it time to.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	runErr := cmd.Run()
	logText, _ := os.ReadFile(logPath)
	if runErr != nil {
		return nil, fmt.Errorf("%s --out %s: %w; log %s:\n%s", script, dir, runErr, logPath, tail(string(logText), 40))
	}
	l, err := Read(dir)
	if err != nil {
		return nil, fmt.Errorf("%w; log %s:\n%s", err, logPath, tail(string(logText), 40))
	}
	if err := l.Complete(); err != nil {
		return nil, fmt.Errorf("lab output incomplete: %w; log %s:\n%s", err, logPath, tail(string(logText), 40))
	}
	return l, nil
}

// holdInUse takes a shared lock on dir.use for the life of the process, so
// that removeStale of another test process never deletes a lab in use.
func holdInUse(dir string) {
	inUseMu.Lock()
	defer inUseMu.Unlock()
	if inUse[dir] != nil {
		return
	}
	f, err := os.OpenFile(dir+".use", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH); err != nil {
		f.Close()
		return
	}
	inUse[dir] = f
}

// staleAfter is how old another key's lab output must be before removeStale
// deletes it (test binaries built before the in-use lock existed do not hold it).
const staleAfter = time.Hour

// labKind is the release part of a lab cache dir's name: "" for the host's
// lab (coroner-lab-KEY), the suite for a release lab (coroner-lab-SUITE-KEY).
func labKind(dir string) string {
	name := strings.TrimPrefix(filepath.Base(dir), "coroner-lab-")
	if i := strings.LastIndexByte(name, '-'); i >= 0 {
		return name[:i]
	}
	return ""
}

// removeStale deletes lab outputs of the same kind as keep (the host's lab,
// or one release) with other keys (older lab versions, ~1-2 GB each) that
// no process is using or producing.
func removeStale(keep string) {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "coroner-lab-*"))
	for _, d := range dirs {
		if d == keep || strings.Contains(filepath.Base(d), ".") || labKind(d) != labKind(keep) {
			continue
		}
		st, err := os.Stat(d)
		if err != nil || !st.IsDir() || time.Since(st.ModTime()) < staleAfter {
			continue
		}
		lock, err := os.OpenFile(d+".lock", os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			continue
		}
		use, err := os.OpenFile(d+".use", os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			lock.Close()
			continue
		}
		if syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil &&
			syscall.Flock(int(use.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			if _, err := os.Stat(filepath.Join(d, "pids")); err != nil { // not a --keep lab still running
				os.RemoveAll(d)
				os.Remove(d + ".log")
				os.Remove(d + ".use")
				os.Remove(d + ".lock")
			}
		}
		use.Close()
		lock.Close()
	}
}

// Read loads the manifest of a lab output directory (lab/run.sh --out DIR)
// and the ground truth of its scenarios. Relative paths in the manifest are
// taken relative to dir.
func Read(dir string) (*Lab, error) {
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, fmt.Errorf("read lab manifest: %w", err)
	}
	var l Lab
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, "manifest.json"), err)
	}
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	if l.Dir == "" {
		l.Dir = dir
	}
	for _, p := range []*string{&l.FPMConfig, &l.NginxConfig, &l.NginxErrorLog, &l.NginxAccessLog, &l.FPMLog, &l.KernelLog,
		&l.ApacheConfig, &l.ApacheErrorLog, &l.ApacheAccessLog} {
		abs(p)
	}
	for name, s := range l.Scenarios {
		if s == nil {
			return nil, fmt.Errorf("scenario %s: null in the manifest", name)
		}
		abs(&s.Core)
		abs(&s.GDB)
		abs(&s.TruthPath)
		if s.TruthPath == "" {
			continue
		}
		tb, err := os.ReadFile(s.TruthPath)
		if err != nil {
			return nil, fmt.Errorf("scenario %s: read truth: %w", name, err)
		}
		var tr Truth
		if err := json.Unmarshal(tb, &tr); err != nil {
			return nil, fmt.Errorf("scenario %s: parse %s: %w", name, s.TruthPath, err)
		}
		s.Truth = &tr
	}
	for name, h := range l.Hangs {
		if h == nil {
			return nil, fmt.Errorf("hang %s: null in the manifest", name)
		}
		abs(&h.TruthPath)
		tb, err := os.ReadFile(h.TruthPath)
		if err != nil {
			return nil, fmt.Errorf("hang %s: read truth: %w", name, err)
		}
		var tr Truth
		if err := json.Unmarshal(tb, &tr); err != nil {
			return nil, fmt.Errorf("hang %s: parse %s: %w", name, h.TruthPath, err)
		}
		h.Truth = &tr
	}
	for name, c := range l.CPrograms {
		if c == nil {
			return nil, fmt.Errorf("c program %s: null in the manifest", name)
		}
		abs(&c.Core)
		abs(&c.GDB)
		abs(&c.Binary)
	}
	return &l, nil
}

// hostRelease reports whether the lab ran the host's own php-fpm (the
// C programs are built and crashed only then).
func (l *Lab) hostRelease() bool { return l.Release == "" || l.Release == "host" }

// Complete reports what is missing for the tests: every scenario of
// ScenarioNames with a non-empty core (when Dumpable), gdb output and ground
// truth with frames, and every C program of CProgramNames with its binary,
// core and gdb output.
func (l *Lab) Complete() error {
	var errs []error
	nonEmpty := func(what, p string) {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			errs = append(errs, fmt.Errorf("%s: %q missing or empty", what, p))
		}
	}
	for _, name := range ScenarioNames {
		s := l.Scenarios[name]
		if s == nil {
			errs = append(errs, fmt.Errorf("scenario %s missing", name))
			continue
		}
		if l.Dumpable {
			nonEmpty("scenario "+name+" core", s.Core)
			nonEmpty("scenario "+name+" gdb output", s.GDB)
		}
		nonEmpty("scenario "+name+" truth", s.TruthPath)
		if s.Truth == nil || len(s.Truth.Frames) == 0 {
			errs = append(errs, fmt.Errorf("scenario %s: no ground truth frames", name))
		}
		if s.PID == 0 || s.Signal == 0 {
			errs = append(errs, fmt.Errorf("scenario %s: pid %d signal %d", name, s.PID, s.Signal))
		}
	}
	if l.hostRelease() && l.Server != "apache" && (len(l.CPrograms) > 0 || l.Dumpable) {
		for _, name := range CProgramNames {
			c := l.CPrograms[name]
			if c == nil {
				errs = append(errs, fmt.Errorf("c program %s missing", name))
				continue
			}
			nonEmpty("C program "+name+" binary", c.Binary)
			nonEmpty("C program "+name+" core", c.Core)
			nonEmpty("C program "+name+" gdb output", c.GDB)
		}
	}
	return errors.Join(errs...)
}

// Script returns the absolute path of the lab's script (lab/run.sh), for
// tests that keep a lab of their own running.
func Script() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, "lab", "run.sh"), nil
}

// repoRoot finds the module root from the working directory (a package dir).
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "lab", "run.sh")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("cannot find the repository root (go.mod with lab/run.sh) above the working directory")
		}
		dir = parent
	}
}

// cacheKey hashes the names and contents of the lab's files (not labtest),
// the run arguments, and the identity of the binaries that crash, so that
// a package upgrade or an edited lab script makes a new lab run.
func cacheKey(labDir string, args []string) (string, error) {
	var files []string
	err := filepath.WalkDir(labDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "labtest" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
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
			return "", fmt.Errorf("hash lab files: %w", err)
		}
		rel, _ := filepath.Rel(labDir, f)
		fmt.Fprintf(h, "%s\x00%d\x00", rel, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "args\x00%q\x00", args)
	for _, bin := range []string{"/usr/sbin/php-fpm8.2", "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0", "/usr/sbin/nginx"} {
		if st, err := os.Stat(bin); err == nil {
			fmt.Fprintf(h, "%s\x00%d\x00%d\x00", bin, st.Size(), st.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// HoldExclusive keeps other test processes from running the lab while t
// runs a lab of its own (lab/run.sh --keep): labs change the machine-wide
// kernel.core_pattern, so two at once would catch each other's cores. The
// lock is released when t ends.
func HoldExclusive(t testing.TB, l *Lab) {
	t.Helper()
	lock, err := os.OpenFile(l.Dir+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("lock the lab: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("lock the lab: %v", err)
	}
	t.Cleanup(func() {
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	})
}

// HangNames are the hang scenarios of lab/run.sh --hang.
var HangNames = []string{"sleep", "usleep", "pcre-backtrack", "curl", "mysqli", "pgsql", "redis", "session-lock", "loop"}

// Hang starts a hang lab (lab/run.sh --hang --out DIR ARGS...: nginx and a
// PHP-FPM pool whose workers hang, each in one scenario, with the pool's
// status page on) and stops it when t ends. One hang lab runs at a time on
// the machine (an exclusive lock, held until t ends); it does not change
// kernel.core_pattern. Like Get, it skips when not root or when
// CORONER_NO_LAB is set; a lab that fails is t.Fatal with its log.
func Hang(t testing.TB, args ...string) *Lab {
	t.Helper()
	if os.Getenv("CORONER_NO_LAB") != "" {
		t.Skip("CORONER_NO_LAB is set: integration tests on the lab are skipped")
	}
	if os.Geteuid() != 0 {
		t.Skip("the hang lab needs root (it runs php-fpm workers as www-data): run the tests as root")
	}
	script, err := Script()
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "coroner-hang-lab.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatalf("lock the hang lab: %v", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		lock.Close()
		t.Fatalf("lock the hang lab: %v", err)
	}
	dir, err := os.MkdirTemp("", "coroner-hang-")
	if err != nil {
		t.Fatal(err)
	}
	stop := func() {
		out, err := exec.Command(script, "--stop", dir).CombinedOutput()
		if err != nil {
			t.Errorf("stop the hang lab: %v\n%s", err, out)
		}
		os.RemoveAll(dir)
		_ = syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
		lock.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, script, append([]string{"--hang", "--out", dir}, args...)...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		stop()
		t.Fatalf("%s --hang: %v\n%s", script, err, tail(string(out), 40))
	}
	t.Cleanup(stop)
	l, err := Read(dir)
	if err != nil {
		t.Fatalf("hang lab: %v\n%s", err, tail(string(out), 40))
	}
	if !l.Hang || len(l.Hangs) == 0 {
		t.Fatalf("hang lab: no hanging workers in the manifest\n%s", tail(string(out), 40))
	}
	return l
}
