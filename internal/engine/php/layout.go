package php

import (
	"fmt"
	"strconv"
	"strings"
)

// Layout holds the x86-64 offsets (in bytes), sizes and constants of the
// PHP runtime structures the readers use. A Layout is made for one PHP
// binary (see makeLayout): derived from the machine code of the binary's
// exported functions (derive.go), taken from the per-version table below,
// or, for the fields that have not moved since PHP 7.0, from that constant;
// where each value came from and what checked it on the core is recorded
// separately (provenance.go). fieldDefs lists every field with its id.
type Layout struct {
	// Version is the PHP minor version the layout describes ("8.2").
	Version string
	// ZendAPI is ZEND_MODULE_API_NO of that version (zend_module_entry.zend_api).
	ZendAPI uint64

	// zend_executor_globals
	EGSymbolTable        uint64 // HashTable symbol_table (embedded)
	EGCurrentExecuteData uint64 // zend_execute_data *current_execute_data
	// EGIniDirectives is the offset of HashTable *ini_directives, or 0 when
	// it is not known (then it is found by a validated scan).
	EGIniDirectives uint64

	// zend_execute_data
	ExOpline  uint64 // const zend_op *opline
	ExFunc    uint64 // zend_function *func
	ExThis    uint64 // zval This (u1.type_info at +8, u2.num_args at +12)
	ExNumArgs uint64 // This.u2.num_args (ZEND_CALL_NUM_ARGS)
	ExPrev    uint64 // zend_execute_data *prev_execute_data
	ExArgs    uint64 // ZEND_CALL_ARG(ex, 1): ZEND_CALL_FRAME_SLOT * sizeof(zval)

	// zend_function
	FnType    uint64 // zend_uchar type (1 internal, 2 user, 3 overloaded, 4 eval code)
	FnName    uint64 // common.function_name
	FnScope   uint64 // common.scope
	FnNumArgs uint64 // common.num_args

	// zend_op_array
	OpArrayLast      uint64 // uint32_t last (number of opcodes)
	OpArrayOpcodes   uint64 // zend_op *opcodes
	OpArrayFilename  uint64 // zend_string *filename
	OpArrayLineStart uint64 // uint32_t line_start
	OpArrayLineEnd   uint64 // uint32_t line_end

	// zend_op
	OpExtValue uint64 // uint32_t extended_value
	OpLineno   uint64 // uint32_t lineno
	OpOpcode   uint64 // zend_uchar opcode
	OpSize     uint64 // sizeof(zend_op)
	// IncludeOrEval is the opcode number of ZEND_INCLUDE_OR_EVAL.
	IncludeOrEval uint64

	CEName uint64 // zend_class_entry.name
	ObjCE  uint64 // zend_object.ce
	RefVal uint64 // zend_reference.val
	StrLen uint64 // zend_string.len
	StrVal uint64 // zend_string.val

	// HashTable and Bucket
	HTFlags      uint64 // u.flags
	HTData       uint64 // arData (arPacked)
	HTUsed       uint64 // nNumUsed
	HTCount      uint64 // nNumOfElements
	HTTableSize  uint64 // nTableSize
	HTPackedFlag uint64 // HASH_FLAG_PACKED
	// HTPackedElem is the size of an element of a packed array: a Bucket
	// before PHP 8.2, a zval (arPacked) since.
	HTPackedElem uint64
	BucketSize   uint64 // sizeof(Bucket)
	BucketKey    uint64 // Bucket.key

	// zval
	ZvalType   uint64 // u1.v.type
	ZvalSize   uint64 // sizeof(zval)
	IsIndirect uint64 // IS_INDIRECT
	IsPtr      uint64 // IS_PTR

	// sapi_globals (request_info starts at 8)
	SGServerContext  uint64
	SGRequestMethod  uint64
	SGQueryString    uint64
	SGContentLength  uint64
	SGPathTranslated uint64
	SGRequestURI     uint64
	SGContentType    uint64

	// zend_ini_entry
	IniName  uint64
	IniValue uint64

	// zend_module_entry, and the zend_extensions list
	ModZendAPI   uint64
	ModName      uint64
	ModVersion   uint64
	LListData    uint64 // zend_llist_element.data (the zend_extension, embedded)
	ZextVersion  uint64 // zend_extension.version (name is at 0)
	FESize       uint64 // sizeof(zend_function_entry)
	FCGIEnv      uint64 // fcgi_request.env (main/fastcgi.c, private)
	FCGIHashList uint64 // fcgi_hash.list (after hash_table[128])
	FCGIVarLen   uint64 // fcgi_hash_bucket.var_len
	FCGIVar      uint64 // fcgi_hash_bucket.var
	FCGIValLen   uint64 // fcgi_hash_bucket.val_len
	FCGIVal      uint64 // fcgi_hash_bucket.val
	FCGINext     uint64 // fcgi_hash_bucket.list_next
}

// packedZvals reports whether packed arrays hold zvals (PHP 8.2+).
func (l *Layout) packedZvals() bool { return l.HTPackedElem == l.ZvalSize }

// Field groups: which reader checks a field on the core's data (see
// validate.go) and which reader cannot run without it.
const (
	groupFrames  = "frames"
	groupINI     = "ini"
	groupModules = "modules"
	groupRequest = "request"
	groupHash    = "hash" // every reader of a HashTable
	groupNames   = "names"
	groupEntries = "entries" // zend_function_entry tables (naming internals)
)

// fieldDef describes one Layout field.
type fieldDef struct {
	// id names the field in messages, JSON and tests ("eg.current_execute_data");
	// it is the name offsets.c prints for it.
	id string
	// what is the C expression ("EG(current_execute_data)").
	what string
	ptr  func(*Layout) *uint64
	// constant is the value the field has had since PHP 7.0 on x86-64
	// (hasConst); fields without one moved between versions and come from
	// the binary or the table only.
	constant uint64
	hasConst bool
	// group is the reader that uses the field and checks it on the core.
	group string
	// optional fields are not needed for a reader to run (a missing one
	// loses a detail, with a warning).
	optional bool
}

// fieldDefs lists every Layout field, in the order `coroner php --layout`
// prints them.
var fieldDefs = func() []fieldDef {
	type d = fieldDef
	k := func(id, what, group string, ptr func(*Layout) *uint64, v uint64) d {
		return d{id: id, what: what, ptr: ptr, constant: v, hasConst: true, group: group}
	}
	m := func(id, what, group string, ptr func(*Layout) *uint64) d {
		return d{id: id, what: what, ptr: ptr, group: group}
	}
	return []d{
		m("zend_api", "ZEND_MODULE_API_NO", groupModules, func(l *Layout) *uint64 { return &l.ZendAPI }),
		m("eg.current_execute_data", "EG(current_execute_data)", groupFrames, func(l *Layout) *uint64 { return &l.EGCurrentExecuteData }),
		m("eg.symbol_table", "EG(symbol_table)", groupRequest, func(l *Layout) *uint64 { return &l.EGSymbolTable }),
		m("eg.ini_directives", "EG(ini_directives)", groupINI, func(l *Layout) *uint64 { return &l.EGIniDirectives }),
		k("ex.opline", "zend_execute_data.opline", groupFrames, func(l *Layout) *uint64 { return &l.ExOpline }, 0),
		k("ex.func", "zend_execute_data.func", groupFrames, func(l *Layout) *uint64 { return &l.ExFunc }, 24),
		k("ex.this", "zend_execute_data.This", groupFrames, func(l *Layout) *uint64 { return &l.ExThis }, 32),
		k("ex.this.u2.num_args", "zend_execute_data.This.u2.num_args", groupFrames, func(l *Layout) *uint64 { return &l.ExNumArgs }, 44),
		k("ex.prev", "zend_execute_data.prev_execute_data", groupFrames, func(l *Layout) *uint64 { return &l.ExPrev }, 48),
		k("args.offset", "ZEND_CALL_ARG(ex, 1)", groupFrames, func(l *Layout) *uint64 { return &l.ExArgs }, 80),
		k("fn.type", "zend_function.type", groupFrames, func(l *Layout) *uint64 { return &l.FnType }, 0),
		k("fn.name", "zend_function.common.function_name", groupFrames, func(l *Layout) *uint64 { return &l.FnName }, 8),
		k("fn.scope", "zend_function.common.scope", groupFrames, func(l *Layout) *uint64 { return &l.FnScope }, 16),
		k("fn.num_args", "zend_function.common.num_args", groupFrames, func(l *Layout) *uint64 { return &l.FnNumArgs }, 32),
		m("oa.last", "zend_op_array.last", groupFrames, func(l *Layout) *uint64 { return &l.OpArrayLast }),
		m("oa.opcodes", "zend_op_array.opcodes", groupFrames, func(l *Layout) *uint64 { return &l.OpArrayOpcodes }),
		m("oa.filename", "zend_op_array.filename", groupFrames, func(l *Layout) *uint64 { return &l.OpArrayFilename }),
		m("oa.line_start", "zend_op_array.line_start", groupFrames, func(l *Layout) *uint64 { return &l.OpArrayLineStart }),
		m("oa.line_end", "zend_op_array.line_end", groupFrames, func(l *Layout) *uint64 { return &l.OpArrayLineEnd }),
		k("op.extended_value", "zend_op.extended_value", groupFrames, func(l *Layout) *uint64 { return &l.OpExtValue }, 20),
		k("op.lineno", "zend_op.lineno", groupFrames, func(l *Layout) *uint64 { return &l.OpLineno }, 24),
		k("op.opcode", "zend_op.opcode", groupFrames, func(l *Layout) *uint64 { return &l.OpOpcode }, 28),
		k("op.size", "sizeof(zend_op)", groupFrames, func(l *Layout) *uint64 { return &l.OpSize }, 32),
		k("ZEND_INCLUDE_OR_EVAL", "ZEND_INCLUDE_OR_EVAL (opcode)", groupFrames, func(l *Layout) *uint64 { return &l.IncludeOrEval }, 73),
		k("ce.name", "zend_class_entry.name", groupFrames, func(l *Layout) *uint64 { return &l.CEName }, 8),
		k("obj.ce", "zend_object.ce", groupFrames, func(l *Layout) *uint64 { return &l.ObjCE }, 16),
		k("ref.val", "zend_reference.val", groupFrames, func(l *Layout) *uint64 { return &l.RefVal }, 8),
		k("str.len", "zend_string.len", groupNames, func(l *Layout) *uint64 { return &l.StrLen }, 16),
		k("str.val", "zend_string.val", groupNames, func(l *Layout) *uint64 { return &l.StrVal }, 24),
		k("ht.flags", "HashTable.u.flags", groupHash, func(l *Layout) *uint64 { return &l.HTFlags }, 8),
		k("ht.data", "HashTable.arData", groupHash, func(l *Layout) *uint64 { return &l.HTData }, 16),
		k("ht.used", "HashTable.nNumUsed", groupHash, func(l *Layout) *uint64 { return &l.HTUsed }, 24),
		k("ht.count", "HashTable.nNumOfElements", groupHash, func(l *Layout) *uint64 { return &l.HTCount }, 28),
		k("ht.nTableSize", "HashTable.nTableSize", groupHash, func(l *Layout) *uint64 { return &l.HTTableSize }, 32),
		k("HASH_FLAG_PACKED", "HASH_FLAG_PACKED", groupHash, func(l *Layout) *uint64 { return &l.HTPackedFlag }, 4),
		m("ht.packed_elem", "packed array element size (Bucket; zval from 8.2)", groupHash, func(l *Layout) *uint64 { return &l.HTPackedElem }),
		k("bucket.size", "sizeof(Bucket)", groupHash, func(l *Layout) *uint64 { return &l.BucketSize }, 32),
		k("bucket.key", "Bucket.key", groupHash, func(l *Layout) *uint64 { return &l.BucketKey }, 24),
		k("zval.type", "zval.u1.v.type", groupHash, func(l *Layout) *uint64 { return &l.ZvalType }, 8),
		k("zval.size", "sizeof(zval)", groupHash, func(l *Layout) *uint64 { return &l.ZvalSize }, 16),
		m("IS_INDIRECT", "IS_INDIRECT", groupRequest, func(l *Layout) *uint64 { return &l.IsIndirect }),
		m("IS_PTR", "IS_PTR", groupModules, func(l *Layout) *uint64 { return &l.IsPtr }),
		k("sg.server_context", "SG(server_context)", groupRequest, func(l *Layout) *uint64 { return &l.SGServerContext }, 0),
		k("sg.request_method", "SG(request_info).request_method", groupRequest, func(l *Layout) *uint64 { return &l.SGRequestMethod }, 8),
		k("sg.query_string", "SG(request_info).query_string", groupRequest, func(l *Layout) *uint64 { return &l.SGQueryString }, 16),
		k("sg.content_length", "SG(request_info).content_length", groupRequest, func(l *Layout) *uint64 { return &l.SGContentLength }, 32),
		k("sg.path_translated", "SG(request_info).path_translated", groupRequest, func(l *Layout) *uint64 { return &l.SGPathTranslated }, 40),
		k("sg.request_uri", "SG(request_info).request_uri", groupRequest, func(l *Layout) *uint64 { return &l.SGRequestURI }, 48),
		k("sg.content_type", "SG(request_info).content_type", groupRequest, func(l *Layout) *uint64 { return &l.SGContentType }, 64),
		k("ini.name", "zend_ini_entry.name", groupINI, func(l *Layout) *uint64 { return &l.IniName }, 0),
		k("ini.value", "zend_ini_entry.value", groupINI, func(l *Layout) *uint64 { return &l.IniValue }, 40),
		k("mod.zend_api", "zend_module_entry.zend_api", groupModules, func(l *Layout) *uint64 { return &l.ModZendAPI }, 4),
		k("mod.name", "zend_module_entry.name", groupModules, func(l *Layout) *uint64 { return &l.ModName }, 32),
		k("mod.version", "zend_module_entry.version", groupModules, func(l *Layout) *uint64 { return &l.ModVersion }, 88),
		k("llist.data", "zend_llist_element.data", groupModules, func(l *Layout) *uint64 { return &l.LListData }, 16),
		k("zext.version", "zend_extension.version", groupModules, func(l *Layout) *uint64 { return &l.ZextVersion }, 8),
		{id: "fe.size", what: "sizeof(zend_function_entry)", ptr: func(l *Layout) *uint64 { return &l.FESize }, group: groupEntries, optional: true},
		k("fcgi.env", "fcgi_request.env", groupRequest, func(l *Layout) *uint64 { return &l.FCGIEnv }, 8296),
		k("fcgi.hash.list", "fcgi_hash.list", groupRequest, func(l *Layout) *uint64 { return &l.FCGIHashList }, 1024),
		k("fcgi.bucket.var_len", "fcgi_hash_bucket.var_len", groupRequest, func(l *Layout) *uint64 { return &l.FCGIVarLen }, 4),
		k("fcgi.bucket.var", "fcgi_hash_bucket.var", groupRequest, func(l *Layout) *uint64 { return &l.FCGIVar }, 8),
		k("fcgi.bucket.val_len", "fcgi_hash_bucket.val_len", groupRequest, func(l *Layout) *uint64 { return &l.FCGIValLen }, 16),
		k("fcgi.bucket.val", "fcgi_hash_bucket.val", groupRequest, func(l *Layout) *uint64 { return &l.FCGIVal }, 24),
		k("fcgi.bucket.list_next", "fcgi_hash_bucket.list_next", groupRequest, func(l *Layout) *uint64 { return &l.FCGINext }, 40),
	}
}()

// tableEntry is one PHP minor version of the built-in table: the values of
// the fields that are not constant since PHP 7.0 (see docs/php-layouts.md
// for the source of each).
type tableEntry struct {
	version string
	values  map[string]uint64
}

// table is the hand-written layout table, the cross-check of derivation.
var table = []tableEntry{
	{"7.4", map[string]uint64{"zend_api": 20190902, "eg.symbol_table": 304, "eg.current_execute_data": 488, "eg.ini_directives": 816,
		"oa.last": 60, "oa.opcodes": 64, "oa.filename": 136, "oa.line_start": 144, "oa.line_end": 148,
		"ht.packed_elem": 32, "IS_INDIRECT": 13, "IS_PTR": 14, "fe.size": 32}},
	{"8.0", map[string]uint64{"zend_api": 20200930, "eg.symbol_table": 304, "eg.current_execute_data": 488,
		"oa.last": 68, "oa.opcodes": 72, "oa.filename": 144, "oa.line_start": 152, "oa.line_end": 156,
		"ht.packed_elem": 32, "IS_INDIRECT": 12, "IS_PTR": 13, "fe.size": 32}},
	{"8.1", map[string]uint64{"zend_api": 20210902, "eg.symbol_table": 304, "eg.current_execute_data": 488,
		"oa.last": 68, "oa.opcodes": 72, "oa.filename": 144, "oa.line_start": 152, "oa.line_end": 156,
		"ht.packed_elem": 32, "IS_INDIRECT": 12, "IS_PTR": 13, "fe.size": 32}},
	{"8.2", map[string]uint64{"zend_api": 20220829, "eg.symbol_table": 304, "eg.current_execute_data": 488, "eg.ini_directives": 816,
		"oa.last": 80, "oa.opcodes": 88, "oa.filename": 152, "oa.line_start": 160, "oa.line_end": 164,
		"ht.packed_elem": 16, "IS_INDIRECT": 12, "IS_PTR": 13, "fe.size": 32}},
	{"8.3", map[string]uint64{"zend_api": 20230831, "eg.symbol_table": 304, "eg.current_execute_data": 488,
		"oa.last": 76, "oa.opcodes": 80, "oa.filename": 144, "oa.line_start": 152, "oa.line_end": 156,
		"ht.packed_elem": 16, "IS_INDIRECT": 12, "IS_PTR": 13, "fe.size": 32}},
	{"8.4", map[string]uint64{"zend_api": 20240924, "eg.symbol_table": 304, "eg.current_execute_data": 488, "eg.ini_directives": 832,
		"oa.last": 96, "oa.opcodes": 104, "oa.filename": 168, "oa.line_start": 176, "oa.line_end": 180,
		"ht.packed_elem": 16, "IS_INDIRECT": 12, "IS_PTR": 13, "fe.size": 48}},
	{"8.5", map[string]uint64{"zend_api": 20250925, "eg.symbol_table": 304, "eg.current_execute_data": 512, "eg.ini_directives": 856,
		"oa.last": 96, "oa.opcodes": 104, "oa.filename": 168, "oa.line_start": 176, "oa.line_end": 180,
		"ht.packed_elem": 16, "IS_INDIRECT": 12, "IS_PTR": 13, "fe.size": 48}},
}

// tableVersions lists the versions of the built-in table ("7.4, 8.0-8.5").
func tableVersions() string {
	var vs []string
	for _, e := range table {
		vs = append(vs, e.version)
	}
	return strings.Join(vs, ", ")
}

// tableFor returns the table entry of a PHP version ("8.2.29", "8.2").
func tableFor(version string) (tableEntry, bool) {
	mm := minorVersion(version)
	for _, e := range table {
		if e.version == mm {
			return e, true
		}
	}
	return tableEntry{}, false
}

// tableForAPI returns the table entry whose ZEND_MODULE_API_NO is api.
func tableForAPI(api uint64) (tableEntry, bool) {
	for _, e := range table {
		if e.values["zend_api"] == api {
			return e, true
		}
	}
	return tableEntry{}, false
}

// Layouts returns the layouts of the built-in table (its values and the
// constants).
func Layouts() []Layout {
	out := make([]Layout, 0, len(table))
	for _, e := range table {
		out = append(out, e.layout())
	}
	return out
}

// LayoutFor returns the table layout of a PHP version ("8.2.29", "8.2").
func LayoutFor(version string) (Layout, error) {
	e, ok := tableFor(version)
	if !ok {
		return Layout{}, fmt.Errorf("PHP %s is not in coroner's layout table (%s)", version, tableVersions())
	}
	return e.layout(), nil
}

// layout is the table entry completed with the constants.
func (e tableEntry) layout() Layout {
	l := Layout{Version: e.version}
	for _, f := range fieldDefs {
		if v, ok := e.values[f.id]; ok {
			*f.ptr(&l) = v
		} else if f.hasConst {
			*f.ptr(&l) = f.constant
		}
	}
	return l
}

// minorVersion reduces "8.2.29-1+deb12u1" to "8.2".
func minorVersion(v string) string {
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return v
	}
	minor := parts[1]
	for i, c := range minor {
		if c < '0' || c > '9' {
			minor = minor[:i]
			break
		}
	}
	if _, err := strconv.Atoi(parts[0]); err != nil {
		return v
	}
	return parts[0] + "." + minor
}

// zval types that do not change between versions (Zend/zend_types.h).
const (
	isUndef     = 0
	isNull      = 1
	isFalse     = 2
	isTrue      = 3
	isLong      = 4
	isDouble    = 5
	isString    = 6
	isArray     = 7
	isObject    = 8
	isResource  = 9
	isReference = 10
)
