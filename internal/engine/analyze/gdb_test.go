package analyze

import (
	"bufio"
	"fmt"
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

// sameFunction compares a gdb function name with coroner's, ignoring the
// parameter lists that end demangled C++ names (gdb prints them for
// functions named by symbols, and "(void)" for some named by DWARF).
func sameFunction(gdb, ours string) bool {
	return stripParams(gdb) == stripParams(ours)
}

// stripParams removes the parameter list (and cv-qualifiers) that ends a
// C++ name: "ns::f(int) const" is "ns::f", "S::operator()(int)" is
// "S::operator()", "S<main()::<lambda()> >::run(void)" is "S<...>::run".
func stripParams(name string) string {
	s := strings.TrimSpace(name)
	for _, q := range []string{" const", " volatile", " &&", " &"} {
		s = strings.TrimSuffix(s, q)
	}
	if !strings.HasSuffix(s, ")") {
		return s
	}
	depth := 0
	for i := len(s) - 1; i >= 0; i-- {
		switch s[i] {
		case ')':
			depth++
		case '(':
			depth--
			if depth == 0 {
				if strings.HasSuffix(s[:i], "operator") {
					return s
				}
				return strings.TrimSpace(s[:i])
			}
		}
	}
	return s
}

// flatFrame is a frame as gdb lists them: each inlined function and each
// tail call is a frame of its own.
type flatFrame struct {
	name   string
	source string // function_source of the physical frame; "inline", "tail-call"
	pc     uint64 // the physical frame's pc, or the tail call's
	module string
	offset uint64 // module offset of the physical frame's function start
	index  int    // index of the physical frame
}

// flatten lists a thread's frames the way gdb's backtrace does.
func flatten(th *crash.Thread) []flatFrame {
	var out []flatFrame
	for i := range th.Frames {
		f := &th.Frames[i]
		for _, v := range f.Inlined {
			out = append(out, flatFrame{name: v.Function, source: "inline", pc: uint64(f.PC), module: f.Module, index: i})
		}
		out = append(out, flatFrame{name: f.Function, source: f.FunctionSource, pc: uint64(f.PC), module: f.Module,
			offset: uint64(f.ModuleOffset) - uint64(f.FunctionOffset), index: i})
		for _, v := range f.TailCalls {
			out = append(out, flatFrame{name: v.Function, source: "tail-call", pc: uint64(v.PC), module: f.Module, index: i})
		}
	}
	return out
}

// gdbComparison is how coroner's frames compare with gdb's backtrace.
type gdbComparison struct {
	gdbFrames  int // frames gdb listed (to where its unwinding diverged)
	gdbNamed   int // of those, the ones gdb named
	same       int // named the same by coroner
	alias      int // named by coroner from debug information gdb lacked, gdb by a symbol alias
	ourNamed   int // frames coroner named (its whole flat list)
	ourFrames  int
	diverged   bool // gdb's unwinding left the real stack (PHP JIT)
	diffs      []string
	moduleDiff []string
}

// compareWithGDB aligns coroner's flattened frames with gdb's backtrace:
// a gdb frame with an address matches the first of coroner's frames (a
// few ahead at most) with that pc; one without (an inlined function, or
// frame 0 at the start of a line) matches the next one by name. Names are
// compared without C++ parameter lists.
func compareWithGDB(rep *crash.Report, th *crash.Thread, gdb []gdbFrame, opt gdbCheck) gdbComparison {
	sysroot := opt.sysroot
	ours := flatten(th)
	c := gdbComparison{ourFrames: len(ours)}
	for _, f := range ours {
		if f.name != "" {
			c.ourNamed++
		}
	}
	next := 0
	for gi := 0; gi < len(gdb); gi++ {
		g := gdb[gi]
		j := -1
		if g.pc != 0 {
			for k := next; k < len(ours) && k < next+8; k++ {
				if ours[k].pc == g.pc {
					j = k
					break
				}
			}
			if j < 0 {
				c.diverged = true
				break
			}
		} else {
			for k := next; k < len(ours) && k < next+4; k++ {
				if sameFunction(g.function, ours[k].name) {
					j = k
					break
				}
			}
			if j < 0 {
				j = next
			}
			if j >= len(ours) {
				break
			}
		}
		next = j + 1
		c.gdbFrames++
		f := ours[j]
		if g.lib != "" {
			want := filepath.Base(g.lib)
			if real, err := filepath.EvalSymlinks(filepath.Join("/", sysroot, g.lib)); err == nil {
				want = filepath.Base(real)
			}
			// gdb names a library by its soname link (libpcre2-8.so.0),
			// the core by the file (libpcre2-8.so.0.11.2).
			if f.module != want && !strings.HasPrefix(f.module, want+".") {
				c.moduleDiff = append(c.moduleDiff, fmt.Sprintf("#%d: gdb module %s, coroner %s", f.index, want, f.module))
			}
		}
		if g.function == "" || (opt.skip != nil && opt.skip(g)) {
			continue
		}
		c.gdbNamed++
		switch {
		case sameFunction(g.function, f.name):
			c.same++
		case f.source == "dwarf" && isAlias(rep, f, g.function, sysroot):
			c.alias++
		case opt.noDebugInfo && f.source != "dwarf" && inlinedBy(gdb[gi+1:], f.name) > 0:
			// gdb shows the functions inlined at the pc, which the debug
			// information here does not say: its frames up to the
			// physical function are that one frame of coroner's.
			c.same++
			gi += inlinedBy(gdb[gi+1:], f.name)
		default:
			c.diffs = append(c.diffs, fmt.Sprintf("#%d (%s): gdb %q, coroner %q", f.index, f.source, g.function, f.name))
		}
	}
	return c
}

// inlinedBy returns how many of gdb's address-less frames that follow a
// frame (the functions it is inlined in) go up to the one named name, 0
// when none is.
func inlinedBy(rest []gdbFrame, name string) int {
	for i, h := range rest {
		if h.pc != 0 {
			break
		}
		if sameFunction(h.function, name) {
			return i + 1
		}
	}
	return 0
}

// isAlias reports whether name is another symbol at the start of the
// function of frame f (gdb without debug information names a function by
// a symbol, coroner with it by its DWARF name: raise and __GI_raise).
func isAlias(rep *crash.Report, f flatFrame, name, sysroot string) bool {
	for _, m := range rep.Modules {
		if filepath.Base(m.Path) != f.module {
			continue
		}
		obj, err := symbols.OpenWithOptions(filepath.Join(sysroot, m.Path), symbols.Options{Sysroot: sysroot})
		if err != nil {
			return false
		}
		defer obj.Close()
		for _, a := range obj.Aliases(f.offset) {
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
	// noDebugInfo says gdb read debug information that the files here do
	// not hold (the pages of a trimmed fixture's sysroot): where coroner
	// names a frame without it, gdb's inlined functions at that pc are
	// one frame.
	noDebugInfo bool
}

// checkAgainstGDB checks the crashed thread of rep against gdb's backtrace
// in the file gdbOut (see compareWithGDB): wherever gdb names a frame's
// function (inlined functions and tail calls included), coroner names the
// same function in the same module, until gdb's own unwinding leaves the
// real stack (it does at PHP JIT frames); coroner names at least as many
// frames, strictly more on php-fpm cores (php); and the stack ends at
// _start or the thread's start.
func checkAgainstGDB(t *testing.T, rep *crash.Report, gdbOut string, php bool, opt gdbCheck) gdbComparison {
	t.Helper()
	gdb, err := parseGDBBacktrace(gdbOut)
	if err != nil || len(gdb) == 0 {
		t.Fatalf("gdb oracle %s: %d frames, %v", gdbOut, len(gdb), err)
	}
	th := rep.CrashedThread()
	if th == nil {
		t.Fatal("no crashed thread")
	}
	c := compareWithGDB(rep, th, gdb, opt)
	t.Logf("gdb: %d frames, %d named (diverged %v); coroner: %d frames, %d named; same names %d, gdb's alias of coroner's DWARF name %d, different %d",
		c.gdbFrames, c.gdbNamed, c.diverged, c.ourFrames, c.ourNamed, c.same, c.alias, len(c.diffs))
	for _, d := range c.diffs {
		t.Errorf("%s", d)
	}
	for _, d := range c.moduleDiff {
		t.Errorf("%s", d)
	}
	if c.ourNamed < c.gdbNamed {
		t.Errorf("coroner names %d frames, gdb %d", c.ourNamed, c.gdbNamed)
	}
	if php && c.ourNamed <= c.gdbNamed {
		t.Errorf("on a php-fpm core coroner must name strictly more frames than gdb: %d vs %d", c.ourNamed, c.gdbNamed)
	}
	last := th.Frames[len(th.Frames)-1]
	ends := last.Function == "_start" || last.Function == "clone" || last.Function == "clone3" || last.Function == "__clone3" ||
		strings.Contains(last.Function, "start_thread") || strings.HasPrefix(last.Function, "runtime.goexit")
	if !ends && last.Function == "" && strings.HasPrefix(last.Module, "libc.so") && opt.sysroot != "" {
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
	return c
}
