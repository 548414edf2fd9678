package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// TestManPagesListEveryFlag generates the page of every command and checks
// that each visible flag of the command, and each of its subcommands, is
// in it: the pages are the flag definitions, not a copy of them.
func TestManPagesListEveryFlag(t *testing.T) {
	buildCommands(nil)
	if len(rootCmd.Commands()) < len(commandBuilders) {
		t.Fatalf("%d commands built of %d", len(rootCmd.Commands()), len(commandBuilders))
	}
	for _, c := range manCommands(rootCmd) {
		var b bytes.Buffer
		if err := writeManPage(&b, c); err != nil {
			t.Fatalf("%s: %v", c.CommandPath(), err)
		}
		page := b.String()
		c.Flags().VisitAll(func(f *pflag.Flag) {
			want := `\fB\-\-` + strings.ReplaceAll(f.Name, "-", `\-`) + `\fR`
			if f.Hidden || f.Deprecated != "" {
				if strings.Contains(page, want) {
					t.Errorf("%s: the page lists the hidden flag --%s", c.CommandPath(), f.Name)
				}
				return
			}
			if f.Name != "help" && !strings.Contains(page, want) {
				t.Errorf("%s: the page lacks --%s", c.CommandPath(), f.Name)
			}
		})
		for _, s := range c.Commands() {
			if s.IsAvailableCommand() && !strings.Contains(page, roffArg(manName(s))) {
				t.Errorf("%s: the page lacks the command %s", c.CommandPath(), s.Name())
			}
		}
	}
}
