package php

import (
	"fmt"
	"strconv"
	"strings"
)

// Layout holds the x86-64 offsets (in bytes) of the PHP runtime structures
// that differ between PHP versions. Offsets that are the same in every
// supported version are constants below. docs/php-layouts.md gives the
// source of every value; layout_test.go checks them against offsetof() on
// PHP development headers when those are available.
type Layout struct {
	// Version is the PHP minor version the layout describes ("8.2").
	Version string
	// ZendAPI is ZEND_MODULE_API_NO of that version (zend_module_entry.zend_api).
	ZendAPI uint32

	// zend_executor_globals
	EGSymbolTable        uint64 // HashTable symbol_table (embedded)
	EGCurrentExecuteData uint64 // zend_execute_data *current_execute_data
	// EGIniDirectives is the offset of HashTable *ini_directives, or 0 when
	// it is not in the table (then it is found by a validated scan).
	EGIniDirectives uint64

	// zend_op_array
	OpArrayLast      uint64 // uint32_t last (number of opcodes)
	OpArrayOpcodes   uint64 // zend_op *opcodes
	OpArrayFilename  uint64 // zend_string *filename
	OpArrayLineStart uint64 // uint32_t line_start; line_end follows (+4)

	// PackedZvals is true from PHP 8.2 on, where packed arrays store zvals
	// (arPacked) instead of Buckets.
	PackedZvals bool
}

// Offsets common to PHP 7.4 ... 8.4 on x86-64.
const (
	exOpline   = 0  // zend_execute_data.opline
	exFunc     = 24 // zend_execute_data.func
	exThis     = 32 // zend_execute_data.This (zval): u1.type_info at +8, u2.num_args at +12
	exPrev     = 48 // zend_execute_data.prev_execute_data
	exArgs     = 80 // ZEND_CALL_FRAME_SLOT (5) * sizeof(zval)
	exMinSize  = 80 // bytes of zend_execute_data read per frame
	fnType     = 0  // zend_function.type (1 internal, 2 user, 3 overloaded, 4 eval code)
	fnName     = 8  // zend_function.common.function_name
	fnScope    = 16 // zend_function.common.scope
	fnNumArgs  = 32 // zend_function.common.num_args
	opExtValue = 20 // zend_op.extended_value
	opLineno   = 24 // zend_op.lineno
	opOpcode   = 28 // zend_op.opcode
	opSize     = 32 // sizeof(zend_op)
	ceName     = 8  // zend_class_entry.name
	strLen     = 16 // zend_string.len
	strVal     = 24 // zend_string.val
	htFlags    = 8  // HashTable.u.flags
	htData     = 16 // HashTable.arData
	htUsed     = 24 // HashTable.nNumUsed
	htCount    = 28 // HashTable.nNumOfElements
	htTable    = 32 // HashTable.nTableSize
	htSize     = 56 // sizeof(HashTable)
	bucketSize = 32 // sizeof(Bucket)
	bucketKey  = 24 // Bucket.key
	zvalSize   = 16
	objCE      = 16 // zend_object.ce
	refVal     = 8  // zend_reference.val

	sgServerContext  = 0  // sapi_globals.server_context
	sgRequestMethod  = 8  // sapi_globals.request_info.request_method
	sgQueryString    = 16 // sapi_globals.request_info.query_string
	sgContentLength  = 32 // sapi_globals.request_info.content_length
	sgPathTranslated = 40 // sapi_globals.request_info.path_translated
	sgRequestURI     = 48 // sapi_globals.request_info.request_uri
	sgContentType    = 64 // sapi_globals.request_info.content_type

	iniName  = 0  // zend_ini_entry.name
	iniValue = 40 // zend_ini_entry.value

	modZendAPI = 4  // zend_module_entry.zend_api
	modZTS     = 9  // zend_module_entry.zts
	modName    = 32 // zend_module_entry.name
	modVersion = 88 // zend_module_entry.version

	// main/fastcgi.c (private structures, stable since PHP 7.0 on Linux)
	fcgiEnv        = 8296 // fcgi_request.env (fcgi_hash)
	fcgiHashList   = 1024 // fcgi_hash.list (after hash_table[128])
	fcgiBucketVarL = 4    // fcgi_hash_bucket.var_len
	fcgiBucketVar  = 8    // fcgi_hash_bucket.var
	fcgiBucketValL = 16   // fcgi_hash_bucket.val_len
	fcgiBucketVal  = 24   // fcgi_hash_bucket.val
	fcgiBucketNext = 40   // fcgi_hash_bucket.list_next

	// Zend/zend_types.h
	hashFlagPacked = 1 << 2
	// Zend/zend_vm_opcodes.h
	opIncludeOrEval = 73
)

// zval types (Zend/zend_types.h).
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
	isIndirect  = 12
	isPtr       = 13
)

// layouts is the built-in table, one entry per supported PHP minor version.
var layouts = []Layout{
	{Version: "7.4", ZendAPI: 20190902, EGSymbolTable: 304, EGCurrentExecuteData: 488,
		OpArrayLast: 60, OpArrayOpcodes: 64, OpArrayFilename: 136, OpArrayLineStart: 144},
	{Version: "8.0", ZendAPI: 20200930, EGSymbolTable: 304, EGCurrentExecuteData: 488,
		OpArrayLast: 68, OpArrayOpcodes: 72, OpArrayFilename: 144, OpArrayLineStart: 152},
	{Version: "8.1", ZendAPI: 20210902, EGSymbolTable: 304, EGCurrentExecuteData: 488,
		OpArrayLast: 68, OpArrayOpcodes: 72, OpArrayFilename: 144, OpArrayLineStart: 152},
	{Version: "8.2", ZendAPI: 20220829, EGSymbolTable: 304, EGCurrentExecuteData: 488, EGIniDirectives: 816,
		OpArrayLast: 80, OpArrayOpcodes: 88, OpArrayFilename: 152, OpArrayLineStart: 160, PackedZvals: true},
	{Version: "8.3", ZendAPI: 20230831, EGSymbolTable: 304, EGCurrentExecuteData: 488,
		OpArrayLast: 76, OpArrayOpcodes: 80, OpArrayFilename: 144, OpArrayLineStart: 152, PackedZvals: true},
	{Version: "8.4", ZendAPI: 20240924, EGSymbolTable: 304, EGCurrentExecuteData: 488, EGIniDirectives: 832,
		OpArrayLast: 96, OpArrayOpcodes: 104, OpArrayFilename: 168, OpArrayLineStart: 176, PackedZvals: true},
}

// Layouts returns a copy of the built-in layout table.
func Layouts() []Layout { return append([]Layout(nil), layouts...) }

// LayoutFor returns the layout of a PHP version ("8.2.29", "8.2").
func LayoutFor(version string) (Layout, error) {
	mm := minorVersion(version)
	for _, l := range layouts {
		if l.Version == mm {
			return l, nil
		}
	}
	return Layout{}, fmt.Errorf("PHP %s is not supported (known layouts: 7.4, 8.0-8.4)", version)
}

// layoutForAPI returns the layout whose ZEND_MODULE_API_NO is api.
func layoutForAPI(api uint32) (Layout, bool) {
	for _, l := range layouts {
		if l.ZendAPI == api {
			return l, true
		}
	}
	return Layout{}, false
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
