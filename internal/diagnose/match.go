package diagnose

import (
	"fmt"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/coroner-dev/coroner/internal/phpini"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// facts are the crash's facts, computed once per Diagnose and shared by all
// rules: the report's, completed by the evidence.
type facts struct {
	r         *crash.Report
	ev        *Evidence
	signal    int
	sent      bool
	fault     crash.FaultKind
	frames    []crash.Frame
	cycles    []crash.Cycle
	php       []crash.PHPFrame
	phpCycles []crash.Cycle
	version   string
	ver       [3]int
	verOK     bool
	ini       map[string]string
	jit       string
	exts      []string
	messages  []string
	// incomplete: the core is truncated and the stack (native or PHP)
	// is partly unknown, so the absence of a frame proves nothing.
	incomplete bool
	// recursion is the PHP stack's recursion, nil when it has none.
	recursion *crash.Recursion
}

// isPHP reports whether the crashed process is PHP. A core decides by
// itself (IsPHPProcess); the configuration audit's PHP facts, which every
// crash on the host gets as evidence, do not make a python core PHP.
// Without a core, the evidence says it (the logs' classification), and
// failing that the process is taken to be PHP: coroner is pointed at
// PHP-FPM hosts and diagnoses non-PHP processes only when asked.
// sapi is how the process ran PHP: the core's SAPI, else the logs'.
func (f *facts) sapi() string {
	if f.r.PHP != nil && f.r.PHP.SAPI != "" {
		return f.r.PHP.SAPI
	}
	return f.ev.SAPI
}

func (f *facts) isPHP() bool {
	if f.r.PHP != nil || len(f.r.Modules) > 0 || f.r.Process.Executable != "" {
		return IsPHPProcess(f.r)
	}
	if f.ev.PHPProcess != nil {
		return *f.ev.PHPProcess
	}
	return true
}

// phpBinaryRE matches the executables and libraries of PHP: php-fpm8.2,
// php-fpm, php8.3, php, php-cgi, lsphp, frankenphp, libphp8.2.so,
// libphp.so, mod_php.
var phpBinaryRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(php(-fpm|-cgi|-cli)?[0-9.]*|php[0-9.]*-(fpm|cgi)|lsphp[0-9.]*|frankenphp|libphp[0-9.]*\.so[.0-9]*|mod_php[0-9.]*\.so)$`)
})

// IsPHPProcess reports whether the process of a core runs PHP: a PHP
// runtime was read from it, its executable is a PHP binary, or it maps
// PHP's library (Apache's mod_php, FrankenPHP).
func IsPHPProcess(r *crash.Report) bool {
	if r == nil {
		return false
	}
	if r.PHP != nil {
		return true
	}
	if exe := r.Process.Executable; exe != "" && phpBinaryRE().MatchString(filepath.Base(strings.TrimSuffix(exe, " (deleted)"))) {
		return true
	}
	for _, m := range r.Modules {
		if phpBinaryRE().MatchString(filepath.Base(strings.TrimSuffix(m.Path, " (deleted)"))) {
			return true
		}
	}
	return false
}

func newFacts(r *crash.Report, ev *Evidence) *facts {
	f := &facts{r: r, ev: ev, ini: map[string]string{}, incomplete: r.Process.Truncation.Incomplete()}
	f.signal = r.Signal.Number
	if f.signal == 0 {
		f.signal = ev.ExitSignal
	}
	f.sent = r.Signal.Sent || r.Fault.Kind == crash.FaultSignalSent
	f.fault = faultKind(r)
	if (f.fault == "" || f.fault == crash.FaultUnknown) && ev.Kernel != nil {
		f.fault = ev.Kernel.faultKind()
	}
	if f.signal == 0 && ev.Kernel != nil {
		f.signal = int(signals.SIGSEGV)
		if ev.Kernel.Kind == "trap" {
			f.signal = int(signals.SIGILL)
		}
	}
	th := r.CrashedThread()
	if th == nil && len(r.Threads) > 0 {
		th = &r.Threads[0]
	}
	if th != nil {
		f.frames = th.Frames
		f.cycles = th.Cycles
		if rr := r.Reraise; rr != nil && rr.Frame > 0 && rr.Frame < len(th.Frames) {
			// the frames of a handler that re-raised the signal are not the crash's
			f.frames = th.Frames[rr.Frame:]
			f.cycles = nil
		}
		if len(f.cycles) == 0 {
			f.cycles = detectCycles(nativeNames(f.frames), 3)
		}
	}
	if r.PHP != nil {
		f.php = r.PHP.Frames
		f.phpCycles = r.PHP.Cycles
		if len(f.phpCycles) == 0 {
			f.phpCycles = detectCycles(phpNames(f.php), 3)
		}
		f.version = r.PHP.Version
		f.recursion = r.PHP.Recursion
		if f.recursion == nil {
			f.recursion = PHPRecursion(r.PHP)
		}
		for k, v := range r.PHP.INI {
			f.ini[k] = v
		}
	}
	for k, v := range ev.INI {
		if _, ok := f.ini[k]; !ok {
			f.ini[k] = v
		}
	}
	if f.version == "" {
		f.version = ev.PHPVersion
	}
	f.ver, f.verOK = parseVersion(f.version)
	f.jit = jitMode(r.PHP, f.ini, f.ver, f.verOK)
	f.exts = extensions(r, ev)
	f.messages = append(f.messages, r.Fault.Details...)
	f.messages = append(f.messages, ev.Messages...)
	return f
}

// signalFaultKind derives a fault kind from the signal information alone,
// for reports whose fault stage could not decode the instruction.
func signalFaultKind(r *crash.Report) crash.FaultKind {
	s := r.Signal
	switch sig := signals.Signal(s.Number); {
	case sig == 0:
		return ""
	case len(r.Threads) == 0 && (sig == signals.SIGSEGV || sig == signals.SIGBUS):
		// A report made from logs: the signal is known, not the address
		// (0 here means unknown, not NULL).
		return ""
	case s.Sent && sig != signals.SIGABRT:
		return crash.FaultSignalSent
	case sig == signals.SIGABRT:
		return crash.FaultAbort
	case sig == signals.SIGILL:
		return crash.FaultIllegalInstr
	case sig == signals.SIGFPE:
		return crash.FaultArithmetic
	case sig == signals.SIGBUS:
		return crash.FaultBusError
	case sig != signals.SIGSEGV:
		return ""
	case s.Code == signals.SI_KERNEL: // general protection, e.g. a non-canonical address
		if deepStack(r) {
			// or no room left for the frame of a SIGSEGV handler: the
			// kernel then reports SI_KERNEL without an address
			return crash.FaultStackOverflow
		}
		return crash.FaultNonCanonical
	}
	switch {
	case s.Address < 0x10000:
		return crash.FaultNullDeref
	case nearStackPointer(r):
		return crash.FaultStackOverflow
	}
	return crash.FaultBadPointer
}

// deepStack reports whether the crashed thread's stack is deep enough
// (1,000 native frames, or a PHP recursion) for a fault without an address
// to be taken for a stack overflow rather than a general protection fault.
func deepStack(r *crash.Report) bool {
	if th := r.CrashedThread(); th != nil && len(th.Frames) >= 1000 {
		return true
	}
	return r.PHP != nil && (r.PHP.Recursion != nil || len(r.PHP.Frames) >= 1000)
}

// nearStackPointer reports whether a SIGSEGV for an unmapped address hit
// within 64 KiB of the crashed thread's stack pointer: the guard page below
// the stack, whether the access was just below rsp (push, call) or above it
// (a frame allocated with sub rsp, then written relative to rsp or rbp).
func nearStackPointer(r *crash.Report) bool {
	s := r.Signal
	if signals.Signal(s.Number) != signals.SIGSEGV || s.Sent || s.Code != signals.SEGV_MAPERR {
		return false
	}
	var sp uint64
	if th := r.CrashedThread(); th != nil {
		if v, ok := th.Registers.Get(crash.RegRSP); ok {
			sp = v
		} else if len(th.Frames) > 0 {
			sp = uint64(th.Frames[0].SP)
		}
	}
	addr := uint64(s.Address)
	return sp != 0 && addr+0x10000 > sp && addr < sp+0x10000
}

// faultKind is the report's fault kind, derived from the signal when the
// fault stage could not tell, and corrected to a stack overflow when a
// "bad pointer" is the guard page next to the stack pointer.
func faultKind(r *crash.Report) crash.FaultKind {
	switch r.Fault.Kind {
	case "", crash.FaultUnknown:
		return signalFaultKind(r)
	case crash.FaultBadPointer:
		if nearStackPointer(r) {
			return crash.FaultStackOverflow
		}
	}
	return r.Fault.Kind
}

// jitMode returns the effective OPcache JIT mode: "off", "function",
// "tracing", or "" when unknown.
func jitMode(php *crash.PHP, ini map[string]string, ver [3]int, verOK bool) string {
	if php != nil && php.JIT != nil {
		j := php.JIT
		if !j.Active {
			return "off"
		}
		if m := parseJIT(j.CRTO); m != "" && m != "off" {
			return m
		}
		if m := parseJIT(j.Mode); m != "" && m != "off" {
			return m
		}
		return ""
	}
	if v, ok := ini["opcache.enable"]; ok && isFalse(v) {
		return "off"
	}
	if v, ok := ini["opcache.jit_buffer_size"]; ok && isZeroSize(v) {
		return "off"
	}
	mode, ok := ini["opcache.jit"]
	if !ok {
		return ""
	}
	if _, sized := ini["opcache.jit_buffer_size"]; !sized && verOK && ver[0] == 8 && ver[1] < 4 {
		return "off" // 8.0-8.3 default jit_buffer_size is 0
	}
	return parseJIT(mode)
}

// parseJIT reads an opcache.jit value (a name or the CRTO digits) as
// "off", "function" or "tracing"; "" when empty or not understood.
func parseJIT(s string) string {
	if strings.TrimSpace(s) == "" {
		return "" // unknown here (an unquoted `off` is decided by the audit)
	}
	m := phpini.DecodeJIT(s)
	switch {
	case m.Compiles && m.Tracing:
		return "tracing"
	case m.Compiles:
		return "function"
	case m.Mode == "off" || m.Mode == "disable" || m.CRTO != "":
		return "off"
	}
	return ""
}

func isFalse(v string) bool {
	switch strings.ToLower(strings.TrimSpace(v)) {
	case "0", "off", "false", "no", "":
		return true
	}
	return false
}

func isZeroSize(v string) bool {
	n, ok := phpini.Size(v)
	return ok && n == 0
}

// extensions lists loaded extension names (lower case) from the core, the
// evidence and the mapped modules named like "NAME.so".
func extensions(r *crash.Report, ev *Evidence) []string {
	seen := map[string]bool{}
	var out []string
	add := func(s string) {
		s = strings.ToLower(strings.TrimSpace(s))
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	if r.PHP != nil {
		for _, e := range r.PHP.Extensions {
			add(e.Name)
		}
	}
	for _, e := range ev.Extensions {
		add(e)
	}
	for _, m := range r.Modules {
		base := filepath.Base(strings.TrimSuffix(m.Path, " (deleted)"))
		if strings.HasSuffix(base, ".so") && !strings.HasPrefix(base, "lib") {
			add(strings.TrimSuffix(base, ".so"))
		}
	}
	return out
}

func nativeNames(frames []crash.Frame) []string {
	out := make([]string, len(frames))
	for i := range frames {
		out[i] = frames[i].Function
		if out[i] == "" {
			out[i] = frames[i].Module + "?"
		}
	}
	return out
}

func phpNames(frames []crash.PHPFrame) []string {
	out := make([]string, len(frames))
	for i := range frames {
		out[i] = frames[i].QualifiedName()
	}
	return out
}

// capture records the facts a rule matched, for its explanation.
type capture struct {
	frame     *crash.Frame
	frameIdx  int
	phpFrame  *crash.PHPFrame
	ext       string
	module    *crash.Module
	message   string
	cycleFunc string
	cycle     *crash.Cycle
}

func (p *framePat) matchNative(frames []crash.Frame) int {
	n := len(frames)
	if p.top > 0 && p.top < n {
		n = p.top
	}
	for i := 0; i < n; i++ {
		fr := &frames[i]
		if p.function != nil && !p.function.MatchString(fr.Function) {
			continue
		}
		if p.module != nil && !matchModuleName(p.module, fr.Module) {
			continue
		}
		return i
	}
	return -1
}

func (p *framePat) matchPHP(frames []crash.PHPFrame) int {
	n := len(frames)
	if p.top > 0 && p.top < n {
		n = p.top
	}
	for i := 0; i < n; i++ {
		fr := &frames[i]
		if p.function != nil && !p.function.MatchString(fr.Function) {
			continue
		}
		if p.class != nil && !p.class.MatchString(fr.Class) {
			continue
		}
		return i
	}
	return -1
}

// matchModuleName matches a module's path or its base name.
func matchModuleName(re *pattern, path string) bool {
	return re.MatchString(path) || re.MatchString(filepath.Base(path))
}

func (f *facts) matchCycle(re *pattern, cp *capture) (string, bool) {
	for i := range f.cycles {
		c := &f.cycles[i]
		if c.Start < 0 || c.Length <= 0 || c.Start+c.Length > len(f.frames) {
			continue
		}
		body := nativeNames(f.frames[c.Start : c.Start+c.Length])
		if fn, ok := cycleHit(re, body); ok {
			cp.cycle, cp.cycleFunc = c, fn
			return fmt.Sprintf("native recursion: a %d-frame cycle repeated %d times%s", c.Length, c.Repeats, via(fn)), true
		}
	}
	for i := range f.phpCycles {
		c := &f.phpCycles[i]
		if c.Start < 0 || c.Length <= 0 || c.Start+c.Length > len(f.php) {
			continue
		}
		body := phpNames(f.php[c.Start : c.Start+c.Length])
		if fn, ok := cycleHit(re, body); ok {
			cp.cycle, cp.cycleFunc = c, fn
			return fmt.Sprintf("PHP recursion: a %d-frame cycle repeated %d times%s", c.Length, c.Repeats, via(fn)), true
		}
	}
	return "", false
}

func via(fn string) string {
	if fn == "" {
		return ""
	}
	return " through " + fn
}

// cycleHit finds a function of body matching re, preferring PHP function
// handlers (zif_*) which name the PHP function that recursed.
func cycleHit(re *pattern, body []string) (string, bool) {
	if re == nil {
		for _, name := range body {
			if name != "" && !strings.HasSuffix(name, "?") {
				return name, true
			}
		}
		return "", true
	}
	hit := ""
	for _, name := range body {
		if re.MatchString(name) {
			if strings.HasPrefix(name, "zif_") {
				return name, true
			}
			if hit == "" {
				hit = name
			}
		}
	}
	return hit, hit != ""
}

func (f *facts) matchModule(p *modPat, cp *capture) (string, bool) {
	for i := range f.r.Modules {
		m := &f.r.Modules[i]
		if p.path != nil && !matchModuleName(p.path, m.Path) {
			continue
		}
		deleted := m.Deleted || strings.HasSuffix(m.Path, " (deleted)")
		if (p.deleted || p.mismatch) && !(p.deleted && deleted) && !(p.mismatch && m.Mismatch) {
			continue
		}
		if p.onStack && !f.moduleOnStack(m.Path) {
			continue
		}
		cp.module = m
		switch {
		case p.deleted && deleted:
			return fmt.Sprintf("module %s was deleted or replaced on disk after it was loaded", m.Path), true
		case p.mismatch && m.Mismatch:
			return fmt.Sprintf("module %s on disk has build-id %s, the loaded one %s", m.Path, m.FileBuildID, m.BuildID), true
		}
		return "module loaded: " + m.Path, true
	}
	return "", false
}

// moduleOnStack reports whether the crashed thread has a frame in the
// module at path.
func (f *facts) moduleOnStack(path string) bool {
	th := f.r.CrashedThread()
	if th == nil {
		return false
	}
	base := filepath.Base(strings.TrimSuffix(path, " (deleted)"))
	for i := range th.Frames {
		if th.Frames[i].Module == base {
			return true
		}
	}
	return false
}

func describeFrame(fr *crash.Frame) string {
	name := fr.Function
	switch {
	case name == "" && fr.Module == "[php-jit]":
		return "PHP JIT code"
	case name == "" && fr.Module == "[anon-exec]":
		return "JIT code in anonymous executable memory"
	case name == "":
		name = "an unnamed function"
	}
	if fr.Module != "" {
		return name + " in " + filepath.Base(fr.Module)
	}
	return name
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// Diagnose matches a crash report (and optional host evidence) against the
// rules, best first: by confidence, then by how many conditions matched,
// then by rule order. Fallback rules are tried only when no other rule
// matches. A nil report is treated as empty (diagnosis from evidence alone).
func (kb *KnowledgeBase) Diagnose(r *crash.Report, ev Evidence) []crash.Diagnosis {
	if r == nil {
		r = &crash.Report{}
	}
	f := newFacts(r, &ev)
	type hit struct {
		d     crash.Diagnosis
		score int
		order int
	}
	var hits []hit
	try := func(fallback bool) {
		for i, ru := range kb.rules {
			if ru.Fallback != fallback || ru.Live != (r.Live != nil) {
				continue
			}
			var cp capture
			ok, words := ru.when.holds(f, &cp)
			if !ok {
				continue
			}
			hits = append(hits, hit{d: ru.diagnosis(f, &cp, words), score: ru.Confidence.Rank(), order: i})
			if fallback {
				return
			}
		}
	}
	try(false)
	if len(hits) == 0 {
		try(true)
	}
	if r.Process.Truncated {
		// Part of the evidence is missing: no diagnosis of a truncated
		// core is as sure as it would be on the whole core.
		for i := range hits {
			d := &hits[i].d
			if rank := d.Confidence.Rank(); rank > 1 {
				d.Confidence = confidenceOf(rank - 1)
				hits[i].score = rank - 1
			}
			why := "the core is truncated"
			if t := r.Process.Truncation; t != nil && t.Summary != "" {
				why = t.Summary
			}
			d.Matched = append(d.Matched, "confidence lowered: "+why)
		}
	}
	if n := partialObjects(r); n > 0 {
		// The process ran in another root whose files were not found:
		// frames, code and the PHP runtime are partly unknown, so no
		// diagnosis of it may be more than a lead.
		for i := range hits {
			d := &hits[i].d
			if d.Confidence.Rank() > 1 {
				d.Confidence = confidenceOf(1)
				hits[i].score = 1
			}
			d.Matched = append(d.Matched, fmt.Sprintf("confidence lowered: the analysis is partial (%d mapped objects have no file with the build-id the process ran)", n))
		}
	}
	sort.SliceStable(hits, func(i, j int) bool {
		a, b := hits[i], hits[j]
		if a.score != b.score {
			return a.score > b.score
		}
		if len(a.d.Matched) != len(b.d.Matched) {
			return len(a.d.Matched) > len(b.d.Matched)
		}
		return a.order < b.order
	})
	out := make([]crash.Diagnosis, len(hits))
	for i := range hits {
		out[i] = hits[i].d
	}
	return out
}

// partialObjects counts the mapped objects of r found nowhere with their
// build-id for another reason than an upgrade (those are mismatched or
// deleted, which is itself evidence): the files of another root.
func partialObjects(r *crash.Report) int {
	if r.Root == nil || len(r.Root.Unresolved) == 0 {
		return 0
	}
	unresolved := map[string]bool{}
	for _, p := range r.Root.Unresolved {
		unresolved[p] = true
	}
	n := 0
	for _, m := range r.Modules {
		if unresolved[m.Path] && !m.Mismatch && !m.Deleted {
			n++
		}
	}
	return n
}

func (ru *rule) diagnosis(f *facts, cp *capture, words []string) crash.Diagnosis {
	d := crash.Diagnosis{
		Rule:        ru.ID,
		Title:       ru.Title,
		Confidence:  ru.Confidence,
		Explanation: ru.explain(f, cp),
		Matched:     words,
	}
	for i, fx := range ru.Fix {
		if c := ru.fixWhen[i]; c != nil {
			if ok, _ := c.holds(f, &capture{}); !ok {
				continue
			}
		}
		fix := crash.Fix{
			Description: fx.Description, Kind: fx.Kind, Setting: fx.Setting,
			Value: fx.Value, Mitigation: fx.Mitigation,
		}
		if fix.Mitigation != "" && f.sapi() == "apache2handler" {
			fix.SAPI = "apache2handler" // mod_php's ini files, not FPM's
		}
		d.Fix = append(d.Fix, fix)
	}
	for _, ref := range ru.References {
		d.References = append(d.References, referenceURL(ref))
	}
	return d
}

// confidenceOf is the confidence of a rank (see crash.Confidence.Rank).
func confidenceOf(rank int) crash.Confidence {
	switch rank {
	case 3:
		return crash.ConfidenceHigh
	case 2:
		return crash.ConfidenceMedium
	}
	return crash.ConfidenceLow
}

// referenceURL expands "owner/repo#N" to the GitHub issue URL.
func referenceURL(ref string) string {
	m := refRE().FindStringSubmatch(ref)
	if m == nil {
		return ref
	}
	return "https://github.com/" + m[1] + "/issues/" + m[2]
}
