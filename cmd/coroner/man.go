package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// The man pages are generated from the command tree itself (the same
// Use, Long and flag definitions that --help prints), so they cannot
// drift from the binary: `coroner man` prints coroner(1), `coroner man
// --dir DIR` writes coroner.1 and one coroner-COMMAND.1 per command (what
// make dist installs).
func init() {
	addCommand("man", func() {
		var dir string
		cmd := &cobra.Command{
			Use:   "man [--dir DIR]",
			Short: "Print the coroner(1) man page, or write every command's page to a directory",
			Long: `man prints the coroner(1) manual page (roff) generated from this binary's own
	commands and flags: coroner man | man -l -
	With --dir, it writes coroner.1 and coroner-COMMAND.1 for every command into DIR.`,
			Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if dir == "" {
					return writeManPage(cmd.OutOrStdout(), cmd.Root())
				}
				return writeManPages(dir, cmd.Root())
			},
		}
		cmd.Flags().StringVar(&dir, "dir", "", "write coroner.1 and coroner-COMMAND.1 pages into this directory")
		rootCmd.AddCommand(cmd)
	})
}

// manCommands are the commands that get a page: the root and every
// available, non-hidden command below it (help and completion included).
func manCommands(root *cobra.Command) []*cobra.Command {
	out := []*cobra.Command{root}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if !s.IsAvailableCommand() || s.IsAdditionalHelpTopicCommand() {
				continue
			}
			out = append(out, s)
			walk(s)
		}
	}
	walk(root)
	return out
}

// manName is the page name of a command: coroner, coroner-logs,
// coroner-completion-bash.
func manName(c *cobra.Command) string { return strings.ReplaceAll(c.CommandPath(), " ", "-") }

func writeManPages(dir string, root *cobra.Command) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("man pages: %w", err)
	}
	for _, c := range manCommands(root) {
		var b bytes.Buffer
		if err := writeManPage(&b, c); err != nil {
			return err
		}
		p := filepath.Join(dir, manName(c)+".1")
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			return fmt.Errorf("man pages: %w", err)
		}
	}
	return nil
}

// roff escapes text for a roff line: backslashes, and a leading dot or
// apostrophe that roff would read as a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			b.WriteString(`\&`)
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// roffParagraphs writes text with blank lines as paragraph breaks and the
// lines of a paragraph joined, as roff fills them.
func roffParagraphs(w io.Writer, text string) {
	for i, p := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if i > 0 {
			fmt.Fprintln(w, ".PP")
		}
		fmt.Fprint(w, roff(strings.TrimSpace(p)))
	}
}

// writeManPage writes the page of one command: name, synopsis,
// description, its options, the options every command takes, its
// subcommands, the exit statuses, and the other pages.
func writeManPage(w io.Writer, c *cobra.Command) error {
	if c == c.Root() {
		c.InitDefaultVersionFlag() // cobra adds --version only when it executes the root
	}
	var b bytes.Buffer
	name := manName(c)
	fmt.Fprintf(&b, ".TH %s 1 \"\" \"coroner %s\" \"coroner manual\"\n", strings.ToUpper(roffArg(name)), roffArg(version))
	fmt.Fprintf(&b, ".SH NAME\n%s \\- %s", roff(name)[:len(roff(name))-1], roff(c.Short))
	fmt.Fprint(&b, ".SH SYNOPSIS\n.nf\n", roff(c.UseLine()))
	if c.HasAvailableSubCommands() {
		fmt.Fprint(&b, roff(c.CommandPath()+" COMMAND [flags]"))
	}
	fmt.Fprint(&b, ".fi\n.SH DESCRIPTION\n")
	desc := c.Long
	if desc == "" {
		desc = c.Short
	}
	roffParagraphs(&b, desc)
	if c.Example != "" {
		fmt.Fprint(&b, ".SH EXAMPLES\n.nf\n", roff(strings.TrimRight(c.Example, "\n")), ".fi\n")
	}
	writeManFlags(&b, "OPTIONS", c.NonInheritedFlags())
	writeManFlags(&b, "GLOBAL OPTIONS", c.InheritedFlags())
	if c.HasAvailableSubCommands() {
		fmt.Fprint(&b, ".SH COMMANDS\n")
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() {
				fmt.Fprintf(&b, ".TP\n\\fB%s\\fR(1)\n%s", roff(manName(s))[:len(roff(manName(s)))-1], roff(s.Short))
			}
		}
	}
	fmt.Fprint(&b, ".SH EXIT STATUS\n")
	for _, e := range exitStatuses {
		fmt.Fprintf(&b, ".TP\n%d\n%s", e.code, roff(e.meaning))
	}
	fmt.Fprint(&b, ".SH SEE ALSO\n")
	var see []string
	if p := c.Parent(); p != nil {
		see = append(see, `\fB`+roffArg(manName(p))+`\fR(1)`)
	}
	for _, s := range c.Commands() {
		if s.IsAvailableCommand() {
			see = append(see, `\fB`+roffArg(manName(s))+`\fR(1)`)
		}
	}
	if c == c.Root() {
		see = append(see, `\fBcore\fR(5)`, `\fBsystemd\-coredump\fR(8)`, `\fBphp\-fpm\fR(8)`)
	}
	fmt.Fprintln(&b, strings.Join(see, ", "))
	_, err := w.Write(b.Bytes())
	return err
}

// roffArg is roff(s) for a word inside a line (no trailing newline).
func roffArg(s string) string { return strings.TrimSuffix(roff(s), "\n") }

// writeManFlags writes one .TP entry per visible flag: its spellings, its
// argument name and default, and its usage.
func writeManFlags(w io.Writer, title string, fs *pflag.FlagSet) {
	var entries []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		head := `\fB\-\-` + roffArg(f.Name) + `\fR`
		if f.Shorthand != "" && f.ShorthandDeprecated == "" {
			head = `\fB\-` + f.Shorthand + `\fR, ` + head
		}
		argName, usage := pflag.UnquoteUsage(f)
		if argName != "" {
			if f.NoOptDefVal != "" {
				head += `[=\fI` + roffArg(argName) + `\fR]`
			} else {
				head += ` \fI` + roffArg(argName) + `\fR`
			}
		}
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "[]" && d != "0s" {
			usage += " (default " + d + ")"
		}
		entries = append(entries, ".TP\n"+head+"\n"+roff(usage))
	})
	if len(entries) == 0 {
		return
	}
	fmt.Fprintf(w, ".SH %s\n%s", title, strings.Join(entries, ""))
}
