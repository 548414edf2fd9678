package render

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/sanitize"
)

// PHPText writes the PHP state of a crash (coroner php) as text.
func PHPText(w io.Writer, ph *crash.PHP) error {
	ph = sanitize.Copy(ph)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	build := "NTS"
	if ph.ZTS {
		build = "ZTS"
	}
	p("PHP %s (%s, %s)", ph.Version, ph.SAPI, build)
	if q := ph.Request; q != nil {
		p("request (from %s):", q.Source)
		for _, kv := range [][2]string{{"method", q.Method}, {"uri", q.URI}, {"query", q.Query}, {"script", q.Script},
			{"host", q.Host}, {"client", q.RemoteAddr}, {"agent", q.UserAgent}, {"type", q.ContentType}} {
			if kv[1] != "" {
				p("  %-7s %s", kv[0]+":", kv[1])
			}
		}
	}
	if ph.JIT != nil {
		p("jit: %s", ph.JIT.Description)
	}
	if len(ph.INI) > 0 {
		keys := make([]string, 0, len(ph.INI))
		for k := range ph.INI {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		p("ini:")
		for _, k := range keys {
			p("  %s = %s", k, ph.INI[k])
		}
	}
	p("PHP stack (%d frames, innermost first):", len(ph.Frames))
	ci := 0
	for i := 0; i < len(ph.Frames); i++ {
		if ci < len(ph.Cycles) && ph.Cycles[ci].Start == i {
			c := ph.Cycles[ci]
			for j := c.Start; j < c.Start+c.Length; j++ {
				p("  %s", phpFrame(j, &ph.Frames[j]))
			}
			p("  ... frames #%d-#%d repeat %d times in all (cycle of %d) ...", c.Start, c.End, c.Repeats, c.Length)
			i, ci = c.End, ci+1
			continue
		}
		p("  %s", phpFrame(i, &ph.Frames[i]))
	}
	if len(ph.Extensions) > 0 {
		var names []string
		for _, e := range ph.Extensions {
			names = append(names, strings.TrimSpace(e.Name+" "+e.Version))
		}
		p("extensions: %s", strings.Join(names, ", "))
	}
	for _, wn := range ph.Warnings {
		p("warning: %s", wn)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func phpFrame(i int, f *crash.PHPFrame) string {
	name := f.Function
	if f.Class != "" {
		name = f.Class + f.CallType + f.Function
	}
	s := fmt.Sprintf("#%-5d %s(%s)", i, name, strings.Join(f.Args, ", "))
	if f.File != "" {
		s += fmt.Sprintf(" at %s:%d", f.File, f.Line)
	}
	return s
}
