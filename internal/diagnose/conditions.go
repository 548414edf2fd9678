package diagnose

import (
	"fmt"
	"regexp"
	"sort"
	"strings"
	"sync"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// check is one compiled condition of a rule: it reports whether it holds
// for the crash's facts, says in words what matched, and records in cp
// what the explanation may quote.
type check func(f *facts, cp *capture) (ok bool, words []string)

// cond is a compiled Cond: checks that must all hold.
type cond struct {
	checks []check
}

// holds reports whether every check holds, with the matched conditions in
// words.
func (c *cond) holds(f *facts, cp *capture) (bool, []string) {
	var words []string
	for _, chk := range c.checks {
		ok, w := chk(f, cp)
		if !ok {
			return false, nil
		}
		words = append(words, w...)
	}
	return true, words
}

func (c *cond) empty() bool { return len(c.checks) == 0 }

// condition compiles one kind of condition of s into a check, or returns
// nil when s does not use it. A new kind of condition is a field of Cond
// and one such function, listed in conditions.
type condition func(s *Cond, where string, eager bool) (check, error)

// conditions are the kinds of condition, in the order their words appear
// in a diagnosis. (Set in init: any and none compile conditions too.)
var conditions []condition

func init() {
	conditions = []condition{
		signalCond, phpProcessCond, sentCond, faultCond, nativeCond, phpFrameCond, versionCond, iniCond, jitCond,
		extensionCond, cycleCond, minFramesCond, moduleCond, kernelCond, messageCond, oomKillCond, repeatedCond,
		truncatedCond, recursionCond, sapiCond, processCond, anyCond, noneCond,
	}
}

func compileCond(s *Cond, where string, eager bool) (*cond, error) {
	if s.MinFrames < 0 || s.Repeated < 0 {
		return nil, fmt.Errorf("%s: min_frames and repeated must not be negative", where)
	}
	c := &cond{}
	for _, compile := range conditions {
		chk, err := compile(s, where, eager)
		if err != nil {
			return nil, err
		}
		if chk != nil {
			c.checks = append(c.checks, chk)
		}
	}
	return c, nil
}

// pattern is a rule's regular expression, compiled when a rule first
// needs it: most rules fail a cheaper condition first, and compiling every
// expression of the embedded rules cost each analysis about 3 ms. Each
// distinct expression is compiled once per process (patterns).
type pattern struct {
	re func() *regexp.Regexp
}

// patterns holds the pattern of each distinct expression (source ->
// *pattern).
var patterns sync.Map

// MatchString reports whether s holds a match of the pattern (never, for
// an expression that does not compile: only an embedded rule is compiled
// late, and TestEmbeddedPatternsCompile compiles each of them).
func (p *pattern) MatchString(s string) bool {
	re := p.re()
	return re != nil && re.MatchString(s)
}

// compileRE returns the pattern of expression s (nil when s is empty).
// eager compiles it now and reports its error (rule files); otherwise it
// is compiled on first use (the embedded rules).
func compileRE(s, field string, eager bool) (*pattern, error) {
	if s == "" {
		return nil, nil
	}
	v, ok := patterns.Load(s)
	if !ok {
		v, _ = patterns.LoadOrStore(s, &pattern{re: sync.OnceValue(func() *regexp.Regexp {
			re, err := regexp.Compile(s)
			if err != nil {
				return nil
			}
			return re
		})})
	}
	p := v.(*pattern)
	if eager && p.re() == nil {
		_, err := regexp.Compile(s)
		return nil, fmt.Errorf("%s: %w", field, err)
	}
	return p, nil
}

// signal: the signal that killed the process is one of these.
func signalCond(s *Cond, where string, _ bool) (check, error) {
	if len(s.Signal) == 0 {
		return nil, nil
	}
	var want []int
	for _, name := range s.Signal {
		n, ok := signals.Parse(name)
		if !ok {
			return nil, fmt.Errorf("%s.signal: unknown signal %q", where, name)
		}
		want = append(want, int(n))
	}
	return func(f *facts, _ *capture) (bool, []string) {
		for _, n := range want {
			if n == f.signal {
				return true, []string{"signal " + signals.Name(f.signal)}
			}
		}
		return false, nil
	}, nil
}

// php_process: the crashed process is (not) PHP.
func phpProcessCond(s *Cond, _ string, _ bool) (check, error) {
	if s.PHPProcess == nil {
		return nil, nil
	}
	want := *s.PHPProcess
	return func(f *facts, _ *capture) (bool, []string) { return want == f.isPHP(), nil }, nil
}

// sapi: PHP ran as one of these SAPIs.
func sapiCond(s *Cond, _ string, _ bool) (check, error) {
	if len(s.SAPI) == 0 {
		return nil, nil
	}
	want := s.SAPI
	return func(f *facts, _ *capture) (bool, []string) {
		for _, w := range want {
			if w == f.sapi() {
				return true, []string{"PHP ran as " + w}
			}
		}
		return false, nil
	}, nil
}

// sent: the signal was sent by a process (true) or raised by a fault.
func sentCond(s *Cond, _ string, _ bool) (check, error) {
	if s.Sent == nil {
		return nil, nil
	}
	want := *s.Sent
	return func(f *facts, _ *capture) (bool, []string) {
		if want != f.sent {
			return false, nil
		}
		if !f.sent {
			return true, []string{"the signal was raised by a fault"}
		}
		if f.r.Signal.SenderPID != 0 {
			return true, []string{fmt.Sprintf("the signal was sent by pid %d (uid %d)", f.r.Signal.SenderPID, f.r.Signal.SenderUID)}
		}
		return true, []string{"the signal was sent by a process, not raised by a fault"}
	}, nil
}

// fault: the fault is of one of these kinds.
func faultCond(s *Cond, where string, _ bool) (check, error) {
	if len(s.Fault) == 0 {
		return nil, nil
	}
	for _, k := range s.Fault {
		if !k.Valid() {
			return nil, fmt.Errorf("%s.fault: unknown fault kind %q", where, k)
		}
	}
	kinds := s.Fault
	return func(f *facts, _ *capture) (bool, []string) {
		for _, k := range kinds {
			if k == f.fault {
				return true, []string{"fault: " + string(f.fault)}
			}
		}
		return false, nil
	}, nil
}

// framePat matches one stack frame.
type framePat struct {
	function, module, class *pattern
	top                     int
}

func compileFrame(p FramePattern, where string, eager bool) (framePat, error) {
	var fp framePat
	var err error
	if p.Top < 0 {
		return fp, fmt.Errorf("%s.top: must not be negative", where)
	}
	fp.top = p.Top
	if fp.function, err = compileRE(p.Function, where+".function", eager); err != nil {
		return fp, err
	}
	if fp.module, err = compileRE(p.Module, where+".module", eager); err != nil {
		return fp, err
	}
	if fp.class, err = compileRE(p.Class, where+".class", eager); err != nil {
		return fp, err
	}
	if fp.function == nil && fp.module == nil && fp.class == nil {
		return fp, fmt.Errorf("%s: needs function, module or class", where)
	}
	return fp, nil
}

// native: each pattern matches a frame of the crashed thread.
func nativeCond(s *Cond, where string, eager bool) (check, error) {
	if len(s.Native) == 0 {
		return nil, nil
	}
	var pats []framePat
	for i, p := range s.Native {
		fp, err := compileFrame(p, fmt.Sprintf("%s.native[%d]", where, i), eager)
		if err != nil {
			return nil, err
		}
		if p.Class != "" {
			return nil, fmt.Errorf("%s.native[%d]: class applies to PHP frames only", where, i)
		}
		pats = append(pats, fp)
	}
	return func(f *facts, cp *capture) (bool, []string) {
		var words []string
		for _, p := range pats {
			i := p.matchNative(f.frames)
			if i < 0 {
				return false, nil
			}
			fr := &f.frames[i]
			if cp.frame == nil {
				cp.frame, cp.frameIdx = fr, i
			}
			words = append(words, fmt.Sprintf("native frame #%d is %s", i, describeFrame(fr)))
		}
		return true, words
	}, nil
}

// php: each pattern matches a PHP frame.
func phpFrameCond(s *Cond, where string, eager bool) (check, error) {
	if len(s.PHP) == 0 {
		return nil, nil
	}
	var pats []framePat
	for i, p := range s.PHP {
		fp, err := compileFrame(p, fmt.Sprintf("%s.php[%d]", where, i), eager)
		if err != nil {
			return nil, err
		}
		if p.Module != "" {
			return nil, fmt.Errorf("%s.php[%d]: module applies to native frames only", where, i)
		}
		pats = append(pats, fp)
	}
	return func(f *facts, cp *capture) (bool, []string) {
		var words []string
		for _, p := range pats {
			i := p.matchPHP(f.php)
			if i < 0 {
				return false, nil
			}
			if cp.phpFrame == nil {
				cp.phpFrame = &f.php[i]
			}
			words = append(words, fmt.Sprintf("PHP frame #%d is %s()", i, f.php[i].QualifiedName()))
		}
		return true, words
	}, nil
}

// php_version: the PHP version is in the range.
func versionCond(s *Cond, where string, _ bool) (check, error) {
	if s.PHPVersion == "" {
		return nil, nil
	}
	vcs, err := parseConstraints(s.PHPVersion)
	if err != nil {
		return nil, fmt.Errorf("%s.php_version: %w", where, err)
	}
	return func(f *facts, _ *capture) (bool, []string) {
		if !f.verOK {
			return false, nil
		}
		var parts []string
		for _, vc := range vcs {
			if !vc.ok(f.ver) {
				return false, nil
			}
			parts = append(parts, vc.String())
		}
		return true, []string{fmt.Sprintf("PHP %s (%s)", f.version, strings.Join(parts, " "))}
	}, nil
}

// ini: each directive is set to a value matching its expression.
func iniCond(s *Cond, where string, eager bool) (check, error) {
	if len(s.INI) == 0 {
		return nil, nil
	}
	type iniPat struct {
		name string
		re   *pattern
	}
	var pats []iniPat
	for name, v := range s.INI {
		re, err := compileRE(v, where+".ini."+name, eager)
		if err != nil {
			return nil, err
		}
		if re == nil {
			re, _ = compileRE(`^$`, where+".ini."+name, false)
		}
		pats = append(pats, iniPat{name: name, re: re})
	}
	sort.Slice(pats, func(i, j int) bool { return pats[i].name < pats[j].name })
	return func(f *facts, _ *capture) (bool, []string) {
		var words []string
		for _, p := range pats {
			v, ok := f.ini[p.name]
			if !ok || !p.re.MatchString(v) {
				return false, nil
			}
			words = append(words, fmt.Sprintf("%s = %s", p.name, v))
		}
		return true, words
	}, nil
}

var jitModes = map[string]bool{"off": true, "function": true, "tracing": true, "on": true}

// jit: the effective OPcache JIT mode is one of these ("on": any active).
func jitCond(s *Cond, where string, _ bool) (check, error) {
	if len(s.JIT) == 0 {
		return nil, nil
	}
	for _, m := range s.JIT {
		if !jitModes[m] {
			return nil, fmt.Errorf("%s.jit: mode %q: want off, function, tracing or on", where, m)
		}
	}
	modes := s.JIT
	return func(f *facts, _ *capture) (bool, []string) {
		for _, m := range modes {
			if m == f.jit || (m == "on" && (f.jit == "function" || f.jit == "tracing")) {
				return true, []string{"OPcache JIT mode: " + f.jit}
			}
		}
		return false, nil
	}, nil
}

// extension: a loaded extension's name matches.
func extensionCond(s *Cond, where string, eager bool) (check, error) {
	re, err := compileRE(s.Extension, where+".extension", eager)
	if re == nil || err != nil {
		return nil, err
	}
	return func(f *facts, cp *capture) (bool, []string) {
		var hit []string
		for _, e := range f.exts {
			if re.MatchString(e) {
				hit = append(hit, e)
			}
		}
		if len(hit) == 0 {
			return false, nil
		}
		if cp.ext == "" {
			cp.ext = strings.Join(hit, ", ")
		}
		return true, []string{"extension loaded: " + strings.Join(hit, ", ")}
	}, nil
}

// cycle: the native or PHP stack recurses (through a matching function).
func cycleCond(s *Cond, where string, eager bool) (check, error) {
	if s.Cycle == nil {
		return nil, nil
	}
	re, err := compileRE(s.Cycle.Function, where+".cycle.function", eager)
	if err != nil {
		return nil, err
	}
	return func(f *facts, cp *capture) (bool, []string) {
		w, ok := f.matchCycle(re, cp)
		if !ok {
			return false, nil
		}
		return true, []string{w}
	}, nil
}

// min_frames: the crashed thread has at least this many frames.
func minFramesCond(s *Cond, _ string, _ bool) (check, error) {
	if s.MinFrames == 0 {
		return nil, nil
	}
	least := s.MinFrames
	return func(f *facts, _ *capture) (bool, []string) {
		if len(f.frames) < least {
			return false, nil
		}
		return true, []string{fmt.Sprintf("%d native frames (at least %d)", len(f.frames), least)}
	}, nil
}

// modPat requires some mapped module to be in a given state.
type modPat struct {
	path              *pattern
	deleted, mismatch bool
	onStack           bool
}

// module: a mapped module is in the given state.
func moduleCond(s *Cond, where string, eager bool) (check, error) {
	if s.Module == nil {
		return nil, nil
	}
	m := &modPat{deleted: s.Module.Deleted, mismatch: s.Module.Mismatch, onStack: s.Module.OnStack}
	var err error
	if m.path, err = compileRE(s.Module.Path, where+".module.path", eager); err != nil {
		return nil, err
	}
	if m.path == nil && !m.deleted && !m.mismatch {
		return nil, fmt.Errorf("%s.module: needs path, deleted or mismatch", where)
	}
	return func(f *facts, cp *capture) (bool, []string) {
		w, ok := f.matchModule(m, cp)
		if !ok {
			return false, nil
		}
		return true, []string{w}
	}, nil
}

// kernel: the kernel logged the fault (in a matching module or function,
// with one of these error codes).
func kernelCond(s *Cond, where string, eager bool) (check, error) {
	if s.Kernel == nil {
		return nil, nil
	}
	module, err := compileRE(s.Kernel.Module, where+".kernel.module", eager)
	if err != nil {
		return nil, err
	}
	function, err := compileRE(s.Kernel.Function, where+".kernel.function", eager)
	if err != nil {
		return nil, err
	}
	codes := s.Kernel.Error
	return func(f *facts, _ *capture) (bool, []string) {
		k := f.ev.Kernel
		if k == nil || (module != nil && !module.MatchString(k.Module)) || (function != nil && !function.MatchString(k.Function)) {
			return false, nil
		}
		if len(codes) > 0 && !contains(codes, k.Error) {
			return false, nil
		}
		where := k.Module
		if where == "" {
			where = "anonymous memory"
		}
		return true, []string{fmt.Sprintf("kernel: %s at %#x in %s, error %d", k.Kind, k.Address, where, k.Error)}
	}, nil
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// message: a message (fault details, worker stderr, log lines) matches.
func messageCond(s *Cond, where string, eager bool) (check, error) {
	re, err := compileRE(s.Message, where+".message", eager)
	if re == nil || err != nil {
		return nil, err
	}
	return func(f *facts, cp *capture) (bool, []string) {
		for _, m := range f.messages {
			if re.MatchString(m) {
				if cp.message == "" {
					cp.message = m
				}
				return true, []string{fmt.Sprintf("message: %q", truncate(m, 160))}
			}
		}
		return false, nil
	}, nil
}

// oom_kill: the kernel's OOM killer killed the process (true) or not.
func oomKillCond(s *Cond, _ string, _ bool) (check, error) {
	if s.OOMKill == nil {
		return nil, nil
	}
	want := *s.OOMKill
	return func(f *facts, _ *capture) (bool, []string) {
		if want != (len(f.ev.OOMKill) > 0) {
			return false, nil
		}
		if !want {
			return true, nil
		}
		return true, []string{"kernel OOM killer: " + truncate(f.ev.OOMKill[0], 160)}
	}, nil
}

// truncated: the core is truncated (true) or whole (false).
func truncatedCond(s *Cond, _ string, _ bool) (check, error) {
	if s.Truncated == nil {
		return nil, nil
	}
	want := *s.Truncated
	return func(f *facts, _ *capture) (bool, []string) {
		if want != f.r.Process.Truncated {
			return false, nil
		}
		if !want {
			return true, nil
		}
		return true, []string{"the core is truncated"}
	}, nil
}

// recursion: the PHP stack's recursion passes the same arguments at every
// level (unbounded) or other ones (finite).
func recursionCond(s *Cond, where string, _ bool) (check, error) {
	var want crash.RecursionArgs
	switch s.Recursion {
	case "":
		return nil, nil
	case "unbounded":
		want = crash.RecursionRepeats
	case "finite":
		want = crash.RecursionVaries
	default:
		return nil, fmt.Errorf("%s.recursion: %q: want unbounded or finite", where, s.Recursion)
	}
	return func(f *facts, _ *capture) (bool, []string) {
		r := f.recursion
		if r == nil || r.Args != want {
			return false, nil
		}
		if want == crash.RecursionRepeats {
			return true, []string{"PHP recursion with the same arguments at every level"}
		}
		return true, []string{"PHP recursion whose arguments change from level to level"}
	}, nil
}

// repeated: at least this many crashes had the same fingerprint.
func repeatedCond(s *Cond, _ string, _ bool) (check, error) {
	if s.Repeated == 0 {
		return nil, nil
	}
	least := s.Repeated
	return func(f *facts, _ *capture) (bool, []string) {
		if f.ev.RepeatedCrashes < least {
			return false, nil
		}
		return true, []string{fmt.Sprintf("%d workers crashed with this fingerprint", f.ev.RepeatedCrashes)}
	}, nil
}

// subConds compiles the conditions of an any or none list.
func subConds(list []Cond, where, name string, eager bool) ([]*cond, error) {
	var out []*cond
	for i := range list {
		at := fmt.Sprintf("%s.%s[%d]", where, name, i)
		sub, err := compileCond(&list[i], at, eager)
		if err != nil {
			return nil, err
		}
		if sub.empty() {
			return nil, fmt.Errorf("%s: empty condition", at)
		}
		out = append(out, sub)
	}
	return out, nil
}

// any: at least one of the conditions holds (the first that does speaks).
func anyCond(s *Cond, where string, eager bool) (check, error) {
	if len(s.Any) == 0 {
		return nil, nil
	}
	subs, err := subConds(s.Any, where, "any", eager)
	if err != nil {
		return nil, err
	}
	return func(f *facts, cp *capture) (bool, []string) {
		for _, sub := range subs {
			if ok, w := sub.holds(f, cp); ok {
				return true, w
			}
		}
		return false, nil
	}, nil
}

// none: none of the conditions holds.
// needsStack reports whether a condition looks at the crashed thread's
// stack or the PHP stack (frames, cycles, modules on the stack): facts a
// truncated core may have lost.
func needsStack(c *Cond) bool {
	if len(c.Native) > 0 || len(c.PHP) > 0 || c.Cycle != nil || c.MinFrames > 0 || c.Recursion != "" || (c.Module != nil && c.Module.OnStack) {
		return true
	}
	for i := range c.Any {
		if needsStack(&c.Any[i]) {
			return true
		}
	}
	for i := range c.None {
		if needsStack(&c.None[i]) {
			return true
		}
	}
	return false
}

func noneCond(s *Cond, where string, eager bool) (check, error) {
	if len(s.None) == 0 {
		return nil, nil
	}
	subs, err := subConds(s.None, where, "none", eager)
	if err != nil {
		return nil, err
	}
	onStack := false
	for i := range s.None {
		onStack = onStack || needsStack(&s.None[i])
	}
	return func(f *facts, _ *capture) (bool, []string) {
		if onStack && f.incomplete {
			// The frames that would make it hold may be the ones a
			// truncated core lost: absence cannot be shown.
			return false, nil
		}
		for _, sub := range subs {
			var scratch capture
			if ok, _ := sub.holds(f, &scratch); ok {
				return false, nil
			}
		}
		return true, nil
	}, nil
}

// process: what a running process was doing when it was snapshotted.
func processCond(s *Cond, where string, eager bool) (check, error) {
	if s.Process == nil {
		return nil, nil
	}
	re, err := compileRE(s.Process.Syscall, where+".process.syscall", eager)
	if err != nil {
		return nil, err
	}
	running := s.Process.Running
	return func(f *facts, _ *capture) (bool, []string) {
		l := f.r.Live
		if l == nil {
			return false, nil
		}
		var words []string
		if re != nil {
			if l.Syscall == "" || !re.MatchString(l.Syscall) {
				return false, nil
			}
			words = append(words, "blocked in "+l.Syscall)
		}
		if running != nil {
			if *running != (l.Syscall == "") {
				return false, nil
			}
			if *running {
				words = append(words, "running user code")
			}
		}
		return true, words
	}, nil
}
