package analyze

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

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
	file     string // "at FILE:LINE" source file, "" without debug info
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
		file := ""
		if i := strings.LastIndex(m[3], ") at "); i >= 0 {
			file, _, _ = strings.Cut(m[3][i+len(") at "):], ":")
		}
		out = append(out, gdbFrame{index: idx, pc: pc, function: fn, lib: lib, file: file})
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
// function (gdb prefers debug-info names such as __GI_kill for kill). The
// modules are read below sysroot ("" for this host).
func isAlias(rep *crash.Report, f *crash.Frame, name, sysroot string) bool {
	for _, m := range rep.Modules {
		if filepath.Base(m.Path) != f.Module {
			continue
		}
		obj, err := symbols.Open(filepath.Join("/", sysroot, m.Path))
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

// gdbCheck adapts checkAgainstGDB to where the core is analysed.
type gdbCheck struct {
	// sysroot holds the modules ("" for this host).
	sysroot string
	// skip leaves out gdb frames the analysis cannot name the same way
	// (gdb had debug files it does not have).
	skip func(gdbFrame) bool
}

// checkAgainstGDB checks the crashed thread of rep against gdb's backtrace
// of the same core: wherever gdb names a frame's function, coroner names the
// same function in the same module, until gdb's own unwinding leaves the
// real stack (it does at PHP JIT frames); coroner names at least as many
// frames, strictly more on php-fpm cores; and the stack ends at _start or
// the thread's start. gdb's inlined frames (printed without an address) are
// matched by name when they fall on a physical frame and skipped otherwise.
func checkAgainstGDB(t *testing.T, rep *crash.Report, gdbPath string, php bool, c gdbCheck) {
	t.Helper()
	gdb, err := parseGDBBacktrace(gdbPath)
	if err != nil || len(gdb) == 0 {
		t.Fatalf("gdb oracle %s: %d frames, %v", gdbPath, len(gdb), err)
	}
	th := rep.CrashedThread()
	if th == nil {
		t.Fatal("no crashed thread")
	}
	gdbNamed := map[int]bool{} // coroner frame indexes gdb named
	next := 0                  // coroner frame expected for gdb's next physical frame
	diverged := false
	find := func(pc uint64, from int) int {
		for k := from; k < len(th.Frames) && k < from+4; k++ {
			if uint64(th.Frames[k].PC) == pc {
				return k
			}
		}
		return -1
	}
	for gi, g := range gdb {
		j := -1
		switch {
		case g.pc != 0:
			j = find(g.pc, next)
			if j < 0 {
				// gdb synthesizes frames for tail calls from DWARF
				// call-site information (their pc follows a jmp and is
				// on no stack); skip one such frame, stop at two.
				if gi+1 < len(gdb) && gdb[gi+1].pc != 0 && find(gdb[gi+1].pc, next) >= 0 {
					t.Logf("gdb frame #%d %s (pc %#x) is not a physical frame (tail call synthesized by gdb)", g.index, g.function, g.pc)
					continue
				}
				t.Logf("gdb frame #%d pc %#x not on coroner's stack near #%d: gdb's unwinding diverges; comparison stops", g.index, g.pc, next)
				diverged = true
			}
		case next < len(th.Frames) && sameFunction(g.function, th.Frames[next].Function):
			j = next // frame 0 at the start of a source line: gdb prints no address
		default:
			continue // an inlined frame: not a physical frame
		}
		if diverged {
			break
		}
		next = j + 1
		f := th.Frames[j]
		if g.function == "" || (c.skip != nil && c.skip(g)) {
			continue
		}
		if !sameFunction(g.function, f.Function) && !isAlias(rep, &f, g.function, c.sysroot) {
			// With inlined code at pc, gdb prints the innermost inlined
			// function with the address and the functions containing it
			// (the physical one last) as the following address-less frames.
			matched := false
			for _, h := range gdb[gi+1:] {
				if h.pc != 0 {
					break
				}
				if sameFunction(h.function, f.Function) || isAlias(rep, &f, h.function, c.sysroot) {
					matched = true
					break
				}
			}
			if !matched {
				t.Errorf("frame #%d %s: gdb says %q, coroner %q (%s)", j, f.PC, g.function, f.Function, f.FunctionSource)
			}
		}
		gdbNamed[j] = true
		if g.lib != "" {
			want := filepath.Base(g.lib)
			if real, err := filepath.EvalSymlinks(filepath.Join("/", c.sysroot, g.lib)); err == nil {
				want = filepath.Base(real)
			}
			// gdb names a library by its soname link (libpcre2-8.so.0),
			// the core by the file (libpcre2-8.so.0.11.2).
			if f.Module != want && !strings.HasPrefix(f.Module, want+".") {
				t.Errorf("frame #%d: gdb module %s, coroner %s", j, want, f.Module)
			}
		}
	}
	ourNamed := 0
	for _, f := range th.Frames {
		if f.Function != "" {
			ourNamed++
		}
	}
	t.Logf("%d frames (gdb %d, diverged %v); named: coroner %d, gdb %d", len(th.Frames), len(gdb), diverged, ourNamed, len(gdbNamed))
	if ourNamed < len(gdbNamed) {
		t.Errorf("coroner names %d frames, gdb %d", ourNamed, len(gdbNamed))
	}
	if php && ourNamed <= len(gdbNamed) {
		t.Errorf("on a php-fpm core coroner must name strictly more frames than gdb: %d vs %d", ourNamed, len(gdbNamed))
	}
	last := th.Frames[len(th.Frames)-1]
	ends := last.Function == "_start" || last.Function == "clone" || last.Function == "clone3" ||
		strings.Contains(last.Function, "start_thread") || strings.HasPrefix(last.Function, "runtime.goexit")
	if !ends && last.Function == "" && strings.HasPrefix(last.Module, "libc.so") && c.sysroot != "" {
		// Without libc6-dbg, libc's clone3 and start_thread have no name
		// (they are not in .dynsym): the walk must still have reached the
		// outermost frame, which CFI marks.
		ends = true
		for _, w := range th.Warnings {
			if strings.HasPrefix(w, "unwinding stopped") {
				ends = false
			}
		}
	}
	if !ends {
		t.Errorf("unwinding ends at %q (%s), not at _start/clone (warnings %q)", last.Function, last.Module, th.Warnings)
	}
}
