package diagnose

import "testing"

func TestLogFingerprint(t *testing.T) {
	a := LogFingerprint(11, "libc.so.6!__strlen_evex+0x18", "/ffi.php?x=1")
	for _, c := range []struct {
		name      string
		sig       int
		site, uri string
		same      bool
	}{
		{"another offset, query and libc version", 11, "libc.so.7!__strlen_evex+0x1c", "/ffi.php?x=2", true},
		{"a clone suffix", 11, "libc.so.6!__strlen_evex.cold+0x2", "/ffi.php", true},
		{"another function", 11, "libc.so.6!__memcpy_evex+0x18", "/ffi.php", false},
		{"another path", 11, "libc.so.6!__strlen_evex+0x18", "/other.php", false},
		{"another signal", 7, "libc.so.6!__strlen_evex+0x18", "/ffi.php", false},
		{"unsymbolized", 11, "libc.so.6+0x167ad8", "/ffi.php", false},
	} {
		if got := LogFingerprint(c.sig, c.site, c.uri); (got == a) != c.same || len(got) != 16 {
			t.Errorf("%s: %q vs %q, same %v", c.name, got, a, c.same)
		}
	}
	if LogFingerprint(11, "libc.so.6+0x167ad8", "/") == LogFingerprint(11, "libc.so.6+0x167ae0", "/") {
		t.Error("unsymbolized sites at other offsets share a fingerprint")
	}
	if LogFingerprint(11, "[anon-exec]/JIT", "") == "" || LogFingerprint(11, "", "") != "" {
		t.Error("JIT site or empty incident")
	}
	if f := LogSiteFunction("libc.so.6!__strlen_evex+0x18"); f != "__strlen_evex" {
		t.Errorf("LogSiteFunction = %q", f)
	}
}
