package php

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// ehFrameStarts lists the function starts of a binary's .eh_frame FDEs, as
// readelf decodes them.
func ehFrameStarts(t *testing.T, path string) map[uint64]bool {
	readelf, err := exec.LookPath("readelf")
	if err != nil {
		t.Skip("readelf not installed")
	}
	out, err := exec.Command(readelf, "--debug-dump=frames", path).Output()
	if err != nil {
		t.Fatalf("readelf %s: %v", path, err)
	}
	re := regexp.MustCompile(`FDE cie=[0-9a-f]+ pc=([0-9a-f]+)\.\.`)
	starts := map[uint64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := re.FindSubmatch(sc.Bytes()); m != nil {
			v, _ := strconv.ParseUint(string(m[1]), 16, 64)
			starts[v] = true
		}
	}
	return starts
}

func phpFPMBinary(t *testing.T) string {
	for _, p := range []string{"/usr/sbin/php-fpm8.2", "/usr/sbin/php-fpm"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	m, _ := filepath.Glob("/usr/sbin/php-fpm*")
	if len(m) == 0 {
		t.Skip("php-fpm not installed")
	}
	return m[0]
}

func TestFunctionEntriesPHPFPM(t *testing.T) {
	bin := phpFPMBinary(t)
	fns, err := FunctionEntries(bin)
	if err != nil {
		t.Fatal(err)
	}
	starts := ehFrameStarts(t, bin)
	byName := map[string]uint64{}
	notStart := 0
	for _, f := range fns {
		byName[f.Name] = f.Addr
		if !starts[f.Addr] {
			notStart++
		}
	}
	for _, name := range []string{"zif_preg_replace_callback", "zif_strlen", "zif_array_map", "zif_json_encode", "zim_Closure_bind"} {
		a, ok := byName[name]
		if !ok {
			t.Errorf("%s not found among %d functions", name, len(fns))
			continue
		}
		if !starts[a] {
			t.Errorf("%s at %#x is not an .eh_frame function start", name, a)
		}
	}
	if len(fns) < 1000 {
		t.Errorf("only %d functions named", len(fns))
	}
	// Every handler must start a function; a few may lack an FDE.
	t.Logf("%d functions, %d not at an .eh_frame function start", len(fns), notStart)
	if notStart*100 > len(fns) {
		t.Errorf("%d of %d handlers are not .eh_frame function starts", notStart, len(fns))
	}
	// No name may be given to two addresses, nor two names to one address.
	seen := map[uint64]string{}
	for _, f := range fns {
		if prev, ok := seen[f.Addr]; ok {
			t.Errorf("%#x named %s and %s", f.Addr, prev, f.Name)
		}
		seen[f.Addr] = f.Name
	}
}

func TestFunctionEntriesExtension(t *testing.T) {
	m, _ := filepath.Glob("/usr/lib/php/*/ffi.so")
	if len(m) == 0 {
		t.Skip("php ffi.so not installed")
	}
	fns, err := FunctionEntries(m[0])
	if err != nil {
		t.Fatal(err)
	}
	starts := ehFrameStarts(t, m[0])
	names := map[string]bool{}
	for _, f := range fns {
		names[f.Name] = true
		if !starts[f.Addr] {
			t.Errorf("%s at %#x is not an .eh_frame function start", f.Name, f.Addr)
		}
	}
	for _, n := range []string{"zim_FFI_cdef", "zim_FFI_new", "zim_FFI_CType_getName"} {
		if !names[n] {
			t.Errorf("%s not found in %v", n, fns)
		}
	}
}

func TestFunctionEntriesNotELF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	os.WriteFile(p, []byte("not an ELF file"), 0o644)
	if _, err := FunctionEntries(p); err == nil {
		t.Error("FunctionEntries accepted a non-ELF file")
	}
}

// miniExtension compiles testdata/entries.c into a shared object.
func miniExtension(t testing.TB) string {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc not installed")
	}
	so := filepath.Join(t.TempDir(), "mini.so")
	if b, err := exec.Command(gcc, "-O2", "-shared", "-fPIC", "-o", so, "testdata/entries.c").CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, b)
	}
	return so
}

func TestFunctionEntriesMini(t *testing.T) {
	so := miniExtension(t)
	fns, err := FunctionEntries(so)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range fns {
		got[f.Name] = true
	}
	for _, n := range []string{"zif_mini_hello", "zif_mini_world", "zim_Mini_Thing_run"} {
		if !got[n] {
			t.Errorf("%s not found in %+v", n, fns)
		}
	}
	if len(fns) != 3 {
		t.Errorf("%d functions, want 3: %+v", len(fns), fns)
	}
}

// FuzzFunctionEntries feeds damaged ELF files to the zend_function_entry
// reader: it must never panic.
func FuzzFunctionEntries(f *testing.F) {
	if gcc, err := exec.LookPath("gcc"); err == nil {
		so := filepath.Join(f.TempDir(), "mini.so")
		if exec.Command(gcc, "-O2", "-shared", "-fPIC", "-o", so, "testdata/entries.c").Run() == nil {
			if b, err := os.ReadFile(so); err == nil {
				f.Add(b)
			}
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ef, err := elf.NewFile(bytes.NewReader(data))
		if err != nil {
			return
		}
		functionEntries(ef)
	})
}

// TestFunctionEntriesMatchRuntime checks the names FunctionEntries gives
// against the engine's own tables in a core: every internal function of
// EG(function_table) and method of EG(class_table) has a handler, a name
// and a class; the name found for that handler in the binary must be one of
// the PHP names it implements.
func TestFunctionEntriesMatchRuntime(t *testing.T) {
	corePath, _ := cliCore(t)
	checkEntriesAgainstEngine(t, inputFromCore(t, corePath))
}

// checkEntriesAgainstEngine compares FunctionEntries on the PHP objects of
// a process with the engine's function and class tables in its core.
func checkEntriesAgainstEngine(t *testing.T, in Input) {
	t.Helper()
	res, err := Analyze(in)
	if err != nil || res == nil {
		t.Fatalf("Analyze = %v, %v", res, err)
	}
	if minorVersion(res.Version) != "8.2" {
		t.Skipf("the class table offsets of this check are those of PHP 8.2 (offsetof in testdata/offsets.c), not %s", res.Version)
	}
	const egFunctionTable, egClassTable, ceType, ceFunctionTable, ifnHandler = 432, 440, 0, 64, 72
	g, _ := findGlobals(in.Modules)
	l, _ := LayoutFor(res.Version)
	m := &mem{r: in.Memory, l: &l}
	w := newWalker(m, &l)
	valid := map[uint64]map[string]bool{} // runtime handler -> C names it may have
	handlerOf := map[string]uint64{}      // C name -> runtime handler
	add := func(fn uint64, class string) {
		var b [24]byte
		if m.read(b[:], fn) != nil || b[0] != 1 {
			return // user function
		}
		name, err := m.name(binary.LittleEndian.Uint64(b[l.FnName:]), maxName)
		if err != nil {
			t.Fatalf("function %#x: %v", fn, err)
		}
		h, err := m.u64(fn + ifnHandler)
		if err != nil || h == 0 {
			return
		}
		c := "zif_" + name
		if class != "" {
			c = "zim_" + strings.ReplaceAll(class, `\`, "_") + "_" + name
		}
		if valid[h] == nil {
			valid[h] = map[string]bool{}
		}
		valid[h][c] = true
		handlerOf[c] = h
	}
	ft, _ := m.ptr(g.eg+egFunctionTable, 8)
	if err := m.hashEach(ft, func(_ uint64, v zval) bool { add(v.value, ""); return true }); err != nil {
		t.Fatal(err)
	}
	ct, _ := m.ptr(g.eg+egClassTable, 8)
	err = m.hashEach(ct, func(_ uint64, v zval) bool {
		var typ [1]byte
		if m.read(typ[:], v.value+ceType) != nil || typ[0] != 1 {
			return true // user class
		}
		class, err := w.class(v.value)
		if err != nil {
			t.Fatalf("class %#x: %v", v.value, err)
		}
		m.hashEach(v.value+ceFunctionTable, func(_ uint64, f zval) bool {
			if scope, err := m.u64(f.value + l.FnScope); err == nil && scope == v.value {
				add(f.value, class)
			}
			return true
		})
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := map[string]int{}
	for _, mod := range in.Modules {
		if !phpCandidate(mod.Path) && !strings.Contains(mod.Path, "/php/") {
			continue
		}
		fns, err := FunctionEntries(mod.Path)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fns {
			names, ok := valid[f.Addr+mod.Bias]
			if !ok {
				continue // not registered in this process (e.g. a SAPI's functions)
			}
			checked[f.Name[:3]]++
			if h2, ok := handlerOf[f.Name]; ok && !names[f.Name] && (h2 < mod.Start || h2 >= mod.End) {
				continue // replaced at run time by another module (phar intercepts file functions)
			}
			if !names[f.Name] {
				t.Errorf("%s: handler %#x named %s, the engine knows it as %v", filepath.Base(mod.Path), f.Addr, f.Name, names)
			}
		}
	}
	t.Logf("checked %d function and %d method names against the engine's tables", checked["zif"], checked["zim"])
	if checked["zif"] < 500 || checked["zim"] < 300 {
		t.Errorf("only %v names checked", checked)
	}
}
