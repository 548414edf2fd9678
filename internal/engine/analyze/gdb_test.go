package analyze

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/symbols"
)

// gdbFrame is one frame of `gdb -batch -ex bt` output, the oracle for
// native frames.
type gdbFrame struct {
	index    int
	pc       uint64 // 0 when gdb printed none (frame 0 at a line start)
	function string // "" for ??
	lib      string // "from LIB" path, "" for the main executable
}

var gdbFrameRE = regexp.MustCompile(`^#(\d+)\s+(?:(0x[0-9a-f]+) in )?(.*)$`)

// splitGDBFunction splits "NAME (args) at f:l" or "NAME () from LIB" into
// the function name (which may contain spaces inside template brackets)
// and the library.
func splitGDBFunction(rest string) (name, lib string) {
	depth := 0
	end := len(rest)
	for i, c := range rest {
		switch c {
		case '<':
			depth++
		case '>':
			depth--
		case ' ':
			if depth <= 0 && strings.HasPrefix(rest[i:], " (") {
				end = i
			}
		}
		if end != len(rest) {
			break
		}
	}
	name = strings.TrimSpace(rest[:end])
	if i := strings.LastIndex(rest, " from "); i >= 0 {
		lib = strings.TrimSpace(rest[i+len(" from "):])
	}
	return name, lib
}

// parseGDBBacktrace reads the frames of the first backtrace in a gdb
// output file (the crashed thread).
func parseGDBBacktrace(path string) ([]gdbFrame, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []gdbFrame
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		m := gdbFrameRE.FindStringSubmatch(line)
		if m == nil {
			if len(out) > 0 && !strings.HasPrefix(line, " ") && !strings.HasPrefix(line, "#") {
				if strings.HasPrefix(line, "Backtrace stopped") {
					continue
				}
				if strings.HasPrefix(line, "rax") || strings.HasPrefix(line, "=>") {
					break // info registers / x/i follow the backtrace
				}
			}
			continue
		}
		idx, _ := strconv.Atoi(m[1])
		if len(out) > 0 && idx <= out[len(out)-1].index {
			if idx == 0 && len(out) == 1 {
				continue // gdb prints frame 0 twice (on load and in bt)
			}
			break // a second backtrace (another thread)
		}
		var pc uint64
		if m[2] != "" {
			pc, _ = strconv.ParseUint(m[2][2:], 16, 64)
		}
		fn, lib := splitGDBFunction(m[3])
		if fn == "??" || strings.Contains(line, "<signal handler called>") {
			fn = ""
		}
		out = append(out, gdbFrame{index: idx, pc: pc, function: fn, lib: lib})
	}
	return out, sc.Err()
}

// sameFunction compares a gdb function name with coroner's, ignoring C++
// parameter lists.
func sameFunction(gdb, ours string) bool {
	if i := strings.IndexByte(ours, '('); i > 0 {
		ours = ours[:i]
	}
	if i := strings.IndexByte(gdb, '('); i > 0 {
		gdb = gdb[:i]
	}
	return strings.TrimSpace(gdb) == strings.TrimSpace(ours)
}

// isAlias reports whether name is another symbol at the start of frame f's
// function (gdb prefers debug-info names such as __GI_kill for kill).
func isAlias(rep *crash.Report, f *crash.Frame, name string) bool {
	for _, m := range rep.Modules {
		if filepath.Base(m.Path) != f.Module {
			continue
		}
		obj, err := symbols.Open(m.Path)
		if err != nil {
			return false
		}
		defer obj.Close()
		start := uint64(f.ModuleOffset) - uint64(f.FunctionOffset)
		for _, a := range obj.Aliases(start) {
			if sameFunction(name, symbols.Demangle(a)) {
				return true
			}
		}
	}
	return false
}
