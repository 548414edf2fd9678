// Package schemacheck validates coroner's JSON documents against the JSON
// Schema files of docs/schema (draft 2020-12), for tests. It is the one
// place that knows the validator (github.com/santhosh-tekuri/jsonschema),
// so that it can be replaced without touching the tests. Formats
// (date-time) are asserted, not only annotated.
package schemacheck

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Set is the compiled schemas of one directory, by document name (the file
// name without .json: "report", "logs", ...).
type Set struct {
	schemas map[string]*jsonschema.Schema
}

// Load compiles every NAME.json of dir. A file refers to another of the
// directory by a reference relative to its $id ("report.json",
// "report.json#/$defs/crash.Diagnosis").
func Load(dir string) (*Set, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list schemas: %w", err)
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no schema files in %s", dir)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	c.UseLoader(noLoader{})
	urls := map[string]string{}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".json")
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("schema path: %w", err)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read schema: %w", err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("parse schema %s: %w", p, err)
		}
		// A schema is known by its $id, so that one file refers to another
		// ("report.json" from api-crash.json) as a reader resolves it.
		url := "file://" + filepath.ToSlash(abs)
		if m, ok := doc.(map[string]any); ok {
			if id, ok := m["$id"].(string); ok && id != "" {
				url = id
			}
		}
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("add schema %s: %w", p, err)
		}
		urls[name] = url
	}
	s := &Set{schemas: map[string]*jsonschema.Schema{}}
	for name, url := range urls {
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("compile schema %s: %w", name, err)
		}
		s.schemas[name] = sch
	}
	return s, nil
}

// Names lists the documents of the set, sorted.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.schemas))
	for n := range s.schemas {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Validate checks one JSON document (the bytes a command printed) against
// the schema of the named document; the error lists every violation.
func (s *Set) Validate(name string, doc []byte) error {
	sch := s.schemas[name]
	if sch == nil {
		return fmt.Errorf("no schema %q", name)
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return fmt.Errorf("parse %s document: %w", name, err)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s document: %w", name, err)
	}
	return nil
}

// ValidateValue is Validate for a document already decoded with Decode
// (json.Number for numbers), such as a mutated copy of a real one.
func (s *Set) ValidateValue(name string, v any) error {
	sch := s.schemas[name]
	if sch == nil {
		return fmt.Errorf("no schema %q", name)
	}
	if err := sch.Validate(v); err != nil {
		return fmt.Errorf("%s document: %w", name, err)
	}
	return nil
}

// Decode parses a JSON document as the validator sees it (objects as
// map[string]any, numbers as json.Number).
func Decode(doc []byte) (any, error) {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return nil, fmt.Errorf("parse JSON: %w", err)
	}
	return v, nil
}

// noLoader refuses every URL the set does not hold: schemas never come
// from the network.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("schema %s is not in the set (nothing is fetched)", url)
}

// ReplaceFirst walks a decoded document v depth first (object keys
// sorted) and replaces the first value f accepts (f returns the new value
// and true); k is the value's key, "" in arrays. It reports whether it
// replaced one. Tests use it to mutate a real document into one its
// schema must reject.
func ReplaceFirst(v any, f func(k string, x any) (any, bool)) bool {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if nv, ok := f(k, x[k]); ok {
				x[k] = nv
				return true
			}
			if ReplaceFirst(x[k], f) {
				return true
			}
		}
	case []any:
		for i := range x {
			if nv, ok := f("", x[i]); ok {
				x[i] = nv
				return true
			}
			if ReplaceFirst(x[i], f) {
				return true
			}
		}
	}
	return false
}
