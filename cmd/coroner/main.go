// Command coroner finds out why a PHP-FPM worker (or any Linux x86-64 process) died.
//
// This package only wires the command line: every subcommand lives in its own
// file and calls into the packages that do the work.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"sync"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/source/compressed"
	// First of coroner's packages to initialise: it readies the memory
	// of a short run before the others allocate theirs.
	"github.com/coroner-dev/coroner/internal/warmstart"
)

// rootCmd is the top-level command; subcommands register themselves in init
// functions of their own files so that each one stays in one place.
var rootCmd = &cobra.Command{
	Use:   "coroner",
	Short: "Post-mortems for crashed PHP-FPM workers",
	Long: `coroner finds out why a PHP-FPM worker died: from a core dump of a stripped
binary (no gdb, no debug symbols), from nginx / PHP-FPM / kernel logs, and from the
host's configuration. It names the crashing native and PHP frames, the request that
killed the worker, the effective INI at crash time, a known-crash diagnosis and the fix.`,
	SilenceUsage:  true,
	SilenceErrors: true,
}

// tuneGCForOneShot makes the garbage collector run only when the heap
// nears a limit, for commands that analyse a core and exit: the concurrent
// collector otherwise takes a core of a two-core host away from the analysis
// (measured: 33-37 ms -> 28 ms on a php-fpm core), and the memory is given
// back at exit anyway. GOGC or GOMEMLIMIT in the environment take precedence.
func tuneGCForOneShot() {
	removeTempsOnSignal()
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	debug.SetMemoryLimit(160 << 20)
	debug.SetGCPercent(-1)
	warmstart.GrowHeap()
}

// removeTempsOnSignal makes an interrupted one-shot command remove the
// decompressed copies of compressed cores it made (gigabytes in /tmp)
// before it exits.
var removeTempsOnSignal = sync.OnceFunc(func() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-c
		compressed.RemoveTemps()
		code := 130
		if s, ok := sig.(syscall.Signal); ok {
			code = 128 + int(s)
		}
		os.Exit(code)
	}()
})

// cpuProfile and memProfile are the --cpuprofile and --memprofile flags
// (developer aids for performance work).
var cpuProfile, memProfile string

func init() {
	rootCmd.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	_ = rootCmd.PersistentFlags().MarkHidden("cpuprofile")
	rootCmd.PersistentFlags().StringVar(&memProfile, "memprofile", "", "write an allocation profile (every allocation) to this file")
	_ = rootCmd.PersistentFlags().MarkHidden("memprofile")
	rootCmd.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		if err := checkFlags(cmd); err != nil {
			return err
		}
		if memProfile != "" {
			runtime.MemProfileRate = 1
		}
		if cpuProfile == "" {
			return nil
		}
		f, err := os.Create(cpuProfile)
		if err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		return pprof.StartCPUProfile(f)
	}
}

func main() {
	forwardToService(os.Args[1:])
	buildCommands(os.Args[1:])
	// The last guard: no control character reaches the terminal from
	// any command, whatever a renderer forgot (package sanitize).
	rootCmd.SetOut(sanitize.Writer(os.Stdout))
	rootCmd.SetErr(sanitize.Writer(os.Stderr))
	markUsageErrors(rootCmd)
	cmd, err := rootCmd.ExecuteC()
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if memProfile != "" {
		writeMemProfile(memProfile)
	}
	if err != nil {
		if errors.Is(err, engine.ErrNoCore) {
			err = &usageError{err}
		}
		fmt.Fprintln(os.Stderr, "coroner:", sanitize.Text(err.Error()))
		var u *usageError
		if errors.As(err, &u) && cmd != nil {
			use := cmd.UseLine()
			if cmd == rootCmd {
				use = "coroner COMMAND [flags]"
			}
			fmt.Fprintf(os.Stderr, "Usage: %s\nRun '%s --help' for more.\n", use, cmd.CommandPath())
		}
		os.Exit(exitCode(err))
	}
}

// writeMemProfile writes the allocation profile of the run to path.
func writeMemProfile(path string) {
	runtime.GC() // the profile shows the allocations up to the last collection
	f, err := os.Create(path)
	if err == nil {
		err = pprof.Lookup("allocs").WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coroner: memory profile:", err)
	}
}

// exitCodeError lets a subcommand choose the process exit status.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

// exitCode is the exit status of a failed command (exitcodes.go).
func exitCode(err error) int {
	var u *usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	if e, ok := err.(*exitCodeError); ok {
		return e.code
	}
	return exitError
}
