package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/units"
)

// Isolation runs each analysis in a child process (`coroner analyze
// --json --isolated` of the same binary), so that a core crafted to
// exhaust memory or to crash the reader takes down the child, not the
// service: the child has its budget (Timeout, MaxMemory) and ends with a
// partial report when it is used up; if it dies instead (out of memory,
// killed by the kernel or by the hard deadline), the core counts a
// failure, and after MaxFailures it is quarantined.
type Isolation struct {
	// Executable is the coroner binary (os.Executable() of `coroner watch`).
	Executable string
	// Timeout and MaxMemory are the child's analysis budget (defaults:
	// budget.DefaultTimeout, budget.DefaultMaxMemory). The child is killed
	// HardGrace after Timeout if it has not ended by itself.
	Timeout   time.Duration
	MaxMemory int64
	HardGrace time.Duration
	// TempDir is where each child gets a directory of its own for
	// decompressed cores, removed when it ends, however it ends ("": the
	// system's).
	TempDir string
	// MaxFailures is how many times a core may make the child die before
	// it is quarantined (default 2).
	MaxFailures int
	// QuarantineFile keeps the failures and the quarantined cores across
	// restarts ("": in memory only).
	QuarantineFile string
}

// maxChildReport bounds the JSON report a child may write: the isolated
// child trims its stacks (TrimForStore), so a larger one is hostile.
const maxChildReport = 64 << 20

// errChildFailed marks an analysis whose child died, was killed or wrote
// something that is not a report: the core counts a failure.
var errChildFailed = errors.New("analysis process failed")

func (iso *Isolation) defaults() {
	if iso.Timeout <= 0 {
		iso.Timeout = 2 * time.Minute
	}
	if iso.MaxMemory <= 0 {
		iso.MaxMemory = 256 << 20
	}
	if iso.HardGrace <= 0 {
		iso.HardGrace = 30 * time.Second
	}
	if iso.MaxFailures <= 0 {
		iso.MaxFailures = 2
	}
}

// analyseIsolated runs `coroner analyze --json --isolated` on path and
// returns the report (not diagnosed, secrets not redacted: the watcher
// diagnoses it with what the logs say, then redacts it). An error wrapping
// errChildFailed means the child did not end by itself with a report or an
// error message.
func (w *Watcher) analyseIsolated(ctx context.Context, path string) (*crash.Report, error) {
	iso := w.cfg.Isolate
	tmp, err := os.MkdirTemp(iso.TempDir, "coroner-analysis-")
	if err != nil {
		return nil, fmt.Errorf("temporary directory for the analysis: %w", err)
	}
	defer os.RemoveAll(tmp) // decompressed copies, whatever became of the child
	args := []string{"analyze", "--json", "--isolated", "--no-diagnosis", "--show-secrets",
		"--timeout", iso.Timeout.String(), "--max-memory", strconv.FormatInt(iso.MaxMemory, 10)}
	if a := w.cfg.Analyze; a.Sysroot != "" {
		args = append(args, "--sysroot", a.Sysroot)
	}
	if a := w.cfg.Analyze; a.Exe != "" {
		args = append(args, "--exe", a.Exe)
	}
	for _, r := range w.cfg.Analyze.Roots {
		args = append(args, "--roots", r)
	}
	for _, d := range w.cfg.Analyze.DebugDirs {
		args = append(args, "--debug-dir", d)
	}
	if a := w.cfg.Analyze; a.Container != "" {
		args = append(args, "--container", a.Container)
	}
	if w.cfg.Analyze.NoAutoRoot {
		args = append(args, "--no-auto-root")
	}
	if a := w.cfg.Analyze; a.MaxFrames > 0 {
		args = append(args, "--max-frames", strconv.Itoa(a.MaxFrames))
	}
	if j := w.cfg.Stores.Journal; j != "" && isJournalName(path) {
		args = append(args, "--journal", j)
	}
	args = append(args, "--", path)
	ctx, cancel := context.WithTimeout(ctx, iso.Timeout+iso.HardGrace)
	defer cancel()
	cmd := exec.CommandContext(ctx, iso.Executable, args...)
	cmd.Env = append(os.Environ(), "TMPDIR="+tmp, "GOTRACEBACK=single")
	// The child dies with the watcher, and is killed outright at the hard
	// deadline.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	cmd.WaitDelay = 5 * time.Second
	out := &boundedBuffer{max: maxChildReport}
	errOut := &headTail{max: 4 << 10}
	cmd.Stdout, cmd.Stderr = out, errOut
	start := time.Now()
	runErr := cmd.Run()
	msg := strings.TrimSpace(errOut.String())
	switch {
	case out.over:
		return nil, fmt.Errorf("%w: its report is larger than %s", errChildFailed, units.Bytes(maxChildReport))
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("%w: killed after %v (analysis budget %v)", errChildFailed, time.Since(start).Round(time.Second), iso.Timeout)
	case runErr != nil:
		var ee *exec.ExitError
		if errors.As(runErr, &ee) && ee.ExitCode() == 1 && strings.HasPrefix(msg, "coroner:") {
			// The analysis ended by itself with an error (not a core...).
			return nil, errors.New(strings.TrimSpace(strings.TrimPrefix(lastLine(msg), "coroner:")))
		}
		return nil, fmt.Errorf("%w: %v: %s", errChildFailed, runErr, why(msg))
	}
	var rep crash.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		return nil, fmt.Errorf("%w: its output is not a report: %v", errChildFailed, err)
	}
	return &rep, nil
}

// boundedBuffer keeps at most max bytes and notes that more came.
type boundedBuffer struct {
	bytes.Buffer
	max  int
	over bool
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > b.max {
		b.over = true
		return 0, errors.New("output too large")
	}
	return b.Buffer.Write(p)
}

// headTail keeps the first and the last max bytes written to it: a Go
// runtime failure says what it is first, then prints stacks.
type headTail struct {
	head, tail []byte
	max        int
	dropped    bool
}

func (h *headTail) Write(p []byte) (int, error) {
	n := len(p)
	if room := h.max - len(h.head); room > 0 {
		k := min(room, len(p))
		h.head = append(h.head, p[:k]...)
		p = p[k:]
	}
	h.tail = append(h.tail, p...)
	if len(h.tail) > h.max {
		h.tail = append(h.tail[:0], h.tail[len(h.tail)-h.max:]...)
		h.dropped = true
	}
	return n, nil
}

func (h *headTail) String() string {
	if h.dropped {
		return string(h.head) + "\n...\n" + string(h.tail)
	}
	return string(h.head) + string(h.tail)
}

func lastLine(s string) string {
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// why picks what a dead child said about its death: the Go runtime's
// "fatal error" or "panic" line, else its last line.
func why(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "fatal error:") || strings.HasPrefix(l, "panic:") || strings.HasPrefix(l, "runtime: out of memory") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lastLine(stderr))
}

// otherThreadFrames bounds the frames kept of the threads that did not
// crash, in the report an isolated analysis hands to the watcher (the
// dashboard shows the crashed thread; `coroner analyze` has them all).
const otherThreadFrames = 64

// TrimForStore bounds a report as the watcher stores it, before it leaves
// an isolated analysis process: the stacks as stored (innermost and
// outermost frames of deep ones), and at most 64 frames of each thread that
// did not crash, so that what the child writes stays small whatever the
// core held.
func TrimForStore(rep *crash.Report) {
	trimReport(rep)
	cut := 0
	for i := range rep.Threads {
		t := &rep.Threads[i]
		if !t.Crashed && len(t.Frames) > otherThreadFrames {
			t.Frames = t.Frames[:otherThreadFrames]
			t.Cycles = []crash.Cycle{}
			cut++
		}
	}
	if cut > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("stored the first %d frames of %d threads that did not crash", otherThreadFrames, cut))
	}
}
