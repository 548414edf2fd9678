// Command coroner finds out why a PHP-FPM worker (or any Linux x86-64 process) died.
//
// This package only wires the command line: every subcommand lives in its own
// file and calls into the packages that do the work.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/spf13/cobra"
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

// cpuProfile is the --cpuprofile flag (a developer aid for performance work).
var cpuProfile string

func init() {
	rootCmd.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile to this file")
	_ = rootCmd.PersistentFlags().MarkHidden("cpuprofile")
	rootCmd.PersistentPreRunE = func(*cobra.Command, []string) error {
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
	err := rootCmd.Execute()
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "coroner:", err)
		os.Exit(exitCode(err))
	}
}

// exitCodeError lets a subcommand choose the process exit status.
type exitCodeError struct {
	code int
	err  error
}

func (e *exitCodeError) Error() string { return e.err.Error() }
func (e *exitCodeError) Unwrap() error { return e.err }

func exitCode(err error) int {
	if e, ok := err.(*exitCodeError); ok {
		return e.code
	}
	return 1
}
