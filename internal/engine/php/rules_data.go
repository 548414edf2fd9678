package php

import (
	"strings"

	"github.com/coroner-dev/coroner/internal/engine/x86sym"
)

// The rules of this file read the data structures: HashTable, Bucket,
// zval, zend_ini_entry, sapi_globals and zend_module_entry.

// hashRules: zend_hash_index_find, zend_array_count, zend_hash_extend.
func (x *deriver) hashRules() {
	// zend_hash_index_find(ht, h): if (HT_IS_PACKED(ht)) { if (h < ht->nNumUsed)
	// { zv = &ht->arPacked[h]; if (Z_TYPE_P(zv) != IS_UNDEF) ... } } else
	// walk the bucket chain comparing p->h == h && !p->key.
	if a := x.anchorAt("zend_hash_index_find"); a.facts != nil {
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); acc.Op == "TEST" && acc.Size == 1 && acc.HasImm && r == "arg0" && c.Depth() == 0 {
				const rule = "HT_FLAGS(ht) & HASH_FLAG_PACKED"
				x.set("ht.flags", c.Final, a, acc.PC, rule)
				x.set("HASH_FLAG_PACKED", acc.Imm, a, acc.PC, rule)
			}
		}
		for _, cmp := range a.facts.Compares {
			p, q := cmp.A, cmp.B
			if !x.isArg(q, 1) {
				p, q = q, p
			}
			if r, c := x.chainOf(p); x.isArg(q, 1) && r == "arg0" && c.Depth() == 1 && c.Final == 0 && c.Sizes[0] == 4 {
				x.set("ht.used", c.Offs[0], a, cmp.PC, "h compared with ht->nNumUsed")
			}
		}
		for _, acc := range a.facts.Accesses {
			if acc.Addr.Kind() != x86sym.Sum {
				continue
			}
			p, q, _ := acc.Addr.Operands()
			if p.Kind() != x86sym.Scaled {
				p, q = q, p
			}
			if p.Kind() != x86sym.Scaled || p.Off != 0 {
				continue
			}
			idx, _, _ := p.Operands()
			shift := p.Base.Shift
			rq, cq := x.chainOf(q)
			switch {
			case x.isArg(idx, 1) && rq == "arg0" && cq.Depth() == 1 && cq.Final == 0:
				// &ht->arPacked[h] (or &ht->arData[h] before 8.2)
				const rule = "packed element address ht->arData + (h << log2(element size))"
				x.set("ht.data", cq.Offs[0], a, acc.PC, rule)
				x.set("ht.packed_elem", 1<<shift, a, acc.PC, rule)
				if acc.Op == "CMP" && acc.Size == 1 && acc.HasImm && acc.Imm == isUndef {
					x.set("zval.type", acc.Addr.Off, a, acc.PC, "Z_TYPE_P(zv) compared with IS_UNDEF")
				}
			case rq == "arg0" && cq.Depth() == 1 && cq.Final == 0 && acc.Size == 8:
				// a Bucket of the hash chain: p = ht->arData + idx
				if acc.Op == "CMP" && x.isArg(acc.Other, 1) {
					x.set("bucket.size", 1<<shift, a, acc.PC, "bucket index scaled by sizeof(Bucket), then p->h compared with h")
				}
				if acc.Op == "CMP" && acc.HasImm && acc.Imm == 0 {
					x.set("bucket.key", acc.Addr.Off, a, acc.PC, "p->key compared with NULL (an integer key)")
				}
			}
		}
	}
	// zend_array_count(ht): if (ht == &EG(symbol_table)) ...; return ht->nNumOfElements
	if a := x.anchorAt("zend_array_count"); a.facts != nil {
		for _, cmp := range a.facts.Compares {
			for _, pq := range [][2]x86sym.Value{{cmp.A, cmp.B}, {cmp.B, cmp.A}} {
				if r, c := x.chainOf(pq[1]); x.isArg(pq[0], 0) && r == rootEG && c.Depth() == 0 {
					x.set("eg.symbol_table", c.Final, a, cmp.PC, "ht compared with &EG(symbol_table)")
				}
			}
		}
		for _, ret := range a.facts.Returns {
			if r, c := x.chainOf(ret.Value); r == "arg0" && c.Depth() == 1 && c.Final == 0 && c.Sizes[0] == 4 {
				x.set("ht.count", c.Offs[0], a, x.retPC(a, ret), "returns ht->nNumOfElements")
			}
		}
		zt, haveZT := x.get("zval.type")
		for _, acc := range a.facts.Accesses {
			// the inlined count of a symbol table skips IS_INDIRECT to IS_UNDEF
			if acc.Op == "CMP" && acc.Size == 1 && acc.HasImm && acc.Imm >= 10 && acc.Imm <= 16 && haveZT && acc.Addr.Off == zt {
				x.set("IS_INDIRECT", acc.Imm, a, acc.PC, "Z_TYPE_P(zv) compared with IS_INDIRECT")
			}
		}
	}
	// zend_hash_extend(ht, nSize, packed): if (nSize > ht->nTableSize)
	if a := x.anchorAt("zend_hash_extend"); a.facts != nil {
		for _, cmp := range a.facts.Compares {
			for _, pq := range [][2]x86sym.Value{{cmp.A, cmp.B}, {cmp.B, cmp.A}} {
				if r, c := x.chainOf(pq[0]); x.isArg(pq[1], 1) && r == "arg0" && c.Depth() == 1 && c.Final == 0 && c.Sizes[0] == 4 {
					x.set("ht.nTableSize", c.Offs[0], a, cmp.PC, "nSize compared with ht->nTableSize")
				}
			}
		}
	}
}

// iniRules: zend_ini_get_value, zend_alter_ini_entry_ex.
func (x *deriver) iniRules() {
	// zend_ini_get_value(name): ini_entry = zend_hash_find_ptr(EG(ini_directives), name);
	// return ini_entry->value
	if a := x.anchorAt("zend_ini_get_value"); a.facts != nil {
		for _, c := range a.facts.Calls {
			if r, ch := x.chainOf(c.Args[0]); c.Name == "zend_hash_find" && r == rootEG && ch.Depth() == 1 && ch.Final == 0 {
				x.set("eg.ini_directives", ch.Offs[0], a, c.PC, "zend_hash_find(EG(ini_directives), name)")
			}
		}
		for _, ret := range a.facts.Returns {
			if r, c := x.chainOf(ret.Value); r == "call:zend_hash_find" && c.Depth() == 2 && c.Offs[0] == 0 && c.Final == 0 {
				x.set("ini.value", c.Offs[1], a, x.retPC(a, ret), "returns ((zend_ini_entry *)Z_PTR_P(zv))->value")
			}
		}
	}
	// zend_alter_ini_entry_ex: zend_hash_add_ptr(EG(modified_ini_directives), ini_entry->name, ini_entry)
	if a := x.anchorAt("zend_alter_ini_entry_ex"); a.facts != nil {
		for _, c := range a.facts.Calls {
			if c.Name != "zend_hash_add" {
				continue
			}
			r0, c0 := x.chainOf(c.Args[0])
			r1, c1 := x.chainOf(c.Args[1])
			if r0 == rootEG && c0.Depth() == 1 && c0.Final == 0 && r1 == "call:zend_hash_find" && c1.Depth() == 2 && c1.Offs[0] == 0 && c1.Final == 0 {
				x.set("ini.name", c1.Offs[1], a, c.PC, "zend_hash_add(EG(modified_ini_directives), ini_entry->name, ...)")
			}
		}
	}
}

// isStrcmp reports whether a call compares strings (a strcmp call, or an
// inlined repe cmpsb).
func isStrcmp(c x86sym.Call) bool { return c.Name == "strcmp" || c.Name == x86sym.InlineCompare }

// sapiRules: sapi_activate, php_fopen_primary_script,
// sapi_read_standard_form_data.
func (x *deriver) sapiRules() {
	// sapi_activate: headers_only = request_method && !strcmp(request_method, "HEAD");
	// if (SG(server_context)) { if (... SG(request_info).content_type &&
	// request_method && !strcmp(request_method, "POST")) ...
	if a := x.anchorAt("sapi_activate"); a.facts != nil {
		var headPC, postPC uint64
		for _, c := range a.facts.Calls {
			if !isStrcmp(c) {
				continue
			}
			for i := 0; i < 2; i++ {
				s := x.stringAt(c.Args[i])
				r, ch := x.chainOf(c.Args[1-i])
				if (s != "HEAD" && s != "POST") || r != rootSG || ch.Depth() != 1 || ch.Final != 0 {
					continue
				}
				x.set("sg.request_method", ch.Offs[0], a, c.PC, "strcmp(SG(request_info).request_method, \""+s+"\")")
				if s == "HEAD" && (headPC == 0 || c.PC < headPC) {
					headPC = c.PC
				}
				if s == "POST" && c.PC > postPC {
					postPC = c.PC
				}
			}
		}
		// NULL tests of SG pointers: "cmp QWORD PTR [SG+d],0" or "mov r,[SG+d]; test r,r"
		type test struct {
			pc  uint64
			off int64
		}
		var tests []test
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); acc.Op == "CMP" && acc.Size == 8 && acc.HasImm && acc.Imm == 0 && r == rootSG && c.Depth() == 0 {
				tests = append(tests, test{acc.PC, c.Final})
			}
		}
		for _, cmp := range a.facts.Compares {
			if r, c := x.chainOf(cmp.A); cmp.Op == "TEST" && cmp.A.Equal(cmp.B) && r == rootSG && c.Depth() == 1 && c.Final == 0 {
				tests = append(tests, test{cmp.PC, c.Offs[0]})
			}
		}
		method, haveMethod := x.get("sg.request_method")
		var ct, sc test
		for _, t := range tests {
			if haveMethod && t.off == method {
				continue
			}
			if postPC != 0 && t.pc < postPC && t.pc > ct.pc {
				ct = t
			}
			if headPC != 0 && t.pc > headPC && (sc.pc == 0 || t.pc < sc.pc) {
				sc = t
			}
		}
		if ct.pc != 0 {
			x.set("sg.content_type", ct.off, a, ct.pc, "the last SG pointer tested before strcmp(request_method, \"POST\"): SG(request_info).content_type")
		}
		if sc.pc != 0 {
			x.set("sg.server_context", sc.off, a, sc.pc, "the first SG pointer tested after the \"HEAD\" compare: if (SG(server_context))")
		}
	}
	// php_fopen_primary_script: path_info = SG(request_info).request_uri;
	// ... path_info[0] == '/' && path_info[1] == '~' ...; and
	// SG(request_info).path_translated read and written
	if a := x.anchorAt("php_fopen_primary_script"); a.facts != nil {
		uri, haveURI := int64(0), false
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); acc.Op == "CMP" && acc.Size == 1 && acc.HasImm && acc.Imm == '~' && r == rootSG && c.Depth() == 1 && c.Final == 1 {
				uri, haveURI = c.Offs[0], true
				x.set("sg.request_uri", uri, a, acc.PC, "SG(request_info).request_uri[1] compared with '~'")
			}
		}
		written := map[int64]bool{}
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); acc.Write && acc.Size == 8 && r == rootSG && c.Depth() == 0 {
				written[c.Final] = true
			}
		}
		for _, acc := range a.facts.Accesses {
			if r, c := x.chainOf(acc.Addr); haveURI && !acc.Write && acc.Size == 8 && acc.Dest != 0 && r == rootSG && c.Depth() == 0 && c.Final != uri && c.Final < 256 && written[c.Final] {
				x.set("sg.path_translated", c.Final, a, acc.PC, "the other SG(request_info) pointer read and set: path_translated")
			}
		}
	}
	// sapi_read_standard_form_data: SG(request_info).content_length > SG(post_max_size)
	if a := x.anchorAt("sapi_read_standard_form_data"); a.facts != nil {
		best, bestPC := int64(-1), uint64(0)
		for _, cmp := range a.facts.Compares {
			ra, ca := x.chainOf(cmp.A)
			rb, cb := x.chainOf(cmp.B)
			if cmp.Op != "CMP" || ra != rootSG || rb != rootSG || ca.Depth() != 1 || cb.Depth() != 1 || ca.Final != 0 || cb.Final != 0 || ca.Offs[0] == cb.Offs[0] {
				continue
			}
			if lo := min(ca.Offs[0], cb.Offs[0]); best < 0 || lo < best {
				best, bestPC = lo, cmp.PC
			}
		}
		if best >= 0 {
			x.set("sg.content_length", best, a, bestPC, "compared with SG(post_max_size): request_info (at the start of SG) holds content_length")
		}
	}
}

// moduleRules: zend_get_module_version, php_load_extension,
// zend_unregister_functions.
func (x *deriver) moduleRules() {
	// zend_get_module_version(name): module = zend_hash_find_ptr(&module_registry, lname); return module->version
	if a := x.anchorAt("zend_get_module_version"); a.facts != nil {
		for _, ret := range a.facts.Returns {
			if r, c := x.chainOf(ret.Value); r == "call:zend_hash_find" && c.Depth() == 2 && c.Offs[0] == 0 && c.Final == 0 {
				x.set("mod.version", c.Offs[1], a, x.retPC(a, ret), "returns ((zend_module_entry *)Z_PTR_P(zv))->version")
			}
		}
	}
	// php_load_extension: module_entry = get_module(); ... module_entry->name ...
	// if (module_entry->zend_api != ZEND_MODULE_API_NO) ...;
	// if (strcmp(module_entry->build_id, ZEND_MODULE_BUILD_ID)) ...
	if a := x.anchorAt("php_load_extension"); a.facts != nil {
		api := func(v x86sym.Value, imm int64, pc uint64) {
			if r, c := x.chainOf(v); imm > 20000000 && imm < 21000000 && r == "call:" && c.Depth() == 1 && c.Final == 0 {
				const rule = "module_entry->zend_api compared with ZEND_MODULE_API_NO"
				x.set("mod.zend_api", c.Offs[0], a, pc, rule)
				x.set("zend_api", imm, a, pc, rule+" (the immediate)")
			}
		}
		for _, cmp := range a.facts.Compares {
			if cmp.HasImm && cmp.Op == "CMP" {
				api(cmp.A, cmp.Imm, cmp.PC)
			}
		}
		for _, acc := range a.facts.Accesses {
			if acc.Op == "CMP" && acc.HasImm && acc.Size == 4 {
				api(x86sym.LoadOf(acc.Addr, 4), acc.Imm, acc.PC)
			}
		}
		for _, c := range a.facts.Calls {
			if isStrcmp(c) {
				for i := 0; i < 2; i++ {
					if s := x.stringAt(c.Args[i]); strings.HasPrefix(s, "API") {
						if r, ch := x.chainOf(c.Args[1-i]); r == "call:" && ch.Depth() == 1 && ch.Final == 0 {
							x.d.moduleBuildID = s
						}
					}
				}
			}
			var name x86sym.Value
			switch c.Name {
			case "strlen":
				name = c.Args[0]
			case "zend_hash_str_find", "zend_hash_str_exists":
				name = c.Args[1]
			default:
				continue
			}
			if r, ch := x.chainOf(name); r == "call:" && ch.Depth() == 1 && ch.Final == 0 && ch.Offs[0] < 64 {
				x.set("mod.name", ch.Offs[0], a, c.PC, c.Name+"(module_entry->name)")
			}
		}
	}
	// zend_unregister_functions(functions, count, ht): while (ptr->fname) { ...; ptr++; }
	if a := x.anchorAt("zend_unregister_functions"); a.facts != nil {
		for _, add := range a.facts.Adds {
			if x.isArg(add.Before, 0) && add.Imm > 0 {
				x.set("fe.size", add.Imm, a, add.PC, "ptr++ over the zend_function_entry array")
				break
			}
		}
	}
}

// versionRules: php_version() (8.4+) returns PHP_VERSION.
func (x *deriver) versionRules() {
	if a := x.anchorAt("php_version"); a.facts != nil {
		for _, ret := range a.facts.Returns {
			if s := x.stringAt(ret.Value); s != "" && s[0] >= '0' && s[0] <= '9' {
				x.d.version = s
			}
		}
	}
}
