//go:build noservice

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/crash"
)

// trimForStore is nil: analyses for the watcher run in coroner-service.
var trimForStore func(*crash.Report)

// serviceExecutable is the file name of the service build.
const serviceExecutable = "coroner-service"

// serviceLibDir is where the packages install the service build.
const serviceLibDir = "/usr/lib/coroner"

// serviceCommands are the commands that run in coroner-service.
var serviceCommands = []string{"watch", "serve"}

func init() {
	for _, c := range []struct{ name, short string }{{"watch", watchShort}, {"serve", serveShort}} {
		rootCmd.AddCommand(&cobra.Command{
			Use:   c.name,
			Short: c.short,
			Long: fmt.Sprintf("%s runs in %s, the service build of coroner, found next to this executable or in %s.",
				c.name, serviceExecutable, serviceLibDir),
			DisableFlagParsing: true,
			// Reached when flags come before the command (coroner
			// --cpuprofile F watch): the whole command line goes on.
			RunE: func(*cobra.Command, []string) error {
				return execService(os.Args[1:])
			},
		})
	}
}

// forwardToService executes coroner-service in this process when the
// command line is one of its commands, their help or their completions,
// or `man` (so that the pages of watch and serve list their options). It
// returns when there is nothing to forward, or for `man` when no
// coroner-service is installed (the pages are then written without the
// service's options); a service command without coroner-service exits 1.
func forwardToService(args []string) {
	if len(args) == 0 {
		return
	}
	service := func(i int) bool { return len(args) > i && slices.Contains(serviceCommands, args[i]) }
	switch {
	case service(0),
		args[0] == "help" && service(1),
		(args[0] == cobra.ShellCompRequestCmd || args[0] == cobra.ShellCompNoDescRequestCmd) && service(1):
	case args[0] == "man":
		if _, err := findService(); err != nil {
			return
		}
	default:
		return
	}
	if err := execService(args); err != nil {
		fmt.Fprintln(os.Stderr, "coroner:", err)
		os.Exit(exitError)
	}
}

// execService replaces this process with coroner-service, given args.
func execService(args []string) error {
	path, err := findService()
	if err != nil {
		return err
	}
	argv := append([]string{os.Args[0]}, args...)
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("execute %s: %w", path, err)
	}
	return nil // not reached
}

// findService finds coroner-service: next to this executable (a tarball, a
// build tree), else in /usr/lib/coroner (the .deb).
func findService() (string, error) {
	var tried []string
	if exe, err := os.Executable(); err == nil {
		if real, err := filepath.EvalSymlinks(exe); err == nil {
			exe = real
		}
		tried = append(tried, filepath.Join(filepath.Dir(exe), serviceExecutable))
	}
	tried = append(tried, filepath.Join(serviceLibDir, serviceExecutable))
	for _, p := range tried {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("watch and serve run in " + serviceExecutable + ", the service build of coroner, which is not installed (looked for " +
		fmt.Sprint(tried) + "): install it from the same release, or build it with make build")
}
