package php

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestDiskCache derives a release's php-fpm, forgets the memory cache and
// asks again: the layout comes back from the disk entry, equal, without a
// derivation; a damaged entry is ignored and the binary derived again.
func TestDiskCache(t *testing.T) {
	bins, _ := filepath.Glob(filepath.Join(phpDevRoot(), "*", "usr/sbin/php-fpm*"))
	if len(bins) == 0 {
		bins, _ = filepath.Glob("/usr/sbin/php-fpm*")
	}
	if len(bins) == 0 {
		t.Skip("no php-fpm here (lab/php-dev-headers.sh SUITE unpacks some)")
	}
	bin := bins[0]
	resetCache()
	defer resetCache()
	first, took, err := engineAt(bin, true)
	if err != nil || first == nil || first.d == nil || took == 0 {
		t.Fatalf("engineAt = %+v, %v, %v", first, took, err)
	}
	resetCache()
	again, took, err := engineAt(bin, true)
	if err != nil || again == nil || again.d == nil || took != 0 {
		t.Fatalf("from disk: %+v, took %v, %v", again, took, err)
	}
	if again.sym != first.sym || !reflect.DeepEqual(again.d.fields, first.d.fields) || again.d.moduleBuildID != first.d.moduleBuildID {
		t.Errorf("disk entry differs:\n%+v\n%+v", again.d.fields, first.d.fields)
	}
	entries, _ := filepath.Glob(filepath.Join(diskCacheDir(), "*.json"))
	for _, e := range entries {
		os.WriteFile(e, []byte(`{"format":1,"derived":`), 0o644)
	}
	resetCache()
	third, took, err := engineAt(bin, true)
	if err != nil || third == nil || third.d == nil || took == 0 || !reflect.DeepEqual(third.d.fields, first.d.fields) {
		t.Errorf("after a damaged entry: %+v, took %v, %v", third, took, err)
	}
}

// TestIsBuildID: isBuildID accepts exactly ^[0-9a-f]{8,128}$.
func TestIsBuildID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8,128}$`)
	ids := []string{"", "0123456", "01234567", "0123456789abcdef", "0123456G", "ABCDEF01", "0123456-",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "01234567\n", "g1234567"}
	for c := 0; c < 256; c++ {
		ids = append(ids, "0123456"+string([]byte{byte(c)}))
	}
	for _, id := range ids {
		if got, want := isBuildID(id), re.MatchString(id); got != want {
			t.Errorf("isBuildID(%q) = %v, the regexp says %v", id, got, want)
		}
	}
}

// TestJITDiskCache reads an opcache.so's JIT bookkeeping, forgets the
// memory cache and asks again: it comes back equal from its disk entry; a
// damaged entry is ignored and the code read again.
func TestJITDiskCache(t *testing.T) {
	libs, _ := filepath.Glob(filepath.Join(phpDevRoot(), "*", "usr/lib/php/*/opcache.so"))
	host, _ := filepath.Glob("/usr/lib/php/*/opcache.so")
	libs = append(libs, host...)
	if len(libs) == 0 {
		t.Skip("no opcache.so here (lab/php-dev-headers.sh SUITE unpacks some)")
	}
	lib := libs[0]
	resetCache()
	defer resetCache()
	first := jitAt(lib)
	if first == nil {
		t.Skipf("%s: no JIT bookkeeping found in its code", lib)
	}
	o, err := openObject(lib)
	if err != nil {
		t.Fatal(err)
	}
	entry := entryPathKind(o, "jit")
	o.close()
	if _, err := os.Stat(entry); err != nil {
		t.Fatalf("no disk entry: %v", err)
	}
	resetCache()
	if again := jitAt(lib); !reflect.DeepEqual(again, first) {
		t.Errorf("disk entry gives %+v, the code %+v", again, first)
	}
	os.WriteFile(entry, []byte(`{"format":1,"jit":`), 0o644)
	resetCache()
	if third := jitAt(lib); !reflect.DeepEqual(third, first) {
		t.Errorf("after a damaged entry: %+v, want %+v", third, first)
	}
}
