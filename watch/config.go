package watch

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/coroner-dev/coroner/logs"
)

// ParseSize parses a byte size such as "500M", "10G", "1.5T" or "1048576"
// (binary multiples; an optional trailing "B" or "iB" is accepted).
func ParseSize(s string) (int64, error) {
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

var rotated = regexp.MustCompile(`\.(\d+|\d+\.gz|gz|bz2|xz|zst)$|-\d{8}(\.gz)?$`)

// LiveLogs returns the live logs of this host (logs.Discover without the
// rotated copies, which never grow).
func LiveLogs() []logs.Input {
	var out []logs.Input
	for _, in := range logs.Discover(logs.DiscoverOptions{}) {
		if !strings.HasPrefix(in.Path, "cmd:") && rotated.MatchString(in.Path) {
			continue
		}
		out = append(out, in)
	}
	return out
}
