package php

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

func TestLayoutTable(t *testing.T) {
	seen := map[string]bool{}
	for _, l := range Layouts() {
		if seen[l.Version] {
			t.Errorf("layout %s listed twice", l.Version)
		}
		seen[l.Version] = true
		if l.ZendAPI < 20190902 || l.ZendAPI > 20300000 {
			t.Errorf("%s: implausible ZEND_MODULE_API_NO %d", l.Version, l.ZendAPI)
		}
		if l.OpArrayLineStart != l.OpArrayFilename+8 {
			t.Errorf("%s: line_start %d does not follow filename %d", l.Version, l.OpArrayLineStart, l.OpArrayFilename)
		}
		for name, off := range map[string]uint64{"EG.symbol_table": l.EGSymbolTable, "EG.current_execute_data": l.EGCurrentExecuteData,
			"EG.ini_directives": l.EGIniDirectives, "op_array.filename": l.OpArrayFilename} {
			if off%8 != 0 {
				t.Errorf("%s: %s offset %d is not pointer-aligned", l.Version, name, off)
			}
		}
		if l.PackedZvals != (l.Version >= "8.2") {
			t.Errorf("%s: PackedZvals %v", l.Version, l.PackedZvals)
		}
		got, err := LayoutFor(l.Version + ".7-1+deb12u1")
		if err != nil || got.Version != l.Version {
			t.Errorf("LayoutFor(%s.7-1+deb12u1) = %v, %v", l.Version, got.Version, err)
		}
	}
	for _, v := range []string{"7.4", "8.0", "8.1", "8.2", "8.3", "8.4"} {
		if !seen[v] {
			t.Errorf("no layout for PHP %s", v)
		}
	}
	if _, err := LayoutFor("8.5.0"); err == nil {
		t.Error("LayoutFor(8.5.0) succeeded; 8.5 moved EG(current_execute_data)")
	}
}

// phpDevHeaders finds PHP development headers: $PHP_DEV_INCLUDE, an
// installed php-dev, or (as root, with apt) php<ver>-dev unpacked into a
// temporary directory for the PHP version installed here.
func phpDevHeaders(t *testing.T) string {
	if d := os.Getenv("PHP_DEV_INCLUDE"); d != "" {
		return d
	}
	if m, _ := filepath.Glob("/usr/include/php/*/main/php_config.h"); len(m) > 0 {
		return filepath.Dir(filepath.Dir(m[0]))
	}
	if os.Geteuid() != 0 {
		return ""
	}
	php, err := exec.LookPath("php")
	if err != nil {
		return ""
	}
	out, err := exec.Command(php, "-n", "-r", "echo PHP_MAJOR_VERSION, '.', PHP_MINOR_VERSION;").Output()
	if err != nil {
		return ""
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return ""
	}
	dir := t.TempDir()
	dl := exec.Command("apt-get", "download", "php"+string(out)+"-dev")
	dl.Dir = dir
	if b, err := dl.CombinedOutput(); err != nil {
		t.Logf("apt-get download php%s-dev: %v: %s", out, err, b)
		return ""
	}
	debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
	if len(debs) == 0 {
		return ""
	}
	if b, err := exec.Command("dpkg", "-x", debs[0], filepath.Join(dir, "x")).CombinedOutput(); err != nil {
		t.Logf("dpkg -x: %v: %s", err, b)
		return ""
	}
	m, _ := filepath.Glob(filepath.Join(dir, "x/usr/include/php/*/main/php_config.h"))
	if len(m) == 0 {
		return ""
	}
	return filepath.Dir(filepath.Dir(m[0]))
}

// TestLayoutOffsetof compiles testdata/offsets.c against real PHP headers
// and checks the layout table and the constants against offsetof().
func TestLayoutOffsetof(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed: cannot check the layout table with offsetof()")
	}
	inc := phpDevHeaders(t)
	if inc == "" {
		t.Skip("no PHP development headers (set PHP_DEV_INCLUDE, install php-dev, or run as root with apt): layout table not checked with offsetof()")
	}
	bin := filepath.Join(t.TempDir(), "offsets")
	args := []string{"-w", "-o", bin, "testdata/offsets.c"}
	for _, d := range []string{"", "main", "Zend", "TSRM", "ext"} {
		args = append(args, "-I"+filepath.Join(inc, d))
	}
	if b, err := exec.Command(gcc, args...).CombinedOutput(); err != nil {
		t.Fatalf("compile offsets.c against %s: %v\n%s", inc, err, b)
	}
	out, err := exec.Command(bin).Output()
	if err != nil {
		t.Fatalf("run offsets: %v", err)
	}
	got := map[string]uint64{}
	version := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 2 {
			continue
		}
		if f[0] == "version" {
			version = f[1]
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		got[f[0]] = n
	}
	l, err := LayoutFor(version)
	if err != nil {
		t.Fatalf("headers of PHP %s: %v", version, err)
	}
	t.Logf("checking the PHP %s layout against offsetof() with headers in %s", version, inc)
	want := map[string]uint64{
		"zend_api":                uint64(l.ZendAPI),
		"eg.symbol_table":         l.EGSymbolTable,
		"eg.current_execute_data": l.EGCurrentExecuteData,
		"oa.filename":             l.OpArrayFilename,
		"oa.last":                 l.OpArrayLast,
		"oa.opcodes":              l.OpArrayOpcodes,
		"oa.line_start":           l.OpArrayLineStart,
		"oa.line_end":             l.OpArrayLineStart + 4,
		"ex.opline":               exOpline, "ex.func": exFunc, "ex.this": exThis, "ex.prev": exPrev,
		"fn.type": fnType, "fn.name": fnName, "fn.scope": fnScope, "oa.num_args": fnNumArgs,
		"op.extended_value": opExtValue, "op.lineno": opLineno, "op.opcode": opOpcode, "op.size": opSize,
		"ce.name": ceName, "str.len": strLen, "str.val": strVal,
		"ht.flags": htFlags, "ht.data": htData, "ht.used": htUsed, "ht.count": htCount,
		"bucket.size": bucketSize, "bucket.key": bucketKey, "obj.ce": objCE, "ref.val": refVal,
		"sg.server_context": sgServerContext, "sg.request_method": sgRequestMethod, "sg.query_string": sgQueryString,
		"sg.content_length": sgContentLength, "sg.path_translated": sgPathTranslated, "sg.request_uri": sgRequestURI,
		"sg.content_type": sgContentType, "ini.name": iniName, "ini.value": iniValue,
		"mod.zend_api": modZendAPI, "mod.zts": modZTS, "mod.name": modName, "mod.version": modVersion,
		"fe.size": feSize,
	}
	if l.Version == "8.2" { // used by checkEntriesAgainstEngine (entries_test.go)
		want["eg.function_table"], want["eg.class_table"], want["ce.type"], want["ce.function_table"], want["ifn.handler"] = 432, 440, 0, 64, 72
	}
	if l.EGIniDirectives != 0 {
		want["eg.ini_directives"] = l.EGIniDirectives
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s: not printed by offsets.c", k)
			continue
		}
		if g != v {
			t.Errorf("PHP %s %s: table/constant says %d, offsetof says %d", version, k, v, g)
		}
	}
	// ZEND_CALL_FRAME_SLOT: arguments start at the first 16-byte slot after zend_execute_data.
	if slot := (got["ex.size"] + 15) / 16 * 16; slot != exArgs {
		t.Errorf("arguments at %d, ZEND_CALL_FRAME_SLOT*16 = %d", exArgs, slot)
	}
}
