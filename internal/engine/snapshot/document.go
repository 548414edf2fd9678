package snapshot

import "github.com/coroner-dev/coroner/crash"

// SchemaVersion is the version of the JSON document of `coroner snapshot
// --json` (Document), its "schema" field; it changes only when a field
// changes meaning or goes away. Version 1 replaced the bare array of
// reports printed before.
const SchemaVersion = 1

// Document is the JSON document of `coroner snapshot --json`
// (docs/schema/snapshot.json): a report (with "live") for each process
// read, and the warnings met selecting them.
type Document struct {
	Schema   int             `json:"schema"` // SchemaVersion
	Reports  []*crash.Report `json:"reports"`
	Warnings []string        `json:"warnings"`
}
