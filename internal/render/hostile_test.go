package render

import (
	"bytes"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// hostileReport has escape sequences, newlines and markup in every string
// a core can set.
func hostileReport() *crash.Report {
	evil := "\x1b[2J\x1b]0;pwned\x07\nFAULT: forged\r<script>alert(1)</script>```\u009b\u202e"
	return &crash.Report{
		Schema:  crash.SchemaVersion,
		Process: crash.Process{PID: 1, Comm: evil, Args: evil, Executable: "/srv/" + evil, CorePath: "/var/crash/" + evil},
		Signal:  crash.Signal{Number: 11, Name: "SIGSEGV"},
		Fault:   crash.Fault{Kind: crash.FaultNullDeref, Instruction: evil, Explanation: evil, Details: []string{evil}},
		Threads: []crash.Thread{{TID: 1, Crashed: true, Frames: []crash.Frame{{Function: evil, Module: "/lib/" + evil, File: evil}},
			Warnings: []string{evil}}},
		Modules: []crash.Module{{Path: evil, Missing: true}},
		PHP: &crash.PHP{Version: evil, SAPI: evil, INI: map[string]string{"opcache.jit": evil, evil: "1"},
			Frames:   []crash.PHPFrame{{Function: evil, Class: evil, File: evil, Args: []string{evil}}},
			Request:  &crash.Request{Method: evil, URI: "/" + evil, Query: evil, Script: evil, Host: evil, UserAgent: evil, Params: map[string]string{evil: evil}},
			Warnings: []string{evil}},
		Warnings: []string{evil},
	}
}

// TestHostileText: the text, PHP and Markdown renderers emit no control
// character but newlines, no line starting with a forged "FAULT:", and
// (Markdown) no markup from the report outside code.
func TestHostileText(t *testing.T) {
	r := hostileReport()
	var text, php, md bytes.Buffer
	if err := Text(&text, r, TextOptions{OtherThreadFrames: -1}); err != nil {
		t.Fatal(err)
	}
	if err := PHPText(&php, r.PHP); err != nil {
		t.Fatal(err)
	}
	if err := Markdown(&md, r); err != nil {
		t.Fatal(err)
	}
	for name, out := range map[string]string{"text": text.String(), "php": php.String(), "markdown": md.String()} {
		for _, c := range out {
			if c < 0x20 && c != '\n' || c == 0x7f || c >= 0x80 && c <= 0x9f || c == '\u202e' {
				t.Errorf("%s: raw control character %U", name, c)
				break
			}
		}
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(l), "FAULT: forged") {
				t.Errorf("%s: forged line %q", name, l)
			}
		}
	}
	if out := OutsideCode(md.String()); strings.Contains(out, "<script>") || strings.Contains(out, "<img") {
		t.Errorf("markdown emits markup from the report outside code:\n%s", out)
	}
	if r.Process.Comm[0] != 0x1b {
		t.Error("rendering changed the report")
	}
}
