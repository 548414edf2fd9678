package diagnose

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

var updateCompact = flag.Bool("update-compact-rules", false, "rewrite rules.json and hangs.json from the YAML files (go generate)")

// TestCompactRules: the JSON forms the binary loads decode to exactly the
// rules of rules.yaml and hangs.yaml, and are what go generate writes.
func TestCompactRules(t *testing.T) {
	for _, c := range []struct {
		yamlData, jsonData []byte
		jsonFile           string
	}{
		{embeddedRules, embeddedRulesJSON, "rules.json"},
		{embeddedHangRules, embeddedHangRulesJSON, "hangs.json"},
	} {
		dec := yaml.NewDecoder(bytes.NewReader(c.yamlData))
		dec.KnownFields(true)
		var want File
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("decode YAML of %s: %v", c.jsonFile, err)
		}
		compact, err := json.Marshal(&want)
		if err != nil {
			t.Fatalf("encode %s: %v", c.jsonFile, err)
		}
		compact = append(compact, '\n')
		if *updateCompact {
			if err := os.WriteFile(c.jsonFile, compact, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if !bytes.Equal(compact, c.jsonData) {
			t.Errorf("%s is stale: run go generate ./internal/diagnose/", c.jsonFile)
		}
		var got File
		jd := json.NewDecoder(bytes.NewReader(c.jsonData))
		jd.DisallowUnknownFields()
		if err := jd.Decode(&got); err != nil {
			t.Fatalf("decode %s: %v", c.jsonFile, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s decodes to other rules than its YAML file", c.jsonFile)
		}
	}
}

func BenchmarkLoadEmbedded(b *testing.B) {
	for b.Loop() {
		for _, d := range [][]byte{embeddedRulesJSON, embeddedHangRulesJSON} {
			if _, err := parseCompact(d, "embedded"); err != nil {
				b.Fatal(err)
			}
		}
	}
}

func BenchmarkLoadEmbeddedYAML(b *testing.B) {
	for b.Loop() {
		for _, d := range [][]byte{embeddedRules, embeddedHangRules} {
			if _, err := parse(d, "embedded"); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// TestValidID: validID accepts exactly what idPattern matches.
func TestValidID(t *testing.T) {
	re := regexp.MustCompile(idPattern)
	ids := []string{"", "a", "-a", "a-", "0", "ffi-null-code", "A", "a_b", "a.b", "é", "a\n",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("-", 63), "a" + strings.Repeat("-", 64)}
	for c := 0; c < 256; c++ {
		ids = append(ids, string([]byte{byte(c)}), "x"+string([]byte{byte(c)}))
	}
	for _, id := range ids {
		if got, want := validID(id), re.MatchString(id); got != want {
			t.Errorf("validID(%q) = %v, the regexp says %v", id, got, want)
		}
	}
}

// TestEmbeddedPatternsCompile: the embedded rules, whose regular
// expressions and explanation templates are compiled on first use only,
// compile as eagerly as a rule file's would (a mistake would otherwise
// make a rule silently never match).
func TestEmbeddedPatternsCompile(t *testing.T) {
	for _, c := range []struct {
		data []byte
		name string
	}{
		{embeddedRulesJSON, "rules.json"},
		{embeddedHangRulesJSON, "hangs.json"},
	} {
		var f File
		dec := json.NewDecoder(bytes.NewReader(c.data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&f); err != nil {
			t.Fatalf("decode %s: %v", c.name, err)
		}
		if _, err := compileFile(&f, c.name, true); err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
	}
	// And a rule file's mistakes are errors at once.
	bad := []byte("version: 1\nrules:\n- id: bad\n  title: t\n  confidence: low\n  explanation: e\n  when: {message: '('}\n")
	if _, err := parse(bad, "bad.yaml"); err == nil || !strings.Contains(err.Error(), "message") {
		t.Errorf("a rule file with a bad expression: %v, want an error naming when.message", err)
	}
	bad = []byte("version: 1\nrules:\n- id: bad\n  title: t\n  confidence: low\n  explanation: '{{.Nope'\n  when: {message: 'x'}\n")
	if _, err := parse(bad, "bad.yaml"); err == nil || !strings.Contains(err.Error(), "template") {
		t.Errorf("a rule file with a bad template: %v, want an error", err)
	}
}
