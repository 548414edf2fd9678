package coredumps

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"strings"

	"github.com/coroner-dev/coroner/internal/engine/symbols"
	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// Bounds on what is read of a core's notes.
const (
	maxNoteSize = 64 << 20 // bound on one PT_NOTE segment of a core
	// maxNoteSegments bounds the PT_NOTE segments read (Linux writes one).
	maxNoteSegments = 8
	// maxTIDs bounds the thread ids kept per core.
	maxTIDs = 4096
)

// CoreInfo is what a core's own ELF headers and notes say about the process.
type CoreInfo struct {
	PID, PPID, UID, GID int
	// TIDs are the threads of the process (NT_PRSTATUS), the thread that
	// dumped first: the kernel's segfault line names that thread, not the
	// process, when a thread other than the main one crashed.
	TIDs            []int
	Comm, Args      string
	Signal, SigCode int
	// Exe is the executable's path from NT_FILE (the mapping that holds the
	// entry point), "" when the core has no NT_FILE note.
	Exe string
	// ExeBuildID is the GNU build-id of the executable as dumped in the core
	// (its first page), "" when that page was not dumped.
	ExeBuildID string
	// ExpectedSize is the size the core must have to hold all its segments.
	ExpectedSize int64
	// Mappings are the file-backed mappings of NT_FILE.
	Mappings []FileMapping
}

// FileMapping is one entry of NT_FILE (offset in bytes).
type FileMapping = elfcore.FileMapping

// ReadCoreInfo reads the program headers and notes of an ELF core through
// r. It never reads the memory segments except the first page of the
// executable (for its build-id). A malformed core gives an error or, when
// the headers were readable, a partial CoreInfo with an error.
func ReadCoreInfo(r io.ReaderAt) (*CoreInfo, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, fmt.Errorf("read ELF header: %w", err)
	}
	if f.Type != elf.ET_CORE {
		return nil, fmt.Errorf("not a core file (ELF type %v)", f.Type)
	}
	if f.Class != elf.ELFCLASS64 || f.Data != elf.ELFDATA2LSB {
		return nil, fmt.Errorf("unsupported core: %v %v (only 64-bit little-endian)", f.Class, f.Data)
	}
	info := &CoreInfo{}
	var entry uint64
	var firstErr error
	for _, p := range f.Progs {
		if end := int64(p.Off + p.Filesz); end > info.ExpectedSize && p.Filesz > 0 {
			info.ExpectedSize = end
		}
	}
	noteSegs := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE {
			continue
		}
		if noteSegs++; noteSegs > maxNoteSegments {
			firstErr = fmt.Errorf("more than %d PT_NOTE segments", maxNoteSegments)
			break
		}
		if p.Filesz > maxNoteSize {
			firstErr = fmt.Errorf("PT_NOTE segment of %d bytes exceeds the %d-byte bound", p.Filesz, maxNoteSize)
			continue
		}
		buf, err := readUpTo(r, int64(p.Off), int64(p.Filesz))
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("read PT_NOTE at offset %d: %w", p.Off, err)
		}
		notes, err := elfcore.ParseNotes(buf)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		sawStatus := false
		for _, n := range notes {
			if n.Name != "CORE" {
				continue
			}
			switch n.Type {
			case elfcore.NT_PRPSINFO:
				if ps, err := elfcore.DecodePrpsinfo(n.Desc); err == nil {
					info.UID, info.GID, info.PID, info.PPID = ps.UID, ps.GID, ps.PID, ps.PPID
					info.Comm, info.Args = ps.Comm, strings.TrimRight(ps.Args, " ")
				}
			case elfcore.NT_SIGINFO:
				if si, err := elfcore.DecodeSiginfo(n.Desc); err == nil {
					info.Signal, info.SigCode = si.Signo, si.Code
				}
			case elfcore.NT_PRSTATUS:
				th, err := elfcore.DecodePrstatus(n.Desc)
				if err != nil {
					continue
				}
				if len(info.TIDs) < maxTIDs {
					info.TIDs = append(info.TIDs, th.TID)
				}
				if !sawStatus {
					sawStatus = true
					if info.Signal == 0 {
						info.Signal = th.Signal
					}
					if info.PID == 0 {
						info.PID = th.TID
					}
				}
			case elfcore.NT_AUXV:
				entry = elfcore.DecodeAuxv(n.Desc)[elfcore.AT_ENTRY]
			case elfcore.NT_FILE:
				m, err := elfcore.DecodeFileNote(n.Desc)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				info.Mappings = m
			}
		}
	}
	info.Exe = exeMapping(info.Mappings, entry)
	if info.Exe != "" {
		info.ExeBuildID = dumpedBuildID(r, f.Progs, info.Mappings, info.Exe)
	}
	return info, firstErr
}

// ReadCoreInfoFile is ReadCoreInfo on a plain core file; it also reports
// whether the file is shorter than its program headers say (truncated).
func ReadCoreInfoFile(path string) (info *CoreInfo, size int64, err error) {
	f, err := regular.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	info, err = ReadCoreInfo(f)
	if err != nil {
		err = fmt.Errorf("read core %s: %w", path, err)
	}
	return info, st.Size(), err
}

// readUpTo reads n bytes at off in chunks, so that a size field larger than
// the file does not allocate more than the file holds.
func readUpTo(r io.ReaderAt, off, n int64) ([]byte, error) {
	out := make([]byte, 0, min(n, 64<<10))
	for int64(len(out)) < n {
		if len(out) == cap(out) {
			out = append(out, make([]byte, min(n-int64(len(out)), int64(cap(out)), 1<<20))...)[:len(out)]
		}
		buf := out[len(out):min(int64(cap(out)), n)]
		m, err := r.ReadAt(buf, off+int64(len(out)))
		out = out[:len(out)+m]
		if err != nil && int64(len(out)) < n {
			return out, err
		}
	}
	return out, nil
}

// exeMapping names the file mapped at the entry point, else the file of the
// lowest mapping (the executable in every Linux layout).
func exeMapping(maps []FileMapping, entry uint64) string {
	if len(maps) == 0 {
		return ""
	}
	for _, m := range maps {
		if entry >= m.Start && entry < m.End {
			return m.Path
		}
	}
	lowest := maps[0]
	for _, m := range maps[1:] {
		if m.Start < lowest.Start {
			lowest = m
		}
	}
	return lowest.Path
}

// dumpedBuildID reads the build-id of the file mapped at offset 0 of path
// from the core's dump of that page (the kernel dumps the first page of ELF
// mappings by default, coredump_filter bit 4).
func dumpedBuildID(r io.ReaderAt, progs []*elf.Prog, maps []FileMapping, path string) string {
	var start uint64
	found := false
	for _, m := range maps {
		if m.Path == path && m.Offset == 0 && (!found || m.Start < start) {
			start, found = m.Start, true
		}
	}
	if !found {
		return ""
	}
	var seg *elf.Prog
	for _, p := range progs {
		if p.Type == elf.PT_LOAD && start >= p.Vaddr && start < p.Vaddr+p.Filesz {
			seg = p
		}
	}
	if seg == nil {
		return ""
	}
	avail := seg.Vaddr + seg.Filesz - start
	base := int64(seg.Off + (start - seg.Vaddr))
	readAt := func(off, n uint64) []byte {
		if off > avail || n > avail-off || n > 1<<20 {
			return nil
		}
		b := make([]byte, n)
		if _, err := r.ReadAt(b, base+int64(off)); err != nil {
			return nil
		}
		return b
	}
	return buildIDFromImage(readAt)
}

// buildIDFromImage finds NT_GNU_BUILD_ID through the program headers of an
// ELF64 image read with readAt (offsets relative to the image start).
func buildIDFromImage(readAt func(off, n uint64) []byte) string {
	h := readAt(0, 64)
	if h == nil || !bytes.HasPrefix(h, []byte("\x7fELF")) || h[4] != 2 || h[5] != 1 {
		return ""
	}
	le := binary.LittleEndian
	phoff := le.Uint64(h[32:])
	phentsize := uint64(le.Uint16(h[54:]))
	phnum := uint64(le.Uint16(h[56:]))
	if phentsize < 56 || phnum > 256 {
		return ""
	}
	ph := readAt(phoff, phentsize*phnum)
	if ph == nil {
		return ""
	}
	for i := uint64(0); i < phnum; i++ {
		p := ph[i*phentsize:]
		if le.Uint32(p) != uint32(elf.PT_NOTE) {
			continue
		}
		off, size := le.Uint64(p[8:]), le.Uint64(p[32:])
		if size > 1<<16 {
			continue
		}
		if id := symbols.BuildIDFromNotes(readAt(off, size)); id != "" {
			return id
		}
	}
	return ""
}

// FileBuildID returns the GNU build-id of the ELF file at path ("" when it has none).
func FileBuildID(path string) (string, error) {
	f, err := regular.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	size := uint64(st.Size())
	id := buildIDFromImage(func(off, n uint64) []byte {
		if off > size || n > size-off || n > 1<<20 {
			return nil
		}
		b := make([]byte, n)
		if _, err := f.ReadAt(b, int64(off)); err != nil {
			return nil
		}
		return b
	})
	return id, nil
}
