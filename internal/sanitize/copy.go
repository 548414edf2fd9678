package sanitize

import (
	"reflect"
	"sync"
)

// Copy returns v with every string escaped by Text (map keys included):
// what text and Markdown renderers format, so that no field they compose
// into a line can break it. Parts of v with nothing to escape are shared
// with it, not copied (a report of 40,000 clean frames costs nothing);
// neither must be modified afterwards.
func Copy[T any](v T) T {
	m := &mapper{f: func(_, s string) string { return Text(s) }, seen: map[ptrKey]mapped{}, share: true}
	return m.top(v).(T)
}

// MapStrings returns a deep copy of v in which every string s (of a struct
// field, slice element, map key or value, however deeply nested, named
// string types included) is replaced by f(key, s). key is the name of the
// struct field or the map key under which s is stored, for policies that
// depend on it (a map entry "HTTP_COOKIE", a field "Args"). Byte slices,
// unexported fields, functions and channels are copied as they are; shared
// pointers stay shared in the copy, and cycles are followed once.
func MapStrings[T any](v T, f func(key, s string) string) T {
	m := &mapper{f: f, seen: map[ptrKey]mapped{}}
	return m.top(v).(T)
}

func (m *mapper) top(v any) any {
	rv := reflect.ValueOf(&v).Elem()
	out := reflect.New(rv.Type()).Elem()
	nv, _ := m.value(rv, "")
	out.Set(nv)
	return out.Interface()
}

type ptrKey struct {
	p uintptr
	t reflect.Type
}

type mapped struct {
	v       reflect.Value
	changed bool
}

type mapper struct {
	f    func(key, s string) string
	seen map[ptrKey]mapped
	// share returns the original of a part in which no string changed,
	// instead of a copy.
	share bool
}

// value returns v mapped, and whether a string in it changed.
func (m *mapper) value(v reflect.Value, key string) (reflect.Value, bool) {
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		t := m.f(key, s)
		if t == s {
			return v, false
		}
		out := reflect.New(v.Type()).Elem()
		out.SetString(t)
		return out, true
	case reflect.Pointer:
		if v.IsNil() {
			return v, false
		}
		k := ptrKey{v.Pointer(), v.Type()}
		if p, ok := m.seen[k]; ok {
			return p.v, p.changed
		}
		p := reflect.New(v.Type().Elem())
		m.seen[k] = mapped{p, true} // a cycle back here: assume changed
		inner, changed := m.value(v.Elem(), key)
		if m.share && !changed {
			m.seen[k] = mapped{v, false}
			return v, false
		}
		p.Elem().Set(inner)
		m.seen[k] = mapped{p, changed}
		return p, changed
	case reflect.Struct:
		fields := stringFields(v.Type())
		if len(fields) == 0 {
			return v, false
		}
		var out reflect.Value
		changed := false
		for _, f := range fields {
			fv, c := m.value(v.Field(f.index), f.name)
			if !c && m.share {
				continue
			}
			if !out.IsValid() {
				out = reflect.New(v.Type()).Elem()
				out.Set(v) // unexported fields as they are
			}
			out.Field(f.index).Set(fv)
			changed = changed || c
		}
		if !out.IsValid() {
			return v, false
		}
		return out, changed
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() || v.Type().Elem().Kind() == reflect.Uint8 || !holdsStrings(v.Type().Elem()) {
			return v, false
		}
		var out reflect.Value
		changed := false
		for i := 0; i < v.Len(); i++ {
			ev, c := m.value(v.Index(i), key)
			if !c && m.share && !out.IsValid() {
				continue
			}
			if !out.IsValid() {
				if v.Kind() == reflect.Slice {
					out = reflect.MakeSlice(v.Type(), v.Len(), v.Len())
				} else {
					out = reflect.New(v.Type()).Elem()
				}
				for j := 0; j < i; j++ {
					out.Index(j).Set(v.Index(j))
				}
			}
			out.Index(i).Set(ev)
			changed = changed || c
		}
		if !out.IsValid() {
			return v, false
		}
		return out, changed
	case reflect.Map:
		if v.IsNil() || (!holdsStrings(v.Type().Key()) && !holdsStrings(v.Type().Elem())) {
			return v, false
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		changed := false
		it := v.MapRange()
		for it.Next() {
			k := it.Key()
			name := ""
			if k.Kind() == reflect.String {
				name = k.String()
			}
			nk, c1 := m.value(k, key)
			nv, c2 := m.value(it.Value(), name)
			out.SetMapIndex(nk, nv)
			changed = changed || c1 || c2
		}
		if m.share && !changed {
			return v, false
		}
		return out, changed
	case reflect.Interface:
		if v.IsNil() {
			return v, false
		}
		inner, changed := m.value(v.Elem(), key)
		if m.share && !changed {
			return v, false
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(inner)
		return out, changed
	}
	return v, false
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
	m := &mapper{f: f, seen: map[ptrKey]mapped{}}
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
			val, _ := m.value(v.MapIndex(k), name)
			nk, _ := m.value(k, key)
			if !nk.Equal(k) {
				v.SetMapIndex(k, reflect.Value{})
			}
			v.SetMapIndex(nk, val)
		}
	case reflect.Interface:
		if v.IsNil() || !v.CanSet() {
			return
		}
		nv, _ := m.value(v.Elem(), key)
		v.Set(nv)
	}
}
