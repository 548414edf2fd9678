package php

import (
	"os"
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
	var maps []Mapping
	for _, f := range c.Files() {
		maps = append(maps, Mapping{Start: f.Start, End: f.End, Offset: f.Offset, Path: f.Path})
	}
	in := Input{Memory: c, Modules: ModulesFromMappings(maps, c.HostPath)}
	if th := c.Crashed(); th != nil {
		in.Registers = th.Regs.Registers()
	}
	return in
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
