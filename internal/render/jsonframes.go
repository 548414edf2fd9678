package render

import (
	"reflect"
	"strconv"
	"unicode/utf8"

	"github.com/coroner-dev/coroner/crash"
)

// A 40,000-frame recursion spends most of its JSON time in reflection and
// in indenting: native and PHP frames, the bulk of a long report, are
// written here field by field, exactly as encoding/json writes them. Each
// writer checks at start-up that its struct still has the fields it
// writes, in that order; when it does not (a field was added), frames go
// through encoding/json again and nothing is lost.

var (
	frameFields    = []string{"index", "pc", "sp", "module", "module_offset", "function", "function_offset", "function_source,omitempty", "file", "line", "trust", "php_frame,omitempty", "inlined,omitempty", "tail_calls,omitempty"}
	phpFrameFields = []string{"function", "class", "call_type", "file", "line", "kind", "args", "execute_data"}
	frameFast      = hasFields(reflect.TypeOf(crash.Frame{}), frameFields)
	phpFrameFast   = hasFields(reflect.TypeOf(crash.PHPFrame{}), phpFrameFields)
)

// hasFields reports whether t's fields carry exactly these JSON tags, in
// this order.
func hasFields(t reflect.Type, tags []string) bool {
	if t.NumField() != len(tags) {
		return false
	}
	for i := range tags {
		if t.Field(i).Tag.Get("json") != tags[i] {
			return false
		}
	}
	return true
}

// appendFrame appends f as encoding/json indents it (prefix ind, indent
// two spaces, no final newline); ok is false when it cannot.
func appendFrame(b []byte, f *crash.Frame, ind string) ([]byte, bool) {
	if !frameFast || f.Inlined != nil || f.TailCalls != nil {
		return b, false
	}
	in := ind + "  "
	b = append(b, "{\n"...)
	b = strconv.AppendInt(field(b, in, "index"), int64(f.Index), 10)
	b = addrField(b, in, "pc", f.PC)
	b = addrField(b, in, "sp", f.SP)
	b = strField(b, in, "module", f.Module)
	b = addrField(b, in, "module_offset", f.ModuleOffset)
	b = strField(b, in, "function", f.Function)
	b = addrField(b, in, "function_offset", f.FunctionOffset)
	if f.FunctionSource != "" {
		b = strField(b, in, "function_source", f.FunctionSource)
	}
	b = strField(b, in, "file", f.File)
	b = strconv.AppendInt(field(b, in, "line"), int64(f.Line), 10)
	b = strField(b, in, "trust", string(f.Trust))
	if f.PHPFrame != nil {
		b = strconv.AppendInt(field(b, in, "php_frame"), int64(*f.PHPFrame), 10)
	}
	b = append(b, '\n')
	b = append(b, ind...)
	return append(b, '}'), true
}

// appendPHPFrame is appendFrame for a PHP frame.
func appendPHPFrame(b []byte, f *crash.PHPFrame, ind string) ([]byte, bool) {
	if !phpFrameFast {
		return b, false
	}
	in := ind + "  "
	b = append(b, "{\n"...)
	b = field(b, in, "function")
	b = appendJSONString(b, f.Function)
	b = strField(b, in, "class", f.Class)
	b = strField(b, in, "call_type", f.CallType)
	b = strField(b, in, "file", f.File)
	b = strconv.AppendInt(field(b, in, "line"), int64(f.Line), 10)
	b = strField(b, in, "kind", string(f.Kind))
	b = field(b, in, "args")
	switch {
	case f.Args == nil:
		b = append(b, "null"...)
	case len(f.Args) == 0:
		b = append(b, "[]"...)
	default:
		b = append(b, '[')
		for i, a := range f.Args {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, '\n')
			b = append(b, in...)
			b = append(b, "  "...)
			b = appendJSONString(b, a)
		}
		b = append(b, '\n')
		b = append(b, in...)
		b = append(b, ']')
	}
	b = addrField(b, in, "execute_data", f.ExecuteData)
	b = append(b, '\n')
	b = append(b, ind...)
	return append(b, '}'), true
}

// field starts a member: a separating comma after the previous one (but
// the first), the indentation, the name.
func field(b []byte, in, name string) []byte {
	if b[len(b)-1] != '\n' {
		b = append(b, ",\n"...)
	}
	b = append(b, in...)
	b = append(b, '"')
	b = append(b, name...)
	return append(b, `": `...)
}

func strField(b []byte, in, name, v string) []byte {
	return appendJSONString(field(b, in, name), v)
}

func addrField(b []byte, in, name string, a crash.Addr) []byte {
	b = append(field(b, in, name), `"0x`...)
	b = strconv.AppendUint(b, uint64(a), 16)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s quoted as encoding/json quotes it (HTML
// characters escaped, invalid UTF-8 replaced, U+2028 and U+2029 escaped).
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
