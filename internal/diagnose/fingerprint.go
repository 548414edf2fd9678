package diagnose

import (
	"crypto/sha256"
	"encoding/hex"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// Fingerprint sizes.
const (
	fingerprintNative = 5
	fingerprintPHP    = 3
	maxCyclePeriod    = 64
)

// Fingerprint returns a stable crash signature (16 hex digits) from the
// normalised top native frames of the crashed thread and the top PHP
// frames. It ignores addresses, offsets, pids, ASLR and the request;
// allocator, abort and signal-delivery frames are dropped; module names
// lose their version suffix; JIT code becomes one token; recursion is
// folded to one canonical copy of the repeating cycle, and for a stack
// overflow the frames above the recursion (wherever the stack happened to
// run out) are ignored. It returns "" when the report has no frames.
func Fingerprint(r *crash.Report) string {
	if r == nil {
		return ""
	}
	native, php := fingerprintParts(r)
	if len(native) == 0 && len(php) == 0 {
		return ""
	}
	h := sha256.New()
	h.Write([]byte("coroner-fingerprint-v1\n"))
	h.Write([]byte(signals.Name(r.Signal.Number) + "\n"))
	for _, t := range native {
		h.Write([]byte("n " + t + "\n"))
	}
	for _, t := range php {
		h.Write([]byte("p " + t + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// FingerprintFrames returns the normalised frames a fingerprint is made
// of, for display ("n " native, "p " PHP).
func FingerprintFrames(r *crash.Report) []string {
	if r == nil {
		return nil
	}
	native, php := fingerprintParts(r)
	var out []string
	for _, t := range native {
		out = append(out, "n "+t)
	}
	for _, t := range php {
		out = append(out, "p "+t)
	}
	return out
}

// fingerprintParts returns the normalised native and PHP frames of a
// fingerprint. For a stack overflow in a PHP recursion, the PHP frames
// alone identify the crash: the native stack is then mostly where the
// stack happened to run out, and unwinders often stop early in JIT code.
func fingerprintParts(r *crash.Report) (native, php []string) {
	th := r.CrashedThread()
	if th == nil && len(r.Threads) > 0 {
		th = &r.Threads[0]
	}
	overflow := faultKind(r) == crash.FaultStackOverflow
	if r.PHP != nil {
		items := phpTokens(r.PHP.Frames, r.PHP.Cycles)
		php = signature(items, overflow, fingerprintPHP)
		if overflow && hasCycle(items) {
			return nil, php
		}
	}
	if th != nil {
		frames, cycles := th.Frames, th.Cycles
		if rr := r.Reraise; rr != nil && rr.Frame > 0 && rr.Frame < len(frames) {
			frames, cycles = frames[rr.Frame:], nil // past the handler that re-raised the signal
		}
		native = signature(nativeTokens(frames, cycles), overflow, fingerprintNative)
	}
	return native, php
}

func hasCycle(items []item) bool {
	for _, it := range items {
		if it.cycle != nil {
			return true
		}
	}
	return false
}

// internalFrames are dropped from fingerprints: signal delivery, abort and
// assertion machinery, glibc and Zend allocator internals.
var internalFrames = map[string]bool{
	"raise": true, "abort": true, "gsignal": true, "pthread_kill": true,
	"pthread_kill_implementation": true, "pthread_kill_internal": true,
	"libc_message": true, "libc_message_impl": true, "malloc_printerr": true,
	"assert_fail": true, "assert_fail_base": true, "fortify_fail": true,
	"stack_chk_fail": true, "chk_fail": true, "restore_rt": true,
	"malloc": true, "free": true, "calloc": true, "realloc": true, "cfree": true,
	"int_malloc": true, "int_free": true, "int_realloc": true, "int_memalign": true,
	"int_free_merge_chunk": true, "int_free_create_chunk": true, "int_free_maybe_consolidate": true,
	"malloc_consolidate": true, "unlink_chunk": true, "sysmalloc": true,
	"_emalloc": true, "_efree": true, "_erealloc": true, "_erealloc2": true, "_ecalloc": true,
	"_safe_emalloc": true, "_safe_erealloc": true, "_estrdup": true, "_estrndup": true,
	"zend_out_of_memory": true, "zend_mm_safe_error": true, "zend_mm_panic": true,
}

var (
	suffixRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(\.(cold|isra|part|constprop|lto_priv|localalias)(\.[0-9]+)?)+$`)
	})
	versionRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(.*[A-Za-z])[0-9]+(\.[0-9]+)*$`) })
	closureRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\{closure[:}].*`) })
)

// normalFunction strips compiler clone suffixes and symbol versions.
func normalFunction(name string) string {
	if i := strings.IndexByte(name, '@'); i > 0 {
		name = name[:i]
	}
	return suffixRE().ReplaceAllString(name, "")
}

func isInternal(name string) bool {
	for strings.HasPrefix(name, "__GI_") {
		name = strings.TrimPrefix(name, "__GI_")
	}
	bare := strings.TrimLeft(name, "_")
	if internalFrames[name] || internalFrames[bare] || internalFrames[strings.TrimPrefix(bare, "libc_")] {
		return true
	}
	return strings.HasPrefix(name, "zend_mm_") || strings.HasPrefix(name, "tcache_") ||
		strings.HasPrefix(name, "_emalloc_") || strings.HasPrefix(name, "_efree_")
}

// normalModule gives a module's base name without ".so..." and version
// suffix: "libpcre2-8.so.0.11.2" -> "libpcre2-8", "php-fpm8.2" -> "php-fpm".
func normalModule(path string) string {
	if strings.HasPrefix(path, "[") {
		return path
	}
	base := filepath.Base(strings.TrimSuffix(path, " (deleted)"))
	if i := strings.Index(base, ".so"); i > 0 && (i+3 == len(base) || base[i+3] == '.') {
		base = base[:i]
	}
	if m := versionRE().FindStringSubmatch(base); m != nil {
		base = m[1]
	}
	return base
}

// nativeToken is a frame's fingerprint token, "" to drop it.
func nativeToken(f *crash.Frame) string {
	switch {
	case f.Module == "[anon-exec]":
		return "<anon-exec>"
	case f.Module == "[php-jit]" || f.FunctionSource == "jit" && f.Function == "":
		return "<php-jit>"
	case f.Module == "[vdso]":
		return ""
	case f.Function != "":
		name := normalFunction(f.Function)
		if isInternal(name) {
			return ""
		}
		return name
	case f.Module == "":
		return "?"
	}
	return normalModule(f.Module) + "!?"
}

// item is a fingerprint element: one token, or a folded cycle.
type item struct {
	tok   string
	cycle []string
	span  int // frames a cycle covers
	next  int // index in cycle of the frame expected after the cycle's last frame
}

func (it item) String() string {
	if it.cycle == nil {
		return it.tok
	}
	return "cycle(" + strings.Join(canonicalRotation(it.cycle), " > ") + ")"
}

// nativeTokens normalises frames, folding the given cycles first (their
// frame indexes refer to the unnormalised frames).
func nativeTokens(frames []crash.Frame, cycles []crash.Cycle) []item {
	var out []item
	ci := 0
	for i := 0; i < len(frames); i++ {
		for ci < len(cycles) && cycles[ci].Start < i {
			ci++
		}
		if ci < len(cycles) && cycles[ci].Start == i && validCycle(cycles[ci], len(frames)) {
			c := cycles[ci]
			var body []string
			for k := c.Start; k < c.Start+c.Length; k++ {
				if t := nativeToken(&frames[k]); t != "" {
					body = append(body, t)
				}
			}
			if len(body) > 0 {
				out = append(out, item{cycle: body, span: c.End - c.Start + 1, next: (c.End - c.Start + 1) % c.Length % len(body)})
			}
			i = c.End
			continue
		}
		if t := nativeToken(&frames[i]); t != "" {
			out = append(out, item{tok: t})
		}
	}
	return foldItems(out)
}

// foldItems absorbs into the given cycles the plain tokens that continue
// them, then folds the repeats left among the plain tokens.
func foldItems(items []item) []item {
	items = mergeCycles(items)
	var out []item
	var run []string
	for _, it := range items {
		if it.cycle == nil {
			run = append(run, it.tok)
			continue
		}
		out = append(out, foldRepeats(run)...)
		run = nil
		out = append(out, it)
	}
	out = append(out, foldRepeats(run)...)
	return mergeCycles(out)
}

func validCycle(c crash.Cycle, n int) bool {
	return c.Length > 0 && c.Start >= 0 && c.End >= c.Start+c.Length-1 && c.End < n
}

func phpTokens(frames []crash.PHPFrame, cycles []crash.Cycle) []item {
	toks := make([]string, len(frames))
	for i := range frames {
		fr := frames[i]
		fr.Function = closureRE().ReplaceAllString(fr.Function, "{closure}")
		fr.CallType = "::"
		toks[i] = fr.QualifiedName()
	}
	var out []item
	start := 0
	for _, c := range cycles {
		if !validCycle(c, len(toks)) || c.Start < start {
			continue
		}
		for _, t := range toks[start:c.Start] {
			out = append(out, item{tok: t})
		}
		out = append(out, item{cycle: append([]string(nil), toks[c.Start:c.Start+c.Length]...), span: c.End - c.Start + 1, next: (c.End - c.Start + 1) % c.Length})
		start = c.End + 1
	}
	for _, t := range toks[start:] {
		out = append(out, item{tok: t})
	}
	return foldItems(out)
}

// foldRepeats turns runs of a repeating unit (period up to maxCyclePeriod,
// at least two copies) into cycle items.
func foldRepeats(toks []string) []item {
	var out []item
	for i := 0; i < len(toks); {
		p, reps := findRepeat(toks, i)
		if reps >= 2 {
			out = append(out, item{cycle: append([]string(nil), toks[i:i+p]...), span: p * reps})
			i += p * reps
			continue
		}
		out = append(out, item{tok: toks[i]})
		i++
	}
	return out
}

// findRepeat finds the smallest period p such that toks[i:i+p] repeats
// right after itself, and how many copies follow one another.
func findRepeat(toks []string, i int) (int, int) {
	for p := 1; p <= maxCyclePeriod && i+2*p <= len(toks); p++ {
		if toks[i] != toks[i+p] || !equal(toks[i:i+p], toks[i+p:i+2*p]) {
			continue
		}
		reps := 2
		for i+(reps+1)*p <= len(toks) && equal(toks[i:i+p], toks[i+reps*p:i+(reps+1)*p]) {
			reps++
		}
		return p, reps
	}
	return 0, 0
}

func equal(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return len(a) == len(b)
}

// detectCycles finds repeating runs in names (at least minReps copies), as
// crash.Cycle values over the same indexes.
func detectCycles(names []string, minReps int) []crash.Cycle {
	var out []crash.Cycle
	for i := 0; i < len(names); {
		p, reps := findRepeat(names, i)
		if reps >= minReps {
			out = append(out, crash.Cycle{Start: i, End: i + p*reps - 1, Length: p, Repeats: reps})
			i += p * reps
			continue
		}
		i++
	}
	return out
}

// mergeCycles absorbs, around each cycle, plain tokens that continue the
// cycle (a partial copy where the stack ran out, or where the unwinder's
// cycle started in another phase), and merges neighbouring equal cycles.
func mergeCycles(items []item) []item {
	var out []item
	for i := 0; i < len(items); i++ {
		it := items[i]
		if it.cycle == nil {
			out = append(out, it)
			continue
		}
		body := it.cycle
		n := len(body)
		// Innermost side: the frame just before the cycle is the callee of
		// body[0], i.e. body[n-1] in the repetition.
		for k := 0; len(out) > 0 && out[len(out)-1].cycle == nil; k++ {
			if out[len(out)-1].tok != body[(n-1-k%n+n)%n] {
				break
			}
			out = out[:len(out)-1]
			it.span++
		}
		// Outermost side: frames continuing the repetition.
		for k := it.next; i+1 < len(items) && items[i+1].cycle == nil && items[i+1].tok == body[k%n]; k++ {
			i++
			it.span++
		}
		if len(out) > 0 && out[len(out)-1].cycle != nil &&
			equal(canonicalRotation(out[len(out)-1].cycle), canonicalRotation(body)) {
			out[len(out)-1].span += it.span
			continue
		}
		out = append(out, it)
	}
	return out
}

// canonicalRotation returns the lexicographically smallest rotation of a
// cycle body, so that the same recursion gives the same token whatever
// frame the stack ran out in.
func canonicalRotation(body []string) []string {
	best := body
	for k := 1; k < len(body); k++ {
		rot := append(append([]string(nil), body[k:]...), body[:k]...)
		if less(rot, best) {
			best = rot
		}
	}
	return best
}

func less(a, b []string) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// signature takes the first n items; for a stack overflow inside a
// recursion it starts at the recursion (the cycle covering most frames):
// where in it the stack ran out is chance.
func signature(items []item, overflow bool, n int) []string {
	if overflow {
		best := -1
		for i, it := range items {
			if it.cycle != nil && (best < 0 || it.span > items[best].span) {
				best = i
			}
		}
		if best >= 0 {
			items = items[best:]
		}
	}
	var out []string
	for _, it := range items {
		if len(out) == n {
			break
		}
		out = append(out, it.String())
	}
	return out
}

// LogFingerprint is the fingerprint of a crash known only from the logs
// (no core, so no stack): the signal, the crash site the logs give
// ("module!function+0xoff" as a symbolized kernel fault line or
// systemd-coredump names it, "module+0xoff" unsymbolized, "[anon-exec]/JIT")
// and the request's path (without its query). The site becomes a frame
// token as Fingerprint normalises it (clone suffixes, symbol versions and
// module versions dropped, JIT code one token); an unsymbolized site keeps
// its file offset, the only thing that tells two sites of a module apart.
// It returns "" when neither site nor path is known.
func LogFingerprint(signal int, site, uri string) string {
	tok := logSiteToken(site)
	path := uri
	if i := strings.IndexAny(path, "?#"); i >= 0 {
		path = path[:i]
	}
	if tok == "" && path == "" {
		return ""
	}
	h := sha256.New()
	h.Write([]byte("coroner-fingerprint-log-v1\n"))
	h.Write([]byte(signals.Name(signal) + "\n"))
	h.Write([]byte("n " + tok + "\n"))
	h.Write([]byte("u " + path + "\n"))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// LogSiteFunction returns the function of a logged crash site without its
// offset ("__strlen_evex" of "libc.so.6!__strlen_evex+0x18"), "" when the
// site names none.
func LogSiteFunction(site string) string {
	_, fn, ok := strings.Cut(site, "!")
	if !ok {
		return ""
	}
	if i := strings.LastIndex(fn, "+0x"); i > 0 {
		fn = fn[:i]
	}
	return fn
}

// logSiteToken normalises a logged crash site to a fingerprint token.
func logSiteToken(site string) string {
	site = strings.TrimSpace(site)
	switch {
	case site == "":
		return ""
	case strings.HasPrefix(site, "[anon-exec]"):
		return "<anon-exec>"
	}
	module, _, _ := strings.Cut(site, "!")
	if fn := LogSiteFunction(site); fn != "" {
		f := crash.Frame{Function: fn, Module: module}
		if t := nativeToken(&f); t != "" {
			return t
		}
		return normalModule(module) + "!" + normalFunction(fn)
	}
	if m, off, ok := strings.Cut(site, "+0x"); ok {
		return normalModule(m) + "+0x" + off
	}
	return site
}
