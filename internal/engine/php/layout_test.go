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
	ids := map[string]bool{}
	for _, f := range fieldDefs {
		if ids[f.id] {
			t.Errorf("field %s defined twice", f.id)
		}
		ids[f.id] = true
		if f.hasConst == (len(f.id) > 0 && tableOnly(f.id)) {
			t.Errorf("field %s: constant %v, but the table holds it: %v", f.id, f.hasConst, tableOnly(f.id))
		}
	}
	for _, e := range table {
		if seen[e.version] {
			t.Errorf("layout %s listed twice", e.version)
		}
		seen[e.version] = true
		for id := range e.values {
			if !ids[id] {
				t.Errorf("%s: table value for unknown field %s", e.version, id)
			}
		}
		l := e.layout()
		if l.ZendAPI < 20190902 || l.ZendAPI > 20300000 {
			t.Errorf("%s: implausible ZEND_MODULE_API_NO %d", e.version, l.ZendAPI)
		}
		if l.OpArrayLineStart != l.OpArrayFilename+8 || l.OpArrayLineEnd != l.OpArrayLineStart+4 {
			t.Errorf("%s: line_start %d / line_end %d do not follow filename %d", e.version, l.OpArrayLineStart, l.OpArrayLineEnd, l.OpArrayFilename)
		}
		for name, off := range map[string]uint64{"EG.symbol_table": l.EGSymbolTable, "EG.current_execute_data": l.EGCurrentExecuteData,
			"EG.ini_directives": l.EGIniDirectives, "op_array.filename": l.OpArrayFilename} {
			if off%8 != 0 {
				t.Errorf("%s: %s offset %d is not pointer-aligned", e.version, name, off)
			}
		}
		if l.packedZvals() != (e.version >= "8.2") {
			t.Errorf("%s: packed zvals %v", e.version, l.packedZvals())
		}
		if l.IsPtr != l.IsIndirect+1 {
			t.Errorf("%s: IS_PTR %d, IS_INDIRECT %d", e.version, l.IsPtr, l.IsIndirect)
		}
		got, err := LayoutFor(e.version + ".7-1+deb12u1")
		if err != nil || got.Version != e.version {
			t.Errorf("LayoutFor(%s.7-1+deb12u1) = %v, %v", e.version, got.Version, err)
		}
	}
	for _, v := range []string{"7.4", "8.0", "8.1", "8.2", "8.3", "8.4", "8.5"} {
		if !seen[v] {
			t.Errorf("no layout for PHP %s", v)
		}
	}
	if _, err := LayoutFor("8.6.0-dev"); err == nil || !strings.Contains(err.Error(), "not in coroner's layout table") {
		t.Errorf("LayoutFor(8.6.0-dev): %v", err)
	}
}

// tableOnly reports whether the table gives a value for the field in
// every version (fields that moved between releases).
func tableOnly(id string) bool {
	for _, e := range table {
		if _, ok := e.values[id]; ok {
			return true
		}
	}
	return false
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

// offsetofs compiles testdata/offsets.c against the PHP headers in inc
// (the directory holding main/, Zend/, TSRM/) and returns what it prints:
// the PHP version and the value of every field id.
func offsetofs(t *testing.T, inc string) (string, map[string]uint64) {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed: cannot compile offsetof() against PHP headers")
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
	return version, got
}

// checkLayoutOffsetof compares every field of a layout with offsetof().
// The FastCGI fields (private to main/fastcgi.c) have no header.
func checkLayoutOffsetof(t *testing.T, what string, l Layout, got map[string]uint64) {
	t.Helper()
	for _, f := range fieldDefs {
		want, ok := got[f.id]
		if strings.HasPrefix(f.id, "fcgi.") {
			continue
		}
		if !ok {
			t.Errorf("%s: offsets.c does not print %s", what, f.id)
			continue
		}
		if v := *f.ptr(&l); v != want && !(f.id == "eg.ini_directives" && v == 0) {
			t.Errorf("%s: %s = %d, offsetof says %d", what, f.id, v, want)
		}
	}
}

// TestLayoutOffsetof checks the table and the constants against offsetof()
// compiled with the PHP development headers of this host (or of the PHP
// installed here, downloaded).
func TestLayoutOffsetof(t *testing.T) {
	inc := phpDevHeaders(t)
	if inc == "" {
		t.Skip("no PHP development headers (set PHP_DEV_INCLUDE, install php-dev, or run as root with apt): layout table not checked with offsetof() here; TestReleaseOffsetof checks the releases of lab/php-dev-headers.sh")
	}
	version, got := offsetofs(t, inc)
	l, err := LayoutFor(version)
	if err != nil {
		t.Fatalf("headers of PHP %s: %v", version, err)
	}
	t.Logf("checking the PHP %s layout against offsetof() with headers in %s", version, inc)
	checkLayoutOffsetof(t, "table "+l.Version, l, got)
}
