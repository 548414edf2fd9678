package watch

import (
	"regexp"
	"strings"
	"sync"

	"github.com/coroner-dev/coroner/internal/source/logs"
)

var rotated = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\.(\d+|\d+\.gz|gz|bz2|xz|zst)$|-\d{8}(\.gz)?$`) })

// LiveLogs returns the live logs of this host (logs.Discover without the
// rotated copies, which never grow).
func LiveLogs() []logs.Input {
	var out []logs.Input
	for _, in := range logs.Discover(logs.DiscoverOptions{}) {
		if !strings.HasPrefix(in.Path, "cmd:") && rotated().MatchString(in.Path) {
			continue
		}
		out = append(out, in)
	}
	return out
}
