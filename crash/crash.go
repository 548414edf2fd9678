// Package crash is coroner's data model: the one documented result that flows
// from the readers (cores, logs, configuration) through diagnosis to the
// renderers, like pprof's profile.Profile. It holds no logic beyond small
// helpers; producing and rendering a Report happen elsewhere.
//
// The JSON form of Report is a public, versioned interface (see SchemaVersion
// and docs/json-schema.md): fields are only ever added within one version.
package crash

import (
	"fmt"
	"strconv"
	"strings"
)

// SchemaVersion is the version of the JSON form of Report. It changes only
// when a field is removed or changes meaning.
const SchemaVersion = 1

// Addr is a virtual address or offset. It marshals to JSON as a "0x..." hex
// string so that 64-bit values survive JSON readers that use float64.
type Addr uint64

// String formats a as 0x-prefixed hex.
func (a Addr) String() string { return "0x" + strconv.FormatUint(uint64(a), 16) }

// MarshalText implements encoding.TextMarshaler.
func (a Addr) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler; it accepts hex with a
// 0x prefix or decimal.
func (a *Addr) UnmarshalText(b []byte) error {
	s := string(b)
	base := 10
	if strings.HasPrefix(s, "0x") || strings.HasPrefix(s, "0X") {
		s, base = s[2:], 16
	}
	v, err := strconv.ParseUint(s, base, 64)
	if err != nil {
		return fmt.Errorf("parse address %q: %w", string(b), err)
	}
	*a = Addr(v)
	return nil
}

// Report is the complete post-mortem of one crashed process.
type Report struct {
	Schema  int     `json:"schema"`
	Process Process `json:"process"`
	Signal  Signal  `json:"signal"`
	Fault   Fault   `json:"fault"`
	// Reraise is set when a signal handler of the process caught the fatal
	// signal and raised it again (Apache's sig_coredump, libSegFault,
	// Python's faulthandler...): Signal and Fault are then the first
	// signal, the one the handler caught, and Reraise holds what the
	// core's NT_SIGINFO records.
	Reraise *Reraise `json:"reraise,omitempty"`
	Threads []Thread `json:"threads"`
	Modules []Module `json:"modules"`
	PHP     *PHP     `json:"php,omitempty"`
	// Diagnosis lists the known crash families that match, best first.
	Diagnosis []Diagnosis `json:"diagnosis,omitempty"`
	// Fingerprint is a stable signature of the crash (see diagnose.Fingerprint).
	Fingerprint string     `json:"fingerprint,omitempty"`
	Warnings    []string   `json:"warnings"`
	Timings     []Duration `json:"timings,omitempty"`
	// Live is set for a snapshot of a process that is still running
	// (coroner snapshot): nothing died, Signal and Fault are empty, and
	// the first thread is the main thread rather than a crashed one.
	Live *Live `json:"live,omitempty"`
	// Root says where the files the process mapped were found when it is
	// not this host (nor the --sysroot given): the container or chroot
	// the process ran in, found by the build-ids the core records; and
	// the objects found nowhere (the report is then partial).
	Root *Root `json:"root,omitempty"`
}

// Root is the root directory a process ran in, as found on the host that
// analyses its core.
type Root struct {
	// Dir is the directory on the analysing host ("" for its "/").
	Dir string `json:"dir"`
	// Runtime is what keeps the root: "docker", "containerd", "podman",
	// "lxc", "lxd", "incus", "nspawn", "process" (the root of a running
	// process), "core-dir" (a directory above the core), "given"
	// (--roots), "host" or "sysroot"; "docker-layer", "containerd-layer"
	// or "podman-layer" when the files were found in the unpacked layers
	// of images (Dir is the layer holding the executable).
	Runtime string `json:"runtime"`
	// Name, ID and Image name the container, Pod and Namespace its
	// Kubernetes pod, when the runtime records them.
	Name      string `json:"name,omitempty"`
	ID        string `json:"id,omitempty"`
	Image     string `json:"image,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	// Unresolved lists the mapped objects for which no file with the
	// build-id the process ran was found: their code, symbols and unwind
	// tables were not used.
	Unresolved []string `json:"unresolved,omitempty"`
}

// Live describes a snapshot of a running process: when it was taken, how
// long the process was stopped for it, and what the process was doing.
type Live struct {
	// Time is when the process was stopped (RFC 3339 with fractions).
	Time string `json:"time"`
	// PauseMS is how long the process was stopped, in milliseconds;
	// RegistersMS the part of it until every thread was stopped and its
	// registers read (the rest copied memory).
	PauseMS     float64 `json:"pause_ms"`
	RegistersMS float64 `json:"registers_ms"`
	// PauseCPUMS is the CPU time coroner used during the pause; on a busy
	// host the rest of PauseMS is time spent waiting for a CPU.
	PauseCPUMS float64 `json:"pause_cpu_ms"`
	// Threads is the number of threads stopped.
	Threads int `json:"threads"`
	// Memory says how memory was read: "frozen" (all private memory
	// copied while stopped, so the PHP state matches the registers) or
	// "live" (only the stacks copied, the rest read after the process
	// resumed); CopiedBytes is what was copied while stopped.
	Memory      string `json:"memory"`
	CopiedBytes int64  `json:"copied_bytes"`
	// State is the process state before the stop ("R" running, "S"
	// sleeping, "D" uninterruptible sleep).
	State string `json:"state"`
	// Syscall is the system call the main thread was blocked in
	// ("nanosleep", "poll", "flock"...), "" when it was running user code.
	Syscall string `json:"syscall,omitempty"`
	// CPUSeconds is the CPU time the process has used (user + system).
	CPUSeconds float64 `json:"cpu_seconds"`
	// Worker is what PHP-FPM says of the worker, when it is one.
	Worker *Worker `json:"worker,omitempty"`
	// CorePath is the core file written of the snapshot, if any.
	CorePath string `json:"core_path,omitempty"`
}

// Worker is a PHP-FPM worker as its pool's status page (or /proc) shows it.
type Worker struct {
	Pool string `json:"pool"`
	PID  int    `json:"pid"`
	// State is FPM's ("Idle", "Running", "Reading headers", "Finishing"...),
	// or for workers found through /proc only "busy" or "idle".
	State string `json:"state"`
	// RequestMS is how long the current request has been running (the last
	// one's duration for an idle worker), in milliseconds; -1 when unknown.
	RequestMS float64 `json:"request_ms"`
	// Method, URI and Script are the current request's, as FPM saw them.
	Method string `json:"method,omitempty"`
	URI    string `json:"uri,omitempty"`
	Script string `json:"script,omitempty"`
	// Requests is the number of requests the worker has served.
	Requests int `json:"requests"`
	// CPUSeconds is the worker's CPU time (user + system).
	CPUSeconds float64 `json:"cpu_seconds"`
	// Source is where this came from: "fpm-status" (the pool's
	// pm.status_path) or "proc" (/proc only).
	Source string `json:"source"`
}

// Duration records how long one analysis stage took, in milliseconds.
type Duration struct {
	Stage string  `json:"stage"`
	MS    float64 `json:"ms"`
}

// Process describes the dumped process as the core's notes tell it.
type Process struct {
	CorePath   string   `json:"core_path"`
	CoreSize   int64    `json:"core_size"`
	PID        int      `json:"pid"`
	PPID       int      `json:"ppid,omitempty"`
	UID        int      `json:"uid"`
	GID        int      `json:"gid"`
	Comm       string   `json:"comm"`
	Args       string   `json:"args"`
	Executable string   `json:"executable"`
	Truncated  bool     `json:"truncated"`
	MissingMem []string `json:"missing_memory,omitempty"`
	// Truncation says what a truncated core lacks (nil when it is whole).
	Truncation *Truncation `json:"truncation,omitempty"`
}

// FPMPool is the pool of a PHP-FPM worker as its process title names it
// ("php-fpm: pool www" gives "www"), "" when the title names none (a
// master, or not PHP-FPM).
func (p *Process) FPMPool() string {
	if !strings.HasPrefix(strings.TrimSpace(p.Args), "php-fpm") {
		return ""
	}
	if _, after, ok := strings.Cut(p.Args, "pool "); ok {
		if f := strings.Fields(after); len(f) > 0 {
			return f[0]
		}
	}
	return ""
}

// Truncation is what a truncated core (cut by a size limit, a full disk,
// a core handler's limit) lacks, and what that means for the analysis.
type Truncation struct {
	// Size is the file's size; Expected the size its program headers
	// describe.
	Size     int64 `json:"size"`
	Expected int64 `json:"expected"`
	// StackIncomplete is true when the crashed thread's stack could not be
	// walked to its end because its memory was cut: the frames past
	// LastFrame are unknown.
	StackIncomplete bool `json:"stack_incomplete"`
	// LastFrame is the index of the outermost native frame recovered.
	LastFrame int `json:"last_frame"`
	// PHPIncomplete is true when the PHP state (stack, request, INI) could
	// not be read, or only partly, because its memory was cut.
	PHPIncomplete bool `json:"php_incomplete,omitempty"`
	// Summary says it in one sentence, for people.
	Summary string `json:"summary"`
}

// Incomplete reports whether the evidence a diagnosis stands on (the
// crashed thread's stack, the PHP state) is partly unknown.
func (t *Truncation) Incomplete() bool {
	return t != nil && (t.StackIncomplete || t.PHPIncomplete)
}

// Signal is the signal that killed the process (NT_SIGINFO, else NT_PRSTATUS).
type Signal struct {
	Number   int    `json:"number"`
	Name     string `json:"name"`
	Code     int    `json:"code"`
	CodeName string `json:"code_name"`
	// Address is si_addr for faults (SIGSEGV, SIGBUS, SIGILL, SIGFPE).
	Address Addr `json:"address"`
	// Sent is true when the signal came from a process (kill, tkill,
	// sigqueue) rather than from a hardware fault.
	Sent      bool `json:"sent"`
	SenderPID int  `json:"sender_pid,omitempty"`
	SenderUID int  `json:"sender_uid,omitempty"`
}

// Reraise is a fatal signal caught by a handler of the process that raised
// it again (kill(getpid(), sig), raise(sig)) after logging or changing
// directory: the core records the second signal, sent by the process to
// itself; the kernel saved the registers of the first one, the real fault,
// in the signal frame it pushed for the handler.
type Reraise struct {
	// Recorded is the signal as the core's NT_SIGINFO records it (SI_USER
	// or SI_TKILL, sent by the process itself).
	Recorded Signal `json:"recorded"`
	// Frame is the index, in the crashed thread's frames, of the frame the
	// first signal interrupted (the faulting instruction): 0 when the core
	// was dumped after the handler returned (its registers are then the
	// restored ones of the fault), more when it was dumped inside the
	// handler (the frames above it are the handler's).
	Frame int `json:"frame"`
	// Handler names the signal handler when it can be told ("sig_coredump
	// (apache2)"), "" otherwise.
	Handler string `json:"handler,omitempty"`
	// Evidence says where the first signal was read: ReraiseSignalFrame
	// (the kernel's signal frame under the handler, on the stack) or
	// ReraiseStaleFrame (the signal frame left under the stack pointer by
	// a handler that returned).
	Evidence string `json:"evidence"`
	// Explanation says it in words.
	Explanation string `json:"explanation"`
}

// Where a re-raised signal's first signal was found (Reraise.Evidence).
const (
	ReraiseSignalFrame = "signal-frame"
	ReraiseStaleFrame  = "stale-signal-frame"
)

// FaultFrames returns the crashed thread's frames from the one the fatal
// fault interrupted: past the frames of a signal handler that re-raised
// the signal (Reraise.Frame), all of them otherwise; nil without threads.
func (r *Report) FaultFrames() []Frame {
	th := r.CrashedThread()
	if th == nil {
		if len(r.Threads) == 0 {
			return nil
		}
		th = &r.Threads[0]
	}
	if r.Reraise != nil && r.Reraise.Frame > 0 && r.Reraise.Frame < len(th.Frames) {
		return th.Frames[r.Reraise.Frame:]
	}
	return th.Frames
}

// Fault explains what the crashing instruction did.
type Fault struct {
	// Kind classifies the fault.
	Kind FaultKind `json:"kind"`
	// Instruction is the decoded faulting instruction in Intel syntax.
	Instruction string `json:"instruction"`
	PC          Addr   `json:"pc"`
	// Address is the memory address the instruction accessed, when known.
	Address Addr `json:"address"`
	// Register names the base register whose value made the access fault.
	Register string `json:"register,omitempty"`
	// Argument is the 1-based System V argument number held by Register at
	// the fault, when the fault is at the start of the called function.
	Argument    int    `json:"argument,omitempty"`
	Explanation string `json:"explanation"`
	// Details are further observations (one sentence each).
	Details []string `json:"details,omitempty"`
}

// Thread is one thread of the process with its unwound stack.
type Thread struct {
	TID       int               `json:"tid"`
	Name      string            `json:"name,omitempty"`
	Crashed   bool              `json:"crashed"`
	Registers Registers         `json:"registers,omitzero"`
	Frames    []Frame           `json:"frames"`
	Cycles    []Cycle           `json:"cycles"`
	Warnings  []string          `json:"warnings,omitempty"`
	Extra     map[string]string `json:"extra,omitempty"`
}

// Frame is one native stack frame.
type Frame struct {
	Index          int    `json:"index"`
	PC             Addr   `json:"pc"`
	SP             Addr   `json:"sp"`
	Module         string `json:"module"`
	ModuleOffset   Addr   `json:"module_offset"`
	Function       string `json:"function"`
	FunctionOffset Addr   `json:"function_offset"`
	// FunctionSource tells where Function came from: dwarf (.debug_info),
	// symtab, dynsym, debuginfo (the debug file's .symtab), minidebuginfo
	// (.gnu_debugdata), zend-function-entry, entry-point, eh-frame (start
	// only), jit.
	FunctionSource string `json:"function_source,omitempty"`
	// File and Line are the source position in Function: with Inlined
	// frames, the call of the outermost of them.
	File  string `json:"file"`
	Line  int    `json:"line"`
	Trust Trust  `json:"trust"`
	// PHPFrame is the index into PHP.Frames of the PHP function this native
	// frame is executing (VM, JIT and call frames), or nil.
	PHPFrame *int `json:"php_frame,omitempty"`
	// Inlined are the functions the compiler inlined into Function that
	// were running at PC, innermost first (from .debug_info, as gdb and
	// addr2line -i show them): each has no stack frame of its own.
	Inlined []VirtualFrame `json:"inlined,omitempty"`
	// TailCalls are functions between this frame and the next (its
	// caller) that passed control on by a jump instead of a call, so that
	// no return address of theirs is on the stack, innermost first. They
	// are reconstructed from DWARF call-site information, as gdb does.
	TailCalls []VirtualFrame `json:"tail_calls,omitempty"`
}

// VirtualFrame is a function call with no frame of its own on the stack:
// an inlined function or a tail call.
type VirtualFrame struct {
	Function string `json:"function"`
	// File and Line: the current position in Function (for an inlined
	// function not the innermost, the call of the next inner one).
	File string `json:"file,omitempty"`
	Line int    `json:"line,omitempty"`
	// PC and ModuleOffset (tail calls only) are the address after the jump,
	// the one gdb shows for such a frame.
	PC           Addr `json:"pc,omitzero"`
	ModuleOffset Addr `json:"module_offset,omitzero"`
}

// Cycle is a run of frames that repeats: frames [Start, Start+Length) repeat
// Repeats times in total, ending at End (inclusive).
type Cycle struct {
	Start   int `json:"start"`
	End     int `json:"end"`
	Length  int `json:"length"`
	Repeats int `json:"repeats"`
}

// Module is one mapped ELF object.
type Module struct {
	Path        string     `json:"path"`
	Start       Addr       `json:"start"`
	End         Addr       `json:"end"`
	Bias        Addr       `json:"bias"`
	BuildID     string     `json:"build_id,omitempty"`
	FileBuildID string     `json:"file_build_id,omitempty"`
	Deleted     bool       `json:"deleted,omitempty"`
	Mismatch    bool       `json:"mismatch,omitempty"`
	Missing     bool       `json:"missing,omitempty"`
	Symbols     string     `json:"symbols,omitempty"`
	DebugFile   string     `json:"debug_file,omitempty"`
	Kind        ModuleKind `json:"kind"`
}

// PHP is the state of the PHP runtime at the crash.
type PHP struct {
	Version string `json:"version"`
	SAPI    string `json:"sapi,omitempty"`
	ZTS     bool   `json:"zts"`
	// Layout names the structure layout used: "derived" (read from the
	// binary's code), "php-8.2" (the table's entry), or "derived+php-8.2"
	// (derived, cross-checked with the table).
	Layout string `json:"layout,omitempty"`
	// LayoutMode is how the layout was asked for: "auto", "derived" or
	// "table" (the --layout option).
	LayoutMode string `json:"layout_mode,omitempty"`
	// LayoutBinary is the PHP binary the layout was derived from.
	LayoutBinary string `json:"layout_binary,omitempty"`
	// LayoutFields gives every structure offset the readers used, where it
	// came from and what checked it on this core.
	LayoutFields []PHPLayoutField `json:"layout_fields,omitempty"`
	// TSRM says, for a thread-safe (ZTS) build, how each thread's globals
	// were found (the TLS slot of its TSRM block, read from the code).
	TSRM string `json:"tsrm,omitempty"`
	// Thread is the thread whose PHP state Frames and Request describe, in
	// a thread-safe (ZTS) process: the crashed thread when it ran PHP
	// (0 for NTS builds).
	Thread int `json:"thread,omitempty"`
	// Threads are the other threads of a ZTS process that were running
	// PHP, each with its own stack and request.
	Threads    []PHPThread       `json:"threads,omitempty"`
	Frames     []PHPFrame        `json:"frames"`
	Cycles     []Cycle           `json:"cycles"`
	Request    *Request          `json:"request,omitempty"`
	INI        map[string]string `json:"ini,omitempty"`
	JIT        *JIT              `json:"jit,omitempty"`
	Extensions []Extension       `json:"extensions,omitempty"`
	// Recursion describes the PHP stack's longest recursion, when it has
	// one (set by the diagnosis from Frames and Cycles).
	Recursion *Recursion `json:"recursion,omitempty"`
	Warnings  []string   `json:"warnings,omitempty"`
}

// Recursion is a loop of the PHP stack as a person would describe it: the
// function the code entered from outside, the place that calls it again,
// and whether every level gets the same arguments (a loop that never ends)
// or other ones (a deep but finite recursion).
type Recursion struct {
	// Length is the number of frames of one turn of the loop, Repeats the
	// turns on the stack; Innermost and Outermost are the indexes (into
	// PHP.Frames) of the frames the loop covers.
	Length    int `json:"length"`
	Repeats   int `json:"repeats"`
	Innermost int `json:"innermost"`
	Outermost int `json:"outermost"`
	// Calls are the frames of one turn in call order (indexes into
	// PHP.Frames): Calls[0] is Entry, the last one calls Entry's function
	// again.
	Calls []int `json:"calls"`
	// Entry is the outermost frame of the loop: its function was called
	// from outside the loop (by frame Entry+1). ReEntry is the frame that
	// calls that function again, at its file and line.
	Entry   int `json:"entry"`
	ReEntry int `json:"reentry"`
	// Args is RecursionRepeats when every level passes the same arguments
	// (the recursion cannot end by itself), RecursionVaries when they
	// change, "" when the stack does not tell (no scalar arguments).
	Args RecursionArgs `json:"args,omitempty"`
	// ArgsEvidence shows it: the repeated call, or the call at the
	// outermost and at the innermost level.
	ArgsEvidence string `json:"args_evidence,omitempty"`
}

// RecursionArgs says how the arguments of a recursion change (Recursion.Args).
type RecursionArgs string

// Recursion argument patterns.
const (
	RecursionRepeats RecursionArgs = "repeat" // the same arguments at every level: unbounded
	RecursionVaries  RecursionArgs = "vary"   // other arguments at every level: deep but finite
)

// PHPLayoutField is one field of the PHP structure layout: its value and
// its provenance.
type PHPLayoutField struct {
	// Field is coroner's name of the field ("eg.current_execute_data") and
	// What its C expression ("EG(current_execute_data)").
	Field string `json:"field"`
	What  string `json:"what"`
	// Value is the offset or size in bytes (or the constant: an API
	// number, a type number).
	Value uint64 `json:"value"`
	// Source says where Value came from.
	Source LayoutSource `json:"source"`
	// Anchor is the exported function whose code gave a derived value,
	// Instruction the instruction read (Intel syntax) and PC its link-time
	// address in LayoutBinary; Rule says what the code does with the field.
	Anchor      string `json:"anchor,omitempty"`
	Instruction string `json:"instruction,omitempty"`
	PC          Addr   `json:"pc,omitempty"`
	Rule        string `json:"rule,omitempty"`
	// Agree lists other anchors that gave the same value.
	Agree []string `json:"agree,omitempty"`
	// Table is the value of coroner's table (or the constant) the derived
	// value was compared with, when there is one.
	Table *uint64 `json:"table,omitempty"`
	// Validated says what checked the value on this core's data ("" when
	// nothing in this core exercised it).
	Validated string `json:"validated,omitempty"`
	// Note explains a disagreement or a fallback.
	Note string `json:"note,omitempty"`
}

// PHPThread is the PHP state of one more thread of a thread-safe (ZTS)
// process.
type PHPThread struct {
	// TID is the thread id (the pid of its NT_PRSTATUS note).
	TID      int        `json:"tid"`
	Frames   []PHPFrame `json:"frames"`
	Cycles   []Cycle    `json:"cycles"`
	Request  *Request   `json:"request,omitempty"`
	Warnings []string   `json:"warnings,omitempty"`
}

// PHPFrame is one PHP call frame, innermost first.
type PHPFrame struct {
	Function string `json:"function"`
	Class    string `json:"class"`
	// CallType is "->" for instance methods, "::" for static calls, "".
	CallType string       `json:"call_type"`
	File     string       `json:"file"`
	Line     int          `json:"line"`
	Kind     PHPFrameKind `json:"kind"`
	Args     []string     `json:"args"`
	// ExecuteData is the address of the zend_execute_data of this frame.
	ExecuteData Addr `json:"execute_data"`
}

// Request is the web request the process was serving.
type Request struct {
	Method        string            `json:"method"`
	URI           string            `json:"uri"`
	Query         string            `json:"query"`
	Script        string            `json:"script"`
	Host          string            `json:"host"`
	RemoteAddr    string            `json:"remote_addr"`
	UserAgent     string            `json:"user_agent,omitempty"`
	ContentType   string            `json:"content_type,omitempty"`
	ContentLength int64             `json:"content_length,omitempty"`
	Source        string            `json:"source,omitempty"`
	Params        map[string]string `json:"params,omitempty"`
}

// JIT describes the OPcache JIT settings decoded into words.
type JIT struct {
	Mode        string `json:"mode"`
	CRTO        string `json:"crto,omitempty"`
	Description string `json:"description"`
	BufferSize  int64  `json:"buffer_size"`
	Active      bool   `json:"active"`
	// BufferStart and BufferEnd bound the JIT buffer in the process
	// (dasm_buf and dasm_end, located through zend_jit_status), when known.
	BufferStart Addr `json:"buffer_start,omitempty"`
	BufferEnd   Addr `json:"buffer_end,omitempty"`
}

// Extension is one loaded PHP extension (module registry entry).
type Extension struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	Zend    bool   `json:"zend,omitempty"`
}

// CrashedThread returns the thread that received the fatal signal, or nil.
func (r *Report) CrashedThread() *Thread {
	for i := range r.Threads {
		if r.Threads[i].Crashed {
			return &r.Threads[i]
		}
	}
	return nil
}

// Diagnosis is one matched known crash family.
type Diagnosis struct {
	Rule        string     `json:"rule"`
	Title       string     `json:"title"`
	Confidence  Confidence `json:"confidence"`
	Explanation string     `json:"explanation"`
	// Matched lists, in words, the conditions that matched.
	Matched    []string `json:"matched,omitempty"`
	Fix        []Fix    `json:"fix,omitempty"`
	References []string `json:"references,omitempty"`
}

// Fix is one concrete remediation.
type Fix struct {
	Description string  `json:"description"`
	Kind        FixKind `json:"kind"`
	Setting     string  `json:"setting,omitempty"`
	Value       string  `json:"value,omitempty"`
	// Mitigation names the `coroner fix --mitigate` profile that applies
	// this fix (function-jit, no-pcre-jit, no-jit), when one does.
	Mitigation Mitigation `json:"mitigation,omitempty"`
	// SAPI is the PHP setup the mitigation is for, when the crash says
	// ("apache2handler": mod_php's ini files and an Apache reload, not
	// PHP-FPM's; `coroner fix --sapi`).
	SAPI string `json:"sapi,omitempty"`
}

// QualifiedName returns the frame's function as PHP writes it:
// "Class->method", "Class::method" or "function".
func (f *PHPFrame) QualifiedName() string {
	if f.Class != "" {
		ct := f.CallType
		if ct == "" {
			ct = "::"
		}
		return f.Class + ct + f.Function
	}
	return f.Function
}
