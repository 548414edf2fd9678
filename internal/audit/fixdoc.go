package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// FixSchemaVersion is the version of the JSON document of `coroner fix
// --json` (FixDocument), its "schema" field; it changes only when a field
// changes meaning or goes away.
const FixSchemaVersion = 1

// What a FixDocument reports (FixDocument.Action).
const (
	FixActionPlan     = "plan"     // a dry run: nothing written
	FixActionApply    = "apply"    // --apply: the changes were written
	FixActionRollback = "rollback" // --rollback: the latest fix was undone
)

// FixActions lists the values of FixDocument.Action.
func FixActions() []string { return []string{FixActionPlan, FixActionApply, FixActionRollback} }

// FixDocument is the JSON document of `coroner fix --json`
// (docs/schema/fix.json): the plan (what would change, in which file, and
// the commands that make the running system use it), with --apply what was
// written and where the backups are, with --rollback what was restored.
type FixDocument struct {
	Schema int `json:"schema"` // FixSchemaVersion
	// Action is FixActionPlan, FixActionApply or FixActionRollback.
	Action string `json:"action"`
	// Root is the audited tree ("" or "/" for this machine); StateDir
	// holds backups and rollback manifests (in the tree's view).
	Root     string `json:"root"`
	StateDir string `json:"state_dir"`
	// Changes are the files written and directories created (empty for a
	// rollback, and when the configuration already does what was asked).
	Changes []FixChange `json:"changes"`
	// Reload lists the commands that make the running system use the
	// changes, in order; Reloaded says they were run (--reload).
	Reload   []string `json:"reload"`
	Reloaded bool     `json:"reloaded"`
	Notes    []string `json:"notes"`
	// Manifest is the rollback manifest an apply wrote, or the one a
	// rollback undid (a path on this machine).
	Manifest string `json:"manifest,omitempty"`
	// Written lists what an apply changed, as its manifest records it:
	// each file (with its backup copy when it existed) and each directory
	// created.
	Written []FixWritten `json:"written,omitempty"`
	// Rollback says what a rollback restored, removed and skipped.
	Rollback *FixRollback `json:"rollback,omitempty"`
}

// FixChange is one file the fix writes, or one directory it creates.
type FixChange struct {
	Path string `json:"path"` // in the audited system's view
	// Kind is "file" or "dir".
	Kind string `json:"kind"`
	// Existed says the file is edited (else created).
	Existed bool `json:"existed"`
	// Mode is the permission bits, in octal ("0644", "1733").
	Mode    string   `json:"mode"`
	Reasons []string `json:"reasons"`
	// Diff is the unified diff of the file ("" for a directory).
	Diff string `json:"diff,omitempty"`
}

// FixWritten is one entry of an applied fix's rollback manifest.
type FixWritten struct {
	Path    string `json:"path"`
	Kind    string `json:"kind"` // "file" or "dir"
	Existed bool   `json:"existed"`
	Mode    string `json:"mode"`
	// Backup is the copy of the file as it was (a path on this machine),
	// when it existed.
	Backup string `json:"backup,omitempty"`
	// SHA256 is the hash of the content written (files).
	SHA256 string `json:"sha256,omitempty"`
}

// FixRollback is what a rollback did; Skipped carries the reason of each.
type FixRollback struct {
	Restored []string `json:"restored"`
	Removed  []string `json:"removed"`
	Skipped  []string `json:"skipped"`
}

// Document returns the plan as a FixDocument (Action FixActionPlan).
func (p *Plan) Document() (*FixDocument, error) {
	d := &FixDocument{Schema: FixSchemaVersion, Action: FixActionPlan, Root: p.Root, StateDir: p.StateDir,
		Changes: []FixChange{}, Reload: nonNil(p.Reload), Notes: nonNil(p.Notes)}
	for _, c := range p.Changes {
		fc := FixChange{Path: c.Path, Kind: "file", Existed: c.Existed, Mode: octalMode(c.Mode), Reasons: nonNil(c.Reasons)}
		if c.Dir {
			fc.Kind = "dir"
		} else {
			a := "a" + c.Path
			if !c.Existed {
				a = "/dev/null"
			}
			var sb strings.Builder
			if err := unifiedDiff(&sb, a, "b"+c.Path, splitLines(c.Old), splitLines(c.New)); err != nil {
				return nil, fmt.Errorf("diff %s: %w", c.Path, err)
			}
			fc.Diff = sb.String()
		}
		d.Changes = append(d.Changes, fc)
	}
	return d, nil
}

// Applied records in d (made by Document) what Apply wrote: manifest is the
// path Apply returned ("" when there was nothing to change).
func (d *FixDocument) Applied(manifest string) error {
	d.Action = FixActionApply
	d.Manifest = manifest
	if manifest == "" {
		return nil
	}
	b, err := os.ReadFile(manifest)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return fmt.Errorf("parse manifest %s: %w", manifest, err)
	}
	for _, e := range m.Entries {
		w := FixWritten{Path: e.Path, Kind: "file", Existed: e.Existed, Mode: octalMode(e.Mode), SHA256: e.NewHash}
		if e.Dir {
			w.Kind = "dir"
		}
		if e.Backup != "" {
			w.Backup = filepath.Join(filepath.Dir(manifest), e.Backup)
		}
		d.Written = append(d.Written, w)
	}
	return nil
}

// RollbackDocument is the FixDocument of a rollback.
func RollbackDocument(root, stateDir string, r *RollbackResult) *FixDocument {
	return &FixDocument{Schema: FixSchemaVersion, Action: FixActionRollback, Root: root, StateDir: stateDir,
		Changes: []FixChange{}, Reload: nonNil(r.Reload), Notes: []string{}, Manifest: r.Manifest,
		Rollback: &FixRollback{Restored: nonNil(r.Restored), Removed: nonNil(r.Removed), Skipped: nonNil(r.Skipped)}}
}

// octalMode writes permission bits as chmod takes them ("0644").
func octalMode(m uint32) string { return fmt.Sprintf("%04o", m) }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
