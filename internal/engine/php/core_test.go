package php

import (
	"debug/elf"
	"os"
	"sort"
	"testing"

	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

func inputFromCore(t testing.TB, path string) Input {
	t.Helper()
	c, err := elfcore.Open(path)
	if err != nil {
		t.Fatalf("open core: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	var maps []mapping
	for _, f := range c.Files() {
		maps = append(maps, mapping{Start: f.Start, End: f.End, Offset: f.Offset, Path: f.Path})
	}
	in := Input{Memory: c, Modules: modulesFromMappings(maps, c.HostPath)}
	addThreads(&in, c)
	return in
}

// addThreads gives in the core's threads, the crashed one first.
func addThreads(in *Input, c *elfcore.File) {
	crashed := c.Crashed()
	if crashed != nil {
		in.Registers = crashed.Regs.Registers()
		in.Threads = append(in.Threads, Thread{TID: crashed.TID, Crashed: true, Registers: in.Registers})
	}
	for _, th := range c.Threads() {
		if crashed == nil || th.TID != crashed.TID {
			in.Threads = append(in.Threads, Thread{TID: th.TID, Registers: th.Regs.Registers()})
		}
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mapping is one file-backed memory mapping of the process (an NT_FILE
// entry of a core).
type mapping struct {
	Start, End, Offset uint64
	Path               string
}

// modulesFromMappings groups mappings by file and computes each ELF
// object's load bias from the mapping of file offset 0, so that tests of
// this package can read a core without the analyze package (which does
// this, with build-id checks, for the real pipeline). hostPath maps a path
// of the dumped process to a path on this host (nil: identity). Objects
// that cannot be opened are left out.
func modulesFromMappings(maps []mapping, hostPath func(string) string) []Module {
	type span struct {
		start, end, base uint64
		haveBase         bool
	}
	byPath := map[string]*span{}
	var order []string
	for _, mp := range maps {
		if mp.Path == "" || mp.Path[0] != '/' {
			continue
		}
		s := byPath[mp.Path]
		if s == nil {
			s = &span{start: mp.Start, end: mp.End}
			byPath[mp.Path] = s
			order = append(order, mp.Path)
		}
		if mp.Start < s.start {
			s.start = mp.Start
		}
		if mp.End > s.end {
			s.end = mp.End
		}
		if mp.Offset == 0 && (!s.haveBase || mp.Start < s.base) {
			s.base, s.haveBase = mp.Start, true
		}
	}
	sort.Strings(order)
	var out []Module
	for _, p := range order {
		s := byPath[p]
		hp := p
		if hostPath != nil {
			hp = hostPath(p)
		}
		f, err := elf.Open(hp)
		if err != nil {
			continue
		}
		bias := uint64(0)
		if f.Type == elf.ET_DYN {
			bias = s.start
			if s.haveBase {
				bias = s.base
			}
			for _, prog := range f.Progs {
				if prog.Type == elf.PT_LOAD && prog.Off == 0 {
					bias -= prog.Vaddr &^ 0xfff
					break
				}
			}
		}
		f.Close()
		out = append(out, Module{Path: hp, Start: s.start, End: s.end, Bias: bias})
	}
	return out
}
