package main

import (
	"encoding/json"
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/doctor"
	"github.com/coroner-dev/coroner/internal/engine/snapshot"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/replay"
	"github.com/coroner-dev/coroner/internal/service/versions"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
	"github.com/coroner-dev/coroner/internal/source/logs"
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
	v, rev := buildVersion()
	s := "coroner " + v
	if rev != "" {
		s += fmt.Sprintf(" (%.12s)", rev)
	}
	return fmt.Sprintf("%s %s %s/%s", s, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// buildVersion returns coroner's version and the commit it was built from
// ("" when the build did not record it).
func buildVersion() (v, rev string) {
	v = version
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
	return v, rev
}

// versionSchema is the version of the `coroner version --json` document.
const versionSchema = 1

// versionDocument is what `coroner version --json` prints: the build, and
// the schema version of every JSON document this binary writes, so that a
// fleet's tooling can tell which documents it will read before running the
// commands.
type versionDocument struct {
	Schema    int    `json:"schema"`
	Version   string `json:"version"`
	Commit    string `json:"commit,omitempty"`
	GoVersion string `json:"go_version"`
	OS        string `json:"os"`
	Arch      string `json:"arch"`
	// Documents maps each JSON document (the name of its schema file in
	// docs/schema) to the schema version this binary writes.
	Documents map[string]int `json:"documents"`
	// APIVersion is the version of the dashboard's JSON API (/api/v1/,
	// the api-*.json schema files).
	APIVersion int `json:"api_version"`
}

// documentVersions are the schema versions of the JSON documents, by the
// name of their schema file (docs/schema/NAME.json).
func documentVersions() map[string]int {
	return map[string]int{
		"report": crash.SchemaVersion, "php": render.PHPSchemaVersion, "php-layout": render.PHPLayoutSchemaVersion,
		"snapshot": snapshot.SchemaVersion, "replay": replay.SchemaVersion, "replay-plan": replay.SchemaVersion,
		"audit": audit.SchemaVersion, "fix": audit.FixSchemaVersion, "cores": coredumps.SchemaVersion,
		"logs": logs.SchemaVersion, "logs-incident": logs.SchemaVersion, "doctor": doctor.SchemaVersion,
		"alert": versions.Alert, "version": versionSchema,
	}
}

func init() {
	rootCmd.Version = "set" // makes cobra add --version; the template prints versionString
	rootCmd.SetVersionTemplate("{{versionString}}\n")
	cobra.AddTemplateFunc("versionString", versionString)
	addCommand("version", func() {
		var asJSON bool
		cmd := &cobra.Command{
			Use:   "version",
			Short: "Print the coroner version and build information",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				if !asJSON {
					fmt.Fprintln(cmd.OutOrStdout(), versionString())
					return nil
				}
				v, rev := buildVersion()
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(versionDocument{Schema: versionSchema, Version: v, Commit: rev,
					GoVersion: runtime.Version(), OS: runtime.GOOS, Arch: runtime.GOARCH, Documents: documentVersions(),
					APIVersion: versions.API})
			},
		}
		cmd.Flags().BoolVar(&asJSON, "json", false, "print the build and the schema version of every JSON document as JSON (docs/schema/version.json)")
		rootCmd.AddCommand(cmd)
	})
}
