// Package diagnose is coroner's knowledge base of known PHP crash families.
// Rules are data (YAML, documented in docs/rules.md): the built-in ones are
// embedded in the binary, local ones are added with --rules FILE. Diagnose
// matches a crash.Report, plus optional evidence from logs and the host
// configuration, against them; Fingerprint gives a stable signature that
// groups the same crash across workers, restarts and machines.
package diagnose

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"text/template"

	"go.yaml.in/yaml/v3"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/regular"
)

//go:embed rules.yaml
var embeddedRules []byte

// embeddedHangRules are the live rules: hangs and slow requests of running
// workers (coroner snapshot).
//
//go:embed hangs.yaml
var embeddedHangRules []byte

// builtinCrashRules and builtinHangRules (rules_gen.go) return rules.yaml
// and hangs.yaml as Go values, which the binary builds instead of decoding
// a file: the rules are loaded on every analysis, and decoding even their
// JSON form took 2-3 ms and 500 kB. TestCompactRules checks that they hold
// the same rules as the YAML; after editing a YAML file run
// go generate ./internal/diagnose/.
//
//go:generate go test -run ^TestCompactRules$ -update-compact-rules .

// boolPtr returns a pointer to b (rules_gen.go).
func boolPtr(b bool) *bool { return &b }

// maxRulesFile bounds the size of a rules file read from disk.
const maxRulesFile = 4 << 20

// File is the top level of a rules file.
type File struct {
	// Version is the format version; only 1 exists.
	Version int    `yaml:"version"`
	Rules   []Rule `yaml:"rules"`
}

// Rule is one known crash family as written in a rules file.
type Rule struct {
	// ID is a short stable name (lower-case, digits and dashes).
	ID    string `yaml:"id"`
	Title string `yaml:"title"`
	// Confidence is high, medium or low.
	Confidence crash.Confidence `yaml:"confidence"`
	// Fallback rules are tried only when no other rule matches.
	Fallback bool `yaml:"fallback"`
	// Live rules are about processes that are still running (hangs, slow
	// requests: snapshots by coroner snapshot); they apply only to
	// snapshots, and the other rules (crashes) never do.
	Live bool `yaml:"live"`
	// When holds the conditions; all of them must hold.
	When Cond `yaml:"when"`
	// Explanation is a text/template over the matched facts (see docs/rules.md).
	Explanation string    `yaml:"explanation"`
	Fix         []FixSpec `yaml:"fix"`
	// References are "owner/repo#N" GitHub issues or URLs.
	References []string `yaml:"references"`
}

// FixSpec is one remediation of a rule, copied into crash.Fix.
type FixSpec struct {
	Description string `yaml:"description"`
	// Kind says where the fix applies (see crash.FixKinds).
	Kind    crash.FixKind `yaml:"kind"`
	Setting string        `yaml:"setting"`
	Value   string        `yaml:"value"`
	// Mitigation is the `coroner fix --mitigate` profile that applies it.
	Mitigation crash.Mitigation `yaml:"mitigation"`
	// When, if set, are conditions this fix needs besides the rule's (a
	// php.ini fix only for PHP processes, a bigger stack only for a
	// recursion that ends): the fix is left out when they do not hold.
	When *Cond `yaml:"when"`
}

// Cond is a set of conditions that must all hold. An empty Cond holds.
type Cond struct {
	// Signal lists signal names (SIGSEGV) or numbers; any may match.
	Signal []string `yaml:"signal"`
	// Sent requires the signal to have been sent by a process (true) or
	// raised by a fault (false).
	Sent *bool `yaml:"sent"`
	// PHPProcess requires the crashed process to be PHP (true: a PHP
	// runtime in the core, a php binary mapped, or PHP facts in the
	// evidence) or not (false).
	PHPProcess *bool `yaml:"php_process"`
	// Fault lists crash.Fault kinds; any may match.
	Fault []crash.FaultKind `yaml:"fault"`
	// Native frame patterns of the crashed thread; each must match a frame.
	Native []FramePattern `yaml:"native"`
	// PHP frame patterns; each must match a PHP frame.
	PHP []FramePattern `yaml:"php"`
	// PHPVersion is a range such as ">=8.0 <8.3".
	PHPVersion string `yaml:"php_version"`
	// INI maps a directive to a regular expression its value must match.
	INI map[string]string `yaml:"ini"`
	// JIT lists effective OPcache JIT modes: off, function, tracing, on (any active).
	JIT []string `yaml:"jit"`
	// Extension is a regular expression some loaded extension's name must match.
	Extension string `yaml:"extension"`
	// Cycle requires a recursion cycle in the native or PHP stack.
	Cycle *CycleCond `yaml:"cycle"`
	// MinFrames requires at least this many native frames.
	MinFrames int `yaml:"min_frames"`
	// Module requires a mapped module in the given state.
	Module *ModuleCond `yaml:"module"`
	// Kernel conditions on the kernel's segfault/trap line (evidence).
	Kernel *KernelCond `yaml:"kernel"`
	// Message is a regular expression some message must match (fault
	// details from the core, worker stderr relayed by FPM, other log lines).
	Message string `yaml:"message"`
	// OOMKill requires (true) or excludes (false) a kernel OOM kill of the process.
	OOMKill *bool `yaml:"oom_kill"`
	// Repeated requires at least this many crashes with the same fingerprint.
	Repeated int `yaml:"repeated"`
	// Truncated requires the core to be truncated (true) or whole (false).
	Truncated *bool `yaml:"truncated"`
	// SAPI lists how PHP ran (the core's SAPI, else the logs'): fpm-fcgi,
	// apache2handler (mod_php), cli, cgi-fcgi...; any may match. An unknown
	// SAPI matches none.
	SAPI []string `yaml:"sapi"`
	// Recursion requires a PHP recursion whose arguments repeat at every
	// level ("unbounded": it cannot end by itself) or change ("finite").
	Recursion string `yaml:"recursion"`
	// Process conditions on what a running process was doing when it was
	// snapshotted (live rules only).
	Process *ProcessCond `yaml:"process"`
	// Any holds when at least one of its conditions holds.
	Any []Cond `yaml:"any"`
	// None holds when none of its conditions holds.
	None []Cond `yaml:"none"`
}

// ProcessCond conditions on what a running process was doing when its
// snapshot was taken; it never holds for a core.
type ProcessCond struct {
	// Syscall is a regular expression on the system call the main thread
	// was blocked in ("nanosleep", "poll", "flock"...).
	Syscall string `yaml:"syscall"`
	// Running requires the main thread to have been running user code
	// (true: burning CPU) or blocked in a system call (false).
	Running *bool `yaml:"running"`
}

// FramePattern matches one stack frame.
type FramePattern struct {
	// Function is a regular expression on the function name.
	Function string `yaml:"function"`
	// Module is a regular expression on the module's path or base name
	// (native frames only; "[php-jit]" and "[anon-exec]" for JIT code).
	Module string `yaml:"module"`
	// Class is a regular expression on the class name (PHP frames only).
	Class string `yaml:"class"`
	// Top limits the match to the N innermost frames; 0 means anywhere.
	Top int `yaml:"top"`
}

// CycleCond requires a recursion cycle.
type CycleCond struct {
	// Function, if set, is a regular expression some function inside the
	// repeating part must match.
	Function string `yaml:"function"`
}

// ModuleCond requires some mapped module to be in a given state.
type ModuleCond struct {
	// Path is a regular expression on the module's path or base name.
	Path string `yaml:"path"`
	// Deleted: the file was deleted or replaced after it was mapped.
	Deleted bool `yaml:"deleted"`
	// Mismatch: the file on disk has another build-id than the mapped one.
	Mismatch bool `yaml:"mismatch"`
	// OnStack: the module has a frame on the crashed thread's stack.
	OnStack bool `yaml:"on_stack"`
}

// KernelCond conditions on the kernel log line of the fault.
type KernelCond struct {
	// Module is a regular expression on the file the kernel named.
	Module string `yaml:"module"`
	// Function is a regular expression on the symbolised function.
	Function string `yaml:"function"`
	// Error lists accepted page-fault error codes.
	Error []int `yaml:"error"`
}

// KnowledgeBase is a validated, compiled set of rules.
type KnowledgeBase struct {
	rules []*rule
}

// Rules returns the rules in evaluation order.
func (kb *KnowledgeBase) Rules() []Rule {
	out := make([]Rule, len(kb.rules))
	for i, r := range kb.rules {
		out[i] = r.Rule
	}
	return out
}

// Load returns the embedded rules plus those of extra rule files (--rules
// FILE), validated. A rule in an extra file whose id is already known
// replaces the earlier rule in place; new ids are added at the end.
func Load(extra ...string) (*KnowledgeBase, error) {
	rules, err := builtin()
	if err != nil {
		return nil, err
	}
	kb := &KnowledgeBase{}
	for _, r := range rules {
		kb.add(r)
	}
	for _, path := range extra {
		data, err := readLimited(path)
		if err != nil {
			return nil, err
		}
		rules, err := parse(data, path)
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			kb.add(r)
		}
	}
	return kb, nil
}

// builtin parses the embedded rules once; compiled rules are immutable and
// shared by every KnowledgeBase.
var builtin = sync.OnceValues(func() ([]*rule, error) {
	crashes := builtinCrashRules()
	cr, err := compileFile(&crashes, "embedded rules.yaml", false)
	if err != nil {
		return nil, err
	}
	hangs := builtinHangRules()
	hr, err := compileFile(&hangs, "embedded hangs.yaml", false)
	if err != nil {
		return nil, err
	}
	return append(cr, hr...), nil
})

func (kb *KnowledgeBase) add(r *rule) {
	for i, old := range kb.rules {
		if old.ID == r.ID {
			kb.rules[i] = r
			return
		}
	}
	kb.rules = append(kb.rules, r)
}

func readLimited(path string) ([]byte, error) {
	f, err := regular.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRulesFile+1))
	if err != nil {
		return nil, fmt.Errorf("read rules %s: %w", path, err)
	}
	if len(data) > maxRulesFile {
		return nil, fmt.Errorf("read rules %s: larger than %d bytes", path, maxRulesFile)
	}
	return data, nil
}

// parse decodes and validates one rules file; name is used in errors.
// Unknown keys are errors.
func parse(data []byte, name string) ([]*rule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f File
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("rules %s: empty file", name)
		}
		return nil, fmt.Errorf("rules %s: %w", name, err)
	}
	return compileFile(&f, name, true)
}

// compileFile validates and compiles the rules of a decoded file; eager
// compiles their regular expressions and templates now (see compileRule).
func compileFile(f *File, name string, eager bool) ([]*rule, error) {
	if f.Version != 1 {
		return nil, fmt.Errorf("rules %s: version %d unsupported (want version: 1)", name, f.Version)
	}
	seen := map[string]bool{}
	var out []*rule
	for i := range f.Rules {
		r, err := compileRule(f.Rules[i], eager)
		if err != nil {
			return nil, fmt.Errorf("rules %s: rule %d (%q): %w", name, i+1, f.Rules[i].ID, err)
		}
		if seen[r.ID] {
			return nil, fmt.Errorf("rules %s: duplicate rule id %q", name, r.ID)
		}
		seen[r.ID] = true
		out = append(out, r)
	}
	return out, nil
}

// rule is a compiled Rule.
type rule struct {
	Rule
	when *cond
	// fixWhen are the compiled conditions of the fixes (nil: always).
	fixWhen []*cond
	// tmpl is the explanation template, parsed on first use (nil: it does
	// not parse).
	tmpl func() *template.Template
}

var refRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*)#([0-9]+)$`)
})

// idPattern is what a rule id must match; validID checks it without a
// regexp (compiling this one cost every start of coroner 0.1-0.4 ms).
const idPattern = `^[a-z0-9][a-z0-9-]{0,63}$`

func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 || id[0] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

// compileRule validates and compiles one rule. eager compiles its
// regular expressions and explanation template now, so that a mistake in a
// rule file is an error; otherwise (the embedded rules) they are compiled
// when first needed.
func compileRule(r Rule, eager bool) (*rule, error) {
	if !validID(r.ID) {
		return nil, fmt.Errorf("id must match %s", idPattern)
	}
	if strings.TrimSpace(r.Title) == "" {
		return nil, errors.New("title is empty")
	}
	if !r.Confidence.Valid() {
		return nil, fmt.Errorf("confidence %q: want high, medium or low", r.Confidence)
	}
	if strings.TrimSpace(r.Explanation) == "" {
		return nil, errors.New("explanation is empty")
	}
	for i, f := range r.Fix {
		if !f.Kind.Valid() {
			return nil, fmt.Errorf("fix %d: kind %q: want one of %v", i+1, f.Kind, crash.FixKinds())
		}
		if f.Description == "" {
			return nil, fmt.Errorf("fix %d: description is empty", i+1)
		}
		if f.Mitigation != "" && !f.Mitigation.Valid() {
			return nil, fmt.Errorf("fix %d: mitigation %q: want one of %v", i+1, f.Mitigation, crash.Mitigations())
		}
		if f.Kind.NeedsSetting() && f.Setting == "" {
			return nil, fmt.Errorf("fix %d: kind %s needs a setting", i+1, f.Kind)
		}
	}
	fixWhen := make([]*cond, len(r.Fix))
	for i, f := range r.Fix {
		if f.When == nil {
			continue
		}
		c, err := compileCond(f.When, fmt.Sprintf("fix %d: when", i+1), eager)
		if err != nil {
			return nil, err
		}
		fixWhen[i] = c
	}
	for _, ref := range r.References {
		if eager && !refRE().MatchString(ref) && !strings.HasPrefix(ref, "https://") {
			return nil, fmt.Errorf("reference %q: want owner/repo#N or an https URL", ref)
		}
	}
	c, err := compileCond(&r.When, "when", eager)
	if err != nil {
		return nil, err
	}
	if c.empty() && !r.Fallback {
		return nil, errors.New("when has no condition (only a fallback rule may match everything)")
	}
	var tmpl func() *template.Template
	if eager {
		t, err := parseExplanation(r.ID, r.Explanation)
		if err != nil {
			return nil, err
		}
		tmpl = func() *template.Template { return t }
	} else {
		tmpl = sync.OnceValue(func() *template.Template {
			t, err := parseExplanation(r.ID, r.Explanation)
			if err != nil {
				return nil
			}
			return t
		})
	}
	return &rule{Rule: r, when: c, fixWhen: fixWhen, tmpl: tmpl}, nil
}

// parseExplanation parses the explanation template of rule id and checks
// that it runs.
func parseExplanation(id, text string) (*template.Template, error) {
	tmpl, err := template.New(id).Option("missingkey=zero").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("explanation template: %w", err)
	}
	if err := tmpl.Execute(io.Discard, templateData{INI: map[string]string{}}); err != nil {
		return nil, fmt.Errorf("explanation template: %w", err)
	}
	return tmpl, nil
}

// verConstraint is one comparison of a PHP version range.
type verConstraint struct {
	op string
	v  [3]int
}

func parseConstraints(s string) ([]verConstraint, error) {
	var out []verConstraint
	for _, tok := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' }) {
		op := ""
		for _, o := range []string{">=", "<=", "==", "!=", ">", "<", "="} {
			if strings.HasPrefix(tok, o) {
				op = o
				break
			}
		}
		if op == "" {
			return nil, fmt.Errorf("%q: want an operator (>=, <=, >, <, =, !=) before the version", tok)
		}
		v, ok := parseVersion(strings.TrimSpace(tok[len(op):]))
		if !ok {
			return nil, fmt.Errorf("%q: bad version", tok)
		}
		if op == "==" {
			op = "="
		}
		out = append(out, verConstraint{op: op, v: v})
	}
	if len(out) == 0 {
		return nil, errors.New("empty range")
	}
	return out, nil
}

// parseVersion reads "8", "8.2" or "8.2.29[-suffix]".
func parseVersion(s string) ([3]int, bool) {
	var v [3]int
	if s == "" {
		return v, false
	}
	parts := strings.SplitN(s, ".", 3)
	for i, p := range parts {
		end := 0
		for end < len(p) && p[end] >= '0' && p[end] <= '9' {
			end++
		}
		if end == 0 || end > 6 {
			return v, false
		}
		n, _ := strconv.Atoi(p[:end])
		v[i] = n
		if end < len(p) {
			break // suffix such as "-1+deb12u1"
		}
	}
	return v, true
}

func cmpVersion(a, b [3]int) int {
	for i := range a {
		if a[i] != b[i] {
			if a[i] < b[i] {
				return -1
			}
			return 1
		}
	}
	return 0
}

func (c verConstraint) ok(v [3]int) bool {
	d := cmpVersion(v, c.v)
	switch c.op {
	case ">=":
		return d >= 0
	case "<=":
		return d <= 0
	case ">":
		return d > 0
	case "<":
		return d < 0
	case "!=":
		return d != 0
	}
	return d == 0
}

func (c verConstraint) String() string {
	return fmt.Sprintf("%s%d.%d.%d", c.op, c.v[0], c.v[1], c.v[2])
}
