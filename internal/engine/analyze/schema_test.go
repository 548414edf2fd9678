package analyze

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/render"
)

// TestJSONSchemaFields checks the fields docs/json-schema.md promises on a
// real report: present even when empty (function "" rather than "??").
func TestJSONSchemaFields(t *testing.T) {
	s := labtest.Get(t).Scenarios["ffi-null-code"]
	rep, err := Core(s.Core, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := render.JSON(&buf, rep); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	need := func(obj map[string]any, where string, keys ...string) {
		for _, k := range keys {
			if _, ok := obj[k]; !ok {
				t.Errorf("%s lacks %q", where, k)
			}
		}
	}
	need(doc, "report", "schema", "signal", "fault", "threads", "modules", "php", "warnings")
	need(doc["signal"].(map[string]any), "signal", "number", "name", "code_name", "address")
	need(doc["fault"].(map[string]any), "fault", "kind", "instruction", "explanation")
	threads := doc["threads"].([]any)
	for _, th := range threads {
		m := th.(map[string]any)
		need(m, "thread", "tid", "crashed", "frames", "cycles")
		for _, f := range m["frames"].([]any) {
			fm := f.(map[string]any)
			need(fm, "frame", "pc", "module", "module_offset", "function", "function_offset", "file", "line", "trust")
			if fm["function"] == "??" {
				t.Error(`function "??" in JSON: unknown must be ""`)
			}
		}
	}
	need(doc["php"].(map[string]any), "php", "version", "frames", "request", "ini", "extensions")
	for _, f := range doc["php"].(map[string]any)["frames"].([]any) {
		need(f.(map[string]any), "php frame", "function", "class", "call_type", "file", "line", "args")
	}
	need(doc["php"].(map[string]any)["request"].(map[string]any), "php.request", "method", "uri", "query", "script", "host", "remote_addr")
}
