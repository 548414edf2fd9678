package unwind

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// The synthetic process used by the tests below: one module ("syn", text at
// link-time 0x1000, loaded with bias 0x400000) whose functions have the CFI
// a compiler would emit, an anonymous executable region (JIT code without
// unwind information), a signal trampoline without CFI, and a stack.
const (
	bias    = 0x400000
	jitLo   = 0x7f0000000000
	trampLo = 0x7f0000010000
	stackLo = 0x7ffff0000000
	stackSz = 0x40000
	stackHi = stackLo + stackSz

	// Link-time starts of the module's functions (each 0x40 bytes; the
	// call instruction of each ends at +retOff).
	fnA       = 0x1000 // frameless leaf: CFA = rsp+8 throughout
	fnB       = 0x1040 // push rbp; mov rbp, rsp: CFA = rbp+16 from +4
	fnMain    = 0x1080 // like fnB
	fnStart   = 0x10c0 // outermost: return address undefined
	fnC       = 0x1100 // frameless caller: CFA = rsp+8
	fnM2      = 0x1140 // frameless with 0x10 bytes of locals: CFA = rsp+0x18 from +4
	fnH       = 0x1180 // frameless signal handler
	fnRec     = 0x11c0 // recursive, rbp frame
	fnNoAdv   = 0x1200 // bad CFI: CFA = rsp, return address below it
	fnBadOp   = 0x1240 // bad CFI: unknown instruction
	fnBadRS   = 0x1280 // bad CFI: restore_state without remember_state
	fnBadReg  = 0x12c0 // CFA from r10
	fnNest    = 0x1300 // bad CFI: remember_state nested 100 deep
	fnBadRA   = 0x1340 // its CIE names return address register 40
	fnSigCFI  = 0x1400 // signal trampoline described by an 'S' CIE (FDE from 0x13ff)
	fnUncover = 0x1500 // text without any FDE
	textLink  = 0x1000
	textSize  = 0x1000
	retOff    = 0x15
	ehLink    = 0x3000
	hdrLink   = 0x2800
)

// at returns the runtime address of a link-time offset in the module.
func at(link uint64) uint64 { return bias + link }

// ret returns the runtime return address after fn's call instruction.
func ret(fn uint64) uint64 { return bias + fn + retOff }

// Offsets of the rt_sigframe / ucontext the kernel pushes (see
// unwind.go): gregs start 40 bytes into the ucontext.
func greg(i int) uint64 { return ucMcontext + uint64(i)*8 }

const (
	gRBP = 10
	gRSP = 15
	gRIP = 16
)

// newProc builds the synthetic process and the module's .eh_frame (with
// .eh_frame_hdr when withHdr).
func newProc(t testing.TB, withHdr bool) (*synthProc, *ehFrame) {
	t.Helper()
	p := &synthProc{}
	text := p.mapRegion(at(textLink), textSize, true)
	for i := range text.data {
		text.data[i] = 0x90 // nop
	}
	p.mapRegion(jitLo, 0x1000, true)
	tramp := p.mapRegion(trampLo, 0x1000, true)
	copy(tramp.data, sigreturnCode)
	p.mapRegion(stackLo, stackSz, false)

	for _, fn := range []uint64{fnA, fnB, fnMain, fnStart, fnC, fnM2, fnH, fnRec, fnNoAdv, fnBadOp, fnBadRS, fnBadReg, fnNest, fnBadRA} {
		p.putCall(ret(fn))
	}
	// mov eax, 15; syscall: a restorer the code matcher does not know,
	// described only by its CFI.
	p.putBytes(at(fnSigCFI), []byte{0xb8, 0x0f, 0x00, 0x00, 0x00, 0x0f, 0x05})

	eh := &ehFrame{addr: ehLink}
	std := eh.cie("", byte(regRIP), entryCFI)
	eh.fde(std, fnA, 0x40, nil)
	eh.fde(std, fnB, 0x40, rbpFrameCFI)
	eh.fde(std, fnMain, 0x40, rbpFrameCFI)
	eh.fde(std, fnStart, 0x40, cfaUndefined(regRIP))
	eh.fde(std, fnC, 0x40, nil)
	eh.fde(std, fnM2, 0x40, cat(cfaAdvance(4), cfaDefCFAOffset(0x18)))
	eh.fde(std, fnH, 0x40, nil)
	eh.fde(std, fnRec, 0x40, rbpFrameCFI)
	eh.fde(std, fnNoAdv, 0x40, cfaDefCFA(regRSP, 0))
	eh.fde(std, fnBadOp, 0x40, []byte{0x1f})
	eh.fde(std, fnBadRS, 0x40, []byte{0x0b})
	eh.fde(std, fnBadReg, 0x40, cfaDefCFA(10, 8))
	eh.fde(std, fnNest, 0x40, []byte(strings.Repeat("\x0a", 100)))
	badRA := eh.cie("", 40, entryCFI)
	eh.fde(badRA, fnBadRA, 0x40, nil)
	// glibc's __restore_rt: an 'S' CIE, the CFA and registers computed
	// from the ucontext the kernel pushed, FDE starting one byte early.
	sig := eh.cie("S", byte(regRIP), nil)
	eh.fde(sig, fnSigCFI-1, 0x11, cat(
		cfaDefCFAExpr(cat(opBreg(regRSP, int64(greg(gRSP))), []byte{opDeref})),
		cfaExpr(regRIP, opBreg(regRSP, int64(greg(gRIP)))),
		cfaExpr(regRBP, opBreg(regRSP, int64(greg(gRBP)))),
	))

	var tab *Table
	if withHdr {
		tab = NewTable(eh.buf, ehLink, eh.hdr(hdrLink), hdrLink)
	} else {
		tab = NewTable(eh.buf, ehLink, nil, 0)
	}
	p.modules = append(p.modules, &synthModule{lo: at(textLink), hi: at(textLink + textSize), mod: &Module{Name: "syn", Bias: bias, Tables: []*Table{tab}}})
	return p, eh
}

// rbpChain lays out the rbp-linked frames of fnB (at rb) called from
// fnMain (at rm) called from fnStart, the usual bottom of a C stack.
func rbpChain(p *synthProc, rb, rm uint64) {
	p.put64(rb, rm)
	p.put64(rb+8, ret(fnMain))
	p.put64(rm, 0)
	p.put64(rm+8, ret(fnStart))
}

type wantFrame struct {
	pc    uint64
	sp    uint64 // 0: not checked
	trust crash.Trust
}

func checkFrames(t *testing.T, res Result, want []wantFrame, wantEnd string) {
	t.Helper()
	var got strings.Builder
	for i, f := range res.Frames {
		fmt.Fprintf(&got, "  #%d pc %#x sp %#x %s signal=%v trampoline=%v\n", i, f.PC, f.SP, f.Trust, f.Signal, f.Trampoline)
	}
	bad := len(res.Frames) != len(want)
	for i := 0; !bad && i < len(want); i++ {
		f := res.Frames[i]
		bad = f.PC != want[i].pc || f.Trust != want[i].trust || (want[i].sp != 0 && f.SP != want[i].sp)
	}
	if bad {
		var w strings.Builder
		for i, f := range want {
			fmt.Fprintf(&w, "  #%d pc %#x sp %#x %s\n", i, f.pc, f.sp, f.trust)
		}
		t.Errorf("frames:\n%swant:\n%s(end %q, warnings %q)", got.String(), w.String(), res.Stop.String(), res.Warnings)
	}
	if !strings.Contains(res.Stop.String(), wantEnd) {
		t.Errorf("end %q, want %q", res.Stop.String(), wantEnd)
	}
}

func TestCFIChain(t *testing.T) {
	for _, withHdr := range []bool{true, false} {
		t.Run(fmt.Sprintf("eh_frame_hdr=%v", withHdr), func(t *testing.T) {
			p, _ := newProc(t, withHdr)
			s0 := uint64(stackHi - 0x400)
			rb, rm := s0+0x30, s0+0x80
			p.put64(s0, ret(fnB)) // fnA's return address
			rbpChain(p, rb, rm)
			res := Unwind(regs(map[uint64]uint64{regRIP: at(fnA + 8), regRSP: s0, regRBP: rb, regRBX: 7}), p, p, Options{})
			checkFrames(t, res, []wantFrame{
				{at(fnA + 8), s0, crash.TrustContext},
				{ret(fnB), s0 + 8, crash.TrustCFI},
				{ret(fnMain), rb + 16, crash.TrustCFI},
				{ret(fnStart), rm + 16, crash.TrustCFI},
			}, "outermost frame")
			if len(res.Warnings) != 0 {
				t.Errorf("warnings: %q", res.Warnings)
			}
			// Callee-saved registers: rbp restored from each frame's save
			// slot, rbx carried through unchanged; rax is not known above
			// frame 0.
			for i, want := range []uint64{rb, rb, rm, 0} {
				if v, ok := res.Frames[i].Regs.Get(crash.Reg(regRBP)); !ok || v != want {
					t.Errorf("frame %d rbp = %#x %v, want %#x", i, v, ok, want)
				}
			}
			if v, ok := res.Frames[3].Regs.Get(crash.Reg(regRBX)); !ok || v != 7 {
				t.Errorf("rbx in the outermost frame = %#x %v, want 7 (callee-saved, unchanged)", v, ok)
			}
			if _, ok := res.Frames[1].Regs.Get(crash.Reg(regRAX)); ok {
				t.Error("rax is known in a caller frame")
			}
		})
	}
}

// TestFramePointerThroughJIT: code without unwind information (a JIT
// buffer) is crossed by following rbp when the chain is sound, and a
// corrupt chain is refused in favour of the stack scan.
func TestFramePointerThroughJIT(t *testing.T) {
	p, _ := newProc(t, true)
	s0 := uint64(stackHi - 0x800)
	rj, rb, rm := s0+0x20, s0+0x60, s0+0xa0
	p.put64(rj, rb)
	p.put64(rj+8, ret(fnB))
	rbpChain(p, rb, rm)
	start := regs(map[uint64]uint64{regRIP: jitLo + 0x40, regRSP: s0, regRBP: rj})
	res := Unwind(start, p, p, Options{})
	checkFrames(t, res, []wantFrame{
		{jitLo + 0x40, s0, crash.TrustContext},
		{ret(fnB), rj + 16, crash.TrustFP},
		{ret(fnMain), rb + 16, crash.TrustCFI},
		{ret(fnStart), rm + 16, crash.TrustCFI},
	}, "outermost frame")

	// The saved rbp points below the frame: not a frame-pointer chain.
	// The JIT code was called by a frameless function (fnC, called by
	// fnM2), whose return address the scan finds at rj+8.
	p.put64(rj, s0)
	p.put64(rj+8, ret(fnC))
	p.put64(rj+16, ret(fnM2))
	p.put64(rj+16+0x18, ret(fnStart))
	res = Unwind(start, p, p, Options{})
	checkFrames(t, res, []wantFrame{
		{jitLo + 0x40, s0, crash.TrustContext},
		{ret(fnC), rj + 16, crash.TrustScan},
		{ret(fnM2), rj + 24, crash.TrustCFI},
		{ret(fnStart), rj + 24 + 0x18, crash.TrustCFI},
	}, "outermost frame")
	p.put64(rj+8, ret(fnB))
	// rbp points outside the stack, or is misaligned: no fp frame either.
	for _, bp := range []uint64{jitLo, rj + 4, s0 - 8} {
		p.put64(rj, rb)
		res = Unwind(regs(map[uint64]uint64{regRIP: jitLo + 0x40, regRSP: s0, regRBP: bp}), p, p, Options{})
		if len(res.Frames) > 1 && res.Frames[1].Trust == crash.TrustFP {
			t.Errorf("rbp %#x gave an fp frame %+v", bp, res.Frames[1])
		}
	}
}

// TestScanSkipsDecoys: from JIT code without a frame pointer the stack is
// scanned, and words that only look like return addresses are skipped.
func TestScanSkipsDecoys(t *testing.T) {
	p, _ := newProc(t, true)
	s0 := uint64(stackHi - 0x2000)
	words := []uint64{
		0x10,                         // too small to be code
		s0 + 0x100,                   // a stack address
		at(fnB + 8),                  // code, but no call instruction before it
		ret(fnC),                     // a stale return address: fnC's caller would be...
		0x4141414141414141,           // ...this, which is not code
		ret(fnA),                     // another stale one, whose caller would be...
		0,                            // ...a return to 0, which only outermost frames do
		ret(fnC),                     // the real return address
		ret(fnM2),                    // fnC's caller
		0xdead, 0xbeef, ret(fnStart), // fnM2's locals, then its caller
	}
	for i, w := range words {
		p.put64(s0+uint64(i)*8, w)
	}
	res := Unwind(regs(map[uint64]uint64{regRIP: jitLo + 0x80, regRSP: s0, regRBP: 1}), p, p, Options{})
	checkFrames(t, res, []wantFrame{
		{jitLo + 0x80, s0, crash.TrustContext},
		{ret(fnC), s0 + 8*8, crash.TrustScan},
		{ret(fnM2), s0 + 9*8, crash.TrustCFI},
		{ret(fnStart), s0 + 12*8, crash.TrustCFI},
	}, "outermost frame")

	// A return address beyond the scan window is not found: the walk
	// stops in the JIT frame and says why.
	far := s0 + 0x1000
	for i := uint64(0); i < 12; i++ {
		p.put64(s0+i*8, 0)
	}
	p.put64(far, ret(fnC))
	p.put64(far+8, ret(fnM2))
	p.put64(far+8+0x18, ret(fnStart))
	res = Unwind(regs(map[uint64]uint64{regRIP: jitLo + 0x80, regRSP: s0, regRBP: 1}), p, p, Options{ScanWords: 64})
	checkFrames(t, res, []wantFrame{{jitLo + 0x80, s0, crash.TrustContext}}, "no unwind information at 0x7f0000000080")
	res = Unwind(regs(map[uint64]uint64{regRIP: jitLo + 0x80, regRSP: s0, regRBP: 1}), p, p, Options{})
	if len(res.Frames) != 4 || res.Frames[1].PC != ret(fnC) || res.Frames[1].SP != far+8 {
		t.Errorf("default scan window: %+v", res.Frames)
	}
}

// TestCallThroughNull: a call through a NULL function pointer faults at pc
// 0 with the caller's return address on top of the stack and the caller's
// rbp intact: the caller (fnB) is the first frame, not skipped by following
// rbp to its own caller.
func TestCallThroughNull(t *testing.T) {
	p, _ := newProc(t, true)
	s0 := uint64(stackHi - 0x400)
	rb, rm := s0+0x30, s0+0x80
	p.put64(s0, ret(fnB))
	rbpChain(p, rb, rm)
	res := Unwind(regs(map[uint64]uint64{regRIP: 0, regRSP: s0, regRBP: rb}), p, p, Options{})
	checkFrames(t, res, []wantFrame{
		{0, s0, crash.TrustContext},
		{ret(fnB), s0 + 8, crash.TrustScan},
		{ret(fnMain), rb + 16, crash.TrustCFI},
		{ret(fnStart), rm + 16, crash.TrustCFI},
	}, "outermost frame")
}

// sigframe lays out what the kernel pushes for a signal handler at sp: the
// restorer's address (the handler's return address), then the ucontext
// with the interrupted registers.
func sigframe(p *synthProc, sp, restorer, ip, isp, ibp uint64) {
	p.put64(sp, restorer)
	uc := sp + 8
	p.put64(uc+greg(gRIP), ip)
	p.put64(uc+greg(gRSP), isp)
	p.put64(uc+greg(gRBP), ibp)
}

// TestSignalFrames: a handler's caller is the signal restorer, recognised
// by its code (no CFI, as in Go's runtime) or by its 'S' CFI (glibc's
// __restore_rt), and the restorer's caller is the interrupted instruction
// with the registers saved in the ucontext.
func TestSignalFrames(t *testing.T) {
	for _, tc := range []struct {
		name     string
		restorer uint64
	}{
		{"sigreturn-code", trampLo},
		{"cfi-S-augmentation", at(fnSigCFI)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newProc(t, true)
			s0 := uint64(stackHi - 0x2000)
			isp := uint64(stackHi - 0x400) // the interrupted fnB's stack
			rb, rm := isp+0x30, isp+0x80
			rbpChain(p, rb, rm)
			interrupted := at(fnB + 0x13) // after the prologue, not after a call
			sigframe(p, s0, tc.restorer, interrupted, isp, rb)
			res := Unwind(regs(map[uint64]uint64{regRIP: at(fnH + 4), regRSP: s0}), p, p, Options{})
			checkFrames(t, res, []wantFrame{
				{at(fnH + 4), s0, crash.TrustContext},
				{tc.restorer, s0 + 8, crash.TrustCFI},
				{interrupted, isp, crash.TrustCFI},
				{ret(fnMain), rb + 16, crash.TrustCFI},
				{ret(fnStart), rm + 16, crash.TrustCFI},
			}, "outermost frame")
			if len(res.Frames) < 3 {
				return
			}
			if !res.Frames[1].Trampoline || res.Frames[0].Trampoline {
				t.Errorf("trampoline flags: %v %v", res.Frames[0].Trampoline, res.Frames[1].Trampoline)
			}
			if !res.Frames[2].Signal {
				t.Error("the interrupted frame is not marked as a signal frame")
			}
		})
	}
}

// TestBadCFI: CFI that cannot be evaluated is reported and the walk goes on
// with the frame pointer; CFI that points back down the stack is refused.
func TestBadCFI(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   uint64
		warn string
	}{
		{"unknown instruction", fnBadOp, "unknown CFA instruction 0x1f"},
		{"restore without remember", fnBadRS, "restore_state without remember_state"},
		{"unknown CFA register", fnBadReg, "CFA needs unknown register 10"},
		{"remember_state too deep", fnNest, "nesting too deep"},
		{"return address register", fnBadRA, "return address register 40"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newProc(t, true)
			s0 := uint64(stackHi - 0x800)
			rf, rb, rm := s0+0x20, s0+0x60, s0+0xa0
			p.put64(rf, rb)
			p.put64(rf+8, ret(fnB))
			rbpChain(p, rb, rm)
			res := Unwind(regs(map[uint64]uint64{regRIP: at(tc.fn + 8), regRSP: s0, regRBP: rf}), p, p, Options{})
			checkFrames(t, res, []wantFrame{
				{at(tc.fn + 8), s0, crash.TrustContext},
				{ret(fnB), rf + 16, crash.TrustFP},
				{ret(fnMain), rb + 16, crash.TrustCFI},
				{ret(fnStart), rm + 16, crash.TrustCFI},
			}, "outermost frame")
			if !strings.Contains(strings.Join(res.Warnings, "\n"), tc.warn) {
				t.Errorf("warnings %q lack %q", res.Warnings, tc.warn)
			}
		})
	}
}

// TestLoopingCFI: CFI whose caller does not move up the stack (here: a
// function that seems to return to itself with the same sp) is refused
// instead of looping, and the walk ends with the reason.
func TestLoopingCFI(t *testing.T) {
	p, _ := newProc(t, true)
	s0 := uint64(stackHi - 0x800)
	p.put64(s0-8, ret(fnNoAdv))
	res := Unwind(regs(map[uint64]uint64{regRIP: at(fnNoAdv + 8), regRSP: s0}), p, p, Options{})
	checkFrames(t, res, []wantFrame{
		{at(fnNoAdv + 8), s0, crash.TrustContext},
		{ret(fnNoAdv), s0, crash.TrustCFI},
	}, "could not unwind past")
	if !strings.Contains(strings.Join(res.Warnings, "\n"), "implausible caller") {
		t.Errorf("warnings %q", res.Warnings)
	}
}

// TestAbruptEnd: stacks that end without an outermost frame stop with a
// reason, never with an error or a hang.
func TestAbruptEnd(t *testing.T) {
	t.Run("return address past the stack", func(t *testing.T) {
		p, _ := newProc(t, true)
		sp := uint64(stackHi - 8) // fnM2's CFA is rsp+0x18: beyond the mapping
		res := Unwind(regs(map[uint64]uint64{regRIP: at(fnM2 + 8), regRSP: sp}), p, p, Options{})
		checkFrames(t, res, []wantFrame{{at(fnM2 + 8), sp, crash.TrustContext}}, "could not unwind past 0x401148 in syn")
		if !strings.Contains(strings.Join(res.Warnings, "\n"), "read return address") {
			t.Errorf("warnings %q", res.Warnings)
		}
	})
	t.Run("zero return address", func(t *testing.T) {
		p, _ := newProc(t, true)
		s0 := uint64(stackHi - 0x400)
		res := Unwind(regs(map[uint64]uint64{regRIP: at(fnA + 8), regRSP: s0}), p, p, Options{})
		checkFrames(t, res, []wantFrame{{at(fnA + 8), s0, crash.TrustContext}}, "outermost frame (return address 0)")
	})
	t.Run("JIT frame on an empty stack", func(t *testing.T) {
		p, _ := newProc(t, true)
		s0 := uint64(stackHi - 0x400)
		res := Unwind(regs(map[uint64]uint64{regRIP: jitLo + 8, regRSP: s0}), p, p, Options{})
		checkFrames(t, res, []wantFrame{{jitLo + 8, s0, crash.TrustContext}}, "no unwind information at 0x7f0000000008")
	})
	t.Run("unmapped stack pointer", func(t *testing.T) {
		p, _ := newProc(t, true)
		res := Unwind(regs(map[uint64]uint64{regRIP: jitLo + 8, regRSP: 0x1000, regRBP: 0x1010}), p, p, Options{})
		checkFrames(t, res, []wantFrame{{jitLo + 8, 0x1000, crash.TrustContext}}, "no unwind information")
	})
	t.Run("code without FDE", func(t *testing.T) {
		p, _ := newProc(t, true)
		s0 := uint64(stackHi - 0x400)
		res := Unwind(regs(map[uint64]uint64{regRIP: at(fnUncover), regRSP: s0}), p, p, Options{})
		checkFrames(t, res, []wantFrame{{at(fnUncover), s0, crash.TrustContext}}, "could not unwind past 0x401500 in syn")
	})
}

// TestDeepRecursion: a 20,000-frame recursion unwinds completely, with one
// cached unwind row per distinct pc, and MaxFrames bounds the walk.
func TestDeepRecursion(t *testing.T) {
	p, _ := newProc(t, true)
	const depth = 20000
	const frame = 0x10 // saved rbp + return address: the smallest rbp frame
	p.regions = p.regions[:len(p.regions)-1]
	lo := uint64(stackLo)
	p.mapRegion(lo, depth*frame+0x1000, false)
	s0 := lo + 0x100
	// fnA (leaf) <- fnRec x depth <- fnMain <- fnStart
	p.put64(s0, ret(fnRec))
	rr := s0 + 8
	for i := 0; i < depth; i++ {
		next := rr + frame
		p.put64(rr, next)
		p.put64(rr+8, ret(fnRec))
		rr = next
	}
	// The outermost fnRec frame (at rr-frame) returns into fnMain.
	p.put64(rr-frame+8, ret(fnMain))
	p.put64(rr, 0)
	p.put64(rr+8, ret(fnStart))
	start := regs(map[uint64]uint64{regRIP: at(fnA + 8), regRSP: s0, regRBP: s0 + 8})
	res := Unwind(start, p, p, Options{})
	if len(res.Frames) != depth+3 || res.Stop.String() != "outermost frame" {
		t.Fatalf("%d frames (want %d), end %q, warnings %q", len(res.Frames), depth+3, res.Stop.String(), res.Warnings)
	}
	for i, f := range res.Frames[1:] {
		if f.Trust != crash.TrustCFI {
			t.Fatalf("frame %d trust %s", i+1, f.Trust)
		}
	}
	if n := len(p.modules[0].mod.Tables[0].rowCache); n > 4 {
		t.Errorf("%d unwind rows cached for 4 distinct pcs", n)
	}
	// Reads stay linear in the number of frames.
	if p.reads > 4*(depth+3) {
		t.Errorf("%d memory reads for %d frames", p.reads, depth+3)
	}

	res = Unwind(start, p, p, Options{MaxFrames: 100})
	if len(res.Frames) != 100 || res.Stop.String() != "stopped after 100 frames (limit)" || len(res.Warnings) != 1 {
		t.Errorf("MaxFrames 100: %d frames, end %q, warnings %q", len(res.Frames), res.Stop.String(), res.Warnings)
	}
}

// TestTables: the same FDEs are found through .eh_frame_hdr's binary search
// table, by scanning .eh_frame, and from an equivalent .debug_frame
// (DWARF versions 1 and 4), and give the same rows.
func TestTables(t *testing.T) {
	_, eh := newProc(t, true)
	hdr := NewTable(eh.buf, ehLink, eh.hdr(hdrLink), hdrLink)
	scan := NewTable(eh.buf, ehLink, nil, 0)
	badHdr := NewTable(eh.buf, ehLink, []byte{2, 0x1b, 0x03, 0x3b, 0, 0, 0, 0}, hdrLink) // version 2: ignored
	for _, f := range eh.fdes {
		for _, tab := range []*Table{hdr, scan, badHdr} {
			fde, err := tab.FDEFor(f.start + 1)
			if err != nil {
				t.Errorf("FDE for %#x: %v", f.start+1, err)
				continue
			}
			if fde.Start != f.start {
				t.Errorf("FDE for %#x starts at %#x", f.start+1, fde.Start)
			}
		}
	}
	for _, pc := range []uint64{0x10, fnUncover, 0x9000} {
		for _, tab := range []*Table{hdr, scan} {
			if fde, err := tab.FDEFor(pc); err == nil {
				t.Errorf("FDE for uncovered %#x: %#x-%#x", pc, fde.Start, fde.End)
			}
		}
	}

	for _, version := range []byte{1, 4} {
		var d debugFrame
		c := d.cie(version, entryCFI)
		d.fde(c, fnB, 0x40, rbpFrameCFI)
		d.fde(c, fnA, 0x40, nil)
		dbg := NewDebugFrameTable(d.buf)
		for _, tc := range []struct {
			pc     uint64
			cfaReg uint64
			cfaOff int64
		}{
			{fnA + 8, regRSP, 8},
			{fnB, regRSP, 8},
			{fnB + 1, regRSP, 16},
			{fnB + 4, regRBP, 16},
			{fnB + 0x30, regRBP, 16},
		} {
			fde, err := dbg.FDEFor(tc.pc)
			if err != nil {
				t.Errorf("debug_frame v%d: FDE for %#x: %v", version, tc.pc, err)
				continue
			}
			r, err := dbg.rowAt(fde, tc.pc)
			if err != nil || r.cfaReg != tc.cfaReg || r.cfaOff != tc.cfaOff || r.regs[regRIP].kind != ruleOffset || r.regs[regRIP].off != -8 {
				t.Errorf("debug_frame v%d row at %#x: %+v %v", version, tc.pc, r, err)
			}
			// The same row from .eh_frame.
			efde, _ := hdr.FDEFor(tc.pc)
			er, err := hdr.rowAt(efde, tc.pc)
			if err != nil || er.cfaReg != r.cfaReg || er.cfaOff != r.cfaOff || er.regs[regRBP].kind != r.regs[regRBP].kind || er.regs[regRBP].off != r.regs[regRBP].off {
				t.Errorf("eh_frame row at %#x %+v differs from debug_frame %+v (%v)", tc.pc, er, r, err)
			}
		}
	}
}

// TestMalformedTables: damaged tables give errors, never panics or
// unbounded work.
func TestMalformedTables(t *testing.T) {
	_, eh := newProc(t, true)
	cases := map[string][]byte{
		"empty":         nil,
		"short length":  {0x10, 0, 0},
		"length past":   {0xff, 0, 0, 0, 0, 0, 0, 0},
		"64-bit length": {0xff, 0xff, 0xff, 0xff, 0x10},
		"truncated":     eh.buf[:len(eh.buf)/2],
	}
	// An FDE whose CIE pointer points before the section.
	bad := binary.LittleEndian.AppendUint32(nil, 12)
	bad = binary.LittleEndian.AppendUint32(bad, 0x1000)
	bad = append(bad, make([]byte, 8)...)
	cases["bad CIE pointer"] = bad
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			tab := NewTable(data, ehLink, nil, 0)
			for _, pc := range []uint64{fnA, fnB + 4, fnSigCFI} {
				if fde, err := tab.FDEFor(pc); err == nil {
					_, _ = tab.rowAt(fde, pc)
				}
			}
		})
	}
	// A search table pointing outside .eh_frame is not used.
	h := eh.hdr(hdrLink)
	binary.LittleEndian.PutUint32(h[len(h)-4:], 0x7fffffff)
	tab := NewTable(eh.buf, ehLink, h, hdrLink)
	if fde, err := tab.FDEFor(fnB + 4); err != nil || fde.Start != fnB {
		t.Errorf("with a bad search table: %v %v", fde, err)
	}
}

// TestEvalExpr checks the DWARF expression evaluator used by CFA and
// register expressions.
func TestEvalExpr(t *testing.T) {
	p := &synthProc{}
	p.mapRegion(0x1000, 0x100, false)
	p.put64(0x1010, 0x1234)
	rs := regs(map[uint64]uint64{regRSP: 0x1000, regRBP: 0x2000})
	op := func(b ...byte) []byte { return b }
	for _, tc := range []struct {
		name string
		expr []byte
		want uint64
		err  string
	}{
		{"lit", op(0x35), 5, ""},
		{"breg deref", cat(opBreg(regRSP, 0x10), op(opDeref)), 0x1234, ""},
		{"breg negative", opBreg(regRBP, -16), 0x1ff0, ""},
		{"reg", op(0x56), 0x2000, ""},
		{"const1u", op(0x08, 0xff), 0xff, ""},
		{"const1s", op(0x09, 0xff), ^uint64(0), ""},
		{"const2u", op(0x0a, 0x34, 0x12), 0x1234, ""},
		{"const2s", op(0x0b, 0xfe, 0xff), ^uint64(1), ""},
		{"const4u", op(0x0c, 1, 0, 0, 0x80), 0x80000001, ""},
		{"const4s", op(0x0d, 0xff, 0xff, 0xff, 0xff), ^uint64(0), ""},
		{"const8u", op(0x0e, 1, 2, 3, 4, 5, 6, 7, 8), 0x0807060504030201, ""},
		{"constu", cat(op(0x10), uleb(300)), 300, ""},
		{"consts", cat(op(0x11), sleb(-3)), ^uint64(2), ""},
		{"dup plus", op(0x33, 0x12, 0x22), 6, ""},
		{"drop", op(0x31, 0x32, 0x13), 1, ""},
		{"swap minus", op(0x35, 0x32, 0x16, 0x1c), ^uint64(2), ""},
		{"plus_uconst", cat(op(0x31, 0x23), uleb(0x100)), 0x101, ""},
		{"and or xor", op(0x3f, 0x35, 0x1a, 0x38, 0x21, 0x3f, 0x27), 0xf ^ (5 | 8), ""},
		{"mul shl shr", op(0x33, 0x34, 0x1e, 0x32, 0x24, 0x31, 0x25), 24, ""},
		{"comparisons", op(0x32, 0x32, 0x29, 0x32, 0x31, 0x2a, 0x22, 0x31, 0x32, 0x2b, 0x22, 0x31, 0x32, 0x2c, 0x22, 0x32, 0x31, 0x2d, 0x22, 0x31, 0x32, 0x2e, 0x22), 4, ""},
		{"initial value", nil, 0, "left no value"},
		{"underflow", op(0x13), 0, "underflow"},
		{"dup empty", op(0x12), 0, "dup on empty stack"},
		{"swap one", op(0x31, 0x16), 0, "swap needs two values"},
		{"unknown register", opBreg(regRAX, 0), 0, "unknown register 0"},
		{"unknown reg op", op(0x50), 0, "unknown register 0"},
		{"unsupported op", op(0x96), 0, "unsupported expression op 0x96"},
		{"deref unmapped", op(0x30, opDeref), 0, "unmapped"},
		{"truncated const", op(0x0e, 1, 2), 0, "truncated"},
		{"too long", []byte(strings.Repeat("\x30\x13", 600)), 0, "too long"},
		{"stack too deep", []byte(strings.Repeat("\x30", 300)), 0, "too long"},
	} {
		got, err := evalExpr(tc.expr, &rs, p)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %#x, %v; want error %q", tc.name, got, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %#x, %v; want %#x", tc.name, got, err, tc.want)
		}
	}
	// CFI parse errors wrap errCFI.
	if _, err := evalExpr([]byte{0x13}, &rs, p); !errors.Is(err, errCFI) {
		t.Errorf("underflow error %v does not wrap errCFI", err)
	}
	// An initial stack value (the CFA, for register expressions).
	if got, err := evalExpr([]byte{0x23, 8}, &rs, p, 0x100); err != nil || got != 0x108 {
		t.Errorf("plus_uconst on the CFA: %#x %v", got, err)
	}
}

// TestReturnAddressRecognition: the scanner accepts a word as a return
// address only after the encodings of call that compilers emit.
func TestReturnAddressRecognition(t *testing.T) {
	p := &synthProc{}
	code := p.mapRegion(0x10000, 0x1000, true)
	for i := range code.data {
		code.data[i] = 0x90
	}
	u := &unwinder{space: p, mem: p}
	for _, tc := range []struct {
		name string
		code []byte
		want bool
	}{
		{"call rel32", []byte{0xe8, 1, 2, 3, 4}, true},
		{"call rax", []byte{0xff, 0xd0}, true},
		{"call r11", []byte{0x41, 0xff, 0xd3}, true},
		{"call [rax+8]", []byte{0xff, 0x50, 0x08}, true},
		{"call [rip+x]", []byte{0xff, 0x15, 1, 2, 3, 4}, true},
		{"call [rsp]", []byte{0xff, 0x14, 0x24}, true},
		{"call [rax+0x100]", []byte{0xff, 0x90, 0, 1, 0, 0}, true},
		{"call [rsp+0x100]", []byte{0xff, 0x94, 0x24, 0, 1, 0, 0}, true},
		{"call [rcx*8+x]", []byte{0xff, 0x14, 0xcd, 0, 1, 0, 0}, true},
		{"jmp rax", []byte{0xff, 0xe0}, false},
		{"push [rax]", []byte{0xff, 0x30}, false},
		{"nops", []byte{0x90, 0x90}, false},
	} {
		at := uint64(0x10100)
		for i := range code.data {
			code.data[i] = 0x90
		}
		p.putBytes(at-uint64(len(tc.code)), tc.code)
		if got := u.isReturnAddress(at); got != tc.want {
			t.Errorf("%s (% x): %v, want %v", tc.name, tc.code, got, tc.want)
		}
	}
	for _, v := range []uint64{0, 0x800, 0x10003, 0x20000} {
		if u.isReturnAddress(v) {
			t.Errorf("%#x (low, at the start of code, or unmapped) taken for a return address", v)
		}
	}
}

// TestRegisterRules: the caller's registers follow every kind of CFI rule
// (register, same value, undefined, val_offset, expression, val_expression).
func TestRegisterRules(t *testing.T) {
	p, eh := newProc(t, false)
	const fnRules = 0x1600
	std := eh.cie("", byte(regRIP), entryCFI)
	eh.fde(std, fnRules, 0x40, cat(
		[]byte{0x12}, uleb(regRSP), sleb(-2), // def_cfa_sf rsp, 16
		[]byte{0x05}, uleb(regRIP), uleb(1), // offset_extended rip, cfa-8
		[]byte{0x09}, uleb(regR12), uleb(regR13), // r12 is in r13
		[]byte{0x08}, uleb(regR14), // r14 unchanged
		cfaUndefined(regR15),
		[]byte{0x14}, uleb(regRBX), uleb(2), // rbx = cfa-16 (val_offset)
		[]byte{0x16}, uleb(regR13), uleb(1), []byte{0x35}, // r13 = 5 (val_expression)
		cfaExpr(regRBP, opBreg(regRSP, 0)), // rbp saved at [rsp]
	))
	p.modules[0].mod.Tables = []*Table{NewTable(eh.buf, ehLink, nil, 0)}
	p.putCall(ret(fnMain))
	s0 := uint64(stackHi - 0x400)
	rm := s0 + 0x40
	p.put64(s0, rm)            // saved rbp
	p.put64(s0+8, ret(fnMain)) // return address at cfa-8
	p.put64(rm, 0)
	p.put64(rm+8, ret(fnStart))
	res := Unwind(regs(map[uint64]uint64{regRIP: at(fnRules + 4), regRSP: s0, regR13: 0x1313, regR14: 0x1414, regR15: 0x1515}), p, p, Options{})
	checkFrames(t, res, []wantFrame{
		{at(fnRules + 4), s0, crash.TrustContext},
		{ret(fnMain), s0 + 16, crash.TrustCFI},
		{ret(fnStart), rm + 16, crash.TrustCFI},
	}, "outermost frame")
	if len(res.Frames) < 2 {
		return
	}
	caller := res.Frames[1].Regs
	for _, c := range []struct {
		reg  uint64
		want uint64
		ok   bool
	}{
		{regR12, 0x1313, true},
		{regR14, 0x1414, true},
		{regR15, 0, false},
		{regRBX, s0, true},
		{regR13, 5, true},
		{regRBP, rm, true},
	} {
		if v, ok := caller.Get(crash.Reg(c.reg)); ok != c.ok || (ok && v != c.want) {
			t.Errorf("caller r%d = %#x %v, want %#x %v", c.reg, v, ok, c.want, c.ok)
		}
	}
}

// TestCFAInstructions runs each CFA instruction and checks the row it
// leaves at a given location.
func TestCFAInstructions(t *testing.T) {
	c := &cie{codeAlign: 1, dataAlign: -8, raReg: regRIP, fdeEnc: peUdata8}
	init := &row{cfaReg: regRSP, cfaOff: 8, raReg: regRIP}
	init.regs[regRIP] = regRule{kind: ruleOffset, off: -8}
	init.regs[regRBX] = regRule{kind: ruleOffset, off: -24}
	u64 := func(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
	for _, tc := range []struct {
		name  string
		insns []byte
		pc    uint64
		check func(r *row) bool
	}{
		{"advance_loc stops", cat(cfaAdvance(4), cfaDefCFAOffset(32)), 3, func(r *row) bool { return r.cfaOff == 8 }},
		{"advance_loc passes", cat(cfaAdvance(4), cfaDefCFAOffset(32)), 4, func(r *row) bool { return r.cfaOff == 32 }},
		{"advance_loc1", cat([]byte{0x02, 200}, cfaDefCFAOffset(32)), 199, func(r *row) bool { return r.cfaOff == 8 }},
		{"advance_loc2", cat([]byte{0x03, 0x00, 0x01}, cfaDefCFAOffset(32)), 0x100, func(r *row) bool { return r.cfaOff == 32 }},
		{"advance_loc4", cat([]byte{0x04, 0, 0, 1, 0}, cfaDefCFAOffset(32)), 0xffff, func(r *row) bool { return r.cfaOff == 8 }},
		{"set_loc", cat([]byte{0x01}, u64(0x50), cfaDefCFAOffset(32)), 0x40, func(r *row) bool { return r.cfaOff == 8 }},
		{"nop", []byte{0, 0, 0}, 0, func(r *row) bool { return r.cfaOff == 8 }},
		{"restore", cat(cfaOffset(regRBX, -48), []byte{0xc0 | byte(regRBX)}), 0, func(r *row) bool { return r.regs[regRBX].off == -24 }},
		{"restore_extended", cat(cfaOffset(regRBX, -48), []byte{0x06}, uleb(regRBX)), 0, func(r *row) bool { return r.regs[regRBX].off == -24 }},
		{"remember/restore state", cat([]byte{0x0a}, cfaDefCFAOffset(64), cfaOffset(regRBP, -16), []byte{0x0b}), 0, func(r *row) bool {
			return r.cfaOff == 8 && r.regs[regRBP].kind == ruleUnspecified
		}},
		{"def_cfa_offset_sf", cat([]byte{0x13}, sleb(-4)), 0, func(r *row) bool { return r.cfaOff == 32 }},
		{"offset_extended_sf", cat([]byte{0x11}, uleb(regRBP), sleb(3)), 0, func(r *row) bool { return r.regs[regRBP].kind == ruleOffset && r.regs[regRBP].off == -24 }},
		{"val_offset_sf", cat([]byte{0x15}, uleb(regRBP), sleb(-1)), 0, func(r *row) bool { return r.regs[regRBP].kind == ruleValOffset && r.regs[regRBP].off == 8 }},
		{"GNU_args_size", cat([]byte{0x2e}, uleb(16)), 0, func(r *row) bool { return r.cfaOff == 8 }},
		{"GNU_negative_offset_extended", cat([]byte{0x2f}, uleb(regRBP), uleb(2)), 0, func(r *row) bool { return r.regs[regRBP].off == 16 }},
		{"register above the tracked ones", cat(cfaOffset(20, -16), []byte{0x05}, uleb(33), uleb(1)), 0, func(r *row) bool { return r.cfaOff == 8 }},
		{"def_cfa_expression then def_cfa", cat(cfaDefCFAExpr([]byte{0x31}), cfaDefCFA(regRBP, 16)), 0, func(r *row) bool {
			return r.cfaExpr == nil && r.cfaReg == regRBP && r.cfaOff == 16
		}},
	} {
		r := *init
		if err := execCFA(c, tc.insns, &r, init, 0, tc.pc); err != nil || !tc.check(&r) {
			t.Errorf("%s: row %+v, err %v", tc.name, r, err)
		}
	}
	for _, bad := range [][]byte{
		{0x05, 0x80},       // truncated uleb
		{0x0f, 0x10, 0x31}, // block longer than the instructions
		{0x01, 1, 2},       // truncated set_loc
		{0x03, 1},          // truncated advance_loc2
	} {
		r := *init
		if err := execCFA(c, bad, &r, init, 0, 100); err == nil {
			t.Errorf("% x: no error", bad)
		}
	}
}

// TestPointerEncodings decodes each DW_EH_PE encoding the CIEs may use.
func TestPointerEncodings(t *testing.T) {
	for _, tc := range []struct {
		enc  byte
		data []byte
		want uint64
		err  bool
	}{
		{peOmit, nil, 0, false},
		{peAbsptr, []byte{1, 0, 0, 0, 0, 0, 0, 0}, 1, false},
		{peUleb128, uleb(300), 300, false},
		{peUdata2, []byte{0xff, 0xff}, 0xffff, false},
		{peSdata2, []byte{0xfe, 0xff}, ^uint64(1), false},
		{peUdata4, []byte{1, 0, 0, 0x80}, 0x80000001, false},
		{peSdata4, []byte{0xff, 0xff, 0xff, 0xff}, ^uint64(0), false},
		{peUdata8, []byte{2, 0, 0, 0, 0, 0, 0, 0}, 2, false},
		{peSdata8, []byte{3, 0, 0, 0, 0, 0, 0, 0}, 3, false},
		{peSleb128, sleb(-2), ^uint64(1), false},
		{pePcrel | peSdata4, []byte{0x10, 0, 0, 0}, 0x1000 + 4 + 0x10, false},
		{peDatarel | peUdata2, []byte{0x10, 0}, 0x1000 + 0x10, false},
		{0x07, []byte{1, 2, 3, 4}, 0, true},          // unknown format
		{0x40 | peUdata2, []byte{1, 0}, 0, true},     // funcrel: not supported
		{peUdata8, []byte{1, 2}, 0, true},            // truncated
		{pePcrel | peUleb128, []byte{0x80}, 0, true}, // truncated uleb
	} {
		r := &reader{b: append([]byte{0, 0, 0, 0}, tc.data...), pos: 4, base: 0x1000}
		got, err := r.encoded(tc.enc)
		if (err != nil) != tc.err || (!tc.err && got != tc.want) {
			t.Errorf("encoding %#x % x: %#x %v, want %#x (error %v)", tc.enc, tc.data, got, err, tc.want, tc.err)
		}
	}
}
