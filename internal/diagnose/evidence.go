package diagnose

import "github.com/coroner-dev/coroner/crash"

// Evidence holds optional facts about a crash that a core does not tell:
// from logs (kernel, PHP-FPM, nginx), from the host configuration audit, and
// from other crashes. Every field is optional; rules whose conditions need a
// missing fact simply do not match. Facts read from the core itself (the
// Report) win over configuration read from disk.
type Evidence struct {
	// Kernel is the kernel's line about the fault (segfault, trap, general
	// protection), when one was logged for this process.
	Kernel *KernelFault `json:"kernel,omitempty"`
	// ExitSignal is the signal the FPM master said the worker exited on
	// ("child N exited on signal 11"); used when there is no core.
	ExitSignal int `json:"exit_signal,omitempty"`
	// OOMKill holds the kernel OOM-killer lines naming the process.
	OOMKill []string `json:"oom_kill,omitempty"`
	// Messages are other log lines about this crash: the worker's stderr as
	// relayed by FPM (glibc's "malloc(): corrupted top size", "Assertion
	// ... failed"), FPM warnings ("execution timed out"), PHP errors.
	Messages []string `json:"messages,omitempty"`
	// PHPVersion is the version of the PHP binary that FPM runs.
	PHPVersion string `json:"php_version,omitempty"`
	// INI holds directives as FPM sees them (php.ini, conf.d, pool
	// php_value/php_admin_value), after the configuration audit.
	INI map[string]string `json:"ini,omitempty"`
	// Extensions are the names of the loaded extensions (and Zend extensions).
	Extensions []string `json:"extensions,omitempty"`
	// RepeatedCrashes is how many crashes of distinct workers (including
	// this one) share this crash's fingerprint since the FPM master last
	// started; 0 when unknown.
	RepeatedCrashes int `json:"repeated_crashes,omitempty"`
	// PHPProcess says whether the logs found the process to be PHP (an FPM
	// worker, php, php-cgi ...) or not (a python crash in the kernel log),
	// for diagnoses without a core; nil when unknown.
	PHPProcess *bool `json:"php_process,omitempty"`
	// SAPI is how the process ran PHP when the logs tell and no core does
	// ("apache2handler" for an Apache child's death, "fpm-fcgi" for an FPM
	// worker's); "" when unknown.
	SAPI string `json:"sapi,omitempty"`
}

// KernelFault is the kernel's report of a fault.
type KernelFault struct {
	// Kind is "segfault", "trap" (invalid opcode, int3) or "general-protection".
	Kind string `json:"kind"`
	// Module is the file named in the line's bracket, "" for anonymous memory.
	Module string `json:"module,omitempty"`
	// Function is the function holding IP, when the caller symbolised it.
	Function string `json:"function,omitempty"`
	// Address is the faulting address ("segfault at ADDR").
	Address uint64 `json:"address,omitempty"`
	IP      uint64 `json:"ip,omitempty"`
	SP      uint64 `json:"sp,omitempty"`
	// Error is the page-fault error code (bit 0 protection, 1 write, 2 user,
	// 4 instruction fetch).
	Error int `json:"error"`
}

// faultKind derives a crash.Fault kind from the kernel line alone.
func (k *KernelFault) faultKind() crash.FaultKind {
	switch k.Kind {
	case "trap":
		return crash.FaultIllegalInstr
	case "general-protection":
		return crash.FaultNonCanonical
	}
	switch {
	case k.Error&0x10 != 0 && k.Error&1 != 0:
		return crash.FaultExecNonExec
	case k.Error&0x10 != 0:
		return crash.FaultExecUnmapped
	case k.Address < 0x10000:
		return crash.FaultNullDeref
	case k.Error&2 != 0 && k.SP != 0 && k.Address < k.SP+0x1000 && k.Address+0x10000 > k.SP:
		return crash.FaultStackOverflow
	case k.Error&3 == 3:
		return crash.FaultWriteReadOnly
	}
	return crash.FaultBadPointer
}
