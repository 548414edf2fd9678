package phpini

import "testing"

func TestSize(t *testing.T) {
	for in, want := range map[string]int64{"64M": 64 << 20, "128m": 128 << 20, "1G": 1 << 30, "512K": 512 << 10, "-1": -1, "0x10": 16, " 8 ": 8} {
		if got, ok := Size(in); !ok || got != want {
			t.Errorf("Size(%q) = %d %v, want %d", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "M", "abc", "99999999999999999999G"} {
		if _, ok := Size(bad); ok {
			t.Errorf("Size(%q) accepted", bad)
		}
	}
}

func TestBool(t *testing.T) {
	for in, want := range map[string]bool{"On": true, "yes": true, "1": true, "2": true, "Off": false, "": false, "0": false, "no": false} {
		if Bool(in) != want {
			t.Errorf("Bool(%q) != %v", in, want)
		}
	}
}

func TestDecodeJIT(t *testing.T) {
	cases := []struct {
		in, mode, crto    string
		tracing, compiles bool
	}{
		{"tracing", "tracing", "1254", true, true},
		{"on", "tracing", "1254", true, true},
		{"function", "function", "1205", false, true},
		{"1205", "function", "1205", false, true},
		{"1255", "tracing", "1255", true, true},
		{"1250", "tracing", "1250", false, false},
		{"off", "off", "", false, false},
		{"", "disable", "", false, false}, // an unquoted `off` in an ini file
		{"disable", "disable", "", false, false},
		{"bogus", "bogus", "", false, false},
	}
	for _, c := range cases {
		j := DecodeJIT(c.in)
		if j.Mode != c.mode || j.CRTO != c.crto || j.Tracing != c.tracing || j.Compiles != c.compiles || j.Description == "" {
			t.Errorf("DecodeJIT(%q) = %+v", c.in, j)
		}
	}
}
