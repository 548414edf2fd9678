package main

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The help of the flags every command spells the same way.
const (
	coresUsage = "core directory or file (repeatable)"
	logsUsage  = "log file (repeatable)"
	// journalUsage says what --journal takes.
	journalUsage = "journal directory or file whose systemd-coredump records (and cores kept in the journal) are read, as journalctl -D/--file"
)

// commandBuilders make the subcommands, by name. Building one defines its
// flags (a millisecond for all of them, 2% of an analysis): main builds
// only the command the line names, and every command for anything else
// (help, completions, man pages, an unknown or misspelt name).
var commandBuilders = map[string]func(){}

// commandsBuilt says whether buildCommands ran.
var commandsBuilt bool

// addCommand registers the builder of the subcommand name, which adds it
// to rootCmd.
func addCommand(name string, build func()) { commandBuilders[name] = build }

// buildCommands builds the subcommands the command line args needs (all
// of them for nil), once.
func buildCommands(args []string) {
	if commandsBuilt {
		return
	}
	commandsBuilt = true
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if build, ok := commandBuilders[a]; ok && a != "man" { // man documents them all
			build()
			return
		}
		break
	}
	for _, name := range slices.Sorted(maps.Keys(commandBuilders)) {
		commandBuilders[name]()
	}
}

// usageError is a wrong command line: main prints the usage line of the
// command after the reason, and exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// usageErrorf is a usage error with a message.
func usageErrorf(format string, a ...any) error {
	return &usageError{fmt.Errorf(format, a...)}
}

// markUsageErrors makes every way cobra rejects a command line a
// usageError: unknown flags and bad flag values (the flag error
// function), wrong arguments (each command's Args), and an unknown
// command (the root's own Run, since cobra reports that one as a plain
// error).
func markUsageErrors(root *cobra.Command) {
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })
	root.Args = cobra.ArbitraryArgs
	// SuggestionsFor compares with this distance as it is (cobra sets
	// its default of 2 only on its own unknown-command path).
	root.SuggestionsMinimumDistance = 2
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			return cmd.Help()
		}
		msg := fmt.Sprintf("unknown command %q for %q", args[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
			msg += " (did you mean " + strings.Join(s, ", ") + "?)"
		}
		return &usageError{errors.New(msg)}
	}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if c != root && c.Args != nil {
			check := c.Args
			c.Args = func(c *cobra.Command, args []string) error {
				if err := check(c, args); err != nil {
					return &usageError{err}
				}
				return nil
			}
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
}

// exclusiveFlags declares flags of cmd that cannot be given together;
// checkFlags (the root's PersistentPreRunE) rejects such a command line
// with a usage error that names them.
func exclusiveFlags(cmd *cobra.Command, names ...string) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	g := cmd.Annotations[exclusiveAnnotation]
	if g != "" {
		g += ";"
	}
	cmd.Annotations[exclusiveAnnotation] = g + strings.Join(names, " ")
}

const exclusiveAnnotation = "coroner/exclusive-flags"

// checkFlags rejects a command line that lacks a required flag, or gives
// more than one flag of a group exclusiveFlags declared conflicting.
func checkFlags(cmd *cobra.Command) error {
	var missing []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed && f.Deprecated != "" { // pflag writes its notice into cobra's discarded buffer
			fmt.Fprintf(cmd.ErrOrStderr(), "coroner: --%s is deprecated: %s\n", f.Name, f.Deprecated)
		}
		if r := f.Annotations[cobra.BashCompOneRequiredFlag]; len(r) > 0 && r[0] == "true" && !f.Changed {
			missing = append(missing, "--"+f.Name)
		}
	})
	if len(missing) > 0 {
		return usageErrorf("%s is required", strings.Join(missing, ", "))
	}
	for _, group := range strings.Split(cmd.Annotations[exclusiveAnnotation], ";") {
		var set []string
		for _, n := range strings.Fields(group) {
			if f := cmd.Flags().Lookup(n); f != nil && f.Changed {
				set = append(set, "--"+n)
			}
		}
		if len(set) > 1 {
			return usageErrorf("%s cannot be used together", strings.Join(set, " and "))
		}
	}
	return nil
}

// aliasFlag adds a deprecated spelling of a flag (the same variable, help
// hidden, a warning on use) so that command lines written for an older
// coroner keep working while every command speaks one vocabulary.
func aliasFlag(fs *pflag.FlagSet, old, name string) {
	f := fs.Lookup(name)
	if f == nil {
		panic("aliasFlag: no flag --" + name)
	}
	a := *f
	a.Name, a.Shorthand, a.Usage = old, "", "deprecated spelling of --"+name
	fs.AddFlag(&a)
	_ = fs.MarkDeprecated(old, "use --"+name)
}
