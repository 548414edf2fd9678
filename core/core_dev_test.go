package core

import (
	"os"
	"testing"
)

func TestDevDump(t *testing.T) {
	p := os.Getenv("DEVCORE")
	if p == "" {
		t.Skip()
	}
	c, err := Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	t.Logf("exe=%s sig=%+v ps=%+v warn=%v", c.Executable(), c.Signal(), c.Process(), c.Warnings())
	for _, th := range c.Threads() {
		t.Logf("tid %d sig %d rip %#x rsp %#x rdi %#x", th.TID, th.Signal, th.Regs.Rip, th.Regs.Rsp, th.Regs.Rdi)
	}
	for _, m := range c.Mappings() {
		t.Logf("%#x-%#x %s %#x dumped=%d %s", m.Start, m.End, m.Perm(), m.Offset, m.Dumped, m.Path)
	}
	b := make([]byte, 8)
	_, err = c.ReadAt(b, int64(c.Crashed().Regs.Rip))
	t.Logf("code %x %v", b, err)
}
