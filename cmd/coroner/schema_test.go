package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/doctor"
	"github.com/coroner-dev/coroner/internal/engine/snapshot"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/replay"
	"github.com/coroner-dev/coroner/internal/schemagen"
	"github.com/coroner-dev/coroner/internal/service/watch"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// schemaDir holds the JSON Schema files of the documents, relative to this
// package.
const schemaDir = "../../docs/schema"

// schemaBase is the $id prefix of the schema files.
const schemaBase = "https://raw.githubusercontent.com/coroner-dev/coroner/main/docs/schema/"

// jsonDocument is one kind of JSON document a command prints.
type jsonDocument struct {
	name    string // docs/schema/NAME.json
	typ     reflect.Type
	version int
	title   string
}

// jsonDocuments are every command's JSON documents, with their versions.
var jsonDocuments = []jsonDocument{
	{"report", reflect.TypeFor[crash.Report](), crash.SchemaVersion, "coroner analyze --json, coroner report --json: the report of one core"},
	{"php", reflect.TypeFor[render.PHPDocument](), render.PHPSchemaVersion, "coroner php --json: the PHP runtime in a core"},
	{"php-layout", reflect.TypeFor[render.PHPLayout](), render.PHPLayoutSchemaVersion, "coroner php --layout --json: the PHP structure layout and where each offset came from"},
	{"snapshot", reflect.TypeFor[snapshot.Document](), snapshot.SchemaVersion, "coroner snapshot --json: the reports of live processes"},
	{"replay", reflect.TypeFor[replay.Result](), replay.SchemaVersion, "coroner replay --json: the attempts to replay a request and their outcome"},
	{"replay-plan", reflect.TypeFor[replay.Plan](), replay.SchemaVersion, "coroner replay --dry-run --json: the request that would be sent"},
	{"audit", reflect.TypeFor[audit.Report](), audit.SchemaVersion, "coroner audit --json: will the next crash leave a core"},
	{"fix", reflect.TypeFor[audit.FixDocument](), audit.FixSchemaVersion, "coroner fix --json: the configuration changes planned, applied or rolled back"},
	{"cores", reflect.TypeFor[coredumps.Document](), coredumps.SchemaVersion, "coroner cores --json: the cores this host keeps"},
	{"logs", reflect.TypeFor[logs.Document](), logs.SchemaVersion, "coroner logs --json: crash incidents found in logs"},
	{"logs-incident", reflect.TypeFor[logs.IncidentDocument](), logs.SchemaVersion, "coroner logs --follow --json: one incident a line"},
	{"doctor", reflect.TypeFor[doctor.Document](), doctor.SchemaVersion, "coroner doctor --json: logs, configuration and cores into crash groups"},
	{"alert", reflect.TypeFor[watch.Alert](), watch.AlertSchemaVersion, "coroner watch: the JSON body POSTed to --webhook and given to --on-new-group for a new crash group"},
	{"version", reflect.TypeFor[versionDocument](), versionSchema, "coroner version --json: the build and the schema version of every JSON document"},
}

// TestVersionListsEveryDocument: `coroner version --json` names every
// document that has a schema file, with the version its schema requires.
func TestVersionListsEveryDocument(t *testing.T) {
	got := documentVersions()
	for _, d := range jsonDocuments {
		if v, ok := got[d.name]; !ok || v != d.version {
			t.Errorf("version --json says %s is version %d (listed: %v), its schema says %d", d.name, v, ok, d.version)
		}
		delete(got, d.name)
	}
	for name := range got {
		t.Errorf("version --json lists %s, which has no schema file", name)
	}
}

// TestJSONSchemaFiles checks that docs/schema/*.json are what the Go types
// of the documents (and the closed vocabularies of their fields, read from
// the Go constants) say: a field, a type or a constant added, renamed or
// removed without regenerating them fails here. -update rewrites them.
func TestJSONSchemaFiles(t *testing.T) {
	g, err := newSchemaGen()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, d := range jsonDocuments {
		b, err := g.Document(schemagen.Document{Name: d.name, Type: d.typ, Version: d.version, Title: d.title})
		if err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		path := filepath.Join(schemaDir, d.name+".json")
		want[filepath.Base(path)] = true
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (go test ./cmd/coroner -run TestJSONSchemaFiles -update writes it)", err)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s is not what the Go types say: go test ./cmd/coroner -run TestJSONSchemaFiles -update rewrites it (and say in docs/json-schema.md what changed; bump the document's schema version when a field changed meaning or went away)", path)
		}
	}
	files, _ := filepath.Glob(filepath.Join(schemaDir, "*.json"))
	for _, f := range files {
		// api-*.json describe the dashboard's API answers: TestAPISchemaFiles
		// (internal/service/server) keeps them.
		if !want[filepath.Base(f)] && !strings.HasPrefix(filepath.Base(f), "api-") {
			t.Errorf("%s describes no document of jsonDocuments", f)
		}
	}
}

// typeEnums are the vocabularies of named string types.
var typeEnums = map[reflect.Type]schemagen.EnumSource{
	reflect.TypeFor[crash.FaultKind]():     {Dir: "crash", Type: "FaultKind", Empty: true}, // empty in a live snapshot
	reflect.TypeFor[crash.Trust]():         {Dir: "crash", Type: "Trust"},
	reflect.TypeFor[crash.ModuleKind]():    {Dir: "crash", Type: "ModuleKind"},
	reflect.TypeFor[crash.PHPFrameKind]():  {Dir: "crash", Type: "PHPFrameKind"},
	reflect.TypeFor[crash.LayoutSource]():  {Dir: "crash", Type: "LayoutSource"},
	reflect.TypeFor[crash.Confidence]():    {Dir: "crash", Type: "Confidence"},
	reflect.TypeFor[crash.FixKind]():       {Dir: "crash", Type: "FixKind"},
	reflect.TypeFor[crash.Mitigation]():    {Dir: "crash", Type: "Mitigation"},
	reflect.TypeFor[crash.RecursionArgs](): {Dir: "crash", Type: "RecursionArgs"},
	reflect.TypeFor[audit.Status]():        {Dir: "internal/audit", Type: "Status"},
	reflect.TypeFor[coredumps.Tri]():       {Dir: "internal/source/coredumps", Type: "Tri"},
	reflect.TypeFor[logs.Source]():         {Dir: "internal/source/logs", Type: "Source"},
	reflect.TypeFor[logs.Kind]():           {Dir: "internal/source/logs", Type: "Kind"},
	reflect.TypeFor[logs.Format]():         {Dir: "internal/source/logs", Type: "Format"},
}

// fieldEnums are the vocabularies of plain string fields, by
// "package.Type.json_name".
var fieldEnums = map[string]schemagen.EnumSource{
	"crash.Reraise.evidence":   {Dir: "crash", Prefix: "Reraise"},
	"audit.Finding.layer":      {Dir: "internal/audit", Prefix: "Layer"},
	"coredumps.Entry.source":   {Dir: "internal/source/coredumps", Prefix: "Source"},
	"replay.Attempt.outcome":   {Dir: "internal/replay", Prefix: "Outcome"},
	"audit.FixDocument.action": {Dir: "internal/audit", Prefix: "FixAction"},
	"watch.Alert.event":        {Dir: "internal/service/watch", Prefix: "AlertEvent"},
}

// fieldFormats are the formats of plain string fields (times the code
// formats itself), by "package.Type.json_name".
var fieldFormats = map[string]string{
	"crash.Live.time":         "date-time",
	"doctor.Group.first_seen": "date-time",
	"doctor.Group.last_seen":  "date-time",
}

// fixedEnums are closed sets written out here (no Go constants name them).
var fixedEnums = map[string][]string{
	"audit.FixChange.kind":  {"dir", "file"},
	"audit.FixWritten.kind": {"dir", "file"},
}

// mayBeNull are the fields written without omitempty that may be null (a
// nil slice, map or pointer). Every other such field is never null: its
// producer writes [] or {} when it has nothing, and the schema says so.
var mayBeNull = map[string]bool{}

// newSchemaGen is the generator of the CLI's documents.
func newSchemaGen() (*schemagen.Generator, error) {
	var docs []schemagen.Document
	for _, d := range jsonDocuments {
		docs = append(docs, schemagen.Document{Name: d.name, Type: d.typ, Version: d.version, Title: d.title})
	}
	return schemagen.New(schemagen.Config{
		Root: "../..", Base: schemaBase, Documents: docs, VersionField: "schema",
		Description: func(v int) string {
			return fmt.Sprintf("Version %d of this document (its \"schema\" field). Fields are only added within a version; one that changes meaning or goes away bumps it. See docs/json-schema.md.", v)
		},
		Comment:   "Generated from the Go types by TestJSONSchemaFiles (cmd/coroner/schema_test.go): change the types, then go test ./cmd/coroner -run TestJSONSchemaFiles -update.",
		TypeEnums: typeEnums, FieldEnums: fieldEnums, FieldFormats: fieldFormats, FixedEnums: fixedEnums, MayBeNull: mayBeNull,
	})
}
