package elfcore

import (
	"encoding/binary"
	"fmt"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/signals"
)

// Note types found in Linux core files (include/uapi/linux/elf.h).
const (
	NT_PRSTATUS   = 1
	NT_FPREGSET   = 2
	NT_PRPSINFO   = 3
	NT_AUXV       = 6
	NT_X86_XSTATE = 0x202
	NT_SIGINFO    = 0x53494749
	NT_FILE       = 0x46494c45
)

// Sizes of the x86-64 note payloads this package decodes.
const (
	prstatusSize = 336
	prpsinfoSize = 136
	siginfoSize  = 128
	regsOffset   = 112 // offset of pr_reg in struct elf_prstatus
)

// Note is one raw ELF note.
type Note struct {
	Name string
	Type uint32
	Desc []byte
}

// Bounds of what is decoded from a core's notes, whatever its headers
// say. Each is far above what Linux writes for a real process and far
// below what would exhaust a reader: a crafted core must not choose how
// much coroner allocates or how long it loops.
const (
	// MaxNoteBytes bounds the note data read from all PT_NOTE segments
	// (a process with 4,096 threads writes about 15 MiB).
	MaxNoteBytes = 64 << 20
	// MaxNotes bounds the notes walked (empty notes are 12 bytes: 64 MiB
	// of zeros would be 5.6 million of them).
	MaxNotes = 1 << 17
	// MaxThreads bounds the threads (NT_PRSTATUS notes) kept; the kernel
	// writes the thread that caused the dump first.
	MaxThreads = 4096
	// MaxFileEntries bounds the NT_FILE entries decoded (one per
	// file-backed mapping; vm.max_map_count is 65,530 by default).
	MaxFileEntries = 1 << 18
	// MaxObjects bounds the distinct mapped files opened on behalf of a
	// core (a php-fpm worker maps about 150).
	MaxObjects = 1024
)

// ParseNotes splits a PT_NOTE segment into notes. It stops at the first
// malformed note and returns what it parsed with an error, and stops after
// MaxNotes notes (with an error). The descriptors alias b.
func ParseNotes(b []byte) ([]Note, error) {
	var notes []Note
	err := WalkNotes(b, func(n Note) bool {
		notes = append(notes, n)
		return true
	})
	return notes, err
}

// WalkNotes calls fn for each note of a PT_NOTE segment, in order, until fn
// returns false. It stops at the first malformed note with an error, and
// after MaxNotes notes with an error. It allocates nothing: the name and
// descriptor alias b.
func WalkNotes(b []byte, fn func(Note) bool) error {
	le := binary.LittleEndian
	off := 0
	for count := 0; off+12 <= len(b); count++ {
		if count == MaxNotes {
			return &FormatError{Off: int64(off), Msg: fmt.Sprintf("more than %d notes; the rest are ignored", MaxNotes)}
		}
		namesz := int(le.Uint32(b[off:]))
		descsz := int(le.Uint32(b[off+4:]))
		typ := le.Uint32(b[off+8:])
		p := off + 12
		if namesz < 0 || namesz > len(b)-p {
			return &FormatError{Off: int64(off), Msg: fmt.Sprintf("note name size %d exceeds segment", namesz)}
		}
		name := b[p : p+namesz]
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		p += align4(namesz)
		if p > len(b) || descsz < 0 || descsz > len(b)-p {
			return &FormatError{Off: int64(off), Msg: fmt.Sprintf("note descriptor size %d exceeds segment", descsz)}
		}
		if !fn(Note{Name: noteName(name), Type: typ, Desc: b[p : p+descsz : p+descsz]}) {
			return nil
		}
		off = p + align4(descsz)
	}
	return nil
}

// noteName returns the name of a note without allocating for the names
// Linux writes.
func noteName(b []byte) string {
	switch string(b) {
	case "CORE":
		return "CORE"
	case "LINUX":
		return "LINUX"
	case "":
		return ""
	}
	if len(b) > 64 {
		b = b[:64]
	}
	return string(b)
}

func align4(n int) int { return (n + 3) &^ 3 }

// Regs are the general-purpose registers of one thread (struct user_regs_struct).
type Regs struct {
	R15, R14, R13, R12, Rbp, Rbx, R11, R10, R9, R8 uint64
	Rax, Rcx, Rdx, Rsi, Rdi, OrigRax, Rip, Cs      uint64
	Eflags, Rsp, Ss, FsBase, GsBase, Ds, Es, Fs    uint64
	Gs                                             uint64
}

// Registers returns the registers as a register set, all known.
func (r *Regs) Registers() crash.Registers {
	var s crash.Registers
	for _, v := range [...]struct {
		reg crash.Reg
		val uint64
	}{
		{crash.RegRAX, r.Rax}, {crash.RegRDX, r.Rdx}, {crash.RegRCX, r.Rcx}, {crash.RegRBX, r.Rbx},
		{crash.RegRSI, r.Rsi}, {crash.RegRDI, r.Rdi}, {crash.RegRBP, r.Rbp}, {crash.RegRSP, r.Rsp},
		{crash.RegR8, r.R8}, {crash.RegR9, r.R9}, {crash.RegR10, r.R10}, {crash.RegR11, r.R11},
		{crash.RegR12, r.R12}, {crash.RegR13, r.R13}, {crash.RegR14, r.R14}, {crash.RegR15, r.R15},
		{crash.RegRIP, r.Rip}, {crash.RegEflags, r.Eflags}, {crash.RegFSBase, r.FsBase},
		{crash.RegGSBase, r.GsBase}, {crash.RegOrigRAX, r.OrigRax},
	} {
		s.Set(v.reg, v.val)
	}
	return s
}

func decodeRegs(b []byte) Regs {
	le := binary.LittleEndian
	var v [27]uint64
	for i := range v {
		v[i] = le.Uint64(b[i*8:])
	}
	return Regs{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9],
		v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17],
		v[18], v[19], v[20], v[21], v[22], v[23], v[24], v[25], v[26]}
}

// Thread is one thread of the dumped process (one NT_PRSTATUS note).
type Thread struct {
	TID int
	// Signal is pr_cursig: the signal the thread was handling (0 for
	// threads that were merely stopped by the dump).
	Signal int
	Regs   Regs
}

// DecodePrstatus decodes an NT_PRSTATUS note (x86-64).
func DecodePrstatus(d []byte) (Thread, error) {
	if len(d) < regsOffset+27*8 {
		return Thread{}, fmt.Errorf("NT_PRSTATUS: %d bytes, want at least %d", len(d), regsOffset+27*8)
	}
	le := binary.LittleEndian
	return Thread{
		TID:    int(int32(le.Uint32(d[32:]))),
		Signal: int(int16(le.Uint16(d[12:]))),
		Regs:   decodeRegs(d[regsOffset:]),
	}, nil
}

// Siginfo is the NT_SIGINFO note: the signal that caused the dump.
type Siginfo struct {
	Signo, Errno, Code int
	// Addr is si_addr for SIGSEGV, SIGBUS, SIGILL, SIGFPE.
	Addr uint64
	// PID and UID are the sender for signals sent by a process.
	PID, UID int
	Present  bool
}

// DecodeSiginfo decodes an NT_SIGINFO note.
func DecodeSiginfo(d []byte) (Siginfo, error) {
	if len(d) < 24 {
		return Siginfo{}, fmt.Errorf("NT_SIGINFO: %d bytes, want at least 24", len(d))
	}
	le := binary.LittleEndian
	si := Siginfo{
		Signo:   int(int32(le.Uint32(d[0:]))),
		Errno:   int(int32(le.Uint32(d[4:]))),
		Code:    int(int32(le.Uint32(d[8:]))),
		Present: true,
	}
	switch {
	case signals.SentByProcess(si.Code): // SI_USER, SI_QUEUE, SI_TKILL...: sender pid/uid
		si.PID = int(int32(le.Uint32(d[16:])))
		si.UID = int(int32(le.Uint32(d[20:])))
	case signals.Signal(si.Signo).Fault():
		si.Addr = le.Uint64(d[16:])
	}
	return si, nil
}

// Psinfo is the NT_PRPSINFO note.
type Psinfo struct {
	State    byte
	UID, GID int
	PID      int
	PPID     int
	// Comm is the 15-character command name (pr_fname).
	Comm string
	// Args is the start of the command line (pr_psargs, at most 80 bytes).
	Args string
}

// DecodePrpsinfo decodes an NT_PRPSINFO note (x86-64).
func DecodePrpsinfo(d []byte) (Psinfo, error) {
	if len(d) < prpsinfoSize {
		return Psinfo{}, fmt.Errorf("NT_PRPSINFO: %d bytes, want %d", len(d), prpsinfoSize)
	}
	le := binary.LittleEndian
	return Psinfo{
		State: d[1],
		UID:   int(le.Uint32(d[16:])),
		GID:   int(le.Uint32(d[20:])),
		PID:   int(int32(le.Uint32(d[24:]))),
		PPID:  int(int32(le.Uint32(d[28:]))),
		Comm:  cstring(d[40:56]),
		Args:  cstring(d[56:136]),
	}, nil
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// maxPath bounds the length of a path from NT_FILE (PATH_MAX).
const maxPath = 4096

// FileMapping is one entry of the NT_FILE note: a file-backed mapping.
type FileMapping struct {
	Start, End uint64
	// Offset is the file offset in bytes (page offset * page size).
	Offset uint64
	Path   string
}

// DecodeFileNote decodes an NT_FILE note, bounding its entry count by
// the note's size.
func DecodeFileNote(d []byte) ([]FileMapping, error) {
	le := binary.LittleEndian
	if len(d) < 16 {
		return nil, fmt.Errorf("NT_FILE: %d bytes, want at least 16", len(d))
	}
	count := le.Uint64(d[0:])
	pageSize := le.Uint64(d[8:])
	if count > uint64(len(d)-16)/24 {
		return nil, fmt.Errorf("NT_FILE: %d entries do not fit in %d bytes", count, len(d))
	}
	if pageSize == 0 || pageSize > 1<<30 || pageSize&(pageSize-1) != 0 {
		return nil, fmt.Errorf("NT_FILE: implausible page size %d", pageSize)
	}
	var capped error
	if count > MaxFileEntries {
		capped = fmt.Errorf("NT_FILE: %d entries; only the first %d are read", count, MaxFileEntries)
	}
	n := int(min(count, MaxFileEntries))
	maps := make([]FileMapping, n)
	p := 16
	names := d[16+24*count:]
	for i := 0; i < n; i++ {
		maps[i] = FileMapping{Start: le.Uint64(d[p:]), End: le.Uint64(d[p+8:]), Offset: le.Uint64(d[p+16:]) * pageSize}
		p += 24
	}
	for i := 0; i < n; i++ {
		j := 0
		for j < len(names) && names[j] != 0 {
			j++
		}
		if j == len(names) && i < n-1 {
			return maps[:i], fmt.Errorf("NT_FILE: name table ends after %d of %d names", i, n)
		}
		name := names[:j]
		if len(name) > maxPath {
			name = name[:maxPath]
		}
		if i > 0 && string(name) == maps[i-1].Path {
			maps[i].Path = maps[i-1].Path // consecutive mappings of one file share the string
		} else {
			maps[i].Path = string(name)
		}
		if j < len(names) {
			names = names[j+1:]
		} else {
			names = nil
		}
	}
	return maps, capped
}

// Auxiliary vector keys used by coroner.
const (
	AT_PHDR         = 3
	AT_ENTRY        = 9
	AT_BASE         = 7
	AT_EXECFN       = 31
	AT_SYSINFO_EHDR = 33
)

// DecodeAuxv decodes an NT_AUXV note into key -> value.
func DecodeAuxv(d []byte) map[uint64]uint64 {
	le := binary.LittleEndian
	m := make(map[uint64]uint64)
	for p := 0; p+16 <= len(d); p += 16 {
		k, v := le.Uint64(d[p:]), le.Uint64(d[p+8:])
		if k == 0 {
			break
		}
		m[k] = v
	}
	return m
}

// FormatError reports malformed core data at a file offset.
type FormatError struct {
	Off int64
	Msg string
}

func (e *FormatError) Error() string { return fmt.Sprintf("core: %s at offset %#x", e.Msg, e.Off) }
