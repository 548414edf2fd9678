// Package units formats and parses the byte sizes people read and type:
// "199.3 MiB" in reports and dashboards, "10G" on the command line. (PHP's
// own INI sizes follow PHP's rules and live in package phpini.)
package units

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Bytes formats n with a binary unit: "512 B", "4.0 KiB", "199.3 MiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit && n > -unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	f := float64(n)
	for _, u := range []string{"KiB", "MiB", "GiB", "TiB", "PiB"} {
		f /= unit
		if math.Abs(f) < unit {
			return fmt.Sprintf("%.1f %s", f, u)
		}
	}
	return fmt.Sprintf("%.1f EiB", f/unit)
}

// Format writes n the way ParseBytes reads it, in the largest binary unit
// that divides it: "1G", "512M", "4096".
func Format(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"T", 1 << 40}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if n != 0 && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

// ParseBytes parses a size such as "500M", "10G", "1.5T", "64KiB" or
// "1048576" (binary multiples; a trailing "B" or "iB" is accepted).
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToUpper(s))
	t = strings.TrimSuffix(strings.TrimSuffix(t, "B"), "I")
	mult := int64(1)
	if n := len(t); n > 0 {
		switch t[n-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:n-1]
		}
	}
	v, err := strconv.ParseFloat(strings.TrimSpace(t), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("bad size %q (want e.g. 500M, 10G)", s)
	}
	return int64(v * float64(mult)), nil
}
