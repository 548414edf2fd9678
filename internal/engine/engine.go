// Package engine is the one way from a core to a diagnosed report: resolve
// the core that was named (a core file, a compressed core, an Apport
// report, a systemd-coredump or ABRT entry, a pid), analyse it (package
// analyze and the stages under it), diagnose it against the knowledge base
// with the evidence the caller has, and fingerprint it. `coroner analyze`,
// `php`, `report`, `doctor` and `watch` all go through Engine.Run, so each
// shows the same report.
//
// The stages live in the packages below this one and never import it; this
// package only strings them together, like pprof's driver.
package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/budget"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/source/compressed"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// Options configure an Engine.
type Options struct {
	// Analyze are the analysis options (sysroot, executable, frame limit,
	// secrets, PHP stage).
	Analyze analyze.Options
	// Rules are extra rules files for the knowledge base.
	Rules []string
	// Discover says where to look for cores named by pid, by --latest or
	// by a store entry name.
	Discover coredumps.DiscoverOptions
	// Progress receives a progress bar while a compressed core is
	// decompressed (nil for none).
	Progress io.Writer
	// MaxCoreSize bounds the decompressed size of a compressed core
	// (0: compressed.DefaultMaxBytes); a larger one is cut there and read
	// as truncated.
	MaxCoreSize int64
}

// Engine runs the pipeline. It is safe for concurrent use; the knowledge
// base is loaded once.
type Engine struct {
	opts Options
	kb   func() (*diagnose.KnowledgeBase, error)
}

// New returns an Engine. Its knowledge base is loaded on first use; Run
// starts loading it in the background while the core is resolved and
// analysed (parsing the rules takes about as long as analysing a small
// core).
func New(opts Options) *Engine {
	e := &Engine{opts: opts}
	e.kb = sync.OnceValues(func() (*diagnose.KnowledgeBase, error) {
		kb, err := diagnose.Load(opts.Rules...)
		if err != nil {
			return nil, fmt.Errorf("load rules: %w", err)
		}
		return kb, nil
	})
	return e
}

// KnowledgeBase waits for the knowledge base and returns it.
func (e *Engine) KnowledgeBase() (*diagnose.KnowledgeBase, error) { return e.kb() }

// Core names the core to analyse: Path, else the newest core of PID, else
// (Latest) the newest core of the host.
type Core struct {
	// Path is a core file (plain or compressed), an Apport .crash report,
	// an ABRT problem directory or a store entry name.
	Path   string
	PID    int
	Latest bool
}

func (c Core) String() string {
	switch {
	case c.Path != "":
		return c.Path
	case c.PID != 0:
		return fmt.Sprintf("the newest core of pid %d", c.PID)
	}
	return "the newest core"
}

// Request is one run of the pipeline.
type Request struct {
	Core Core
	// Evidence, when set, returns what is known about the crash besides the
	// core (logs, configuration), given the analysed report (its pid, time,
	// request). It is called once, before the diagnosis.
	Evidence func(*crash.Report) diagnose.Evidence
	// NoDiagnosis stops after the analysis (no diagnosis, no fingerprint).
	NoDiagnosis bool
}

// ErrNoCore is returned when a Request names no core.
var ErrNoCore = errors.New("name a core (a file, .crash report, systemd-coredump entry), or use --pid / --latest")

// Run resolves, analyses, diagnoses and fingerprints the core the request
// names. The report's Process.CorePath is the file or entry that was named
// (not a temporary decompressed copy). An error means there was no core to
// analyse; problems of the analysis are warnings in the report. Unless
// Analyze.ShowSecrets, credentials in the report are redacted (package
// redact), so that every output and the store see them redacted.
func (e *Engine) Run(ctx context.Context, req Request) (*crash.Report, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if !req.NoDiagnosis {
		go e.kb() // the result is kept for Diagnose
	}
	aopts := e.opts.Analyze
	b := budget.Start(aopts.Timeout, aopts.MaxMemory)
	defer b.Stop()
	aopts.Budget = b
	var warnings []string
	plain, origin, ent, cleanup, err := e.resolve(req.Core, compressed.Options{
		MaxBytes: e.opts.MaxCoreSize, Stop: b.Err,
		Warnf: func(format string, args ...any) { warnings = append(warnings, fmt.Sprintf(format, args...)) },
	})
	if err != nil {
		return nil, err
	}
	defer cleanup()
	aopts.Name = origin
	aopts.Roots = append(append([]string(nil), aopts.Roots...), rootHints(ent)...)
	rep, err := analyze.Core(plain, aopts)
	if err != nil {
		return nil, err
	}
	rep.Warnings = append(append([]string{}, warnings...), rep.Warnings...) // [] in JSON when none
	rep.Process.CorePath = origin
	if !req.NoDiagnosis {
		var ev diagnose.Evidence
		if req.Evidence != nil {
			ev = req.Evidence(rep)
		}
		if err := e.Diagnose(rep, ev); err != nil {
			return nil, err
		}
	}
	if !aopts.ShowSecrets {
		// After the diagnosis, which sees the request as it was.
		redact.InPlace(rep)
	}
	return rep, nil
}

// Diagnose matches rep (and the evidence) against the knowledge base and
// fingerprints it: the last two stages of Run, for reports that were read
// elsewhere or made from logs alone.
func (e *Engine) Diagnose(rep *crash.Report, ev diagnose.Evidence) error {
	kb, err := e.kb()
	if err != nil {
		return err
	}
	if rep.PHP != nil && rep.PHP.Recursion == nil {
		guarded(rep, "PHP recursion", func() { rep.PHP.Recursion = diagnose.PHPRecursion(rep.PHP) })
	}
	guarded(rep, "diagnosis", func() { rep.Diagnosis = kb.Diagnose(rep, ev) })
	guarded(rep, "fingerprint", func() { rep.Fingerprint = diagnose.Fingerprint(rep) })
	return nil
}

// guarded runs one stage of the diagnosis; a bug in it (a panic) costs that
// stage, noted in the report's warnings with where it happened, and not the
// report: the watcher keeps recording crashes and the CLI still prints the
// stack, the request and the INI.
func guarded(rep *crash.Report, stage string, fn func()) {
	defer func() {
		if v := recover(); v != nil {
			stack := debug.Stack()
			if len(stack) > 2000 {
				stack = stack[:2000]
			}
			rep.Warnings = append(rep.Warnings, fmt.Sprintf("%s failed: internal error: %v (a bug in coroner: please report it with this trace)\n%s", stage, v, stack))
		}
	}()
	fn()
}

// Resolve turns the core the request names into a plain core file to open,
// and the name to show for it (the absolute path of the file or entry that
// was named). cleanup removes temporary files (decompressed copies); it is
// never nil when err is nil.
func (e *Engine) Resolve(c Core) (plain, origin string, cleanup func(), err error) {
	plain, origin, _, cleanup, err = e.resolve(c, compressed.Options{MaxBytes: e.opts.MaxCoreSize})
	return plain, origin, cleanup, err
}

func (e *Engine) resolve(c Core, dopts compressed.Options) (plain, origin string, ent *coredumps.Entry, cleanup func(), err error) {
	if c.Path == "" && c.PID == 0 && !c.Latest {
		return "", "", nil, nil, ErrNoCore
	}
	if isPlainELF(c.Path) {
		// A core file as it is: no store to consult, nothing to decompress.
		return c.Path, absolute(c.Path), nil, func() {}, nil
	}
	ent, plain, cleanup, err = coredumps.Resolve(c.Path, coredumps.ResolveOptions{
		PID: c.PID, Latest: c.Latest, Progress: e.opts.Progress, Discover: e.opts.Discover, Decompress: dopts,
	})
	if err != nil {
		return "", "", nil, nil, err
	}
	if cleanup == nil {
		cleanup = func() {}
	}
	origin = plain
	switch {
	case ent != nil && ent.Path != "":
		origin = ent.Path
	case ent != nil && ent.Journal != "":
		return plain, ent.Journal, ent, cleanup, nil // a name, not a file
	}
	return plain, absolute(origin), ent, cleanup, nil
}

// rootHints are the roots a core store recorded for the crashed process:
// systemd-coredump's COREDUMP_ROOT, the root directory of a process in a
// chroot, as this host names it ("/" and paths of another mount namespace
// are no hint: they are not directories of this host).
func rootHints(ent *coredumps.Entry) []string {
	if ent == nil {
		return nil
	}
	root := ent.Meta["journal.COREDUMP_ROOT"]
	if root == "" || root == "/" || !filepath.IsAbs(root) {
		return nil
	}
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		return nil
	}
	return []string{filepath.Clean(root)}
}

func absolute(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		return abs
	}
	return p
}

// isPlainELF reports whether path is a regular file starting with the ELF
// magic (an uncompressed core).
func isPlainELF(path string) bool {
	if path == "" {
		return false
	}
	f, err := regular.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	if _, err := io.ReadFull(f, magic[:]); err != nil {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode().IsRegular() && string(magic[:]) == "\x7fELF"
}
