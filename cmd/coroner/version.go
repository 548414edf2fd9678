package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time with -ldflags "-X main.version=..." (make
// build, make dist); a binary built by `go install ...@VERSION` takes the
// module version instead (versionString).
var version = "dev"

// versionString is the version line of `coroner version` and
// `coroner --version`: the version, the commit when the build recorded it,
// the Go toolchain and the platform.
func versionString() string {
	v, rev := version, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				rev = s.Value
			}
		}
	}
	s := "coroner " + v
	if rev != "" {
		s += fmt.Sprintf(" (%.12s)", rev)
	}
	return fmt.Sprintf("%s %s %s/%s", s, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func init() {
	rootCmd.Version = "set" // makes cobra add --version; the template prints versionString
	rootCmd.SetVersionTemplate("{{versionString}}\n")
	cobra.AddTemplateFunc("versionString", versionString)
	rootCmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "Print the coroner version and build information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			fmt.Fprintln(cmd.OutOrStdout(), versionString())
			return nil
		},
	})
}
