// Package audit checks a host's configuration for what decides whether a
// crashing PHP-FPM worker leaves a core dump (kernel core_pattern and
// friends, systemd LimitCORE, systemd-coredump / Apport / ABRT, FPM
// rlimit_core and process.dumpable, the running processes' limits, disk
// space) and which PHP settings FPM really runs with (php.ini, the conf.d
// scan directory in its real order, pool php_value / php_admin_value,
// version defaults), and flags known risky combinations.
//
// It works on the live machine or on a tree given as Options.Root, where
// /proc values come from files inside the tree. Run returns one documented
// Report; FixPlan turns it into the changes `coroner fix` prints or applies.
package audit

// Status is the verdict of one check.
type Status string

// Statuses of a Finding.
const (
	// StatusOK: this layer lets cores through (or the setting is harmless).
	StatusOK Status = "ok"
	// StatusBlocks: this layer stops cores from being written.
	StatusBlocks Status = "blocks"
	// StatusRisky: works, but loses cores in some cases, or is a known crash risk.
	StatusRisky Status = "risky"
	// StatusPending: the configuration on disk is right but the running
	// system does not use it yet (needs a reload, restart or sysctl run).
	StatusPending Status = "pending"
	// StatusInfo: a fact worth showing, not a verdict.
	StatusInfo Status = "info"
)

// Layers of the core capture chain and of the PHP configuration, as used in
// Finding.Layer.
const (
	LayerKernel  = "kernel"  // kernel.core_pattern, core_uses_pid, fs.suid_dumpable, core_pipe_limit
	LayerHandler = "handler" // the core_pattern pipe handler: systemd-coredump, Apport, ABRT
	LayerSystemd = "systemd" // the php-fpm unit's LimitCORE (+ drop-ins)
	LayerFPM     = "fpm"     // FPM global and pool rlimit_core, process.dumpable, user
	LayerApache  = "apache"  // Apache httpd with mod_php: CoreDumpDirectory, User, the children's core limit
	LayerProcess = "process" // the running master and workers
	LayerDisk    = "disk"    // where cores land: writable, free space
	LayerPHP     = "php"     // effective PHP settings (JIT, PCRE JIT, limits)
	LayerConfig  = "config"  // problems reading the configuration itself
)

// Evidence points at the line that decided a finding.
type Evidence struct {
	File string `json:"file"`
	Line int    `json:"line,omitempty"`
	Text string `json:"text,omitempty"` // the line (or value) as found
}

// String formats e as file:line: text.
func (e Evidence) String() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + itoa(e.Line)
	}
	if e.Text != "" {
		s += ": " + e.Text
	}
	return s
}

// Finding is the result of one check.
type Finding struct {
	Layer  string `json:"layer"`            // one of the Layer constants
	Check  string `json:"check"`            // stable identifier, e.g. "kernel.core_pattern", "fpm.process_dumpable"
	Target string `json:"target,omitempty"` // what it is about, in words: "php8.2-fpm pool www", "php8.2-fpm pid 1234"
	// Installation and Pool scope the finding ("" = machine-wide / whole installation).
	Installation string     `json:"installation,omitempty"`
	Pool         string     `json:"pool,omitempty"`
	Status       Status     `json:"status"`
	Message      string     `json:"message"`
	Evidence     []Evidence `json:"evidence,omitempty"`
	Fix          string     `json:"fix,omitempty"` // what to change, in words (coroner fix writes it)
}

// Setting is one effective configuration value and where it came from.
type Setting struct {
	Value    string    `json:"value"`
	Default  bool      `json:"default,omitempty"` // not set anywhere: the built-in default
	Evidence *Evidence `json:"evidence,omitempty"`
}

// KernelSettings are the machine-wide core dump settings.
type KernelSettings struct {
	CorePattern   Setting `json:"core_pattern"`
	CoreUsesPID   Setting `json:"core_uses_pid"`
	SuidDumpable  Setting `json:"suid_dumpable"`
	CorePipeLimit Setting `json:"core_pipe_limit"`
	// Configured holds values from sysctl.d / sysctl.conf that apply at
	// boot or on `sysctl --system`, keyed by sysctl name.
	Configured map[string]Setting `json:"configured,omitempty"`
	// Handler names the pipe handler: "systemd-coredump", "apport", "abrt",
	// "other" or "" for a file pattern.
	Handler string `json:"handler,omitempty"`
}

// Pool is one FPM pool as configured.
type Pool struct {
	Name       string             `json:"name"`
	File       string             `json:"file"`
	Line       int                `json:"line"`      // the [name] header
	LastLine   int                `json:"last_line"` // last entry of the section (fixes insert after it)
	User       Setting            `json:"user"`
	Group      Setting            `json:"group"`
	Chdir      Setting            `json:"chdir"`
	RlimitCore Setting            `json:"rlimit_core"`
	Dumpable   Setting            `json:"process_dumpable"`
	INI        map[string]Setting `json:"ini,omitempty"` // php_value / php_admin_value / *_flag of this pool
	// Effective is the PHP configuration this pool's workers run with.
	Effective map[string]Setting `json:"effective"`
	// CoresWritten is the audit's verdict for a crash of this pool's
	// workers: no layer blocks cores.
	CoresWritten bool `json:"cores_written"`
	// Pending is true when the verdict needs a reload or restart first
	// (see the pending findings).
	Pending bool `json:"pending,omitempty"`
	// CoreDir is where a core of this pool's workers lands ("" for a pipe
	// handler that stores it itself, "(cwd)" when relative to the script's directory).
	CoreDir string `json:"core_dir,omitempty"`

	// Listen is the pool's socket (a path, or [host:]port); StatusPath and
	// StatusListen are pm.status_path and pm.status_listen (PHP 8.0+: a
	// socket of its own for the status page); SlowlogTimeout and
	// TerminateTimeout are request_slowlog_timeout and
	// request_terminate_timeout as written ("0" when unset). coroner
	// snapshot reads the status page and compares requests to these.
	Listen           Setting `json:"listen"`
	StatusPath       Setting `json:"status_path"`
	StatusListen     Setting `json:"status_listen"`
	SlowlogTimeout   Setting `json:"request_slowlog_timeout"`
	TerminateTimeout Setting `json:"request_terminate_timeout"`
}

// Process is a running php-fpm master or worker.
type Process struct {
	PID            int    `json:"pid"`
	PPID           int    `json:"ppid"`
	Role           string `json:"role"` // "master" or "worker"
	Pool           string `json:"pool,omitempty"`
	Config         string `json:"config,omitempty"` // the master's config file from its title
	UID            int    `json:"uid"`
	CoreSoft       string `json:"core_soft"` // "unlimited" or bytes
	CoreHard       string `json:"core_hard"`
	CoredumpFilter string `json:"coredump_filter,omitempty"`
	Cwd            string `json:"cwd,omitempty"`
	// Dumpable is known on the live machine only (a non-dumpable process's
	// /proc files belong to root).
	Dumpable *bool `json:"dumpable,omitempty"`
}

// Installation is one PHP-FPM installation (a version with its config), or
// one Apache httpd that runs PHP inside its children with mod_php (SAPI
// SAPIApache: its children are then its one Pool, named after the binary).
type Installation struct {
	Name   string `json:"name"`   // e.g. "php8.2-fpm", "php-fpm", "php83-php-fpm", "apache2 (mod_php 8.2)"
	Layout string `json:"layout"` // "debian", "rhel", "remi" or "explicit"
	// SAPI is how PHP runs: SAPIFPM ("" in reports older than this field)
	// or SAPIApache.
	SAPI      string `json:"sapi,omitempty"`
	Version   string `json:"version,omitempty"`
	Binary    string `json:"binary,omitempty"`
	FPMConfig string `json:"fpm_config"`
	// ServerConfig is Apache's main configuration file, ServerRoot its
	// ServerRoot, Envvars Debian's envvars file (SAPIApache).
	ServerConfig string `json:"server_config,omitempty"`
	ServerRoot   string `json:"server_root,omitempty"`
	Envvars      string `json:"envvars,omitempty"`
	// PHPModule is the libphp Apache loads, MPM its MPM (prefork, event,
	// worker), CoreDumpDirectory its CoreDumpDirectory (SAPIApache).
	PHPModule         string   `json:"php_module,omitempty"`
	MPM               string   `json:"mpm,omitempty"`
	CoreDumpDirectory Setting  `json:"core_dump_directory,omitzero"`
	PHPIni            string   `json:"php_ini,omitempty"`
	ScanDirs          []string `json:"scan_dirs,omitempty"`
	INIFiles          []string `json:"ini_files"` // php.ini then conf.d files in the order PHP reads them
	Unit              string   `json:"unit,omitempty"`
	UnitFile          string   `json:"unit_file,omitempty"`
	DropIns           []string `json:"drop_ins,omitempty"`
	LimitCore         Setting  `json:"limit_core"`
	// GlobalRlimitCore is rlimit_core in FPM's [global] section; for
	// Apache, the `ulimit -c` of its envvars file.
	GlobalRlimitCore Setting `json:"global_rlimit_core"`
	Pools            []*Pool `json:"pools"`
	// INI is the effective master-level PHP configuration (php.ini + conf.d
	// + version defaults) for the keys coroner cares about.
	INI map[string]Setting `json:"ini"`
	// JIT is opcache.jit decoded, with whether it really compiles code.
	JIT        JIT       `json:"jit"`
	Extensions []string  `json:"extensions"` // extension= and zend_extension= names, in load order
	Processes  []Process `json:"processes,omitempty"`
	// ExpectedCoreSize estimates a worker core: opcache SHM + JIT buffer + margin.
	ExpectedCoreSize int64 `json:"expected_core_size"`
	// ConfigFiles lists every file read for this installation.
	ConfigFiles []string `json:"config_files"`
}

// SchemaVersion is the version of Report's JSON form; it changes only when
// a field is removed or changes meaning.
const SchemaVersion = 1

// Report is the result of an audit.
type Report struct {
	Schema        int             `json:"schema"` // SchemaVersion
	Root          string          `json:"root"`
	Live          bool            `json:"live"`
	Systemd       bool            `json:"systemd"` // systemd runs as PID 1 (units apply)
	Kernel        KernelSettings  `json:"kernel"`
	Installations []*Installation `json:"installations"`
	Findings      []Finding       `json:"findings"`
	Warnings      []string        `json:"warnings"`
}

// Count returns how many findings have status s.
func (r *Report) Count(s Status) int {
	n := 0
	for _, f := range r.Findings {
		if f.Status == s {
			n++
		}
	}
	return n
}

// Find returns the findings with the given check identifier.
func (r *Report) Find(check string) []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Check == check {
			out = append(out, f)
		}
	}
	return out
}

// CoresWritten reports whether every audited pool would leave a core.
func (r *Report) CoresWritten() bool {
	n := 0
	for _, in := range r.Installations {
		for _, p := range in.Pools {
			n++
			if !p.CoresWritten {
				return false
			}
		}
	}
	return n > 0
}

// Blocking returns the findings that stop cores from being written.
func (r *Report) Blocking() []Finding {
	var out []Finding
	for _, f := range r.Findings {
		if f.Status == StatusBlocks {
			out = append(out, f)
		}
	}
	return out
}
