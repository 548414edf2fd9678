package units

import "testing"

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 208965632: "199.3 MiB", 10 << 30: "10.0 GiB", 3 << 40: "3.0 TiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"500M": 500 << 20, "10G": 10 << 30, "1.5T": 3 << 39, "64KiB": 64 << 10, "1048576": 1 << 20, " 2g ": 2 << 30} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "G", "-1M", "abc", "1e30T", "NaN"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}

func FuzzParseBytes(f *testing.F) {
	for _, s := range []string{"10G", "1.5T", "500", "64KiB", "-1", "1e400"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if v, err := ParseBytes(s); err == nil && v < 0 {
			t.Fatalf("ParseBytes(%q) = %d", s, v)
		}
		_ = Bytes(int64(len(s)) << 30)
	})
}

func TestFormat(t *testing.T) {
	for n, want := range map[int64]string{1 << 30: "1G", 2 << 30: "2G", 512 << 20: "512M", 4096: "4K", 1000: "1000", 0: "0", 3 << 40: "3T"} {
		got := Format(n)
		if got != want {
			t.Errorf("Format(%d) = %q, want %q", n, got, want)
		}
		if back, err := ParseBytes(got); err != nil || back != n {
			t.Errorf("ParseBytes(%q) = %d %v", got, back, err)
		}
	}
}
