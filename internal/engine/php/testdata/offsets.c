/* offsets.c prints, for the PHP development headers it is compiled against,
 * the x86-64 offsetof()/sizeof() of every field of coroner's PHP layout
 * (under the field ids of layout.go's fieldDefs) and a few more that tests
 * use (see layout_test.go). */
#include <stdio.h>
#include <stddef.h>
#include "php.h"
#include "php_globals.h"
#include "SAPI.h"
#include "zend_globals.h"
#include "zend_ini.h"
#include "zend_modules.h"
#include "zend_extensions.h"
#include "zend_llist.h"

#define P(name, expr) printf("%s %lu\n", name, (unsigned long)(expr))

int main(void)
{
	printf("version %s\n", PHP_VERSION);
#ifdef ZTS
	P("ZTS", 1);
#else
	P("ZTS", 0);
#endif
	P("zend_api", ZEND_MODULE_API_NO);
	P("eg.symbol_table", offsetof(zend_executor_globals, symbol_table));
	P("eg.current_execute_data", offsetof(zend_executor_globals, current_execute_data));
	P("eg.ini_directives", offsetof(zend_executor_globals, ini_directives));
	P("eg.size", sizeof(zend_executor_globals));
	P("eg.function_table", offsetof(zend_executor_globals, function_table));
	P("eg.class_table", offsetof(zend_executor_globals, class_table));
	P("ex.opline", offsetof(zend_execute_data, opline));
	P("ex.func", offsetof(zend_execute_data, func));
	P("ex.this", offsetof(zend_execute_data, This));
	P("ex.this.u2.num_args", offsetof(zend_execute_data, This.u2.num_args));
	P("ex.prev", offsetof(zend_execute_data, prev_execute_data));
	P("ex.size", sizeof(zend_execute_data));
	P("args.offset", ZEND_CALL_FRAME_SLOT * sizeof(zval));
	P("fn.type", offsetof(zend_function, type));
	P("fn.name", offsetof(zend_function, common.function_name));
	P("fn.scope", offsetof(zend_function, common.scope));
	P("fn.num_args", offsetof(zend_function, common.num_args));
	P("oa.num_args", offsetof(zend_op_array, num_args));
	P("oa.last", offsetof(zend_op_array, last));
	P("oa.opcodes", offsetof(zend_op_array, opcodes));
	P("oa.filename", offsetof(zend_op_array, filename));
	P("oa.line_start", offsetof(zend_op_array, line_start));
	P("oa.line_end", offsetof(zend_op_array, line_end));
	P("op.extended_value", offsetof(zend_op, extended_value));
	P("op.lineno", offsetof(zend_op, lineno));
	P("op.opcode", offsetof(zend_op, opcode));
	P("op.size", sizeof(zend_op));
	P("ZEND_INCLUDE_OR_EVAL", ZEND_INCLUDE_OR_EVAL);
	P("ce.type", offsetof(zend_class_entry, type));
	P("ce.name", offsetof(zend_class_entry, name));
	P("ce.function_table", offsetof(zend_class_entry, function_table));
	P("ifn.handler", offsetof(zend_internal_function, handler));
	P("obj.ce", offsetof(zend_object, ce));
	P("ref.val", offsetof(zend_reference, val));
	P("str.len", offsetof(zend_string, len));
	P("str.val", offsetof(zend_string, val));
	P("ht.flags", offsetof(HashTable, u.flags));
	P("ht.data", offsetof(HashTable, arData));
	P("ht.used", offsetof(HashTable, nNumUsed));
	P("ht.count", offsetof(HashTable, nNumOfElements));
	P("ht.nTableSize", offsetof(HashTable, nTableSize));
	P("HASH_FLAG_PACKED", HASH_FLAG_PACKED);
#if PHP_VERSION_ID >= 80200
	P("ht.packed_elem", sizeof(zval));
#else
	P("ht.packed_elem", sizeof(Bucket));
#endif
	P("bucket.size", sizeof(Bucket));
	P("bucket.key", offsetof(Bucket, key));
	P("zval.type", offsetof(zval, u1.v.type));
	P("zval.size", sizeof(zval));
	P("IS_INDIRECT", IS_INDIRECT);
	P("IS_PTR", IS_PTR);
	P("sg.server_context", offsetof(sapi_globals_struct, server_context));
	P("sg.request_method", offsetof(sapi_globals_struct, request_info.request_method));
	P("sg.query_string", offsetof(sapi_globals_struct, request_info.query_string));
	P("sg.content_length", offsetof(sapi_globals_struct, request_info.content_length));
	P("sg.path_translated", offsetof(sapi_globals_struct, request_info.path_translated));
	P("sg.request_uri", offsetof(sapi_globals_struct, request_info.request_uri));
	P("sg.content_type", offsetof(sapi_globals_struct, request_info.content_type));
	P("ini.name", offsetof(zend_ini_entry, name));
	P("ini.value", offsetof(zend_ini_entry, value));
	P("mod.zend_api", offsetof(zend_module_entry, zend_api));
	P("mod.name", offsetof(zend_module_entry, name));
	P("mod.version", offsetof(zend_module_entry, version));
	P("llist.data", offsetof(zend_llist_element, data));
	P("zext.version", offsetof(zend_extension, version));
	P("fe.size", sizeof(zend_function_entry));
	return 0;
}
