package crash

// The shared vocabulary of a Report: each set of values a field may take is
// a type with its constants listed once, here. The types are strings (their
// JSON form is the constant's text), so the JSON schema is unchanged and a
// reader of older or newer reports still decodes unknown values.

// FaultKind classifies what the crashing instruction did (Fault.Kind).
type FaultKind string

// Fault kinds.
const (
	FaultNullDeref     FaultKind = "null-dereference"
	FaultBadPointer    FaultKind = "bad-pointer"
	FaultStackOverflow FaultKind = "stack-overflow"
	FaultExecNonExec   FaultKind = "execute-non-executable"
	FaultExecUnmapped  FaultKind = "execute-unmapped"
	FaultNonCanonical  FaultKind = "non-canonical-address"
	FaultWriteReadOnly FaultKind = "write-read-only"
	FaultAbort         FaultKind = "abort"
	FaultSignalSent    FaultKind = "signal-sent"
	FaultIllegalInstr  FaultKind = "illegal-instruction"
	FaultArithmetic    FaultKind = "arithmetic"
	FaultBusError      FaultKind = "bus-error"
	FaultUnknown       FaultKind = "unknown"
)

// FaultKinds lists every fault kind.
func FaultKinds() []FaultKind {
	return []FaultKind{FaultNullDeref, FaultBadPointer, FaultStackOverflow, FaultExecNonExec, FaultExecUnmapped,
		FaultNonCanonical, FaultWriteReadOnly, FaultAbort, FaultSignalSent, FaultIllegalInstr, FaultArithmetic,
		FaultBusError, FaultUnknown}
}

// Valid reports whether k is one of the FaultKinds.
func (k FaultKind) Valid() bool { return member(k, FaultKinds()) }

// Trust says how a frame was recovered (Frame.Trust), best first.
type Trust string

// Trust levels, best first.
const (
	TrustContext Trust = "context" // registers of the thread (frame 0)
	TrustCFI     Trust = "cfi"     // call frame information (.eh_frame/.debug_frame)
	TrustFP      Trust = "fp"      // frame-pointer chain
	TrustScan    Trust = "scan"    // stack scanning for return addresses
)

// Trusts lists the trust levels, best first.
func Trusts() []Trust { return []Trust{TrustContext, TrustCFI, TrustFP, TrustScan} }

// ModuleKind says what a mapped module is (Module.Kind).
type ModuleKind string

// Module kinds.
const (
	ModuleExe      ModuleKind = "exe"       // the main executable
	ModuleLib      ModuleKind = "lib"       // a shared object
	ModulePHPJIT   ModuleKind = "php-jit"   // OPcache's JIT buffer
	ModuleAnonExec ModuleKind = "anon-exec" // other anonymous executable memory (PCRE2 JIT, ...)
	ModuleVDSO     ModuleKind = "vdso"      // the kernel's vDSO
)

// ModuleKinds lists every module kind.
func ModuleKinds() []ModuleKind {
	return []ModuleKind{ModuleExe, ModuleLib, ModulePHPJIT, ModuleAnonExec, ModuleVDSO}
}

// Labels of the pseudo-modules that hold code without a file, as they
// appear in Frame.Module and Module.Path.
const (
	LabelPHPJIT   = "[php-jit]"
	LabelAnonExec = "[anon-exec]"
	LabelVDSO     = "[vdso]"
)

// PHPFrameKind says what a PHP frame executes (PHPFrame.Kind).
type PHPFrameKind string

// PHP frame kinds.
const (
	PHPUser     PHPFrameKind = "user"     // a user function or method
	PHPInternal PHPFrameKind = "internal" // a function of PHP or an extension, written in C
	PHPInclude  PHPFrameKind = "include"  // an included or required file
	PHPEval     PHPFrameKind = "eval"     // eval()'d code
	PHPMain     PHPFrameKind = "main"     // the top-level script
)

// LayoutSource says where the value of a PHP structure offset came from
// (PHPLayoutField.Source).
type LayoutSource string

// Layout sources.
const (
	// LayoutDerived values were read out of the machine code of an exported
	// function of the PHP binary (PHPLayoutField.Anchor).
	LayoutDerived LayoutSource = "derived"
	// LayoutTable values come from coroner's table of PHP releases.
	LayoutTable LayoutSource = "table"
	// LayoutConstant values have been the same since PHP 7.0 on x86-64.
	LayoutConstant LayoutSource = "constant"
	// LayoutCore values were found in the core's own data (a validated
	// scan of a structure, the type of a registry's elements).
	LayoutCore LayoutSource = "core"
)

// LayoutSources lists every layout source.
func LayoutSources() []LayoutSource {
	return []LayoutSource{LayoutDerived, LayoutTable, LayoutConstant, LayoutCore}
}

// Valid reports whether s is one of the LayoutSources.
func (s LayoutSource) Valid() bool { return member(s, LayoutSources()) }

// Confidence is how sure a diagnosis is (Diagnosis.Confidence).
type Confidence string

// Confidences.
const (
	ConfidenceHigh   Confidence = "high"
	ConfidenceMedium Confidence = "medium"
	ConfidenceLow    Confidence = "low"
)

// Rank orders confidences: 3 for high, 2 medium, 1 low, 0 for anything else.
func (c Confidence) Rank() int {
	switch c {
	case ConfidenceHigh:
		return 3
	case ConfidenceMedium:
		return 2
	case ConfidenceLow:
		return 1
	}
	return 0
}

// Valid reports whether c is high, medium or low.
func (c Confidence) Valid() bool { return c.Rank() > 0 }

// FixKind says where a fix is applied (Fix.Kind).
type FixKind string

// Fix kinds.
const (
	FixINI     FixKind = "ini"     // a php.ini directive
	FixPool    FixKind = "pool"    // a PHP-FPM pool directive
	FixSysctl  FixKind = "sysctl"  // a kernel setting
	FixSystemd FixKind = "systemd" // a systemd unit setting
	FixCode    FixKind = "code"    // a change to the application
	FixUpgrade FixKind = "upgrade" // a newer PHP, extension or library
)

// FixKinds lists every fix kind.
func FixKinds() []FixKind {
	return []FixKind{FixINI, FixPool, FixSysctl, FixSystemd, FixCode, FixUpgrade}
}

// Valid reports whether k is one of the FixKinds.
func (k FixKind) Valid() bool { return member(k, FixKinds()) }

// NeedsSetting reports whether a fix of this kind names a setting.
func (k FixKind) NeedsSetting() bool { return k == FixINI || k == FixPool || k == FixSysctl }

// Mitigation names a `coroner fix --mitigate` profile (Fix.Mitigation).
type Mitigation string

// Mitigation profiles.
const (
	MitigateFunctionJIT Mitigation = "function-jit" // opcache.jit=function instead of tracing
	MitigateNoPCREJIT   Mitigation = "no-pcre-jit"  // pcre.jit=0
	MitigateNoJIT       Mitigation = "no-jit"       // opcache.jit=disable, jit_buffer_size=0
)

// Mitigations lists every mitigation profile.
func Mitigations() []Mitigation {
	return []Mitigation{MitigateFunctionJIT, MitigateNoPCREJIT, MitigateNoJIT}
}

// Valid reports whether m is one of the Mitigations.
func (m Mitigation) Valid() bool { return member(m, Mitigations()) }

func member[T comparable](v T, list []T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}
