package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"github.com/coroner-dev/coroner/crash"
	"sort"
)

// This file builds synthetic processes for the unwinder: memory regions
// (text with call instructions, anonymous JIT-like code, a stack), modules
// with hand-assembled .eh_frame / .eh_frame_hdr / .debug_frame tables, and
// register states. The tests in unwind_test.go lay out stacks on them the
// way a compiler and the kernel would.

var errUnmapped = errors.New("unmapped")

// synthRegion is one mapping of a synthetic process.
type synthRegion struct {
	start uint64
	data  []byte
	exec  bool
}

func (r *synthRegion) end() uint64 { return r.start + uint64(len(r.data)) }

// synthModule is a code object: its runtime text range and its unwind tables.
type synthModule struct {
	lo, hi uint64
	mod    *Module
}

// synthProc is a synthetic process: it implements Memory and AddressSpace.
type synthProc struct {
	regions []*synthRegion
	modules []*synthModule
	reads   int // ReadUint64 + ReadAt calls, to check work stays bounded
}

func (p *synthProc) region(addr uint64) *synthRegion {
	for _, r := range p.regions {
		if addr >= r.start && addr < r.end() {
			return r
		}
	}
	return nil
}

// mapRegion adds a zero-filled mapping and returns it.
func (p *synthProc) mapRegion(start, size uint64, exec bool) *synthRegion {
	r := &synthRegion{start: start, data: make([]byte, size), exec: exec}
	p.regions = append(p.regions, r)
	return r
}

func (p *synthProc) ModuleAt(pc uint64) *Module {
	for _, m := range p.modules {
		if pc >= m.lo && pc < m.hi {
			return m.mod
		}
	}
	return nil
}

func (p *synthProc) Executable(addr uint64) bool {
	r := p.region(addr)
	return r != nil && r.exec
}

func (p *synthProc) Stack(sp uint64) (lo, hi uint64, ok bool) {
	r := p.region(sp)
	if r == nil || r.exec {
		return 0, 0, false
	}
	return r.start, r.end(), true
}

func (p *synthProc) ReadUint64(addr uint64) (uint64, error) {
	var b [8]byte
	if _, err := p.ReadAt(b[:], int64(addr)); err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b[:]), nil
}

func (p *synthProc) ReadAt(b []byte, addr int64) (int, error) {
	p.reads++
	n := 0
	for n < len(b) {
		a := uint64(addr) + uint64(n)
		r := p.region(a)
		if r == nil {
			return n, fmt.Errorf("read %#x: %w", a, errUnmapped)
		}
		n += copy(b[n:], r.data[a-r.start:])
	}
	return n, nil
}

// put64 writes a little-endian word into whatever region holds addr.
func (p *synthProc) put64(addr, v uint64) {
	r := p.region(addr)
	if r == nil || addr+8 > r.end() {
		panic(fmt.Sprintf("put64 %#x: unmapped", addr))
	}
	binary.LittleEndian.PutUint64(r.data[addr-r.start:], v)
}

// putBytes writes code or data at addr.
func (p *synthProc) putBytes(addr uint64, b []byte) {
	r := p.region(addr)
	if r == nil || addr+uint64(len(b)) > r.end() {
		panic(fmt.Sprintf("putBytes %#x: unmapped", addr))
	}
	copy(r.data[addr-r.start:], b)
}

// putCall writes a 5-byte `call rel32` ending at ret, so that ret is a
// return address the scanner recognises.
func (p *synthProc) putCall(ret uint64) {
	p.putBytes(ret-5, []byte{0xe8, 0x11, 0x22, 0x33, 0x44})
}

// --- DWARF encoders ---------------------------------------------------------

func uleb(v uint64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			out = append(out, b|0x80)
			continue
		}
		return append(out, b)
	}
}

func sleb(v int64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

// CFA instructions (DWARF 5, section 6.4.2), with the x86-64 data
// alignment factor -8 of the CIEs built here.
func cfaDefCFA(reg, off uint64) []byte  { return cat([]byte{0x0c}, uleb(reg), uleb(off)) }
func cfaDefCFAOffset(off uint64) []byte { return cat([]byte{0x0e}, uleb(off)) }
func cfaDefCFAReg(reg uint64) []byte    { return cat([]byte{0x0d}, uleb(reg)) }
func cfaOffset(reg uint64, cfaOff int64) []byte {
	return cat([]byte{0x80 | byte(reg)}, uleb(uint64(cfaOff/-8)))
}
func cfaAdvance(delta uint64) []byte { return []byte{0x40 | byte(delta)} }
func cfaUndefined(reg uint64) []byte { return cat([]byte{0x07}, uleb(reg)) }
func cfaDefCFAExpr(expr []byte) []byte {
	return cat([]byte{0x0f}, uleb(uint64(len(expr))), expr)
}
func cfaExpr(reg uint64, expr []byte) []byte {
	return cat([]byte{0x10}, uleb(reg), uleb(uint64(len(expr))), expr)
}

// DWARF expression ops.
func opBreg(reg uint64, off int64) []byte { return cat([]byte{0x70 + byte(reg)}, sleb(off)) }

const opDeref = 0x06

// Standard entry state on x86-64: CFA = rsp+8, return address at CFA-8.
var entryCFI = cat(cfaDefCFA(regRSP, 8), cfaOffset(regRIP, -8))

// rbpFrameCFI describes `push rbp; mov rbp, rsp` at the start of a function.
var rbpFrameCFI = cat(cfaAdvance(1), cfaDefCFAOffset(16), cfaOffset(regRBP, -16), cfaAdvance(3), cfaDefCFAReg(regRBP))

// ehFrame assembles an .eh_frame section at link-time address addr.
type ehFrame struct {
	addr uint64
	buf  []byte
	fdes []ehFDE
}

type ehFDE struct {
	start, off uint64
}

// cie appends a CIE ("zR" augmentation, FDE pointers pc-relative sdata4,
// plus aug's other letters such as "S") and returns its offset.
func (e *ehFrame) cie(aug string, raReg byte, initial []byte) uint64 {
	off := uint64(len(e.buf))
	body := cat([]byte{0, 0, 0, 0, 1}, []byte("zR"+aug), []byte{0}, uleb(1), sleb(-8), []byte{raReg}, uleb(1), []byte{0x1b}, initial)
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(body)))
	e.buf = append(e.buf, body...)
	return off
}

// fde appends an FDE for [start, start+size) using the CIE at cieOff.
func (e *ehFrame) fde(cieOff, start, size uint64, insns []byte) uint64 {
	off := uint64(len(e.buf))
	idField := off + 4
	pcField := e.addr + off + 8
	body := binary.LittleEndian.AppendUint32(nil, uint32(idField-cieOff))
	body = binary.LittleEndian.AppendUint32(body, uint32(int32(int64(start)-int64(pcField))))
	body = binary.LittleEndian.AppendUint32(body, uint32(size))
	body = append(body, uleb(0)...)
	body = append(body, insns...)
	e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(len(body)))
	e.buf = append(e.buf, body...)
	e.fdes = append(e.fdes, ehFDE{start: start, off: off})
	return off
}

// hdr builds the matching .eh_frame_hdr (version 1, datarel sdata4 table)
// at link-time address hdrAddr.
func (e *ehFrame) hdr(hdrAddr uint64) []byte {
	fdes := append([]ehFDE(nil), e.fdes...)
	sort.Slice(fdes, func(i, j int) bool { return fdes[i].start < fdes[j].start })
	b := []byte{1, 0x1b, 0x03, 0x3b}
	b = binary.LittleEndian.AppendUint32(b, uint32(int32(int64(e.addr)-int64(hdrAddr+4))))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(fdes)))
	for _, f := range fdes {
		b = binary.LittleEndian.AppendUint32(b, uint32(int32(int64(f.start)-int64(hdrAddr))))
		b = binary.LittleEndian.AppendUint32(b, uint32(int32(int64(e.addr+f.off)-int64(hdrAddr))))
	}
	return b
}

// debugFrame assembles a .debug_frame section (32-bit DWARF, absolute
// 8-byte addresses).
type debugFrame struct{ buf []byte }

func (d *debugFrame) cie(version byte, initial []byte) uint64 {
	off := uint64(len(d.buf))
	body := cat([]byte{0xff, 0xff, 0xff, 0xff, version}, []byte{0})
	if version == 4 {
		body = append(body, 8, 0) // address_size, segment_selector_size
	}
	body = cat(body, uleb(1), sleb(-8))
	if version == 1 {
		body = append(body, byte(regRIP))
	} else {
		body = append(body, uleb(regRIP)...)
	}
	body = append(body, initial...)
	d.buf = binary.LittleEndian.AppendUint32(d.buf, uint32(len(body)))
	d.buf = append(d.buf, body...)
	return off
}

func (d *debugFrame) fde(cieOff, start, size uint64, insns []byte) {
	body := binary.LittleEndian.AppendUint32(nil, uint32(cieOff))
	body = binary.LittleEndian.AppendUint64(body, start)
	body = binary.LittleEndian.AppendUint64(body, size)
	body = append(body, insns...)
	d.buf = binary.LittleEndian.AppendUint32(d.buf, uint32(len(body)))
	d.buf = append(d.buf, body...)
}

// regs builds a register state with only the given registers valid.
func regs(kv map[uint64]uint64) crash.Registers {
	var r crash.Registers
	for k, v := range kv {
		r.Set(crash.Reg(k), v)
	}
	return r
}
