package main

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/doctor"
	"github.com/coroner-dev/coroner/internal/engine/snapshot"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/replay"
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

// schemaVersions gives the "schema" field of the struct types that carry
// one (embedded documents: a doctor group's report is a crash.Report).
func schemaVersions() map[reflect.Type]int {
	m := map[reflect.Type]int{}
	for _, d := range jsonDocuments {
		m[d.typ] = d.version
	}
	return m
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
		b, err := g.document(d)
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
		if !want[filepath.Base(f)] {
			t.Errorf("%s describes no document of jsonDocuments", f)
		}
	}
}

// enumSource names the Go constants of a closed vocabulary: those of type
// typ, or (for untyped constants) those whose name starts with prefix, in
// the package directory dir (relative to the repository root).
type enumSource struct {
	dir, typ, prefix string
	// empty allows "" too (a field always written but not always set).
	empty bool
}

// typeEnums are the vocabularies of named string types.
var typeEnums = map[reflect.Type]enumSource{
	reflect.TypeFor[crash.FaultKind]():     {dir: "crash", typ: "FaultKind", empty: true}, // empty in a live snapshot
	reflect.TypeFor[crash.Trust]():         {dir: "crash", typ: "Trust"},
	reflect.TypeFor[crash.ModuleKind]():    {dir: "crash", typ: "ModuleKind"},
	reflect.TypeFor[crash.PHPFrameKind]():  {dir: "crash", typ: "PHPFrameKind"},
	reflect.TypeFor[crash.LayoutSource]():  {dir: "crash", typ: "LayoutSource"},
	reflect.TypeFor[crash.Confidence]():    {dir: "crash", typ: "Confidence"},
	reflect.TypeFor[crash.FixKind]():       {dir: "crash", typ: "FixKind"},
	reflect.TypeFor[crash.Mitigation]():    {dir: "crash", typ: "Mitigation"},
	reflect.TypeFor[crash.RecursionArgs](): {dir: "crash", typ: "RecursionArgs"},
	reflect.TypeFor[audit.Status]():        {dir: "internal/audit", typ: "Status"},
	reflect.TypeFor[coredumps.Tri]():       {dir: "internal/source/coredumps", typ: "Tri"},
	reflect.TypeFor[logs.Source]():         {dir: "internal/source/logs", typ: "Source"},
	reflect.TypeFor[logs.Kind]():           {dir: "internal/source/logs", typ: "Kind"},
	reflect.TypeFor[logs.Format]():         {dir: "internal/source/logs", typ: "Format"},
}

// fieldEnums are the vocabularies of plain string fields, by
// "package.Type.json_name".
var fieldEnums = map[string]enumSource{
	"crash.Reraise.evidence":   {dir: "crash", prefix: "Reraise"},
	"audit.Finding.layer":      {dir: "internal/audit", prefix: "Layer"},
	"coredumps.Entry.source":   {dir: "internal/source/coredumps", prefix: "Source"},
	"replay.Attempt.outcome":   {dir: "internal/replay", prefix: "Outcome"},
	"audit.FixDocument.action": {dir: "internal/audit", prefix: "FixAction"},
	"watch.Alert.event":        {dir: "internal/service/watch", prefix: "AlertEvent"},
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

// schemaGen turns Go types into JSON Schema (draft 2020-12) as
// encoding/json writes them.
type schemaGen struct {
	defs     map[string]any
	seen     map[reflect.Type]string
	versions map[reflect.Type]int
	consts   map[string][]constDecl // by package directory
	// usesAddress says the document refers to $defs/address.
	usesAddress bool
}

// constDecl is one string constant of a package.
type constDecl struct {
	name, typ, value string
}

func newSchemaGen() (*schemaGen, error) {
	g := &schemaGen{consts: map[string][]constDecl{}, versions: schemaVersions()}
	dirs := map[string]bool{}
	for _, e := range typeEnums {
		dirs[e.dir] = true
	}
	for _, e := range fieldEnums {
		dirs[e.dir] = true
	}
	for d := range dirs {
		c, err := stringConsts(filepath.Join("../..", d))
		if err != nil {
			return nil, err
		}
		g.consts[d] = c
	}
	return g, nil
}

// stringConsts reads the string constants declared in the Go files of dir
// (tests excluded).
func stringConsts(dir string) ([]constDecl, error) {
	fset := token.NewFileSet()
	paths, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	var out []constDecl
	for _, p := range paths {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", p, err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, spec := range gd.Specs {
				vs := spec.(*ast.ValueSpec)
				typ := ""
				if id, ok := vs.Type.(*ast.Ident); ok {
					typ = id.Name
				}
				for i, name := range vs.Names {
					if i >= len(vs.Values) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						return nil, fmt.Errorf("%s: constant %s: %w", p, name.Name, err)
					}
					out = append(out, constDecl{name: name.Name, typ: typ, value: v})
				}
			}
		}
	}
	return out, nil
}

// enum returns the values of a vocabulary, sorted.
func (g *schemaGen) enum(e enumSource) ([]any, error) {
	set := map[string]bool{}
	for _, c := range g.consts[e.dir] {
		if e.typ != "" && c.typ == e.typ || e.prefix != "" && c.typ == "" && strings.HasPrefix(c.name, e.prefix) {
			set[c.value] = true
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("no constants %s%s in %s", e.typ, e.prefix, e.dir)
	}
	if e.empty {
		set[""] = true
	}
	var vals []string
	for v := range set {
		vals = append(vals, v)
	}
	sort.Strings(vals)
	out := make([]any, len(vals))
	for i, v := range vals {
		out[i] = v
	}
	return out, nil
}

// document returns the schema file of one document.
func (g *schemaGen) document(d jsonDocument) ([]byte, error) {
	g.defs = map[string]any{
		"address": map[string]any{
			"description": `an address or offset: "0x" and lower-case hex digits, so that 64-bit values survive readers that use doubles`,
			"type":        "string",
			"pattern":     "^0x[0-9a-f]{1,16}$",
		},
	}
	g.seen = map[reflect.Type]string{}
	g.usesAddress = false
	root, err := g.structSchema(d.typ)
	if err != nil {
		return nil, err
	}
	if !g.usesAddress {
		delete(g.defs, "address")
	}
	doc := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         schemaBase + d.name + ".json",
		"title":       d.title,
		"description": fmt.Sprintf("Version %d of this document (its \"schema\" field). Fields are only added within a version; one that changes meaning or goes away bumps it. See docs/json-schema.md.", d.version),
		"$comment":    "Generated from the Go types by TestJSONSchemaFiles (cmd/coroner/schema_test.go): change the types, then go test ./cmd/coroner -run TestJSONSchemaFiles -update.",
		"$defs":       g.defs,
	}
	if len(g.defs) == 0 {
		delete(doc, "$defs")
	}
	for k, v := range root {
		doc[k] = v
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

var (
	addrType      = reflect.TypeFor[crash.Addr]()
	timeType      = reflect.TypeFor[time.Time]()
	registersType = reflect.TypeFor[crash.Registers]()
	rawType       = reflect.TypeFor[json.RawMessage]()
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// defName is the $defs name of a named type: "crash.Frame".
func defName(t reflect.Type) string {
	return filepath.Base(t.PkgPath()) + "." + t.Name()
}

// schema returns the schema of a value of type t; where names the field,
// for the field vocabularies and for errors.
func (g *schemaGen) schema(t reflect.Type, where string) (map[string]any, error) {
	switch t {
	case addrType:
		g.usesAddress = true
		return map[string]any{"$ref": "#/$defs/address"}, nil
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}, nil
	case rawType:
		return map[string]any{}, nil
	case registersType:
		g.usesAddress = true
		var names []any
		for r := crash.Reg(0); r < crash.NumRegs; r++ {
			names = append(names, r.String())
		}
		return map[string]any{"type": "object", "propertyNames": map[string]any{"enum": names},
			"additionalProperties": map[string]any{"$ref": "#/$defs/address"}}, nil
	}
	if t.Kind() != reflect.Pointer && (t.Implements(jsonMarshaler) || t.Implements(textMarshaler) ||
		reflect.PointerTo(t).Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(textMarshaler)) {
		return nil, fmt.Errorf("%s: %s marshals itself: teach schemaGen its JSON form", where, t)
	}
	switch t.Kind() {
	case reflect.Bool:
		return map[string]any{"type": "boolean"}, nil
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return map[string]any{"type": "integer"}, nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer", "minimum": 0}, nil
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}, nil
	case reflect.String:
		s := map[string]any{"type": "string"}
		if e, ok := typeEnums[t]; ok {
			vals, err := g.enum(e)
			if err != nil {
				return nil, err
			}
			s["enum"] = vals
		} else if e, ok := fieldEnums[where]; ok {
			vals, err := g.enum(e)
			if err != nil {
				return nil, err
			}
			s["enum"] = vals
		} else if vals, ok := fixedEnums[where]; ok {
			var a []any
			for _, v := range vals {
				a = append(a, v)
			}
			s["enum"] = a
		} else if f, ok := fieldFormats[where]; ok {
			s["format"] = f
		} else if t.PkgPath() != "" && t.Name() != "" {
			return nil, fmt.Errorf("%s: string type %s has no vocabulary in typeEnums", where, t)
		}
		return s, nil
	case reflect.Pointer:
		return g.schema(t.Elem(), where)
	case reflect.Interface:
		return map[string]any{}, nil
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "contentEncoding": "base64"}, nil
		}
		items, err := g.schema(t.Elem(), where+"[]")
		if err != nil {
			return nil, err
		}
		return map[string]any{"type": "array", "items": items}, nil
	case reflect.Map:
		val, err := g.schema(t.Elem(), where+"{}")
		if err != nil {
			return nil, err
		}
		s := map[string]any{"type": "object", "additionalProperties": val}
		k := t.Key()
		switch {
		case k.Kind() == reflect.String && k.PkgPath() != "":
			ks, err := g.schema(k, where+"{key}")
			if err != nil {
				return nil, err
			}
			s["propertyNames"] = ks
		case k.Kind() == reflect.String:
		case k.Kind() >= reflect.Int && k.Kind() <= reflect.Int64:
			s["propertyNames"] = map[string]any{"pattern": "^-?[0-9]+$"}
		default:
			return nil, fmt.Errorf("%s: map key %s", where, k)
		}
		return s, nil
	case reflect.Struct:
		if t.Name() == "" {
			return g.structSchema(t)
		}
		name := defName(t)
		if _, ok := g.seen[t]; !ok {
			g.seen[t] = name
			if other, ok := g.defs[name]; ok && other != nil {
				return nil, fmt.Errorf("two types named %s", name)
			}
			g.defs[name] = nil // reserved: recursive types refer to it
			s, err := g.structSchema(t)
			if err != nil {
				return nil, err
			}
			g.defs[name] = s
		}
		return map[string]any{"$ref": "#/$defs/" + name}, nil
	}
	return nil, fmt.Errorf("%s: unsupported type %s", where, t)
}

// jsonField is a field as encoding/json writes it, promoted fields of
// embedded structs included.
type schemaField struct {
	name     string
	optional bool
	field    reflect.StructField
	owner    reflect.Type
}

func jsonFieldsOf(t reflect.Type) []schemaField {
	var direct, promoted []schemaField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				promoted = append(promoted, jsonFieldsOf(et)...)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		opt := strings.Contains(","+opts+",", ",omitempty,") || strings.Contains(","+opts+",", ",omitzero,")
		direct = append(direct, schemaField{name: name, optional: opt, field: f, owner: t})
	}
	have := map[string]bool{}
	for _, f := range direct {
		have[f.name] = true
	}
	for _, f := range promoted {
		if !have[f.name] {
			direct = append(direct, f)
			have[f.name] = true
		}
	}
	return direct
}

// structSchema is the object schema of a struct: every field it writes,
// those without omitempty required, no other.
func (g *schemaGen) structSchema(t reflect.Type) (map[string]any, error) {
	props := map[string]any{}
	var required []string
	for _, f := range jsonFieldsOf(t) {
		owner := "?"
		if f.owner.Name() != "" {
			owner = defName(f.owner)
		}
		where := owner + "." + f.name
		var s map[string]any
		if f.name == "schema" && f.field.Type.Kind() == reflect.Int {
			v, ok := g.versions[t]
			if !ok {
				return nil, fmt.Errorf("%s: %s has a schema field but no version in jsonDocuments", where, t)
			}
			s = map[string]any{"const": v}
		} else {
			var err error
			if s, err = g.schema(f.field.Type, where); err != nil {
				return nil, err
			}
			if !f.optional && nullable(f.field.Type) && mayBeNull[where] {
				s = map[string]any{"anyOf": []any{s, map[string]any{"type": "null"}}}
			}
		}
		props[f.name] = s
		if !f.optional {
			required = append(required, f.name)
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		sort.Strings(required)
		s["required"] = required
	}
	return s, nil
}

// nullable reports whether encoding/json may write null for a value of
// type t (a nil slice, map or pointer).
func nullable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Slice, reflect.Map, reflect.Pointer, reflect.Interface:
		return t != rawType && !(t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8)
	}
	return false
}

// mayBeNull are the fields written without omitempty that may be null (a
// nil slice, map or pointer). Every other such field is never null: its
// producer writes [] or {} when it has nothing, and the schema says so.
var mayBeNull = map[string]bool{}
