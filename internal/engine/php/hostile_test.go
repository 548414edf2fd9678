package php

import (
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// image of a process's memory for tests: sparse pages.
type fakeMem struct{ pages map[uint64][]byte }

func newFakeMem() *fakeMem { return &fakeMem{pages: map[uint64][]byte{}} }

func (f *fakeMem) ReadAt(p []byte, off int64) (int, error) {
	a := uint64(off)
	n := 0
	for n < len(p) {
		pg, ok := f.pages[(a+uint64(n))&^4095]
		if !ok {
			return n, fmt.Errorf("unmapped %#x", a+uint64(n))
		}
		n += copy(p[n:], pg[(a+uint64(n))&4095:])
	}
	return n, nil
}

func (f *fakeMem) write(a uint64, b []byte) {
	for len(b) > 0 {
		base := a &^ 4095
		pg, ok := f.pages[base]
		if !ok {
			pg = make([]byte, 4096)
			f.pages[base] = pg
		}
		k := copy(pg[a-base:], b)
		b, a = b[k:], a+uint64(k)
	}
}

func (f *fakeMem) u64(a, v uint64) {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], v)
	f.write(a, b[:])
}

func (f *fakeMem) u32(a uint64, v uint32) {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	f.write(a, b[:])
}

// str writes a zend_string.
func (f *fakeMem) str(a uint64, s string) uint64 {
	f.u64(a+16, uint64(len(s))) // zend_string.len and .val (constant since PHP 7.0)
	f.write(a+24, append([]byte(s), 0))
	return a
}

// process builds executor_globals and user functions laid out like PHP 8.2.
type process struct {
	*fakeMem
	l    Layout
	eg   uint64
	next uint64 // bump allocator
}

func newProcess(t testing.TB) *process {
	l, err := LayoutFor("8.2")
	if err != nil {
		t.Fatal(err)
	}
	return &process{fakeMem: newFakeMem(), l: l, eg: 0x10000, next: 0x100000}
}

func (p *process) alloc(n uint64) uint64 {
	a := p.next
	p.next += (n + 15) &^ 15
	return a
}

// userFunc writes a zend_op_array named name (""= top-level code) in file
// spanning lines [start,end] and one opline per line; it returns the function
// and the address of the zend_op of line.
func (p *process) userFunc(name, file string, start, end uint32) (fn uint64, op func(line uint32) uint64) {
	fn = p.alloc(256)
	p.write(fn, []byte{2})
	if name != "" {
		p.u64(fn+p.l.FnName, p.str(p.alloc(uint64(32+len(name))), name))
	}
	p.u64(fn+p.l.OpArrayFilename, p.str(p.alloc(uint64(32+len(file))), file))
	p.u32(fn+p.l.OpArrayLineStart, start)
	p.u32(fn+p.l.OpArrayLineEnd, end)
	ops := p.alloc(uint64(end-start+1) * p.l.OpSize)
	p.u64(fn+p.l.OpArrayOpcodes, ops)
	p.u32(fn+p.l.OpArrayLast, end-start+1)
	for l := start; l <= end; l++ {
		p.u32(ops+uint64(l-start)*p.l.OpSize+p.l.OpLineno, l)
	}
	return fn, func(line uint32) uint64 { return ops + uint64(line-start)*p.l.OpSize }
}

// frame writes a zend_execute_data.
func (p *process) frame(fn, opline, prev uint64) uint64 {
	ex := p.alloc(p.l.ExArgs + 8*p.l.ZvalSize)
	p.u64(ex+p.l.ExOpline, opline)
	p.u64(ex+p.l.ExFunc, fn)
	p.u64(ex+p.l.ExPrev, prev)
	return ex
}

func (p *process) walk(regs *crash.Registers) ([]string, []string) {
	w := newWalker(&mem{r: p.fakeMem, l: &p.l}, &p.l)
	frames := w.walk(p.eg, regs)
	var out []string
	for _, f := range frames {
		out = append(out, fmt.Sprintf("%s@%s:%d", f.Function, f.File, f.Line))
	}
	return out, w.warns
}

func TestWalkSynthetic(t *testing.T) {
	p := newProcess(t)
	mainFn, mainOp := p.userFunc("", "/srv/index.php", 1, 20)
	fooFn, fooOp := p.userFunc("foo", "/srv/lib.php", 3, 9)
	exMain := p.frame(mainFn, mainOp(12), 0)
	exFoo := p.frame(fooFn, fooOp(5), exMain)
	p.u64(p.eg+p.l.EGCurrentExecuteData, exFoo)

	got, warns := p.walk(&crash.Registers{})
	want := "foo@/srv/lib.php:5 {main}@/srv/index.php:12"
	if strings.Join(got, " ") != want || len(warns) != 0 {
		t.Errorf("walk = %v (warnings %v), want %s", got, warns, want)
	}
	// r14 = execute_data and r15 = a later opline of the same function: fresher line.
	got, _ = p.walk(r14r15(exFoo, fooOp(7)))
	if got[0] != "foo@/srv/lib.php:7" {
		t.Errorf("with r14/r15: innermost = %s, want line 7", got[0])
	}
	// r15 pointing somewhere else is ignored.
	for _, r15 := range []uint64{fooOp(7) + 8, 0xdeadbeef000, mainOp(3)} {
		got, _ = p.walk(r14r15(exFoo, r15))
		if got[0] != "foo@/srv/lib.php:5" {
			t.Errorf("r15=%#x: innermost = %s, want line 5 (register rejected)", r15, got[0])
		}
	}
}

func TestWalkHostile(t *testing.T) {
	tests := []struct {
		name   string
		build  func(p *process, fn uint64, op func(uint32) uint64) uint64 // returns current_execute_data
		frames int
		warn   string
	}{
		{"cycle", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			a := p.frame(fn, op(2), 0)
			b := p.frame(fn, op(3), a)
			c := p.frame(fn, op(4), b)
			p.u64(a+p.l.ExPrev, c) // a -> c -> b -> a
			return c
		}, 3, "appears twice"},
		{"self loop", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			a := p.frame(fn, op(2), 0)
			p.u64(a+p.l.ExPrev, a)
			return a
		}, 1, "appears twice"},
		{"wild prev", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			return p.frame(fn, op(2), 0x4141414141414141)
		}, 1, "not a pointer"},
		{"unmapped prev", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			return p.frame(fn, op(2), 0x7f0000000000)
		}, 1, "execute_data"},
		{"misaligned prev", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			return p.frame(fn, op(2), 0x100003)
		}, 1, "not a pointer"},
		{"wild func", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			a := p.frame(fn, op(2), 0)
			return p.frame(0x6000000000, op(2), a)
		}, 0, "zend_function"},
		{"bad function type", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			bad := p.alloc(256)
			p.write(bad, []byte{77})
			return p.frame(bad, op(2), 0)
		}, 0, "type 77"},
		{"huge name", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			bad, _ := p.userFunc("x", "/f.php", 1, 5)
			name := p.alloc(64)
			p.u64(name+p.l.StrLen, 1<<60)
			p.u64(bad+p.l.FnName, name)
			return p.frame(bad, op(2), 0)
		}, 0, "length"},
		{"wild opline", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			return p.frame(fn, 0x13371337, 0)
		}, 1, ""},
		{"eg unmapped", func(p *process, fn uint64, op func(uint32) uint64) uint64 {
			return 0x5000000000
		}, 0, "execute_data"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProcess(t)
			fn, op := p.userFunc("f", "/srv/f.php", 1, 9)
			p.u64(p.eg+p.l.EGCurrentExecuteData, tc.build(p, fn, op))
			got, warns := p.walk(&crash.Registers{})
			if len(got) != tc.frames {
				t.Errorf("%d frames %v, want %d", len(got), got, tc.frames)
			}
			if tc.warn != "" && !strings.Contains(strings.Join(warns, "\n"), tc.warn) {
				t.Errorf("warnings %q do not mention %q", warns, tc.warn)
			}
			if tc.warn == "" && len(warns) != 0 {
				t.Errorf("unexpected warnings %q", warns)
			}
		})
	}
}

// TestWalkDeepRecursion checks that a very deep stack is walked completely
// and folded into one cycle.
func TestWalkDeepRecursion(t *testing.T) {
	p := newProcess(t)
	mainFn, mainOp := p.userFunc("", "/srv/index.php", 1, 20)
	aFn, aOp := p.userFunc("render", "/srv/a.php", 1, 20)
	bFn, bOp := p.userFunc("callback", "/srv/a.php", 30, 40)
	ex := p.frame(mainFn, mainOp(3), 0)
	const depth = 30000
	for i := 0; i < depth; i++ {
		ex = p.frame(aFn, aOp(7), ex)
		ex = p.frame(bFn, bOp(33), ex)
	}
	p.u64(p.eg+p.l.EGCurrentExecuteData, ex)
	w := newWalker(&mem{r: p.fakeMem, l: &p.l}, &p.l)
	frames := w.walk(p.eg, &crash.Registers{})
	if len(frames) != 2*depth+1 || len(w.warns) != 0 {
		t.Fatalf("%d frames, warnings %v", len(frames), w.warns)
	}
	cycles := foldFrames(frames)
	if len(cycles) != 1 || cycles[0].Length != 2 || cycles[0].Repeats != depth || cycles[0].Start != 0 {
		t.Errorf("cycles = %+v, want one cycle of 2 frames x %d", cycles, depth)
	}
}

func TestHashHostile(t *testing.T) {
	p := newProcess(t)
	ht := p.alloc(56)
	p.u32(ht+p.l.HTUsed, 1<<30)
	p.u32(ht+p.l.HTCount, 1<<30)
	p.u32(ht+p.l.HTTableSize, 1<<30)
	m := &mem{r: p.fakeMem, l: &p.l}
	if err := m.hashEach(ht, func(uint64, zval) bool { return true }); err == nil {
		t.Error("hashEach accepted a table of 2^30 elements")
	}
	p.u32(ht+p.l.HTUsed, 4)
	p.u32(ht+p.l.HTCount, 4)
	p.u32(ht+p.l.HTTableSize, 8)
	p.u64(ht+p.l.HTData, 0x7e0000000000) // unmapped
	if err := m.hashEach(ht, func(uint64, zval) bool { return true }); err == nil {
		t.Error("hashEach accepted unmapped data")
	}
}

func TestFCGIParamsHostile(t *testing.T) {
	p := newProcess(t)
	l := &p.l
	req := p.alloc(l.FCGIEnv + l.FCGIHashList + 64)
	bucket := func(name, val string, next uint64) uint64 {
		b := p.alloc(48)
		n := p.alloc(uint64(len(name) + 1))
		v := p.alloc(uint64(len(val) + 1))
		p.write(n, []byte(name))
		p.write(v, []byte(val))
		p.u32(b+l.FCGIVarLen, uint32(len(name)))
		p.u64(b+l.FCGIVar, n)
		p.u32(b+l.FCGIValLen, uint32(len(val)))
		p.u64(b+l.FCGIVal, v)
		p.u64(b+l.FCGINext, next)
		return b
	}
	b1 := bucket("REQUEST_URI", "/teachers/x/", 0)
	b2 := bucket("HTTP_COOKIE", "sid=secret", b1)
	p.u64(req+l.FCGIEnv+l.FCGIHashList, b2)
	m := &mem{r: p.fakeMem, l: l}
	got, err := fcgiParams(m, req)
	if err != nil || got["REQUEST_URI"] != "/teachers/x/" || got["HTTP_COOKIE"] != "sid=secret" {
		t.Fatalf("fcgiParams = %v, %v", got, err)
	}
	p.u64(b1+l.FCGINext, b2) // cycle
	if _, err := fcgiParams(m, req); err == nil || !strings.Contains(err.Error(), "cycle") {
		t.Errorf("cycle: err = %v", err)
	}
	p.u64(b1+l.FCGINext, 0)
	p.u32(b1+l.FCGIValLen, 1<<31) // huge value: truncated, never allocated whole
	p.u32(b1+l.FCGIVarLen, 1<<31)
	if _, err := fcgiParams(m, req); err == nil {
		t.Error("huge name length accepted")
	}
}

// FuzzWalk feeds arbitrary memory to the PHP stack walk and the readers of
// INI and FastCGI parameters: they must never panic nor hang.
func FuzzWalk(f *testing.F) {
	p := newProcess(f)
	mainFn, mainOp := p.userFunc("", "/srv/index.php", 1, 4)
	ex := p.frame(mainFn, mainOp(2), 0)
	p.u64(p.eg+p.l.EGCurrentExecuteData, ex)
	seed := make([]byte, 0, 4096)
	for a := uint64(0x100000); a < p.next; a += 4096 {
		seed = append(seed, p.pages[a]...)
	}
	f.Add(seed[:p.next-0x100000], uint64(ex-0x100000))
	f.Add([]byte{}, uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, exOff uint64) {
		if len(data) > 1<<16 {
			return
		}
		fm := newFakeMem()
		fm.write(0x100000, data)
		fm.u64(0x10000+488, 0x100000+exOff%(uint64(len(data))+1))
		l, _ := LayoutFor("8.2")
		m := &mem{r: fm, l: &l}
		w := newWalker(m, &l)
		w.walk(0x10000, r14r15(0x100000, 0x100020))
		for off := uint64(0); off < uint64(len(data)) && off < 512; off += 8 {
			_, _ = fcgiParams(m, 0x100000+off-l.FCGIEnv-l.FCGIHashList)
			_ = m.hashEach(0x100000+off, func(uint64, zval) bool { return true })
		}
	})
}

// r14r15 is a register set where execute_ex keeps execute_data (r14) and
// opline (r15).
func r14r15(r14, r15 uint64) *crash.Registers {
	var regs crash.Registers
	regs.Set(crash.RegR14, r14)
	regs.Set(crash.RegR15, r15)
	return &regs
}
