package diagnose

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// testCase is one fixture of testdata/cases: NAME.json is a crash.Report,
// NAME.evidence.json the optional Evidence; NAME is the id of the rule it
// must match, optionally followed by "--variant".
type testCase struct {
	name, rule string
	report     *crash.Report
	ev         Evidence
}

func loadCases(t testing.TB) []testCase {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "cases", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var out []testCase
	for _, f := range files {
		if strings.HasSuffix(f, ".evidence.json") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(f), ".json")
		tc := testCase{name: name, rule: name}
		if i := strings.Index(name, "--"); i >= 0 {
			tc.rule = name[:i]
		}
		tc.report = readJSON[crash.Report](t, f)
		ef := strings.TrimSuffix(f, ".json") + ".evidence.json"
		if _, err := os.Stat(ef); err == nil {
			tc.ev = *readJSON[Evidence](t, ef)
		}
		out = append(out, tc)
	}
	if len(out) == 0 {
		t.Fatal("no cases in testdata/cases")
	}
	return out
}

func readJSON[T any](t testing.TB, path string) *T {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := new(T)
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return v
}

func mustLoad(t testing.TB) *KnowledgeBase {
	t.Helper()
	kb, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return kb
}

func ruleIDs(ds []crash.Diagnosis) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.Rule)
	}
	return ids
}

func TestEmbeddedRules(t *testing.T) {
	kb := mustLoad(t)
	rules := kb.Rules()
	if len(rules) < 12 {
		t.Errorf("%d rules, want at least 12", len(rules))
	}
	fallbacks := map[bool]int{} // one for crashes, one for live processes (hangs)
	for _, r := range rules {
		if r.Fallback {
			fallbacks[r.Live]++
			if r.Confidence != "low" {
				t.Errorf("fallback rule %s has confidence %s, want low", r.ID, r.Confidence)
			}
		}
	}
	if fallbacks[false] != 1 || fallbacks[true] != 1 {
		t.Errorf("fallback rules: %d for crashes, %d for live processes; want 1 each", fallbacks[false], fallbacks[true])
	}
	// Every explanation renders without facts (a report from logs alone).
	for _, r := range kb.rules {
		tmpl := r.tmpl()
		if tmpl == nil {
			t.Errorf("rule %s: explanation template does not parse", r.ID)
			continue
		}
		var b strings.Builder
		if err := tmpl.Execute(&b, templateData{}); err != nil || strings.Contains(b.String(), "<no value>") {
			t.Errorf("rule %s: explanation without facts: %q, %v", r.ID, b.String(), err)
		}
	}
}

// TestRuleCases checks that every rule has a case it matches first, and that
// no rule other than the fallback matches another rule's case.
func TestRuleCases(t *testing.T) {
	kb := mustLoad(t)
	covered := map[string]bool{}
	for _, tc := range loadCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			ds := kb.Diagnose(tc.report, tc.ev)
			if len(ds) == 0 {
				t.Fatalf("no diagnosis, want %s", tc.rule)
			}
			if ds[0].Rule != tc.rule {
				t.Fatalf("diagnoses %v, want %s first", ruleIDs(ds), tc.rule)
			}
			if len(ds) != 1 {
				t.Errorf("diagnoses %v: rules other than %s also match", ruleIDs(ds), tc.rule)
			}
			covered[tc.rule] = true
			d := ds[0]
			if strings.Contains(d.Explanation, "<no value>") || strings.Contains(d.Explanation, "{{") ||
				strings.Contains(d.Explanation, "()()") || strings.TrimSpace(d.Explanation) == "" {
				t.Errorf("explanation badly rendered: %q", d.Explanation)
			}
			if len(d.Matched) == 0 && tc.rule != "unknown-crash" && tc.rule != "unknown-hang" {
				t.Errorf("no matched conditions reported")
			}
			if len(d.Fix) == 0 {
				t.Errorf("no fix")
			}
			for _, ref := range d.References {
				if !strings.HasPrefix(ref, "https://") {
					t.Errorf("reference %q is not a URL", ref)
				}
			}
			t.Logf("%s: %s\n  matched: %s", d.Rule, d.Explanation, strings.Join(d.Matched, "; "))
		})
	}
	for _, r := range kb.Rules() {
		if !covered[r.ID] {
			t.Errorf("rule %s has no passing case in testdata/cases", r.ID)
		}
	}
}

// TestExplanationFacts checks that explanations carry the crash's own facts.
func TestExplanationFacts(t *testing.T) {
	kb := mustLoad(t)
	want := map[string][]string{
		"pcre-jit-fault":                    {"SIGSEGV", "pcre2_jit_match_8 in libpcre2-8.so.0.11.2", "preg_match() at /var/www/app/src/Router.php:88"},
		"callback-recursion-stack-overflow": {"{closure}() at shortcodes.php:31 calls do_shortcode() again", "repeated 40 times", "through preg_replace_callback()", "PHP 8.2.29", "/teachers/profile-sarah/"},
		"signal-sent-by-process":            {"sent SIGSEGV to itself", "posix_kill()"},
		"jit-apm-extension":                 {"ddtrace", "tracing"},
		"opcache-shm-corruption":            {"7 workers"},
		"stale-libraries":                   {"libpcre2-8.so.0.11.2 (deleted)"},
		"heap-corruption":                   {"malloc(): corrupted top size"},
		"mbstring-bug":                      {"encoding_translation is on here"},
		"unknown-crash":                     {"SIGFPE", "arithmetic", "stats.php:8"},
	}
	for _, tc := range loadCases(t) {
		words, ok := want[tc.name]
		if !ok {
			continue
		}
		ds := kb.Diagnose(tc.report, tc.ev)
		if len(ds) == 0 {
			t.Errorf("%s: no diagnosis", tc.name)
			continue
		}
		for _, w := range words {
			if !strings.Contains(ds[0].Explanation, w) {
				t.Errorf("%s: explanation lacks %q: %s", tc.name, w, ds[0].Explanation)
			}
		}
	}
}

// TestExplanationsDoNotRepeatTheFault: every renderer shows the fault's
// explanation on its own; a diagnosis that repeats it says everything
// twice.
func TestExplanationsDoNotRepeatTheFault(t *testing.T) {
	kb := mustLoad(t)
	n := 0
	for _, tc := range loadCases(t) {
		fe := tc.report.Fault.Explanation
		if len(fe) < 20 {
			continue
		}
		n++
		for _, d := range kb.Diagnose(tc.report, tc.ev) {
			if strings.Contains(d.Explanation, fe[:min(60, len(fe))]) {
				t.Errorf("%s: %s repeats the fault text: %s", tc.name, d.Rule, d.Explanation)
			}
		}
	}
	if n < 5 {
		t.Errorf("only %d cases with a fault explanation", n)
	}
}

func TestDiagnoseNilAndEmpty(t *testing.T) {
	kb := mustLoad(t)
	ds := kb.Diagnose(nil, Evidence{})
	if len(ds) != 1 || ds[0].Rule != "unknown-crash" {
		t.Fatalf("nil report: %v, want the fallback only", ruleIDs(ds))
	}
	if strings.Contains(ds[0].Explanation, "<no value>") {
		t.Errorf("explanation: %q", ds[0].Explanation)
	}
}

func TestLoadExtra(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "local.yaml")
	err := os.WriteFile(good, []byte(`version: 1
rules:
  - id: local-redis
    title: Our patched phpredis crashes on pipelines
    confidence: high
    when:
      native: [{module: '^redis\.so$', top: 3}]
      php: [{function: '^pipeline$', class: '^Redis$'}]
    explanation: Known local bug in {{.Frame}}; see ticket OPS-1234.
    fix:
      - description: Deploy phpredis 6.1.0
        kind: upgrade
  - id: unknown-crash
    title: Replaced fallback
    confidence: low
    fallback: true
    when: {}
    explanation: Local fallback for {{.Signal}}.
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := Load(good)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	base := mustLoad(t)
	if got, want := len(kb.Rules()), len(base.Rules())+1; got != want {
		t.Errorf("%d rules, want %d (one added, one replaced)", got, want)
	}
	var redis testCase
	for _, tc := range loadCases(t) {
		if tc.name == "extension-crash" {
			redis = tc
		}
	}
	redis.report.PHP.Frames[0].Function = "pipeline"
	ds := kb.Diagnose(redis.report, redis.ev)
	if len(ds) < 2 || ds[0].Rule != "local-redis" || ds[1].Rule != "extension-crash" {
		t.Errorf("diagnoses %v, want local-redis then extension-crash", ruleIDs(ds))
	}
	if len(ds) > 0 && ds[0].Explanation != "Known local bug in an unnamed function in redis.so; see ticket OPS-1234." {
		t.Errorf("explanation %q", ds[0].Explanation)
	}
	ds = kb.Diagnose(nil, Evidence{ExitSignal: 11})
	if len(ds) != 1 || ds[0].Title != "Replaced fallback" || ds[0].Explanation != "Local fallback for SIGSEGV." {
		t.Errorf("fallback: %+v", ds)
	}
}

func TestLoadErrors(t *testing.T) {
	head := "version: 1\nrules:\n  - id: x\n    title: X\n    confidence: high\n    explanation: e\n"
	cases := map[string]string{
		"unknown key":       head + "    when: {signal: [SIGSEGV]}\n    colour: red\n",
		"unknown cond key":  head + "    when: {signals: [SIGSEGV]}\n",
		"bad regexp":        head + "    when: {native: [{function: '('}]}\n",
		"bad signal":        head + "    when: {signal: [SIGFOO]}\n",
		"bad fault":         head + "    when: {fault: [nul]}\n",
		"bad version":       head + "    when: {php_version: '8.3'}\n",
		"bad jit":           head + "    when: {jit: [fast]}\n",
		"empty when":        head + "    when: {}\n",
		"empty any":         head + "    when: {any: [{}]}\n",
		"bad mitigation":    head + "    when: {signal: [SIGSEGV]}\n    fix: [{description: d, kind: ini, setting: a, mitigation: off}]\n",
		"bad fix kind":      head + "    when: {signal: [SIGSEGV]}\n    fix: [{description: d, kind: magic}]\n",
		"ini without value": head + "    when: {signal: [SIGSEGV]}\n    fix: [{description: d, kind: ini}]\n",
		"bad template":      head + "    when: {signal: [SIGSEGV]}\n    explanation: '{{.Nope}}'\n",
		"bad reference":     head + "    when: {signal: [SIGSEGV]}\n    references: [php-src 123]\n",
		"bad id":            "version: 1\nrules:\n  - id: X Y\n    title: X\n    confidence: high\n    explanation: e\n    when: {signal: [SIGSEGV]}\n",
		"bad confidence":    "version: 1\nrules:\n  - id: x\n    title: X\n    confidence: sure\n    explanation: e\n    when: {signal: [SIGSEGV]}\n",
		"duplicate id":      head + "    when: {signal: [SIGSEGV]}\n" + strings.TrimPrefix(head, "version: 1\nrules:\n") + "    when: {signal: [SIGBUS]}\n",
		"no version":        "rules: []\n",
		"empty":             "",
		"not yaml":          "\t:::\n",
	}
	dir := t.TempDir()
	for name, text := range cases {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".yaml")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(p); err == nil {
			t.Errorf("%s: Load succeeded, want an error", name)
		} else if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestVersionConstraints(t *testing.T) {
	cases := []struct {
		rng, v string
		want   bool
	}{
		{"<8.3", "8.2.29", true},
		{"<8.3", "8.3.0", false},
		{">=8.0 <8.3", "7.4.33", false},
		{">=8.0, <8.3", "8.1.2-1ubuntu2.18", true},
		{">8.2.10", "8.2.10", false},
		{"=8.2", "8.2.0", true},
		{"!=8.2.1", "8.2.1", false},
	}
	for _, c := range cases {
		cs, err := parseConstraints(c.rng)
		if err != nil {
			t.Fatalf("%q: %v", c.rng, err)
		}
		v, ok := parseVersion(c.v)
		if !ok {
			t.Fatalf("parseVersion(%q) failed", c.v)
		}
		got := true
		for _, vc := range cs {
			got = got && vc.ok(v)
		}
		if got != c.want {
			t.Errorf("%s in %q = %v, want %v", c.v, c.rng, got, c.want)
		}
	}
	for _, bad := range []string{"", "8.2", ">=", "<x.y", ">=8.2.1234567"} {
		if _, err := parseConstraints(bad); err == nil {
			t.Errorf("parseConstraints(%q) succeeded", bad)
		}
	}
}

func TestJITMode(t *testing.T) {
	v82, _ := parseVersion("8.2.29")
	v84, _ := parseVersion("8.4.1")
	cases := []struct {
		php  *crash.PHP
		ini  map[string]string
		ver  [3]int
		want string
	}{
		{nil, map[string]string{"opcache.jit": "tracing", "opcache.jit_buffer_size": "64M"}, v82, "tracing"},
		{nil, map[string]string{"opcache.jit": "1254", "opcache.jit_buffer_size": "64M"}, v82, "tracing"},
		{nil, map[string]string{"opcache.jit": "1205", "opcache.jit_buffer_size": "128M"}, v82, "function"},
		{nil, map[string]string{"opcache.jit": "tracing"}, v82, "off"},
		{nil, map[string]string{"opcache.jit": "tracing"}, v84, "tracing"},
		{nil, map[string]string{"opcache.jit": "tracing", "opcache.jit_buffer_size": "0"}, v84, "off"},
		{nil, map[string]string{"opcache.jit": "tracing", "opcache.enable": "0", "opcache.jit_buffer_size": "64M"}, v82, "off"},
		{nil, map[string]string{"opcache.jit": "disable", "opcache.jit_buffer_size": "64M"}, v84, "off"},
		{nil, map[string]string{}, v82, ""},
		{&crash.PHP{JIT: &crash.JIT{Mode: "tracing", CRTO: "1254", Active: false}}, nil, v82, "off"},
		{&crash.PHP{JIT: &crash.JIT{Mode: "function", CRTO: "1205", Active: true}}, nil, v82, "function"},
	}
	for i, c := range cases {
		if got := jitMode(c.php, c.ini, c.ver, true); got != c.want {
			t.Errorf("case %d: jitMode = %q, want %q", i, got, c.want)
		}
	}
}

func TestKernelFaultKind(t *testing.T) {
	cases := []struct {
		k    KernelFault
		want crash.FaultKind
	}{
		{KernelFault{Kind: "segfault", Address: 0x20, Error: 4}, "null-dereference"},
		{KernelFault{Kind: "segfault", Address: 0x7ffdbe824ff8, SP: 0x7ffdbe825000, Error: 6}, "stack-overflow"},
		{KernelFault{Kind: "segfault", Address: 0x7f00deadbeef, SP: 0x7ffdbe825000, Error: 4}, "bad-pointer"},
		{KernelFault{Kind: "segfault", Address: 0x55d0c0a41234, Error: 7}, "write-read-only"},
		{KernelFault{Kind: "segfault", Address: 0x7f0000001000, Error: 0x14}, "execute-unmapped"},
		{KernelFault{Kind: "segfault", Address: 0x7f0000001000, Error: 0x15}, "execute-non-executable"},
		{KernelFault{Kind: "trap"}, "illegal-instruction"},
	}
	for _, c := range cases {
		if got := c.k.faultKind(); got != c.want {
			t.Errorf("%+v: %s, want %s", c.k, got, c.want)
		}
	}
}

// TestRulesDocumented checks that docs/rules.md lists every built-in rule.
func TestRulesDocumented(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "rules.md"))
	if err != nil {
		t.Fatal(err)
	}
	var missing []string
	for _, r := range mustLoad(t).Rules() {
		if !strings.Contains(string(doc), "`"+r.ID+"`") {
			missing = append(missing, r.ID)
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("docs/rules.md does not list: %s", strings.Join(missing, ", "))
	}
}

func FuzzParse(f *testing.F) {
	// The embedded file is too large a seed (minimising its mutations takes
	// the fuzzer's whole budget); its first rules are a good one.
	first := embeddedRules
	if i := bytes.Index(first, []byte("\n  - id: pcre-jit-stack-overflow")); i > 0 {
		first = first[:i]
	}
	f.Add(first)
	f.Add([]byte("version: 1\nrules:\n  - id: a\n    title: t\n    confidence: low\n    explanation: '{{.Signal}}'\n    when: {any: [{signal: [11]}, {none: [{fault: [abort]}]}]}\n"))
	f.Add([]byte("version: 1\nrules: [{id: b, title: t, confidence: high, explanation: x, when: {php_version: '>=8 <9', ini: {pcre.jit: '1'}}}]"))
	f.Add([]byte("&a [*a, *a]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := parse(data, "fuzz")
		if err != nil {
			return
		}
		kb := &KnowledgeBase{}
		for _, r := range rules {
			kb.add(r)
		}
		kb.Diagnose(&crash.Report{Signal: crash.Signal{Number: 11}}, Evidence{Messages: []string{"x"}})
	})
}

// TestPHPRulesNeedPHP: a crash in libffi of a process that is not PHP
// (Python's ctypes, say) is not diagnosed as a PHP FFI crash.
func TestPHPRulesNeedPHP(t *testing.T) {
	kb, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	r := &crash.Report{
		Signal:  crash.Signal{Number: 11, Name: "SIGSEGV", Code: 1, CodeName: "SEGV_MAPERR"},
		Fault:   crash.Fault{Kind: crash.FaultNullDeref},
		Modules: []crash.Module{{Path: "/usr/bin/python3.11", Kind: "exe"}, {Path: "/usr/lib/x86_64-linux-gnu/libffi.so.8.1.2"}},
		Threads: []crash.Thread{{Crashed: true, Frames: []crash.Frame{
			{Function: "__strlen_evex", Module: "libc.so.6"},
			{Module: "libffi.so.8.1.2"},
			{Function: "ffi_call", Module: "libffi.so.8.1.2"},
			{Function: "_ctypes_callproc", Module: "_ctypes.cpython-311-x86_64-linux-gnu.so"},
		}}},
	}
	for _, d := range kb.Diagnose(r, Evidence{}) {
		if d.Rule == "ffi-call-crash" {
			t.Fatalf("a Python ctypes crash was diagnosed as %s", d.Rule)
		}
	}
	r.Modules[0].Path = "/usr/sbin/php-fpm8.2"
	if d := kb.Diagnose(r, Evidence{}); len(d) == 0 || d[0].Rule != "ffi-call-crash" {
		t.Fatalf("the same crash in php-fpm: %v", d)
	}
}

// TestFixesForTheSAPI: the same crash in PHP-FPM and in Apache's mod_php
// gets the fixes of its own server: the tracing JIT's mitigation is
// applied to mod_php's ini files (`coroner fix --sapi apache2handler`) and
// Apache, not php-fpm, is restarted; a death that only Apache's log
// records (no core) is Apache's too.
func TestFixesForTheSAPI(t *testing.T) {
	kb, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	fpm := readJSON[crash.Report](t, filepath.Join("testdata", "cases", "tracing-jit-crash.json"))
	apache := readJSON[crash.Report](t, filepath.Join("testdata", "cases", "tracing-jit-crash.json"))
	apache.PHP.SAPI = "apache2handler"
	apache.Process.Executable, apache.Process.Args = "/usr/sbin/apache2", "/usr/sbin/apache2 -k start"
	texts := func(r *crash.Report, ev Evidence) (string, []crash.Fix) {
		ds := kb.Diagnose(r, ev)
		if len(ds) == 0 || ds[0].Rule != "tracing-jit-crash" {
			t.Fatalf("diagnoses %v, want tracing-jit-crash", ds)
		}
		var b strings.Builder
		for _, f := range ds[0].Fix {
			b.WriteString(f.Description + "\n")
		}
		return ds[0].Explanation + "\n" + b.String(), ds[0].Fix
	}
	ft, ff := texts(fpm, Evidence{})
	at, af := texts(apache, Evidence{})
	if !strings.Contains(ft, "restart php-fpm") || strings.Contains(ft, "Apache") {
		t.Errorf("FPM's fixes:\n%s", ft)
	}
	if strings.Contains(at, "php-fpm") || !strings.Contains(at, "restart Apache") {
		t.Errorf("Apache's fixes name php-fpm:\n%s", at)
	}
	for _, f := range ff {
		if f.SAPI != "" {
			t.Errorf("FPM fix %+v names a SAPI", f)
		}
	}
	n := 0
	for _, f := range af {
		if f.Mitigation != "" {
			n++
			if f.SAPI != "apache2handler" {
				t.Errorf("Apache's mitigation %+v is not for mod_php", f)
			}
		}
	}
	if n == 0 {
		t.Error("no mitigation among Apache's fixes")
	}
	// no core: the logs say it was an Apache child
	fpm.PHP.SAPI = ""
	if at, _ := texts(fpm, Evidence{SAPI: "apache2handler"}); strings.Contains(at, "php-fpm") {
		t.Errorf("an Apache child's death (from the logs) gets FPM's fixes:\n%s", at)
	}
}
