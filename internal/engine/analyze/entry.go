package analyze

import (
	"golang.org/x/arch/x86/x86asm"

	"github.com/coroner-dev/coroner/internal/engine/symbols"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// nameMain names the main() of a stripped executable: glibc's _start (at
// AT_ENTRY) passes main's address to __libc_start_main in rdi, either as
// `lea rdi, [rip+X]`, `mov rdi, [rip+X]` (through the GOT) or `mov rdi, imm`.
func (a *analysis) nameMain() {
	entry, ok := a.core.Auxv()[elfcore.AT_ENTRY]
	if !ok {
		return
	}
	r := a.space.region(entry)
	if r == nil || r.mod == nil || r.mod.obj == nil {
		return
	}
	mod := r.mod
	if _, ok := mod.obj.SymbolByName("main"); ok {
		return
	}
	code := make([]byte, 64)
	n, _ := a.core.ReadAt(code, int64(entry))
	code = code[:n]
	var mainAddr uint64
	for pc, off := entry, 0; off < len(code); {
		inst, err := x86asm.Decode(code[off:], 64)
		if err != nil || inst.Len == 0 {
			return
		}
		next := pc + uint64(inst.Len)
		if inst.Op == x86asm.CALL || inst.Op == x86asm.JMP || inst.Op == x86asm.HLT {
			break
		}
		if dst, ok := inst.Args[0].(x86asm.Reg); ok && (dst == x86asm.RDI || dst == x86asm.EDI) {
			switch src := inst.Args[1].(type) {
			case x86asm.Mem:
				if src.Base == x86asm.RIP {
					target := next + uint64(src.Disp)
					if inst.Op == x86asm.LEA {
						mainAddr = target
					} else if inst.Op == x86asm.MOV {
						if v, err := a.core.ReadUint64(target); err == nil {
							mainAddr = v
						}
					}
				}
			case x86asm.Imm:
				if inst.Op == x86asm.MOV {
					mainAddr = uint64(src)
				}
			}
		}
		pc = next
		off += inst.Len
	}
	if mainAddr == 0 || a.space.region(mainAddr) == nil || a.space.region(mainAddr).mod != mod {
		return
	}
	link := mainAddr - mod.bias
	s := symbols.Symbol{Name: "main", Value: link, Source: "entry-point"}
	if fde := a.fdeAt(mod, link); fde != nil && fde.Start == link {
		s.Size = fde.End - fde.Start
	}
	mod.obj.AddSymbols([]symbols.Symbol{s})
}
