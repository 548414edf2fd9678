// Package unwind recovers the call stacks of the threads of a crashed
// x86-64 process: first from call frame information (.eh_frame with
// .eh_frame_hdr, .debug_frame; CFA expressions and signal frames included),
// then from the frame-pointer chain, then by scanning the stack for return
// addresses that follow a call instruction. Every frame carries its trust,
// as in Breakpad: context > cfi > fp > scan.
//
// Unwinding is linear in the number of frames: unwind rows are cached by pc,
// so a 40,000-frame recursion costs little more than its distinct pcs.
package unwind

import (
	"fmt"
	"sync"

	"github.com/coroner-dev/coroner/crash"
)

// Memory is the process memory the unwinder reads.
type Memory interface {
	ReadUint64(addr uint64) (uint64, error)
	ReadAt(p []byte, addr int64) (int, error)
}

// Module is a loaded code object with its unwind tables.
type Module struct {
	// Name identifies the module in warnings.
	Name string
	// Bias is added to link-time addresses to get runtime addresses.
	Bias uint64
	// Tables are the object's CFI tables, searched in order; when nil,
	// Load (if set) gives them on first use, so that only the modules a
	// stack passes through have their tables read.
	Tables []*Table
	Load   func() []*Table

	once sync.Once
}

// CFI returns the module's CFI tables, loading them on first use.
func (m *Module) CFI() []*Table {
	m.once.Do(func() {
		if m.Tables == nil && m.Load != nil {
			m.Tables = m.Load()
		}
	})
	return m.Tables
}

// AddressSpace tells the unwinder what is where.
type AddressSpace interface {
	// ModuleAt returns the module whose executable code contains the
	// runtime address pc, or nil (JIT code, anonymous memory, unmapped).
	ModuleAt(pc uint64) *Module
	// Executable reports whether addr lies in an executable mapping.
	Executable(addr uint64) bool
	// Stack returns the bounds of the mapping holding sp (ok false when sp
	// is unmapped).
	Stack(sp uint64) (lo, hi uint64, ok bool)
}

// Options bound the work done per thread.
type Options struct {
	// MaxFrames stops the walk (default 1,000,000).
	MaxFrames int
	// ScanWords is how many stack words a scan examines (default 2048).
	ScanWords int
}

// Frame is one recovered frame.
type Frame struct {
	PC, SP uint64
	Trust  crash.Trust
	// Regs holds the registers known in this frame (callee-saved ones are
	// what the function had at the call).
	Regs crash.Registers
	// Signal is true when PC is the interrupted instruction of a signal
	// frame's caller rather than a return address.
	Signal bool
	// Trampoline is true for the signal trampoline (__restore_rt) frame
	// through which a signal handler returns.
	Trampoline bool
}

// DWARF register numbers of the registers a callee must preserve.
var calleeSaved = [...]uint64{regRBX, regRBP, regR12, regR13, regR14, regR15}

// callerClobbered are the registers a call may change: unknown in a caller
// found by frame pointer or stack scanning.
var callerClobbered = [...]crash.Reg{crash.RegRAX, crash.RegRCX, crash.RegRDX, crash.RegRSI, crash.RegRDI,
	crash.RegR8, crash.RegR9, crash.RegR10, crash.RegR11, crash.RegEflags, crash.RegOrigRAX}

// StopReason says why the walk of a stack ended.
type StopReason uint8

// Stop reasons. The zero value is the normal end of a stack.
const (
	// StopOutermost: the call frame information marks the outermost frame
	// (its return address is undefined, as for _start and clone).
	StopOutermost StopReason = iota
	// StopReturnZero: the return address is 0, which ends a stack.
	StopReturnZero
	// StopLimit: Options.MaxFrames frames were recovered.
	StopLimit
	// StopNoUnwindInfo: the pc is outside every module (JIT code, garbage)
	// and no return address was found on the stack.
	StopNoUnwindInfo
	// StopStuck: no method found a plausible caller of a frame in a module.
	StopStuck
)

// Complete reports whether the walk reached the outermost frame.
func (r StopReason) Complete() bool { return r == StopOutermost || r == StopReturnZero }

// Stop is why and where the walk of a stack ended.
type Stop struct {
	Reason StopReason
	// PC is the pc of the last frame (StopNoUnwindInfo, StopStuck).
	PC uint64
	// Module names the module of PC (StopStuck).
	Module string
	// Limit is the frame limit that was reached (StopLimit).
	Limit int
}

// String says in words why the walk stopped.
func (s Stop) String() string {
	switch s.Reason {
	case StopOutermost:
		return "outermost frame"
	case StopReturnZero:
		return "outermost frame (return address 0)"
	case StopLimit:
		return fmt.Sprintf("stopped after %d frames (limit)", s.Limit)
	case StopNoUnwindInfo:
		return fmt.Sprintf("no unwind information at %#x and no return address found on the stack", s.PC)
	case StopStuck:
		return fmt.Sprintf("could not unwind past %#x in %s", s.PC, s.Module)
	}
	return fmt.Sprintf("stop reason %d", s.Reason)
}

// Result is the outcome of unwinding one thread.
type Result struct {
	Frames []Frame
	// Stop says why the walk ended.
	Stop     Stop
	Warnings []string
}

// Unwind walks the stack of a thread whose registers are regs.
func Unwind(regs crash.Registers, space AddressSpace, mem Memory, opts Options) Result {
	if opts.MaxFrames <= 0 {
		opts.MaxFrames = 1_000_000
	}
	if opts.ScanWords <= 0 {
		opts.ScanWords = 2048
	}
	u := &unwinder{space: space, mem: mem, opts: opts}
	return u.run(regs)
}

type unwinder struct {
	space AddressSpace
	mem   Memory
	opts  Options
	res   Result
}

func (u *unwinder) warn(format string, args ...any) {
	if len(u.res.Warnings) < 20 {
		u.res.Warnings = append(u.res.Warnings, fmt.Sprintf(format, args...))
	}
}

// frameChunk is how many frames are collected per block: a deep stack
// grows by blocks and is copied once at the end, instead of being copied
// at every doubling of one slice (frames carry their registers).
const frameChunk = 2048

func (u *unwinder) run(regs crash.Registers) Result {
	pc := regs.Value(crash.RegRIP)
	sp := regs.Value(crash.RegRSP)
	cur := Frame{PC: pc, SP: sp, Trust: crash.TrustContext, Regs: regs, Signal: true}
	var full [][]Frame
	block := make([]Frame, 0, 64)
	n := 0
	add := func(f Frame) {
		if len(block) == cap(block) {
			full = append(full, block)
			block = make([]Frame, 0, frameChunk)
		}
		block = append(block, f)
		n++
	}
	done := func() Result {
		if len(full) == 0 {
			u.res.Frames = block
			return u.res
		}
		u.res.Frames = make([]Frame, 0, n)
		for _, b := range full {
			u.res.Frames = append(u.res.Frames, b...)
		}
		u.res.Frames = append(u.res.Frames, block...)
		return u.res
	}
	add(cur)
	for n < u.opts.MaxFrames {
		next, ok := u.step(&cur, n == 1)
		block[len(block)-1].Trampoline = cur.Trampoline
		if !ok {
			return done()
		}
		add(next)
		cur = next
	}
	u.res.Stop = Stop{Reason: StopLimit, Limit: u.opts.MaxFrames}
	u.warn("%s", u.res.Stop)
	return done()
}

// step recovers the caller of cur.
func (u *unwinder) step(cur *Frame, first bool) (Frame, bool) {
	if cur.PC == 0 && !first {
		u.res.Stop = Stop{Reason: StopReturnZero}
		return Frame{}, false
	}
	if next, ok := u.stepSigreturn(cur); ok {
		return next, true
	}
	mod := u.space.ModuleAt(cur.PC)
	if mod != nil {
		next, status := u.stepCFI(cur, mod)
		switch status {
		case cfiOK:
			if next.PC == 0 {
				u.res.Stop = Stop{Reason: StopReturnZero}
				return Frame{}, false
			}
			if u.plausible(cur, &next) {
				return next, true
			}
			u.warn("CFI of %s at %#x gave an implausible caller %#x (sp %#x); trying other methods", mod.Name, cur.PC, next.PC, next.SP)
		case cfiEnd:
			u.res.Stop = Stop{Reason: StopOutermost}
			return Frame{}, false
		}
	}
	if first && mod == nil && !u.space.Executable(cur.PC) {
		// A call through a NULL or dangling function pointer: the call
		// pushed its return address at [rsp] and the caller's rbp is
		// intact, so following rbp would skip the caller.
		if next, ok := u.stepScan(cur); ok {
			return next, true
		}
	}
	if next, ok := u.stepFP(cur); ok {
		return next, true
	}
	if next, ok := u.stepScan(cur); ok {
		return next, true
	}
	if mod == nil {
		u.res.Stop = Stop{Reason: StopNoUnwindInfo, PC: cur.PC}
	} else {
		u.res.Stop = Stop{Reason: StopStuck, PC: cur.PC, Module: mod.Name}
	}
	return Frame{}, false
}

type cfiStatus int

const (
	cfiOK cfiStatus = iota
	cfiEnd
	cfiNone
)

func (u *unwinder) stepCFI(cur *Frame, mod *Module) (Frame, cfiStatus) {
	lookup := cur.PC
	if !cur.Signal {
		lookup-- // a return address may be past the end of the call's function
	}
	link := lookup - mod.Bias
	for _, t := range mod.CFI() {
		fde, err := t.FDEFor(link)
		if err != nil {
			continue
		}
		at := link
		if fde.cie.signalFrame && !cur.Signal {
			at = cur.PC - mod.Bias
			cur.Trampoline = true
		}
		r, err := t.rowAt(fde, at)
		if err != nil {
			u.warn("CFI at %#x in %s: %v", cur.PC, mod.Name, err)
			return Frame{}, cfiNone
		}
		next, status, err := u.apply(cur, r)
		if err != nil {
			u.warn("CFI at %#x in %s: %v", cur.PC, mod.Name, err)
			return Frame{}, cfiNone
		}
		return next, status
	}
	return Frame{}, cfiNone
}

func (u *unwinder) apply(cur *Frame, r *row) (Frame, cfiStatus, error) {
	var cfa uint64
	if r.cfaExpr != nil {
		v, err := evalExpr(r.cfaExpr, &cur.Regs, u.mem)
		if err != nil {
			return Frame{}, cfiNone, fmt.Errorf("CFA expression: %w", err)
		}
		cfa = v
	} else {
		base, ok := getReg(&cur.Regs, r.cfaReg)
		if !ok {
			return Frame{}, cfiNone, fmt.Errorf("CFA needs unknown register %d", r.cfaReg)
		}
		cfa = base + uint64(r.cfaOff)
	}
	var next crash.Registers
	for n := uint64(0); n < NumRegs; n++ {
		rule := r.regs[n]
		switch rule.kind {
		case ruleUnspecified:
			if isCalleeSaved(n) {
				if v, ok := getReg(&cur.Regs, n); ok {
					setReg(&next, n, v)
				}
			}
		case ruleSame:
			if v, ok := getReg(&cur.Regs, n); ok {
				setReg(&next, n, v)
			}
		case ruleUndefined:
		case ruleOffset:
			v, err := u.mem.ReadUint64(cfa + uint64(rule.off))
			if err != nil {
				if n == r.raReg {
					return Frame{}, cfiNone, fmt.Errorf("read return address at %#x: %w", cfa+uint64(rule.off), err)
				}
				continue
			}
			setReg(&next, n, v)
		case ruleValOffset:
			setReg(&next, n, cfa+uint64(rule.off))
		case ruleRegister:
			if v, ok := getReg(&cur.Regs, rule.reg); ok {
				setReg(&next, n, v)
			}
		case ruleExpr, ruleValExpr:
			a, err := evalExpr(rule.expr, &cur.Regs, u.mem, cfa)
			if err != nil {
				continue
			}
			if rule.kind == ruleExpr {
				v, err := u.mem.ReadUint64(a)
				if err != nil {
					continue
				}
				a = v
			}
			setReg(&next, n, a)
		}
	}
	ra, ok := getReg(&next, r.raReg)
	if !ok {
		return Frame{}, cfiEnd, nil
	}
	if r.regs[regRSP].kind == ruleUnspecified || r.regs[regRSP].kind == ruleSame {
		setReg(&next, regRSP, cfa)
	}
	setReg(&next, regRIP, ra)
	sp, _ := getReg(&next, regRSP)
	return Frame{PC: ra, SP: sp, Trust: crash.TrustCFI, Regs: next, Signal: r.signalFrame}, cfiOK, nil
}

func isCalleeSaved(n uint64) bool {
	for _, c := range calleeSaved {
		if c == n {
			return true
		}
	}
	return false
}

// plausible checks a caller recovered by CFI.
func (u *unwinder) plausible(cur, next *Frame) bool {
	if next.PC == 0 {
		return true // end of stack, handled by the next step
	}
	if !u.space.Executable(next.PC) {
		return false
	}
	if next.SP <= cur.SP && !cur.Signal && !next.Signal {
		return false
	}
	return true
}

// maxFrameSize bounds a frame-pointer hop.
const maxFrameSize = 1 << 20

func (u *unwinder) stepFP(cur *Frame) (Frame, bool) {
	bp, ok := getReg(&cur.Regs, regRBP)
	if !ok || bp < cur.SP || bp-cur.SP > maxFrameSize || bp%8 != 0 {
		return Frame{}, false
	}
	lo, hi, ok := u.space.Stack(cur.SP)
	if !ok || bp < lo || bp+16 > hi {
		return Frame{}, false
	}
	savedBP, err1 := u.mem.ReadUint64(bp)
	ra, err2 := u.mem.ReadUint64(bp + 8)
	if err1 != nil || err2 != nil || !u.isReturnAddress(ra) {
		return Frame{}, false
	}
	if savedBP != 0 && (savedBP <= bp || savedBP >= hi) {
		return Frame{}, false
	}
	next := cur.Regs
	setReg(&next, regRBP, savedBP)
	setReg(&next, regRSP, bp+16)
	setReg(&next, regRIP, ra)
	for _, r := range callerClobbered {
		next.Clear(r)
	}
	f := Frame{PC: ra, SP: bp + 16, Trust: crash.TrustFP, Regs: next}
	if !u.validateCaller(&f) {
		return Frame{}, false
	}
	return f, true
}

func (u *unwinder) stepScan(cur *Frame) (Frame, bool) {
	lo, hi, ok := u.space.Stack(cur.SP)
	if !ok {
		return Frame{}, false
	}
	start := cur.SP
	if start < lo {
		start = lo
	}
	if start%8 != 0 {
		start = (start + 7) &^ 7
	}
	buf := make([]byte, 8*64)
	for i := 0; i < u.opts.ScanWords; i += 64 {
		a := start + uint64(i)*8
		if a >= hi {
			break
		}
		chunk := buf
		if rem := hi - a; uint64(len(chunk)) > rem {
			chunk = chunk[:rem&^7]
		}
		n, _ := u.mem.ReadAt(chunk, int64(a))
		for k := 0; k+8 <= n; k += 8 {
			v := le64(chunk[k:])
			if !u.isReturnAddress(v) {
				continue
			}
			next := cur.Regs
			slot := a + uint64(k)
			setReg(&next, regRSP, slot+8)
			setReg(&next, regRIP, v)
			for _, r := range callerClobbered {
				next.Clear(r)
			}
			f := Frame{PC: v, SP: slot + 8, Trust: crash.TrustScan, Regs: next}
			if u.validateCaller(&f) {
				return f, true
			}
		}
	}
	return Frame{}, false
}

// validateCaller checks that a frame found by heuristics can itself be
// unwound by CFI to plausible callers (two steps of look-ahead), which
// rejects most stale return addresses left on the stack.
func (u *unwinder) validateCaller(f *Frame) bool {
	cur := *f
	for depth := 0; depth < 2; depth++ {
		mod := u.space.ModuleAt(cur.PC)
		if mod == nil {
			return depth > 0 // JIT code calling JIT code: accept only after a checked step
		}
		next, status := u.stepCFI(&cur, mod)
		switch status {
		case cfiEnd:
			return true
		case cfiOK:
			if next.PC == 0 {
				// Only an outermost frame returns to 0, and those end
				// with an undefined return address, not a zero on the stack.
				return false
			}
			if !u.space.Executable(next.PC) || next.SP <= cur.SP {
				return false
			}
			cur = next
		default:
			return false
		}
	}
	return true
}

// isReturnAddress reports whether v points just after a call instruction
// in executable memory.
func (u *unwinder) isReturnAddress(v uint64) bool {
	if v < 4096 || !u.space.Executable(v) {
		return false
	}
	var b [7]byte
	if _, err := u.mem.ReadAt(b[:], int64(v-7)); err != nil {
		return false
	}
	// call rel32: e8 xx xx xx xx
	if b[2] == 0xe8 {
		return true
	}
	// call r/m64: ff /2 with 2..7 byte encodings (optional REX prefix).
	for l := 2; l <= 7; l++ {
		p := 7 - l
		op := p
		if b[op] >= 0x40 && b[op] <= 0x4f && l > 2 {
			op++
		}
		if b[op] == 0xff && op+1 < 7 {
			modrm := b[op+1]
			if (modrm>>3)&7 == 2 && insnLen(modrm, b[op+1:]) == 7-op {
				return true
			}
		}
	}
	return false
}

// insnLen returns the length of an ff /2 call from the ModRM byte on
// (including the 0xff opcode).
func insnLen(modrm byte, rest []byte) int {
	mod, rm := modrm>>6, modrm&7
	n := 2 // opcode + modrm
	if mod != 3 && rm == 4 {
		n++ // SIB
		if len(rest) > 1 && mod == 0 && rest[1]&7 == 5 {
			n += 4
		}
	}
	switch mod {
	case 0:
		if rm == 5 {
			n += 4 // rip-relative
		}
	case 1:
		n++
	case 2:
		n += 4
	}
	return n
}

func le64(b []byte) uint64 {
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56
}

// sigreturnCode is `mov rax, 15 (rt_sigreturn); syscall`, the body of every
// x86-64 signal restorer (glibc's __restore_rt, musl's, Go's runtime).
var sigreturnCode = []byte{0x48, 0xc7, 0xc0, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05}

// Offsets in the rt_sigframe the kernel pushes for a signal handler: the
// handler returns into the restorer with rsp at the ucontext, whose
// uc_mcontext.gregs start 40 bytes in (r8..r15, rdi, rsi, rbp, rbx, rdx,
// rax, rcx, rsp, rip).
const (
	ucMcontext = 40
	gregsCount = 17
)

// stepSigreturn recognises a signal restorer by its code (it has no usable
// CFI in some runtimes) and recovers the interrupted registers from the
// ucontext on the stack.
func (u *unwinder) stepSigreturn(cur *Frame) (Frame, bool) {
	if cur.Signal && cur.Trust != crash.TrustContext {
		return Frame{}, false // the interrupted frame itself, not a restorer
	}
	var code [9]byte
	if _, err := u.mem.ReadAt(code[:], int64(cur.PC)); err != nil || string(code[:]) != string(sigreturnCode) {
		return Frame{}, false
	}
	var g [gregsCount * 8]byte
	if _, err := u.mem.ReadAt(g[:], int64(cur.SP+ucMcontext)); err != nil {
		return Frame{}, false
	}
	greg := func(i int) uint64 { return le64(g[i*8:]) }
	// DWARF numbering: rax 0, rdx 1, rcx 2, rbx 3, rsi 4, rdi 5, rbp 6, rsp 7, r8-r15 8-15, rip 16.
	var next crash.Registers
	for i := 0; i < 8; i++ {
		setReg(&next, uint64(8+i), greg(i)) // r8..r15
	}
	setReg(&next, regRDI, greg(8))
	setReg(&next, regRSI, greg(9))
	setReg(&next, regRBP, greg(10))
	setReg(&next, regRBX, greg(11))
	setReg(&next, regRDX, greg(12))
	setReg(&next, regRAX, greg(13))
	setReg(&next, regRCX, greg(14))
	setReg(&next, regRSP, greg(15))
	setReg(&next, regRIP, greg(16))
	pc, sp := greg(16), greg(15)
	if pc == 0 || !u.space.Executable(pc) {
		return Frame{}, false
	}
	cur.Trampoline = true
	return Frame{PC: pc, SP: sp, Trust: crash.TrustCFI, Regs: next, Signal: true}, true
}
