package php

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// release is one Debian release unpacked by lab/php-dev-headers.sh: its
// PHP development headers and its php-fpm, php (CLI) and libphp binaries.
type release struct {
	suite   string
	dir     string
	include string   // the headers' root (holds main/, Zend/)
	bins    []string // php-fpm, php, libphp
	opcache string   // opcache.so (PHP 8.0-8.4), "" if none
}

// phpDevRoot is where lab/php-dev-headers.sh unpacks the releases.
func phpDevRoot() string {
	if d := os.Getenv("CORONER_PHP_DEV"); d != "" {
		return d
	}
	return "/var/cache/coroner/php-dev"
}

// releases lists the releases lab/php-dev-headers.sh unpacked, skipping
// the test with the command to run when there is none.
func releases(t *testing.T) []release {
	t.Helper()
	root := phpDevRoot()
	dirs, _ := filepath.Glob(filepath.Join(root, "*", ".complete"))
	var out []release
	for _, stamp := range dirs {
		dir := filepath.Dir(stamp)
		r := release{suite: filepath.Base(dir), dir: dir}
		if m, _ := filepath.Glob(filepath.Join(dir, "usr/include/php/*/main/php_config.h")); len(m) > 0 {
			r.include = filepath.Dir(filepath.Dir(m[0]))
		}
		for _, pat := range []string{"usr/sbin/php-fpm*", "usr/bin/php[0-9]*", "usr/lib/apache2/modules/libphp*.so"} {
			m, _ := filepath.Glob(filepath.Join(dir, pat))
			r.bins = append(r.bins, m...)
		}
		if m, _ := filepath.Glob(filepath.Join(dir, "usr/lib/php/*/opcache.so")); len(m) > 0 {
			r.opcache = m[0]
		}
		if r.include != "" && len(r.bins) > 0 {
			out = append(out, r)
		}
	}
	if z := ztsBuild(); z != nil {
		out = append(out, *z)
	}
	if len(out) == 0 {
		t.Skipf("no PHP release unpacked under %s (run lab/php-dev-headers.sh SUITE, or set CORONER_PHP_DEV)", root)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].suite < out[j].suite })
	return out
}

// ztsBuild is the thread-safe PHP the lab builds (lab/zts/build.sh writes
// coroner-zts.env next to it), as a release named "zts", or nil.
func ztsBuild() *release {
	root := os.Getenv("CORONER_PHP_ZTS")
	if root == "" {
		root = "/var/cache/coroner/php-zts"
	}
	envs, _ := filepath.Glob(filepath.Join(root, "*", "coroner-zts.env"))
	if len(envs) == 0 {
		return nil
	}
	b, err := os.ReadFile(envs[0])
	if err != nil {
		return nil
	}
	vars := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			vars[k] = v
		}
	}
	r := release{suite: "zts", dir: filepath.Dir(envs[0])}
	if m, _ := filepath.Glob(filepath.Join(vars["PHP_ZTS_INCLUDE_DIR"], "*", "main", "php_config.h")); len(m) > 0 {
		r.include = filepath.Dir(filepath.Dir(m[0])) // include/php/API/main (Debian's layout)
	} else if _, err := os.Stat(filepath.Join(vars["PHP_ZTS_INCLUDE_DIR"], "main", "php_config.h")); err == nil {
		r.include = vars["PHP_ZTS_INCLUDE_DIR"]
	}
	for _, k := range []string{"PHP_ZTS_FPM", "PHP_ZTS_CLI"} {
		if st, err := os.Stat(vars[k]); err == nil && st.Mode().IsRegular() {
			r.bins = append(r.bins, vars[k])
		}
	}
	if m, _ := filepath.Glob(filepath.Join(vars["PHP_ZTS_EXTENSION_DIR"], "opcache.so")); len(m) > 0 {
		r.opcache = m[0]
	}
	if r.include == "" || len(r.bins) == 0 {
		return nil
	}
	return &r
}

// deriveFile derives the layout of the engine binary at path.
func deriveFile(t *testing.T, path string) (*derivation, engineSymbols) {
	t.Helper()
	o, err := openObject(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	sym, ok := readEngineSymbols(o)
	if !ok {
		t.Fatalf("%s exports no executor_globals", path)
	}
	return deriveLayout(o, sym), sym
}

// mustDerive are the fields every supported release's binaries must give:
// all that the readers need and that moved or may move.
var mustDerive = []string{
	"zend_api", "eg.current_execute_data", "eg.symbol_table", "eg.ini_directives",
	"ex.opline", "ex.func", "ex.this", "ex.this.u2.num_args", "ex.prev", "args.offset",
	"fn.type", "fn.name", "fn.scope", "fn.num_args",
	"oa.last", "oa.opcodes", "oa.filename", "oa.line_start", "oa.line_end",
	"op.lineno", "op.opcode", "op.size", "ce.name", "obj.ce", "str.len", "str.val",
	"ht.flags", "ht.data", "ht.used", "ht.count", "ht.nTableSize", "HASH_FLAG_PACKED", "ht.packed_elem",
	"bucket.size", "bucket.key", "zval.type",
	"sg.server_context", "sg.request_method", "sg.content_length", "sg.path_translated", "sg.request_uri", "sg.content_type",
	"ini.name", "ini.value", "mod.zend_api", "mod.version", "fe.size",
}

// TestReleaseDerive derives the layout of the php-fpm, php and libphp of
// every release and compares each derived value with offsetof() compiled
// against that release's headers: none may differ, and every field of
// mustDerive must be derived.
func TestReleaseDerive(t *testing.T) {
	for _, r := range releases(t) {
		t.Run(r.suite, func(t *testing.T) {
			version, want := offsetofs(t, r.include)
			for _, bin := range r.bins {
				d, _ := deriveFile(t, bin)
				name := filepath.Base(bin)
				for _, id := range d.derivedIDs() {
					f := d.fields[id]
					if w, ok := want[id]; ok && w != f.value {
						t.Errorf("%s %s: %s derived %d (%s: %s), offsetof says %d", r.suite, name, id, f.value, f.anchor, f.instr, w)
					}
				}
				var missing []string
				for _, id := range mustDerive {
					if _, ok := d.fields[id]; !ok {
						missing = append(missing, id+" ("+d.missing(id)+")")
					}
				}
				if len(missing) > 0 {
					t.Errorf("%s %s: not derived: %s", r.suite, name, strings.Join(missing, "; "))
				}
				build := ",NTS"
				if want["ZTS"] == 1 {
					build = ",TS"
					if d.tsrm == nil {
						t.Errorf("%s %s: ZTS build, but no anchor shows how the TSRM block is reached", r.suite, name)
					}
				}
				if !strings.HasPrefix(d.moduleBuildID, "API") || !strings.HasSuffix(d.moduleBuildID, build) {
					t.Errorf("%s %s: ZEND_MODULE_BUILD_ID %q, want API...%s", r.suite, name, d.moduleBuildID, build)
				}
				if strings.HasPrefix(version, "8.5") && (d.jit == nil || d.jit.dasmBuf == 0) {
					t.Errorf("%s %s: PHP 8.5 holds the JIT, but zend_jit_status gave no buffer", r.suite, name)
				}
				t.Logf("PHP %s %s: %d fields derived in %v", version, name, len(d.fields), d.took)
				if strings.Contains(name, "fpm") {
					// method tables are read whole with the entry size their
					// entries show (48 bytes from 8.4: the 32 of before cut
					// them after their first method)
					fns, err := FunctionEntries(bin)
					methods := 0
					for _, f := range fns {
						if strings.HasPrefix(f.Name, "zim_") {
							methods++
						}
					}
					if err != nil || methods < 400 {
						t.Errorf("%s %s: %d method handlers named (%v)", r.suite, name, methods, err)
					}
				}
			}
			if r.opcache != "" && !strings.HasPrefix(version, "7.") { // the JIT came with PHP 8.0
				if j := jitAt(r.opcache); j == nil || j.dasmBuf == 0 || j.dasmEnd == 0 || j.dasmPtr == 0 {
					t.Errorf("%s: zend_jit_status of opcache.so gave %+v", r.suite, j)
				}
			}
		})
	}
}

// TestReleaseOffsetof checks the table (and the constants) against
// offsetof() compiled with each release's headers.
func TestReleaseOffsetof(t *testing.T) {
	for _, r := range releases(t) {
		t.Run(r.suite, func(t *testing.T) {
			version, got := offsetofs(t, r.include)
			l, err := LayoutFor(version)
			if err != nil {
				t.Skipf("not in the table: %v", err)
			}
			checkLayoutOffsetof(t, "table "+version, l, got)
		})
	}
}
