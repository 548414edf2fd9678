// Package schemagen turns the Go types of coroner's JSON documents into
// JSON Schema files (draft 2020-12) as encoding/json writes them: every
// field, required unless omitempty, no other; closed vocabularies read
// from the Go constants that define them. The tests that keep
// docs/schema/*.json equal to the types (cmd/coroner for the CLI's
// documents, internal/service/server for the dashboard's API) use it.
package schemagen

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
)

// Document is one kind of JSON document and the schema file describing it.
type Document struct {
	// Name is the file name without .json: docs/schema/NAME.json.
	Name string
	// Type is the Go type the document is written from.
	Type reflect.Type
	// Version is the document's version, the constant of its version
	// field (Config.VersionField).
	Version int
	// Title is the schema's title: what prints or serves the document.
	Title string
}

// EnumSource names the Go constants of a closed vocabulary: those of type
// Type, or (for untyped constants) those whose name starts with Prefix, in
// the package directory Dir (relative to Config.Root).
type EnumSource struct {
	Dir, Type, Prefix string
	// Empty allows "" too (a field always written but not always set).
	Empty bool
}

// Config says how the documents of one family are described. Field
// names ("where") are "package.Type.json_name" ("?" for an anonymous
// struct), with "[]" appended for the elements of a slice and "{}" for
// the values of a map.
type Config struct {
	// Root is the repository root, where EnumSource.Dir are.
	Root string
	// Base is the $id prefix of the schema files.
	Base string
	// Documents are the family's documents: their types carry
	// VersionField.
	Documents []Document
	// VersionField is the JSON name of the int field that holds the
	// document's version ("schema", "api_version"): a const in the schema.
	VersionField string
	// Description gives a document's description from its version.
	Description func(version int) string
	// Comment is the $comment of every file: how it is regenerated.
	Comment string
	// TypeEnums are the vocabularies of named string types.
	TypeEnums map[reflect.Type]EnumSource
	// FieldEnums are the vocabularies of plain string fields.
	FieldEnums map[string]EnumSource
	// FieldFormats are the formats of plain string fields (times the
	// code formats itself).
	FieldFormats map[string]string
	// FixedEnums are closed sets written out (no Go constants name them).
	FixedEnums map[string][]string
	// MayBeNull are the fields written without omitempty that may be null
	// (a nil slice, map or pointer). Every other such field is never
	// null: its producer writes [] or {} when it has nothing.
	MayBeNull map[string]bool
	// Refs are the types another schema file describes, by the reference
	// that points at it ("report.json", "report.json#/$defs/crash.Fix"):
	// a document embedding one refers to it rather than repeating it.
	Refs map[reflect.Type]string
}

// Generator writes the schema files of one Config.
type Generator struct {
	cfg      Config
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

// New reads the constants of the vocabularies of cfg.
func New(cfg Config) (*Generator, error) {
	g := &Generator{cfg: cfg, consts: map[string][]constDecl{}, versions: map[reflect.Type]int{}}
	for _, d := range cfg.Documents {
		g.versions[d.Type] = d.Version
	}
	dirs := map[string]bool{}
	for _, e := range cfg.TypeEnums {
		dirs[e.Dir] = true
	}
	for _, e := range cfg.FieldEnums {
		dirs[e.Dir] = true
	}
	for d := range dirs {
		c, err := stringConsts(filepath.Join(cfg.Root, d))
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
		return nil, fmt.Errorf("list %s: %w", dir, err)
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
func (g *Generator) enum(e EnumSource) ([]any, error) {
	set := map[string]bool{}
	for _, c := range g.consts[e.Dir] {
		if e.Type != "" && c.typ == e.Type || e.Prefix != "" && c.typ == "" && strings.HasPrefix(c.name, e.Prefix) {
			set[c.value] = true
		}
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("no constants %s%s in %s", e.Type, e.Prefix, e.Dir)
	}
	if e.Empty {
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

// Document returns the schema file of one document, indented JSON.
func (g *Generator) Document(d Document) ([]byte, error) {
	g.defs = map[string]any{
		"address": map[string]any{
			"description": `an address or offset: "0x" and lower-case hex digits, so that 64-bit values survive readers that use doubles`,
			"type":        "string",
			"pattern":     "^0x[0-9a-f]{1,16}$",
		},
	}
	g.seen = map[reflect.Type]string{}
	g.usesAddress = false
	root, err := g.structSchema(d.Type)
	if err != nil {
		return nil, err
	}
	if !g.usesAddress {
		delete(g.defs, "address")
	}
	doc := map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         g.cfg.Base + d.Name + ".json",
		"title":       d.Title,
		"description": g.cfg.Description(d.Version),
		"$comment":    g.cfg.Comment,
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
		return nil, fmt.Errorf("encode schema %s: %w", d.Name, err)
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

// DefName is the $defs name of a named type: "crash.Frame".
func DefName(t reflect.Type) string {
	return filepath.Base(t.PkgPath()) + "." + t.Name()
}

// schema returns the schema of a value of type t; where names the field,
// for the field vocabularies and for errors.
func (g *Generator) schema(t reflect.Type, where string) (map[string]any, error) {
	if ref, ok := g.cfg.Refs[t]; ok {
		return map[string]any{"$ref": ref}, nil
	}
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
		return nil, fmt.Errorf("%s: %s marshals itself: teach schemagen its JSON form", where, t)
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
		if e, ok := g.cfg.TypeEnums[t]; ok {
			vals, err := g.enum(e)
			if err != nil {
				return nil, err
			}
			s["enum"] = vals
		} else if e, ok := g.cfg.FieldEnums[where]; ok {
			vals, err := g.enum(e)
			if err != nil {
				return nil, err
			}
			s["enum"] = vals
		} else if vals, ok := g.cfg.FixedEnums[where]; ok {
			var a []any
			for _, v := range vals {
				a = append(a, v)
			}
			s["enum"] = a
		} else if f, ok := g.cfg.FieldFormats[where]; ok {
			s["format"] = f
		} else if t.PkgPath() != "" && t.Name() != "" {
			return nil, fmt.Errorf("%s: string type %s has no vocabulary in TypeEnums", where, t)
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
		name := DefName(t)
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

// schemaField is a field as encoding/json writes it, promoted fields of
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
func (g *Generator) structSchema(t reflect.Type) (map[string]any, error) {
	props := map[string]any{}
	var required []string
	for _, f := range jsonFieldsOf(t) {
		owner := "?"
		if f.owner.Name() != "" {
			owner = DefName(f.owner)
		}
		where := owner + "." + f.name
		var s map[string]any
		if f.name == g.cfg.VersionField && f.field.Type.Kind() == reflect.Int {
			v, ok := g.versions[t]
			if !ok {
				return nil, fmt.Errorf("%s: %s has a %s field but is not a document of the family", where, t, g.cfg.VersionField)
			}
			s = map[string]any{"const": v}
		} else {
			var err error
			if s, err = g.schema(f.field.Type, where); err != nil {
				return nil, err
			}
			if !f.optional && nullable(f.field.Type) && g.cfg.MayBeNull[where] {
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
