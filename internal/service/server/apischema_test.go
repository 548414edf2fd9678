package server

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/schemagen"
)

var update = flag.Bool("update", false, "rewrite docs/schema/api-*.json from the Go types of the API's answers")

// schemaDir holds the JSON Schema files, relative to this package.
const schemaDir = "../../../docs/schema"

// APIDocuments are the API's answers and their schema files.
var apiDocuments = []schemagen.Document{
	{Name: "api-groups", Type: reflect.TypeFor[GroupsAnswer](), Version: APIVersion, Title: "coroner watch dashboard: GET /api/v1/groups, the crash groups a filter selects"},
	{Name: "api-group", Type: reflect.TypeFor[GroupAnswer](), Version: APIVersion, Title: "coroner watch dashboard: GET /api/v1/groups/FINGERPRINT, one crash group and its crashes"},
	{Name: "api-crashes", Type: reflect.TypeFor[CrashesAnswer](), Version: APIVersion, Title: "coroner watch dashboard: GET /api/v1/crashes, the crashes a filter selects"},
	{Name: "api-crash", Type: reflect.TypeFor[CrashAnswer](), Version: APIVersion, Title: "coroner watch dashboard: GET /api/v1/crashes/ID, one crash with its report"},
	{Name: "api-group-state", Type: reflect.TypeFor[StateAnswer](), Version: APIVersion, Title: "coroner watch dashboard: POST /api/v1/groups/FINGERPRINT/state, the group in its new state"},
	{Name: "api-error", Type: reflect.TypeFor[ErrorAnswer](), Version: APIVersion, Title: "coroner watch dashboard: the answer of an API request that failed (400, 403, 404, 415, 500, 503)"},
}

// apiSchemaGen is the generator of the API's schema files: group states
// from the store's constants; a crash's report and a group's diagnosis
// refer to report.json instead of repeating it.
func apiSchemaGen() (*schemagen.Generator, error) {
	states := schemagen.EnumSource{Dir: "internal/service/store", Prefix: "State"}
	return schemagen.New(schemagen.Config{
		Root:         "../../..",
		Base:         "https://raw.githubusercontent.com/coroner-dev/coroner/main/docs/schema/",
		Documents:    apiDocuments,
		VersionField: "api_version",
		Description: func(v int) string {
			return fmt.Sprintf("Version %d of the dashboard's JSON API (the answer's \"api_version\" field, the v%d of /api/v%d/). Fields are only added within a version; one that changes meaning or goes away makes a new version under a new path. See docs/watch.md.", v, v, v)
		},
		Comment:    "Generated from the Go types by TestAPISchemaFiles (internal/service/server/apischema_test.go): change the types, then go test ./internal/service/server -run TestAPISchemaFiles -update.",
		FieldEnums: map[string]schemagen.EnumSource{"server.APIGroup.state": states, "server.APIFilter.states[]": states},
		Refs: map[reflect.Type]string{
			reflect.TypeFor[crash.Report]():    "report.json",
			reflect.TypeFor[crash.Diagnosis](): "report.json#/$defs/crash.Diagnosis",
		},
	})
}

// TestAPISchemaFiles checks that docs/schema/api-*.json are what the Go
// types of the API's answers say (like TestJSONSchemaFiles for the CLI's
// documents): a field added, renamed or removed, or a group state added,
// without regenerating them fails here. -update rewrites them.
func TestAPISchemaFiles(t *testing.T) {
	g, err := apiSchemaGen()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, d := range apiDocuments {
		b, err := g.Document(d)
		if err != nil {
			t.Fatalf("%s: %v", d.Name, err)
		}
		path := filepath.Join(schemaDir, d.Name+".json")
		want[filepath.Base(path)] = true
		if *update {
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%v (go test ./internal/service/server -run TestAPISchemaFiles -update writes it)", err)
			continue
		}
		if !bytes.Equal(got, b) {
			t.Errorf("%s is not what the Go types say: go test ./internal/service/server -run TestAPISchemaFiles -update rewrites it (and say in docs/watch.md what changed; a field that changes meaning or goes away needs /api/v%d/)", path, APIVersion+1)
		}
	}
	files, _ := filepath.Glob(filepath.Join(schemaDir, "api-*.json"))
	for _, f := range files {
		if !want[filepath.Base(f)] {
			t.Errorf("%s describes no answer of apiDocuments", f)
		}
	}
}
