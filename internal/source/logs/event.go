// Package logs turns nginx, PHP-FPM, kernel, journal and Apache logs into
// crash incidents: which URLs die, when, how often, in which pool, with which
// signal, where in native code, and which core file belongs to which crash.
//
// It has one parser per log source (nginx.go, fpm.go, kernel.go, journal.go,
// apache.go), a streaming scanner that pre-filters on keywords before any
// parsing (scan.go), a correlator that links the events of one crash across
// sources with a stated confidence (correlate.go), a symbolizer for kernel
// segfault lines (symbolize.go) and a summary (summary.go).
package logs

import (
	"time"

	"github.com/coroner-dev/coroner/crash"
)

// Source names the log a line came from.
type Source string

// Log sources.
const (
	SrcNginxError  Source = "nginx-error"
	SrcNginxAccess Source = "nginx-access"
	SrcFPM         Source = "php-fpm"
	SrcFPMSlowlog  Source = "php-fpm-slowlog"
	SrcKernel      Source = "kernel"
	SrcCoredump    Source = "systemd-coredump"
	SrcApache      Source = "apache-error"
	// SrcApacheForensic is Apache's mod_log_forensic log (ForensicLog).
	SrcApacheForensic Source = "apache-forensic"
)

// Kind is what a log event says happened.
type Kind string

// Event kinds.
const (
	// nginx error.log (and Apache mod_proxy_fcgi)
	KindUpstreamReset   Kind = "upstream-reset"    // recv() failed (104: Connection reset by peer)
	KindUpstreamClosed  Kind = "upstream-closed"   // upstream prematurely closed connection
	KindConnectFailed   Kind = "connect-failed"    // connect() to ... failed (11/111/2)
	KindUpstreamTimeout Kind = "upstream-timeout"  // upstream timed out (110: ...)
	KindUpstreamOther   Kind = "upstream-error"    // other upstream error lines
	KindHTTPError       Kind = "http-5xx"          // access log line with status 500-504
	KindChildSignal     Kind = "child-signal"      // FPM: child N exited on signal S
	KindChildExit       Kind = "child-exit"        // FPM: child N exited with code C
	KindExecTimeout     Kind = "execution-timeout" // FPM: execution timed out, terminating
	KindMaxChildren     Kind = "max-children"      // FPM: server reached pm.max_children
	KindPtraceFailed    Kind = "ptrace-failed"     // FPM: failed to ptrace
	KindEmergency       Kind = "emergency-restart" // FPM: failed processes threshold reached
	KindChildStderr     Kind = "child-stderr"      // FPM: child N said into stderr
	KindSlowRequest     Kind = "slow-request"      // FPM slowlog entry
	KindSegfault        Kind = "segfault"          // kernel: segfault at
	KindTrap            Kind = "trap"              // kernel: trap invalid opcode / divide error / int3
	KindGPF             Kind = "general-protection"
	KindCoredump        Kind = "coredump"     // systemd-coredump: Process N (comm) ... dumped core
	KindApacheChild     Kind = "apache-child" // Apache AH00051/AH00052: child pid N exit signal
	// KindUnfinishedRequest is a request mod_log_forensic saw start ("+")
	// and never end ("-"): its child died serving it.
	KindUnfinishedRequest Kind = "unfinished-request"
)

// Event is one parsed log line (or multi-line entry) of interest.
type Event struct {
	Time time.Time `json:"time"`
	// TimeApprox is set when the wall-clock time had to be derived (kernel
	// uptime without a known boot time, a syslog line without a year).
	TimeApprox bool   `json:"time_approx,omitempty"`
	Source     Source `json:"source"`
	Kind       Kind   `json:"kind"`
	File       string `json:"file"`
	Line       int64  `json:"line"`
	// Text is the log line as read (bounded in length).
	Text string `json:"text"`

	PID  int    `json:"pid,omitempty"`
	Comm string `json:"comm,omitempty"`
	// Exe is the crashed program's executable (systemd-coredump's
	// COREDUMP_EXE), when the log names it.
	Exe  string `json:"exe,omitempty"`
	Pool string `json:"pool,omitempty"`

	Signal     int     `json:"signal,omitempty"`
	SignalName string  `json:"signal_name,omitempty"`
	CoreDumped bool    `json:"core_dumped,omitempty"`
	ExitCode   int     `json:"exit_code,omitempty"`
	Lifetime   float64 `json:"lifetime_seconds,omitempty"` // FPM: seconds from start

	// Request fields (nginx, access log, FPM timeout, slowlog).
	Client       string  `json:"client,omitempty"`
	Server       string  `json:"server,omitempty"`
	Method       string  `json:"method,omitempty"`
	URI          string  `json:"uri,omitempty"`
	Upstream     string  `json:"upstream,omitempty"`
	Host         string  `json:"host,omitempty"`
	Status       int     `json:"status,omitempty"`
	UpstreamStat string  `json:"upstream_status,omitempty"`
	RequestTime  float64 `json:"request_time,omitempty"`
	Script       string  `json:"script,omitempty"`
	Errno        int     `json:"errno,omitempty"`
	Message      string  `json:"message,omitempty"`

	// Uptime is the kernel timestamp in seconds since boot, when the line
	// had one.
	Uptime float64 `json:"uptime,omitempty"`
	// Fault is the decoded kernel segfault/trap line.
	Fault *KernelFault `json:"fault,omitempty"`
	// Stack is the PHP stack of a slowlog entry, innermost first.
	Stack []SlowFrame `json:"stack,omitempty"`
	// CoreFile is the core path named by systemd-coredump, if any.
	CoreFile string `json:"core_file,omitempty"`
	// CoreDir is the directory Apache says a child's core went to
	// (AH00051: "possible coredump in DIR", its CoreDumpDirectory).
	CoreDir string `json:"core_dir,omitempty"`
	// BuildIDs are the modules' build-ids systemd-coredump listed
	// ("Module PATH ... with build-id ID"), by module path or name.
	BuildIDs map[string]string `json:"build_ids,omitempty"`
}

// SlowFrame is one frame of an FPM slowlog PHP stack.
type SlowFrame struct {
	// Addr is the frame's zend_execute_data, as the slowlog prints it.
	Addr     crash.Addr `json:"addr,omitempty"`
	Function string     `json:"function"`
	File     string     `json:"file,omitempty"`
	Line     int        `json:"line,omitempty"`
}

// KernelFault is what a kernel segfault or trap line says about the fault.
type KernelFault struct {
	// Type is "segfault", "general protection fault", or the trap name
	// ("invalid opcode", "divide error", "int3").
	Type string     `json:"type"`
	Addr crash.Addr `json:"addr,omitempty"` // fault address (segfault only)
	IP   crash.Addr `json:"ip"`
	SP   crash.Addr `json:"sp"`
	// ErrorCode is the x86 page-fault (or trap) error code.
	ErrorCode uint64 `json:"error_code"`
	// Module is the file backing the VMA that holds IP (a basename, as the
	// kernel prints it), "" when IP is in anonymous memory.
	Module string `json:"module,omitempty"`
	// Deleted is set when the kernel said "(deleted)": the file was replaced
	// (package upgrade) while the process ran.
	Deleted bool `json:"deleted,omitempty"`
	// VMAStart and VMASize describe the VMA that holds IP.
	VMAStart crash.Addr `json:"vma_start,omitempty"`
	VMASize  uint64     `json:"vma_size,omitempty"`
	// VMAOffset is IP's offset within the VMA (IP - VMAStart).
	VMAOffset crash.Addr `json:"vma_offset,omitempty"`
	// FileOffset is IP's offset in the file. 6.x kernels print it as the
	// first bracket field ("[51fe1,7f..000+6b000]"); for older kernels it
	// is derived during symbolization (the VMA's page-aligned p_offset +
	// VMAOffset). HasFileOffset says it is known.
	FileOffset    crash.Addr `json:"file_offset,omitempty"`
	HasFileOffset bool       `json:"has_file_offset,omitempty"`
	CPU           int        `json:"cpu,omitempty"`
	// Symbol is filled in by symbolization: "pcre2_jit_match_8+0x41".
	Symbol string `json:"symbol,omitempty"`
	// LibraryPath, BuildID describe the file on disk used to symbolize.
	LibraryPath string `json:"library_path,omitempty"`
	BuildID     string `json:"build_id,omitempty"`
	// Explanation says in words what the error bits mean.
	Explanation string `json:"explanation,omitempty"`
	// Notes are caveats of the symbolization (library changed since ...).
	Notes []string `json:"notes,omitempty"`
}

// Site returns the crash site in the form "module!symbol+off",
// "module+0xoff" or "[anon-exec]/JIT".
func (f *KernelFault) Site() string {
	if f == nil {
		return ""
	}
	if f.Module == "" {
		return "[anon-exec]/JIT"
	}
	if f.Symbol != "" {
		return f.Module + "!" + f.Symbol
	}
	if f.HasFileOffset {
		return f.Module + "+" + hex(f.FileOffset)
	}
	return f.Module + "@vma+" + hex(f.VMAOffset)
}

func hex[T ~uint64](v T) string {
	const digits = "0123456789abcdef"
	var b [18]byte
	i := len(b)
	for {
		i--
		b[i] = digits[v&15]
		v >>= 4
		if v == 0 {
			break
		}
	}
	i--
	b[i] = 'x'
	i--
	b[i] = '0'
	return string(b[i:])
}
