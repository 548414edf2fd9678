package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/source/compressed"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// diagnoseFlags are the knowledge-base options shared by commands that
// diagnose a core.
type diagnoseFlags struct {
	rules  []string
	loaded chan loadedKB
}

func (d *diagnoseFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringArrayVar(&d.rules, "rules", nil, "extra rules file (YAML, see docs/rules.md); repeatable")
}

// preload starts parsing the knowledge base in the background (it takes
// a few milliseconds, as long as a whole core analysis of a small core).
func (d *diagnoseFlags) preload() {
	d.loaded = make(chan loadedKB, 1)
	go func() {
		kb, err := diagnose.Load(d.rules...)
		d.loaded <- loadedKB{kb, err}
	}()
}

type loadedKB struct {
	kb  *diagnose.KnowledgeBase
	err error
}

// apply matches the report against the knowledge base and fingerprints it.
func (d *diagnoseFlags) apply(rep *crash.Report, ev diagnose.Evidence) error {
	if d.loaded == nil {
		d.preload()
	}
	l := <-d.loaded
	kb, err := l.kb, l.err
	if err != nil {
		return fmt.Errorf("load rules: %w", err)
	}
	rep.Diagnosis = kb.Diagnose(rep, ev)
	rep.Fingerprint = diagnose.Fingerprint(rep)
	return nil
}

// coreFlags select a core: a path (plain or compressed), an Apport .crash
// file, a systemd-coredump store entry, an ABRT directory, or --pid/--latest.
type coreFlags struct {
	pid    int
	latest bool
	dirs   []string
}

func (c *coreFlags) register(cmd *cobra.Command) {
	cmd.Flags().IntVar(&c.pid, "pid", 0, "analyse the newest core of this process id")
	cmd.Flags().BoolVar(&c.latest, "latest", false, "analyse the newest core on this host")
	cmd.Flags().StringArrayVar(&c.dirs, "dir", nil, "also look for cores in this directory (with --pid/--latest)")
}

// open resolves the identifier to a plain core file and the name to show
// for it (the file or store entry the user meant); cleanup removes
// temporary files (decompressed copies).
func (c *coreFlags) open(args []string) (string, string, func(), error) {
	id := ""
	if len(args) > 0 {
		id = args[0]
	}
	if id == "" && c.pid == 0 && !c.latest {
		return "", "", nil, errors.New("name a core (a file, .crash report, systemd-coredump entry), or use --pid / --latest")
	}
	if isPlainELF(id) {
		// A core file as it is: no store to consult, nothing to decompress.
		abs, err := filepath.Abs(id)
		if err != nil {
			abs = id
		}
		return id, abs, func() {}, nil
	}
	e, plain, cleanup, err := coredumps.Resolve(id, coredumps.ResolveOptions{
		PID: c.pid, Latest: c.latest, Progress: compressed.TerminalProgress(),
		Discover: coredumps.DiscoverOptions{Dirs: c.dirs},
	})
	if err != nil {
		return "", "", nil, err
	}
	if cleanup == nil {
		cleanup = func() {}
	}
	origin := plain
	if e != nil && e.Path != "" {
		origin = e.Path
	}
	if abs, err := filepath.Abs(origin); err == nil {
		origin = abs
	}
	return plain, origin, cleanup, nil
}

// analyseSelected resolves the core the user named, analyses it and
// diagnoses it: the common part of analyze and report.
func analyseSelected(sel *coreFlags, diag *diagnoseFlags, opts analyze.Options, args []string) (*crash.Report, error) {
	tuneGCForOneShot()
	diag.preload()
	path, origin, cleanup, err := sel.open(args)
	if err != nil {
		return nil, err
	}
	defer cleanup()
	rep, err := analyze.Core(path, opts)
	if err != nil {
		return nil, err
	}
	rep.Process.CorePath = origin
	if err := diag.apply(rep, diagnose.Evidence{}); err != nil {
		return nil, err
	}
	return rep, nil
}

// isPlainELF reports whether path is a regular file starting with the ELF
// magic (an uncompressed core).
func isPlainELF(path string) bool {
	if path == "" {
		return false
	}
	f, err := os.Open(path)
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

func init() {
	var opts analyze.Options
	var asJSON, regs, timings, allThreads bool
	var diag diagnoseFlags
	var sel coreFlags
	cmd := &cobra.Command{
		Use:   "analyze [CORE]",
		Short: "Post-mortem of a core file: fault, native and PHP stacks, request, INI, diagnosis",
		Long: `analyze reads a core file of any Linux x86-64 process (php-fpm, php, nginx, ...) and reports
the signal, the faulting instruction explained in words, every thread's stack (CFI, frame
pointers, stack scanning; trust per frame; repeats folded) and, for PHP, the PHP stack, the
request and the INI at crash time, then the known crash family it belongs to and the fix.
No gdb and no debug symbols are needed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rep, err := analyseSelected(&sel, &diag, opts, args)
			if err != nil {
				return err
			}
			if asJSON {
				return render.JSON(cmd.OutOrStdout(), rep)
			}
			to := render.TextOptions{Registers: regs, Timings: timings}
			if allThreads {
				to.OtherThreadFrames = -1
			}
			return render.Text(cmd.OutOrStdout(), rep, to)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&asJSON, "json", false, "print the report as JSON (schema: docs/json-schema.md)")
	f.StringVar(&opts.Sysroot, "sysroot", "", "directory holding the crashed host's files (for cores analysed on another machine)")
	f.StringVar(&opts.Exe, "exe", "", "path of the crashed executable, when it is not where the core says")
	f.BoolVar(&opts.NoHostDebugFiles, "no-host-debug", false, "with --sysroot, use no debug file of this host: a report that depends only on the sysroot")
	f.BoolVar(&opts.ShowSecrets, "show-secrets", false, "do not redact cookies and credentials found in the core")
	f.BoolVar(&regs, "registers", true, "show the crashed thread's registers")
	f.BoolVar(&timings, "timings", false, "show how long each analysis stage took")
	f.BoolVar(&allThreads, "all-frames", false, "show every frame of every thread")
	f.IntVar(&opts.MaxFrames, "max-frames", 0, "stop unwinding a thread after this many frames (default 1,000,000)")
	diag.register(cmd)
	sel.register(cmd)
	rootCmd.AddCommand(cmd)
}
