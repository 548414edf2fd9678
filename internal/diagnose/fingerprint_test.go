package diagnose

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// perturb returns a copy of r as another occurrence of the same crash would
// look: other pid, other ASLR base for every module, other stack addresses,
// other function offsets of unnamed frames, another URL and core path.
func perturb(t *testing.T, r *crash.Report, delta crash.Addr) *crash.Report {
	t.Helper()
	data, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var c crash.Report
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	c.Process.PID += 1000
	c.Process.CorePath = "/var/lib/systemd/coredump/core.php-fpm8\\x2e2.33.x.15502.zst"
	c.Signal.Address += delta
	c.Fault.Address += delta
	c.Fault.PC += delta
	for i := range c.Threads {
		c.Threads[i].TID += 1000
		for j := range c.Threads[i].Frames {
			f := &c.Threads[i].Frames[j]
			f.PC += delta
			f.SP += delta * 2
			if f.Function == "" {
				f.FunctionOffset += 0x10
			}
		}
	}
	for i := range c.Modules {
		c.Modules[i].Start += delta
		c.Modules[i].End += delta
		c.Modules[i].Bias += delta
		c.Modules[i].Path = strings.Replace(c.Modules[i].Path, "libpcre2-8.so.0.11.2", "libpcre2-8.so.0.11.3", 1)
	}
	if c.PHP != nil {
		if c.PHP.Request != nil {
			c.PHP.Request.URI = "/other/page?session=xyz"
			c.PHP.Request.RemoteAddr = "198.51.100.9"
		}
		for i := range c.PHP.Frames {
			c.PHP.Frames[i].ExecuteData += delta
			c.PHP.Frames[i].Line += 3
		}
	}
	return &c
}

func TestFingerprintStable(t *testing.T) {
	for _, tc := range loadCases(t) {
		fp := Fingerprint(tc.report)
		if len(tc.report.Threads) == 0 && tc.report.PHP == nil {
			if fp != "" {
				t.Errorf("%s: fingerprint %q for a report without frames", tc.name, fp)
			}
			continue
		}
		if len(fp) != 16 || strings.Trim(fp, "0123456789abcdef") != "" {
			t.Errorf("%s: fingerprint %q is not 16 hex digits", tc.name, fp)
		}
		if got := Fingerprint(perturb(t, tc.report, 0x3a5000)); got != fp {
			t.Errorf("%s: fingerprint changed with addresses/pid/URL: %s -> %s\n%v\n%v", tc.name, fp, got,
				FingerprintFrames(tc.report), FingerprintFrames(perturb(t, tc.report, 0x3a5000)))
		}
	}
}

func TestFingerprintDiffers(t *testing.T) {
	seen := map[string]string{}
	for _, tc := range loadCases(t) {
		fp := Fingerprint(tc.report)
		if fp == "" {
			continue
		}
		if other, ok := seen[fp]; ok {
			t.Errorf("%s and %s share fingerprint %s: %v", tc.name, other, fp, FingerprintFrames(tc.report))
		}
		seen[fp] = tc.name
	}
	if len(seen) < 15 {
		t.Errorf("only %d distinct fingerprints", len(seen))
	}
}

func findCase(t *testing.T, name string) testCase {
	t.Helper()
	for _, tc := range loadCases(t) {
		if tc.name == name {
			return tc
		}
	}
	t.Fatalf("no case %s", name)
	return testCase{}
}

// recursionReport builds the native + PHP stack of a recursion that ran out
// of stack after reps levels, with the innermost level cut at phase (the
// stack runs out at a different frame each time), with or without the
// unwinder's cycle information.
func recursionReport(t *testing.T, reps, phase int, withCycles bool) *crash.Report {
	t.Helper()
	base := findCase(t, "callback-recursion-stack-overflow").report
	th := base.CrashedThread()
	c := th.Cycles[0]
	body := th.Frames[c.Start : c.Start+c.Length]
	leaf := th.Frames[:c.Start]
	tail := th.Frames[c.End+1:]
	var frames []crash.Frame
	frames = append(frames, leaf...)
	frames = append(frames, body[phase:]...)
	for i := 0; i < reps; i++ {
		frames = append(frames, body...)
	}
	frames = append(frames, tail...)
	for i := range frames {
		frames[i].Index = i
	}
	r := *base
	nt := *th
	nt.Frames = frames
	nt.Cycles = nil
	if withCycles {
		// an unwinder reports the cycle from the first full repetition
		start := len(leaf) + len(body) - phase
		if phase == 0 {
			start = len(leaf)
		}
		nt.Cycles = []crash.Cycle{{Start: start, Length: len(body), Repeats: reps, End: start + reps*len(body) - 1}}
	}
	r.Threads = []crash.Thread{nt}
	php := *base.PHP
	pc := php.Cycles[0]
	pbody := php.Frames[pc.Start : pc.Start+pc.Length]
	var pf []crash.PHPFrame
	pf = append(pf, pbody[phase%len(pbody):]...)
	for i := 0; i < reps; i++ {
		pf = append(pf, pbody...)
	}
	pf = append(pf, php.Frames[pc.End+1:]...)
	php.Frames = pf
	php.Cycles = nil
	r.PHP = &php
	return &r
}

func TestFingerprintRecursion(t *testing.T) {
	want := Fingerprint(findCase(t, "callback-recursion-stack-overflow").report)
	for _, withCycles := range []bool{true, false} {
		for _, reps := range []int{3, 17, 200} {
			for phase := 0; phase < 6; phase++ {
				r := recursionReport(t, reps, phase, withCycles)
				if got := Fingerprint(r); got != want {
					t.Errorf("reps %d phase %d cycles %v: %s, want %s\n%v", reps, phase, withCycles, got, want, FingerprintFrames(r))
				}
			}
		}
	}
	frames := FingerprintFrames(findCase(t, "callback-recursion-stack-overflow").report)
	if len(frames) != 3 || !strings.HasPrefix(frames[0], "p cycle(") {
		t.Errorf("fingerprint frames %v: want the PHP recursion cycle first, then its callers", frames)
	}
}

func TestFingerprintDropsInternals(t *testing.T) {
	tc := findCase(t, "heap-corruption")
	got := FingerprintFrames(tc.report)
	for _, f := range got {
		for _, bad := range []string{"raise", "abort", "malloc", "pthread_kill", "libc_message"} {
			if strings.Contains(f, bad) {
				t.Errorf("fingerprint frames %v keep %s", got, bad)
			}
		}
	}
	if len(got) == 0 || got[0] != "n xmlStrndup" {
		t.Errorf("fingerprint frames %v: want xmlStrndup first", got)
	}
}

func TestNormalModule(t *testing.T) {
	cases := map[string]string{
		"/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2": "libpcre2-8",
		"php-fpm8.2":                          "php-fpm",
		"/usr/sbin/php-fpm8.3":                "php-fpm",
		"/usr/lib/x86_64-linux-gnu/libc.so.6": "libc",
		"/usr/lib/php/20220829/opcache.so":    "opcache",
		"[php-jit]":                           "[php-jit]",
		"/usr/lib/libphp8.so (deleted)":       "libphp",
		"/usr/local/bin/php":                  "php",
	}
	for in, want := range cases {
		if got := normalModule(in); got != want {
			t.Errorf("normalModule(%q) = %q, want %q", in, got, want)
		}
	}
	fns := map[string]string{
		"zend_hash_find.cold":          "zend_hash_find",
		"php_pcre_replace_impl.isra.0": "php_pcre_replace_impl",
		"memcpy@@GLIBC_2.14":           "memcpy",
		"foo.part.0.constprop.1":       "foo",
	}
	for in, want := range fns {
		if got := normalFunction(in); got != want {
			t.Errorf("normalFunction(%q) = %q, want %q", in, got, want)
		}
	}
}

func BenchmarkFingerprintDeep(b *testing.B) {
	tc := loadCases(b)
	var r *crash.Report
	for _, c := range tc {
		if c.name == "callback-recursion-stack-overflow" {
			r = c.report
		}
	}
	th := r.CrashedThread()
	c := th.Cycles[0]
	body := th.Frames[c.Start : c.Start+c.Length]
	frames := append([]crash.Frame(nil), th.Frames[:c.Start]...)
	for len(frames) < 40000 {
		frames = append(frames, body...)
	}
	frames = append(frames, th.Frames[c.End+1:]...)
	deep := *r
	deep.Threads = []crash.Thread{{Crashed: true, Frames: frames}}
	deep.PHP = nil // measure the native path: 40,000 frames, cycles detected
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Fingerprint(&deep)
	}
}

// FuzzReport feeds arbitrary report JSON (reports are read back from files
// and crash stores) to Diagnose and Fingerprint, which must not panic on
// inconsistent cycles, indexes or missing parts.
func FuzzReport(f *testing.F) {
	for _, name := range []string{"pcre-jit-fault", "signal-sent-by-process", "oom-killer", "jit-apm-extension"} {
		data, err := os.ReadFile(filepath.Join("testdata", "cases", name+".json"))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"threads":[{"crashed":true,"frames":[{"function":"a"},{"function":"b"},{"function":"a"}],"cycles":[{"start":1,"end":9,"length":-3,"repeats":2},{"start":0,"end":1,"length":5}]}],"php":{"frames":[{"function":"x"}],"cycles":[{"start":-1,"end":0,"length":1}]},"fault":{"kind":"stack-overflow"}}`))
	kb, err := Load()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r crash.Report
		if json.Unmarshal(data, &r) != nil {
			return
		}
		fp := Fingerprint(&r)
		if fp != Fingerprint(&r) {
			t.Fatal("fingerprint not deterministic")
		}
		kb.Diagnose(&r, Evidence{Kernel: &KernelFault{Kind: "segfault", Address: 0x20}, RepeatedCrashes: 3})
	})
}
