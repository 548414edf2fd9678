package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// recursionReport is a report of a recursion: 2,000 native frames in a
// 2-frame cycle under a PHP frame, a second thread, a fix with a
// mitigation profile and a secret-free request.
func recursionReport() *crash.Report {
	php := 1
	var frames []crash.Frame
	for i := 0; i < 2000; i++ {
		f := crash.Frame{Index: i, PC: crash.Addr(0x1000 + i%2), Module: "php-fpm8.2", ModuleOffset: crash.Addr(0x100 + i%2),
			Function: []string{"zend_call_function", "execute_ex"}[i%2], FunctionOffset: 0x10, Trust: crash.TrustCFI}
		if i%2 == 1 {
			f.PHPFrame = &php
		}
		frames = append(frames, f)
	}
	frames[0] = crash.Frame{Index: 0, PC: 0x7f00, Module: "opcache.so", ModuleOffset: 0xc8fec, FunctionOffset: 0x3c, FunctionSource: "eh-frame", Trust: crash.TrustContext,
		Inlined: []crash.VirtualFrame{{Function: "zend_jit_helper", File: "jit.c", Line: 7}}}
	other := make([]crash.Frame, 20)
	for i := range other {
		other[i] = crash.Frame{Index: i, Function: "epoll_wait", Module: "libc.so.6"}
	}
	return &crash.Report{
		Signal: crash.Signal{Number: 11, Name: "SIGSEGV"},
		Fault:  crash.Fault{Kind: crash.FaultStackOverflow, Instruction: "mov dword ptr [rsp+0x18], 0x0", Explanation: "Stack overflow."},
		Threads: []crash.Thread{{TID: 1, Crashed: true, Frames: frames, Cycles: []crash.Cycle{{Start: 1, End: 1998, Length: 2, Repeats: 999}}},
			{TID: 2, Frames: other}},
		PHP: &crash.PHP{Version: "8.2.36", Frames: []crash.PHPFrame{{Function: "attributes", Class: "Shortcodes", CallType: "::", Args: []string{`" name=\"sarah\""`}},
			{Function: "render", Class: "Shortcodes", CallType: "::", Args: []string{`"[x]"`}, File: "/srv/app.php", Line: 18}},
			INI:     map[string]string{"pcre.jit": "1", "memory_limit": "-1"},
			Request: &crash.Request{Method: "GET", URI: "/teachers/", Script: "/srv/index.php"}},
		Diagnosis: []crash.Diagnosis{{Rule: "pcre-jit-stack-overflow", Title: "PCRE JIT", Confidence: "high",
			Fix: []crash.Fix{{Kind: crash.FixINI, Setting: "pcre.jit", Value: "0", Description: "Turn it off.", Mitigation: "no-pcre-jit"},
				{Description: "Upgrade.", Mitigation: "no-jit", SAPI: "apache2handler"}, {Description: "Think."}}}},
	}
}

// TestViewFoldsAndBounds: the view folds the cycle as the text report
// does, keeps 8 frames of another thread, annotates frames with the PHP
// function they run, and with MaxLines bounds each stack, counting the
// frames left out.
func TestViewFoldsAndBounds(t *testing.T) {
	r := recursionReport()
	v := NewView(r, ViewOptions{})
	crashed, other := v.Threads[0], v.Threads[1]
	// #0 (with its inlined function), #1, #2, the cycle, #1999
	if n := len(crashed.Lines); n != 5 || crashed.Lines[3].Cycle == nil || crashed.Lines[3].Repeats != "999" || crashed.Lines[4].Native.Index != 1999 {
		t.Fatalf("crashed thread: %d lines %+v", n, crashed.Lines)
	}
	if l := crashed.Lines[0].Native; l.Name != "sub_c8fb0+0x3c" || !l.Unnamed || len(l.Inlined) != 1 {
		t.Errorf("frame #0: %+v", l)
	}
	if l := crashed.Lines[1].Native; l.PHP != "Shortcodes::render() /srv/app.php:18" || crashed.Lines[2].Native.PHP != "" {
		t.Errorf("frame #1 runs %q", l.PHP)
	}
	if len(other.Lines) != 8 || other.More != 12 || other.Title != "THREAD 2 (20 frames)" {
		t.Errorf("other thread: %d lines, %d more, %q", len(other.Lines), other.More, other.Title)
	}
	if f := v.Fault; f == nil || f.Where != "in zend_jit_helper (inlined) at sub_c8fb0+0x3c" {
		t.Errorf("fault: %+v", f)
	}
	fixes := v.Diagnosis[0].Fixes
	if fixes[0].Command != "coroner fix --mitigate=no-pcre-jit --apply" || fixes[1].Command != "coroner fix --mitigate=no-jit --sapi apache2handler --apply" ||
		fixes[2].Command != "" || fixes[0].Text != FixText(r.Diagnosis[0].Fix[0], false) {
		t.Errorf("fixes: %+v", fixes)
	}
	if p := v.PHP; p.INI[0].K != "memory_limit" || p.Request.Script != "/srv/index.php" || p.Stacks[0].Lines[0].PHP.ArgList() != `" name=\"sarah\""` {
		t.Errorf("PHP: %+v", p)
	}

	bounded := NewView(r, ViewOptions{MaxLines: 3})
	if s := bounded.Threads[0]; len(s.Lines) != 3 || s.More != 2000-2 {
		t.Errorf("MaxLines 3: %d lines, %d more", len(s.Lines), s.More)
	}

	// The text report is the view printed: each stack line is there.
	var b bytes.Buffer
	if err := Text(&b, r, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"#1..#1998: cycle of 2 frames x 999", "  ... 12 more frames", "<- php: Shortcodes::render() /srv/app.php:18",
		"(coroner fix --mitigate=no-pcre-jit --apply)", `Shortcodes::attributes(" name=\"sarah\"")`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestReplayCommands: the view (and so the text report and the crash page)
// has the `coroner replay` commands only for a dead PHP-FPM worker whose
// core kept the request, naming the core (quoted for the shell when it
// needs it), or the core given instead of the report's.
func TestReplayCommands(t *testing.T) {
	fpm := func(edit func(r *crash.Report)) *crash.Report {
		r := &crash.Report{Process: crash.Process{CorePath: "/var/crash/core.4512", Args: "php-fpm: pool www"},
			PHP: &crash.PHP{SAPI: "fpm-fcgi", Request: &crash.Request{Method: "GET", URI: "/search.php?q=x"}}}
		if edit != nil {
			edit(r)
		}
		return r
	}
	for _, c := range []struct {
		name string
		r    *crash.Report
		core string
		run  string // "" for none
	}{
		{name: "fpm", r: fpm(nil), run: "coroner replay /var/crash/core.4512"},
		{name: "stored core", r: fpm(nil), core: "/var/lib/coroner/cores/core.4512", run: "coroner replay /var/lib/coroner/cores/core.4512"},
		{name: "quoted", r: fpm(func(r *crash.Report) { r.Process.CorePath = "/var/crash/it's a core" }), run: `coroner replay '/var/crash/it'\''s a core'`},
		{name: "no SAPI, pool title", r: fpm(func(r *crash.Report) { r.PHP.SAPI = "" }), run: "coroner replay /var/crash/core.4512"},
		{name: "script only", r: fpm(func(r *crash.Report) { r.PHP.Request = &crash.Request{Script: "/srv/index.php"} }), run: "coroner replay /var/crash/core.4512"},
		{name: "no SAPI, no pool", r: fpm(func(r *crash.Report) { r.PHP.SAPI, r.Process.Args = "", "php /srv/x.php" })},
		{name: "apache", r: fpm(func(r *crash.Report) { r.PHP.SAPI = "apache2handler" })},
		{name: "cli", r: fpm(func(r *crash.Report) { r.PHP.SAPI = "cli" })},
		{name: "no request", r: fpm(func(r *crash.Report) { r.PHP.Request = nil })},
		{name: "empty request", r: fpm(func(r *crash.Report) { r.PHP.Request = &crash.Request{Method: "GET"} })},
		{name: "no core path", r: fpm(func(r *crash.Report) { r.Process.CorePath = "" })},
		{name: "snapshot", r: fpm(func(r *crash.Report) { r.Live = &crash.Live{} })},
		{name: "not PHP", r: fpm(func(r *crash.Report) { r.PHP = nil })},
	} {
		v := NewView(c.r, ViewOptions{CorePath: c.core})
		var b bytes.Buffer
		if err := Text(&b, c.r, TextOptions{}); err != nil {
			t.Fatal(err)
		}
		if c.run == "" {
			if v.Replay != nil || strings.Contains(b.String(), "coroner replay") {
				t.Errorf("%s: replay commands %+v in a report that has nothing to replay:\n%s", c.name, v.Replay, b.String())
			}
			continue
		}
		if v.Replay == nil || v.Replay.Run != c.run || v.Replay.DryRun != c.run+" --dry-run" {
			t.Errorf("%s: replay commands %+v, want %q (and with --dry-run)", c.name, v.Replay, c.run)
			continue
		}
		if c.core == "" && !strings.Contains(b.String(), "REPRODUCE\n  see the request:  "+c.run+" --dry-run\n  re-send it:       "+c.run+"\n") {
			t.Errorf("%s: the text report lacks the commands:\n%s", c.name, b.String())
		}
	}
}
