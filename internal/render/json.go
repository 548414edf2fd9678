// Package render renders a crash.Report for people (text, Markdown) and for
// programs (JSON). Renderers only format: every fact comes from the report.
package render

import (
	"encoding/json"
	"io"

	"github.com/coroner-dev/coroner/crash"
)

// JSON writes the report as indented JSON (schema crash.SchemaVersion).
func JSON(w io.Writer, r *crash.Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
