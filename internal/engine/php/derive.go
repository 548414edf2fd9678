package php

import (
	"debug/elf"
	"fmt"
	"sort"
	"strings"
	"time"
)

// derived is one field value read out of an anchor's machine code.
type derived struct {
	value uint64
	// anchor is the function whose code gave the value, pc the link-time
	// address of the instruction and instr its text.
	anchor string
	pc     uint64
	instr  string
	// rule says in words what the instruction does with the field.
	rule string
	// agree lists the other anchors that gave the same value.
	agree []string
}

// derivation is what the PHP binary's code says about the layout.
type derivation struct {
	// path and buildID identify the binary.
	path, buildID string
	fields        map[string]derived
	// conflicts are fields that two anchors gave different values for
	// (left out of fields).
	conflicts map[string]string
	// anchorErrs says why an anchor gave nothing (not exported, ...).
	anchorErrs map[string]string
	// moduleBuildID is ZEND_MODULE_BUILD_ID ("API20220829,NTS"), from
	// php_load_extension's strcmp with each extension's build_id.
	moduleBuildID string
	// version is php_version()'s string (8.4+), when exported.
	version string
	// opArraySize is sizeof(zend_op_array) (ecalloc in
	// zend_get_call_trampoline_func), a bound for its offsets.
	opArraySize uint64
	// jit is the JIT buffer's bookkeeping, when the binary holds the JIT.
	jit *jitSymbols
	// tsrm says how code reaches the thread's TSRM block (ZTS builds).
	tsrm *tsrmAccess
	// took is how long the derivation took.
	took time.Duration
}

// deriver runs the rules on one binary.
type deriver struct {
	o           *object
	sym         engineSymbols
	d           *derivation
	anchors     map[string]*anchor
	dataSymbols map[uint64]string // link-time address -> exported data symbol
	// cur is the anchor the rules are looking at.
	cur *anchor
}

// fieldAnchors lists, for each field the rules can derive, the exported
// functions whose code reveals it (the first is the main one).
var fieldAnchors = map[string][]string{
	"zend_api":                {"php_load_extension"},
	"eg.current_execute_data": {"zend_is_executing", "zend_get_executed_filename_ex", "zend_get_executed_lineno", "zend_copy_parameters_array"},
	"eg.symbol_table":         {"zend_array_count"},
	"eg.ini_directives":       {"zend_ini_get_value"},
	"ex.opline":               {"zend_get_executed_lineno"},
	"ex.func":                 {"zend_get_executed_filename_ex", "zend_get_executed_lineno", "zend_get_called_scope"},
	"ex.this":                 {"zend_get_this_object"},
	"ex.this.u2.num_args":     {"zend_copy_parameters_array", "zend_init_func_execute_data"},
	"ex.prev":                 {"zend_get_executed_filename_ex", "zend_get_executed_lineno", "zend_get_called_scope"},
	"args.offset":             {"zend_copy_parameters_array"},
	"fn.type":                 {"zend_get_executed_filename_ex", "zend_get_executed_lineno", "zend_get_called_scope"},
	"fn.name":                 {"get_active_function_name"},
	"fn.scope":                {"zend_get_called_scope", "get_active_class_name"},
	"fn.num_args":             {"zend_init_func_execute_data", "get_function_arg_name"},
	"oa.last":                 {"pass_two"},
	"oa.opcodes":              {"zend_get_call_trampoline_func", "pass_two", "zend_get_executed_lineno"},
	"oa.filename":             {"zend_get_executed_filename_ex", "zend_get_call_trampoline_func"},
	"oa.line_start":           {"zend_get_call_trampoline_func"},
	"oa.line_end":             {"zend_get_call_trampoline_func"},
	"op.lineno":               {"zend_get_executed_lineno"},
	"op.opcode":               {"zend_get_executed_lineno"},
	"op.size":                 {"pass_two"},
	"ce.name":                 {"get_active_class_name"},
	"obj.ce":                  {"zend_get_called_scope"},
	"str.len":                 {"zend_get_call_trampoline_func"},
	"str.val":                 {"get_active_function_name", "get_active_class_name"},
	"ht.flags":                {"zend_hash_index_find"},
	"ht.data":                 {"zend_hash_index_find"},
	"ht.used":                 {"zend_hash_index_find"},
	"ht.count":                {"zend_array_count"},
	"ht.nTableSize":           {"zend_hash_extend"},
	"HASH_FLAG_PACKED":        {"zend_hash_index_find"},
	"ht.packed_elem":          {"zend_hash_index_find"},
	"bucket.size":             {"zend_hash_index_find"},
	"bucket.key":              {"zend_hash_index_find"},
	"zval.type":               {"zend_hash_index_find"},
	"IS_INDIRECT":             {"zend_array_count"},
	"sg.server_context":       {"sapi_activate"},
	"sg.request_method":       {"sapi_activate"},
	"sg.content_length":       {"sapi_read_standard_form_data"},
	"sg.path_translated":      {"php_fopen_primary_script"},
	"sg.request_uri":          {"php_fopen_primary_script"},
	"sg.content_type":         {"sapi_activate"},
	"ini.name":                {"zend_alter_ini_entry_ex"},
	"ini.value":               {"zend_ini_get_value"},
	"mod.zend_api":            {"php_load_extension"},
	"mod.name":                {"php_load_extension"},
	"mod.version":             {"zend_get_module_version"},
	"fe.size":                 {"zend_unregister_functions"},
}

// deriveLayout reads the layout out of the code of the engine binary o.
func deriveLayout(o *object, sym engineSymbols) *derivation {
	start := time.Now()
	d := &derivation{path: o.path, buildID: o.buildID, fields: map[string]derived{}, conflicts: map[string]string{}, anchorErrs: map[string]string{}}
	x := &deriver{o: o, sym: sym, d: d, anchors: map[string]*anchor{}, dataSymbols: map[uint64]string{}}
	_ = o.loadSymbols() // a failure shows in every anchor's error
	for name, s := range o.byName {
		if t := elf.ST_TYPE(s.Info); t == elf.STT_OBJECT || t == elf.STT_TLS {
			x.dataSymbols[s.Value] = name
		}
	}
	x.run()
	d.took = time.Since(start)
	return d
}

// run applies every rule to the anchors (evaluated on first use).
func (x *deriver) run() {
	d := x.d
	x.executorRules()
	x.functionRules()
	x.hashRules()
	x.iniRules()
	x.sapiRules()
	x.moduleRules()
	x.versionRules()
	d.jit = jitFromCode(x)
	x.checkConsistency()
	for name, a := range x.anchors {
		if a.err != nil {
			d.anchorErrs[name] = a.err.Error()
		}
	}
}

// set records a field value read from anchor a at pc.
func (x *deriver) set(id string, v int64, a *anchor, pc uint64, rule string) {
	if _, bad := x.d.conflicts[id]; bad {
		return
	}
	if v < 0 || (id != "zend_api" && v >= 1<<16) {
		x.d.conflicts[id] = fmt.Sprintf("%s gave the implausible value %d", a.name, v)
		delete(x.d.fields, id)
		return
	}
	old, ok := x.d.fields[id]
	if !ok {
		x.d.fields[id] = derived{value: uint64(v), anchor: a.name, pc: pc, instr: a.instruction(pc), rule: rule}
		return
	}
	if old.value != uint64(v) {
		x.d.conflicts[id] = fmt.Sprintf("%s gives %d (%s), %s gives %d (%s)", old.anchor, old.value, old.instr, a.name, v, a.instruction(pc))
		delete(x.d.fields, id)
		return
	}
	if a.name != old.anchor {
		for _, n := range old.agree {
			if n == a.name {
				return
			}
		}
		old.agree = append(old.agree, a.name)
		x.d.fields[id] = old
	}
}

// get returns a derived value.
func (x *deriver) get(id string) (int64, bool) {
	f, ok := x.d.fields[id]
	return int64(f.value), ok
}

// checkConsistency drops derived values that contradict the binary's own
// symbols or each other (structure offsets beyond the structure's size).
func (x *deriver) checkConsistency() {
	for _, id := range []string{"eg.current_execute_data", "eg.symbol_table", "eg.ini_directives"} {
		if f, ok := x.d.fields[id]; ok && x.sym.egSize != 0 && f.value+8 > x.sym.egSize {
			x.d.conflicts[id] = fmt.Sprintf("%s gives %d, beyond executor_globals (%d bytes)", f.anchor, f.value, x.sym.egSize)
			delete(x.d.fields, id)
		}
	}
	if x.d.opArraySize != 0 {
		for _, id := range []string{"oa.last", "oa.opcodes", "oa.filename", "oa.line_start", "oa.line_end"} {
			if f, ok := x.d.fields[id]; ok && f.value+4 > x.d.opArraySize {
				x.d.conflicts[id] = fmt.Sprintf("%s gives %d, beyond zend_op_array (%d bytes)", f.anchor, f.value, x.d.opArraySize)
				delete(x.d.fields, id)
			}
		}
	}
}

// missing explains why a field was not derived, naming its anchors.
func (d *derivation) missing(id string) string {
	if c, ok := d.conflicts[id]; ok {
		return "anchors disagree: " + c
	}
	anchors := fieldAnchors[id]
	if len(anchors) == 0 {
		return "no anchor function reveals it"
	}
	var why []string
	for _, a := range anchors {
		if e, ok := d.anchorErrs[a]; ok {
			why = append(why, e)
		} else {
			why = append(why, a+": its code does not show the expected access")
		}
	}
	return strings.Join(why, "; ")
}

// derivedIDs lists the derived fields, sorted.
func (d *derivation) derivedIDs() []string {
	ids := make([]string, 0, len(d.fields))
	for id := range d.fields {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}
