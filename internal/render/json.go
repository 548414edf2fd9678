// Package render renders a crash.Report for people (text, Markdown) and for
// programs (JSON). Renderers only format: every fact comes from the report.
package render

import (
	"bufio"
	"bytes"
	"encoding"
	"encoding/json"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/coroner-dev/coroner/crash"
)

// JSON writes the report as indented JSON (schema crash.SchemaVersion),
// byte for byte what encoding/json's indenting Encoder writes, but
// streamed: structs and slices are written element by element, so a report
// of a million frames is not held a second time (and a third, while the
// buffer grows) as one JSON document in memory.
func JSON(w io.Writer, r *crash.Report) error { return streamJSON(w, r) }

// streamJSON writes v as JSON indented by two spaces, as JSON does.
func streamJSON(w io.Writer, v any) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	e := &jsonStream{w: bw}
	e.value(reflect.ValueOf(v), "")
	if e.err == nil {
		e.err = bw.WriteByte('\n')
	}
	if e.err == nil {
		e.err = bw.Flush()
	}
	return e.err
}

type jsonStream struct {
	w   *bufio.Writer
	err error
	buf bytes.Buffer
	// fast is the buffer of the field-by-field frame writers
	// (jsonframes.go).
	fast []byte
}

var (
	frameType    = reflect.TypeFor[crash.Frame]()
	phpFrameType = reflect.TypeFor[crash.PHPFrame]()
)

// frame writes a native or PHP frame field by field (the bulk of a long
// report); ok is false when v is neither or its writer cannot.
func (e *jsonStream) frame(v reflect.Value, prefix string) (ok bool) {
	t := v.Type()
	if t != frameType && t != phpFrameType {
		return false
	}
	if !v.CanAddr() {
		c := reflect.New(t).Elem()
		c.Set(v)
		v = c
	}
	switch f := v.Addr().Interface().(type) {
	case *crash.Frame:
		e.fast, ok = appendFrame(e.fast[:0], f, prefix)
	case *crash.PHPFrame:
		e.fast, ok = appendPHPFrame(e.fast[:0], f, prefix)
	}
	if ok && e.err == nil {
		_, e.err = e.w.Write(e.fast)
	}
	return ok
}

var (
	marshalerType     = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// custom reports whether t (or *t) marshals itself.
func custom(t reflect.Type) bool {
	if c, ok := customCache.Load(t); ok {
		return c.(bool)
	}
	c := t.Implements(marshalerType) || t.Implements(textMarshalerType) ||
		reflect.PointerTo(t).Implements(marshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)
	customCache.Store(t, c)
	return c
}

// customCache maps a reflect.Type to custom's answer (four interface
// checks, for each of the thousands of values of a report).
var customCache sync.Map

func (e *jsonStream) write(s string) {
	if e.err == nil {
		_, e.err = e.w.WriteString(s)
	}
}

// leaf writes v as encoding/json does, indented under prefix.
func (e *jsonStream) leaf(v reflect.Value, prefix string) {
	if e.err != nil {
		return
	}
	if !custom(v.Type()) {
		// Booleans and integers as encoding/json writes them, without
		// its reflection and allocations.
		switch v.Kind() {
		case reflect.Bool:
			e.fast = strconv.AppendBool(e.fast[:0], v.Bool())
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			e.fast = strconv.AppendInt(e.fast[:0], v.Int(), 10)
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
			e.fast = strconv.AppendUint(e.fast[:0], v.Uint(), 10)
		default:
			goto marshal
		}
		_, e.err = e.w.Write(e.fast)
		return
	}
marshal:
	b, err := json.Marshal(v.Interface())
	if err != nil {
		e.err = err
		return
	}
	if len(b) > 0 && b[0] != '{' && b[0] != '[' {
		_, e.err = e.w.Write(b) // a scalar: nothing to indent
		return
	}
	e.buf.Reset()
	if err := json.Indent(&e.buf, b, prefix, "  "); err != nil {
		e.err = err
		return
	}
	_, e.err = e.w.Write(e.buf.Bytes())
}

func (e *jsonStream) value(v reflect.Value, prefix string) {
	if e.err != nil {
		return
	}
	if !v.IsValid() {
		e.write("null")
		return
	}
	t := v.Type()
	if custom(t) && (v.Kind() != reflect.Pointer || !v.IsNil()) {
		// Types that marshal themselves are encoding/json's business
		// (through the interface, as it would see them).
		e.leaf(v, prefix)
		return
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			e.write("null")
			return
		}
		e.value(v.Elem(), prefix)
	case reflect.Struct:
		if !e.frame(v, prefix) {
			e.object(v, prefix)
		}
	case reflect.Slice:
		if v.IsNil() {
			e.write("null")
			return
		}
		if t.Elem().Kind() == reflect.Uint8 {
			e.leaf(v, prefix)
			return
		}
		fallthrough
	case reflect.Array:
		if v.Len() == 0 {
			e.write("[]")
			return
		}
		inner := prefix + "  "
		e.write("[\n")
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				e.write(",\n")
			}
			e.write(inner)
			e.value(v.Index(i), inner)
		}
		e.write("\n" + prefix + "]")
	default:
		e.leaf(v, prefix)
	}
}

// jsonField is a struct field as encoding/json sees it.
type jsonField struct {
	index     int
	name      string // quoted
	omitEmpty bool
	omitZero  bool
}

// fieldsOf is what jsonFields found for a type: a report has thousands of
// objects of a dozen types, each type's tags are read once.
type fieldsOf struct {
	fields []jsonField
	ok     bool
}

// jsonFieldCache maps a reflect.Type to its fieldsOf.
var jsonFieldCache sync.Map

// jsonFields returns the fields encoding/json writes of struct type t, in
// order; ok is false for a struct this writer leaves to encoding/json.
func jsonFields(t reflect.Type) ([]jsonField, bool) {
	if c, ok := jsonFieldCache.Load(t); ok {
		f := c.(fieldsOf)
		return f.fields, f.ok
	}
	fields, ok := readJSONFields(t)
	jsonFieldCache.Store(t, fieldsOf{fields, ok})
	return fields, ok
}

// readJSONFields is jsonFields, read from t's tags.
func readJSONFields(t reflect.Type) ([]jsonField, bool) {
	var out []jsonField
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous {
			return nil, false // embedded structs: left to encoding/json
		}
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		if strings.Contains(","+opts+",", ",string,") {
			return nil, false
		}
		q, _ := json.Marshal(name)
		out = append(out, jsonField{index: i, name: string(q), omitEmpty: strings.Contains(","+opts+",", ",omitempty,"),
			omitZero: strings.Contains(","+opts+",", ",omitzero,")})
	}
	return out, true
}

func (e *jsonStream) object(v reflect.Value, prefix string) {
	fields, ok := jsonFields(v.Type())
	if !ok {
		e.leaf(v, prefix)
		return
	}
	inner := prefix + "  "
	n := 0
	for _, f := range fields {
		fv := v.Field(f.index)
		if f.omitEmpty && isEmpty(fv) || f.omitZero && isZero(fv) {
			continue
		}
		if n == 0 {
			e.write("{\n")
		} else {
			e.write(",\n")
		}
		n++
		e.write(inner + f.name + ": ")
		e.value(fv, inner)
	}
	if n == 0 {
		e.write("{}")
		return
	}
	e.write("\n" + prefix + "}")
}

type zeroer interface{ IsZero() bool }

var zeroerType = reflect.TypeFor[zeroer]()

// isZero is encoding/json's test for omitzero: the type's IsZero method
// when it has one, else the zero value.
func isZero(v reflect.Value) bool {
	t := v.Type()
	switch {
	case t.Implements(zeroerType):
		if (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) && v.IsNil() {
			return true
		}
		return v.Interface().(zeroer).IsZero()
	case reflect.PointerTo(t).Implements(zeroerType):
		if !v.CanAddr() {
			c := reflect.New(t).Elem()
			c.Set(v)
			v = c
		}
		return v.Addr().Interface().(zeroer).IsZero()
	}
	return v.IsZero()
}

// isEmpty is encoding/json's test for omitempty.
func isEmpty(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Array, reflect.Map, reflect.Slice, reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return v.Int() == 0
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return v.Uint() == 0
	case reflect.Float32, reflect.Float64:
		return v.Float() == 0
	case reflect.Interface, reflect.Pointer:
		return v.IsNil()
	}
	return false
}
