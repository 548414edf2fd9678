package schemacheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSet compiles a small schema set with a format and a reference
// between files, and checks what it accepts and refuses.
func TestSet(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("when.json", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string", "format": "date-time"}`)
	write("doc.json", `{"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
		"properties": {"schema": {"const": 1}, "time": {"$ref": "when.json"}}, "required": ["schema", "time"], "additionalProperties": false}`)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(s.Names(), ","); got != "doc,when" {
		t.Errorf("names %q", got)
	}
	if err := s.Validate("doc", []byte(`{"schema": 1, "time": "2026-12-06T14:00:00+01:00"}`)); err != nil {
		t.Errorf("valid document refused: %v", err)
	}
	for _, bad := range []string{
		`{"schema": 2, "time": "2026-12-06T14:00:00Z"}`,
		`{"schema": 1, "time": "2026-12-06 14:00:00"}`, // format asserted, not only annotated
		`{"schema": 1}`,
		`{"schema": 1, "time": "2026-12-06T14:00:00Z", "more": 1}`,
		`not json`,
	} {
		if err := s.Validate("doc", []byte(bad)); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
	if err := s.Validate("nothing", []byte(`{}`)); err == nil {
		t.Error("a document without a schema accepted")
	}
}

// TestNoFetch checks that a reference outside the set is an error, not a
// download.
func TestNoFetch(t *testing.T) {
	dir := t.TempDir()
	err := os.WriteFile(filepath.Join(dir, "doc.json"), []byte(`{"$ref": "https://example.invalid/other.json"}`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "not in the set") {
		t.Errorf("Load: %v, want a refusal to fetch", err)
	}
}
