package main

import (
	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine/analyze"
)

// registerRootFlags adds the options that say where the files of a
// process that ran in a container or a chroot are.
func registerRootFlags(cmd *cobra.Command, opts *analyze.Options) {
	f := cmd.Flags()
	f.StringArrayVar(&opts.Roots, "roots", nil, "(repeatable) a directory that may be the root the process ran in (a chroot, an unpacked image): used when its executable there has the build-id the core records")
	f.StringVar(&opts.Container, "container", "", "the container (name, id or id prefix) or machine whose root holds the process's files; by default it is found by build-id")
	f.BoolVar(&opts.NoAutoRoot, "no-auto-root", false, "do not search this host's containers, chroots and running processes for the process's root")
}
