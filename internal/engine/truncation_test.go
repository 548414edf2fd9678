package engine

import (
	"context"
	"debug/elf"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// cut writes the first n bytes of core to a new file, as a size limit
// (RLIMIT_CORE, a full disk, systemd-coredump's ProcessSizeMax) leaves it.
func cut(t *testing.T, core string, n int64) string {
	t.Helper()
	in, err := os.Open(core)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(t.TempDir(), "core.cut")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.CopyN(out, in, n); err != nil {
		t.Fatal(err)
	}
	return p
}

// layout returns where a core's notes start and where its stack segment
// (the highest writable PT_LOAD below the vsyscall page) starts and ends,
// as file offsets.
func layout(t *testing.T, core string) (notes, stackStart, stackEnd int64) {
	t.Helper()
	f, err := elf.Open(core)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var top uint64
	for _, p := range f.Progs {
		switch {
		case p.Type == elf.PT_NOTE:
			notes = int64(p.Off)
		case p.Type == elf.PT_LOAD && p.Flags&elf.PF_W != 0 && p.Vaddr < 0xffffffffff600000 && p.Vaddr > top && p.Filesz > 0:
			top = p.Vaddr
			stackStart, stackEnd = int64(p.Off), int64(p.Off+p.Filesz)
		}
	}
	return notes, stackStart, stackEnd
}

// tokens are the fingerprint frames of one kind ("n " native, "p " PHP).
func tokens(frames []string, kind string) []string {
	var out []string
	for _, f := range frames {
		if strings.HasPrefix(f, kind) {
			out = append(out, f)
		}
	}
	return out
}

func truncationWarnings(rep *crash.Report) (n int, perSegment bool) {
	for _, w := range rep.Warnings {
		if strings.Contains(w, "truncated") {
			n++
		}
		if strings.Contains(w, "starts past the end") {
			perSegment = true
		}
	}
	return n, perSegment
}

// TestTruncatedCores cuts the lab's FFI crash (a NULL passed to
// pcre2_jit_match_8 through FFI) at several sizes: before its notes it is
// an error, never "pid 0 died of signal 0"; when the stack is lost the
// report says once what is unknown, no rule that needs the missing frames
// fires (not pcre-jit-fault, the diagnosis of a 48 MB cut before), no
// diagnosis is sure, and the fingerprint is made of what was read; with
// the stack whole the FFI diagnosis stands, one level less sure. The
// recursion crash cut in the middle of its 8 MB stack is still a recursion
// through preg_replace_callback, from what was read, and keeps its
// fingerprint (its PHP frames were read whole).
func TestTruncatedCores(t *testing.T) {
	l := labtest.Get(t)
	e := New(Options{})
	ctx := context.Background()
	ffi := l.Scenarios["ffi-null-code"].Core
	full, err := e.Run(ctx, Request{Core: Core{Path: ffi}})
	if err != nil {
		t.Fatal(err)
	}
	if full.Process.Truncated || len(full.Diagnosis) == 0 || full.Diagnosis[0].Rule != "ffi-call-crash" {
		t.Fatalf("the whole core: truncated %v, diagnosis %v", full.Process.Truncated, full.Diagnosis)
	}
	st, err := os.Stat(ffi)
	if err != nil {
		t.Fatal(err)
	}
	size := st.Size()
	notes, stackStart, stackEnd := layout(t, ffi)
	if stackEnd >= size {
		t.Fatalf("stack segment ends at %d, the core at %d: nothing after it to cut", stackEnd, size)
	}

	// Cut before or inside the notes: nothing says who died of what.
	for _, n := range []int64{notes / 2, notes + 16} {
		rep, err := e.Run(ctx, Request{Core: Core{Path: cut(t, ffi, n)}})
		if err == nil {
			t.Errorf("cut at %d bytes (notes at %d): a report (pid %d, signal %q), want an error", n, notes, rep.Process.PID, rep.Signal.Name)
		}
	}

	// Cut anywhere before the stack's end: the stack is lost.
	for _, frac := range []float64{0.1, 0.25, 0.5, 0.9} {
		n := int64(float64(stackStart) * frac / 0.9)
		rep, err := e.Run(ctx, Request{Core: Core{Path: cut(t, ffi, n)}})
		if err != nil {
			t.Errorf("cut at %d bytes: %v", n, err)
			continue
		}
		tr := rep.Process.Truncation
		if !rep.Process.Truncated || tr == nil || !tr.StackIncomplete || !strings.Contains(tr.Summary, "frames past #0 pcre2_jit_match_8 are unknown") {
			t.Errorf("cut at %d bytes: truncation %+v", n, tr)
		}
		if rep.Signal.Name != "SIGSEGV" || rep.Process.PID != l.Scenarios["ffi-null-code"].PID {
			t.Errorf("cut at %d bytes: pid %d signal %q", n, rep.Process.PID, rep.Signal.Name)
		}
		if k, perSeg := truncationWarnings(rep); k != 1 || perSeg {
			t.Errorf("cut at %d bytes: %d truncation warnings (one per segment: %v): %q", n, k, perSeg, rep.Warnings)
		}
		for _, d := range rep.Diagnosis {
			if d.Confidence == crash.ConfidenceHigh || d.Rule == "pcre-jit-fault" {
				t.Errorf("cut at %d bytes: %s (%s) from the frames that were read", n, d.Rule, d.Confidence)
			}
		}
		// The fingerprint is made of what was read: its native and PHP
		// frames begin those of the whole crash.
		part, whole := diagnose.FingerprintFrames(rep), diagnose.FingerprintFrames(full)
		for _, kind := range []string{"n ", "p "} {
			if p, w := tokens(part, kind), tokens(whole, kind); len(p) > len(w) || strings.Join(p, "|") != strings.Join(w[:len(p)], "|") {
				t.Errorf("cut at %d bytes: fingerprint frames %q, the whole core's %q", n, p, w)
			}
		}
		if rep.Fingerprint == "" || rep.Fingerprint == full.Fingerprint {
			t.Errorf("cut at %d bytes: fingerprint %q (the whole core's is %s)", n, rep.Fingerprint, full.Fingerprint)
		}
	}

	// Only the vsyscall page lost: the stack is whole.
	rep, err := e.Run(ctx, Request{Core: Core{Path: cut(t, ffi, stackEnd)}})
	if err != nil {
		t.Fatal(err)
	}
	if tr := rep.Process.Truncation; tr == nil || tr.StackIncomplete || len(rep.Diagnosis) == 0 ||
		rep.Diagnosis[0].Rule != "ffi-call-crash" || rep.Diagnosis[0].Confidence != crash.ConfidenceMedium {
		t.Errorf("stack whole: truncation %+v, diagnosis %v", tr, rep.Diagnosis)
	}

	// The recursion crash, cut in the middle of its stack.
	rec := l.Scenarios["shortcode-recursion"].Core
	whole, err := e.Run(ctx, Request{Core: Core{Path: rec}})
	if err != nil {
		t.Fatal(err)
	}
	_, rs, re := layout(t, rec)
	rep, err = e.Run(ctx, Request{Core: Core{Path: cut(t, rec, rs+(re-rs)/2)}})
	if err != nil {
		t.Fatal(err)
	}
	tr := rep.Process.Truncation
	if tr == nil || !tr.StackIncomplete || tr.LastFrame < 1000 {
		t.Errorf("recursion cut in its stack: truncation %+v", tr)
	}
	if len(rep.Diagnosis) == 0 || rep.Diagnosis[0].Rule != "callback-recursion-stack-overflow" || rep.Diagnosis[0].Confidence != crash.ConfidenceMedium {
		t.Errorf("recursion cut in its stack: diagnosis %v", rep.Diagnosis)
	}
	if rep.Fingerprint != whole.Fingerprint {
		t.Errorf("recursion cut in its stack: fingerprint %s, whole %s (both from the PHP frames)", rep.Fingerprint, whole.Fingerprint)
	}
}
