package sanitize

import (
	"reflect"
	"sync"
)

// Copy returns a deep copy of v with every string escaped by Text (map
// keys included): what text and Markdown renderers format, so that no
// field they compose into a line can break it.
func Copy[T any](v T) T {
	return MapStrings(v, func(_, s string) string { return Text(s) })
}

// MapStrings returns a deep copy of v in which every string s (of a struct
// field, slice element, map key or value, however deeply nested, named
// string types included) is replaced by f(key, s). key is the name of the
// struct field or the map key under which s is stored, for policies that
// depend on it (a map entry "HTTP_COOKIE", a field "Args"). Byte slices,
// unexported fields, functions and channels are copied as they are; shared
// pointers stay shared in the copy, and cycles are followed once.
func MapStrings[T any](v T, f func(key, s string) string) T {
	m := &mapper{f: f, seen: map[ptrKey]reflect.Value{}}
	rv := reflect.ValueOf(&v).Elem()
	out := reflect.New(rv.Type()).Elem()
	out.Set(m.value(rv, ""))
	return out.Interface().(T)
}

type ptrKey struct {
	p uintptr
	t reflect.Type
}

type mapper struct {
	f    func(key, s string) string
	seen map[ptrKey]reflect.Value
}

func (m *mapper) value(v reflect.Value, key string) reflect.Value {
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		t := m.f(key, s)
		if t == s {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.SetString(t)
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		k := ptrKey{v.Pointer(), v.Type()}
		if p, ok := m.seen[k]; ok {
			return p
		}
		p := reflect.New(v.Type().Elem())
		m.seen[k] = p
		p.Elem().Set(m.value(v.Elem(), key))
		return p
	case reflect.Struct:
		fields := stringFields(v.Type())
		if len(fields) == 0 {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(v) // unexported fields as they are
		for _, f := range fields {
			out.Field(f.index).Set(m.value(v.Field(f.index), f.name))
		}
		return out
	case reflect.Slice:
		if v.IsNil() || v.Type().Elem().Kind() == reflect.Uint8 || !holdsStrings(v.Type().Elem()) {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(m.value(v.Index(i), key))
		}
		return out
	case reflect.Array:
		if !holdsStrings(v.Type().Elem()) {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(m.value(v.Index(i), key))
		}
		return out
	case reflect.Map:
		if v.IsNil() || (!holdsStrings(v.Type().Key()) && !holdsStrings(v.Type().Elem())) {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			k := it.Key()
			name := ""
			if k.Kind() == reflect.String {
				name = k.String()
			}
			out.SetMapIndex(m.value(k, key), m.value(it.Value(), name))
		}
		return out
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		inner := m.value(v.Elem(), key)
		out := reflect.New(v.Type()).Elem()
		out.Set(inner)
		return out
	}
	return v
}

// holdsStrings reports whether a value of type t may contain a string
// (so that slices of numbers are not copied element by element).
func holdsStrings(t reflect.Type) bool {
	if v, ok := holdsCache.Load(t); ok {
		return v.(bool)
	}
	h := holds(t, map[reflect.Type]bool{})
	holdsCache.Store(t, h)
	return h
}

var holdsCache sync.Map // reflect.Type -> bool

// field is an exported struct field that may hold a string.
type field struct {
	index int
	name  string
}

// stringFields returns the exported fields of struct type t that may hold
// strings (computed once per type: reports have millions of fields).
func stringFields(t reflect.Type) []field {
	if v, ok := fieldsCache.Load(t); ok {
		return v.([]field)
	}
	var fs []field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.IsExported() && holdsStrings(f.Type) {
			fs = append(fs, field{i, f.Name})
		}
	}
	fieldsCache.Store(t, fs)
	return fs
}

var fieldsCache sync.Map // reflect.Type -> []field

func holds(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.String, reflect.Interface:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return holds(t.Elem(), seen)
	case reflect.Map:
		return holds(t.Key(), seen) || holds(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if t.Field(i).IsExported() && holds(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}

// Rewrite replaces, in place, every string reachable from ptr (a non-nil
// pointer) by f(key, s), like MapStrings but without copying: for a value
// the caller owns and hands on (a report that callers already hold).
// Unexported fields and byte slices are left alone.
func Rewrite(ptr any, f func(key, s string) string) {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	m := &mapper{f: f, seen: map[ptrKey]reflect.Value{}}
	m.rewrite(v.Elem(), "", map[ptrKey]bool{})
}

func (m *mapper) rewrite(v reflect.Value, key string, seen map[ptrKey]bool) {
	switch v.Kind() {
	case reflect.String:
		if s := v.String(); v.CanSet() {
			if t := m.f(key, s); t != s {
				v.SetString(t)
			}
		}
	case reflect.Pointer:
		if v.IsNil() {
			return
		}
		k := ptrKey{v.Pointer(), v.Type()}
		if seen[k] {
			return
		}
		seen[k] = true
		m.rewrite(v.Elem(), key, seen)
	case reflect.Struct:
		for _, f := range stringFields(v.Type()) {
			m.rewrite(v.Field(f.index), f.name, seen)
		}
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() || !holdsStrings(v.Type().Elem()) || v.Type().Elem().Kind() == reflect.Uint8 {
			return
		}
		for i := 0; i < v.Len(); i++ {
			m.rewrite(v.Index(i), key, seen)
		}
	case reflect.Map:
		if v.IsNil() || (!holdsStrings(v.Type().Key()) && !holdsStrings(v.Type().Elem())) {
			return
		}
		keys := v.MapKeys()
		for _, k := range keys {
			name := ""
			if k.Kind() == reflect.String {
				name = k.String()
			}
			val := m.value(v.MapIndex(k), name)
			nk := m.value(k, key)
			if !nk.Equal(k) {
				v.SetMapIndex(k, reflect.Value{})
			}
			v.SetMapIndex(nk, val)
		}
	case reflect.Interface:
		if v.IsNil() || !v.CanSet() {
			return
		}
		v.Set(m.value(v.Elem(), key))
	}
}
