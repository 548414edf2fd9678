package liveproc

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// CoreStats says what WriteCore wrote.
type CoreStats struct {
	// Size is the file's size; Written the bytes of memory really written
	// (pages of zeros are left as holes: the file is sparse, like the
	// kernel's cores).
	Size, Written int64
	// Segments counts the PT_LOAD segments, Dumped those with contents.
	Segments, Dumped int
}

// WriteCore writes an ELF core of the snapshot to path, in the form the
// kernel writes one (NT_PRSTATUS per thread, NT_PRPSINFO, NT_AUXV,
// NT_FILE, one PT_LOAD per mapping), so that coroner and gdb read it like a
// kernel core of the process. What is dumped follows the kernel's default
// coredump_filter (0x33): private and shared anonymous memory, written
// pages of private file mappings, the first page of mapped ELF files (for
// their build-id); the code of mapped files is left to the files, as in a
// kernel core. The registers and private memory are those of the stop;
// shared memory (OPcache) is read now, while the process runs. The core
// has no NT_SIGINFO: no signal was involved.
func (p *Process) WriteCore(path string) (CoreStats, error) {
	var st CoreStats
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return st, fmt.Errorf("write core: %w", err)
	}
	cw := &coreWriter{p: p, f: f}
	err = cw.write(&st)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return st, fmt.Errorf("write core %s: %w", path, err)
	}
	return st, nil
}

type coreWriter struct {
	p *Process
	f *os.File
}

// segment is one PT_LOAD of the core.
type segment struct {
	m      *Mapping
	filesz uint64
	off    uint64
}

func (cw *coreWriter) write(st *CoreStats) error {
	p := cw.p
	var segs []segment
	for i := range p.maps {
		m := &p.maps[i]
		if m.Start >= 0xffffffffff600000 { // [vsyscall]: not part of the process's mappings in a core
			continue
		}
		segs = append(segs, segment{m: m, filesz: dumpSize(m, cw.elfHeader(m), cw.written(m))})
	}
	notes := cw.notes()
	const ehsize, phsize = 64, 56
	phnum := 1 + len(segs)
	noteOff := uint64(ehsize + phsize*phnum)
	off := align(noteOff+uint64(len(notes)), pageSize)
	for i := range segs {
		segs[i].off = off
		off += segs[i].filesz
	}
	st.Size = int64(off)
	st.Segments = len(segs)

	var hdr bytes.Buffer
	le := binary.LittleEndian
	eh := elf.Header64{
		Type: uint16(elf.ET_CORE), Machine: uint16(elf.EM_X86_64), Version: uint32(elf.EV_CURRENT),
		Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: uint16(phnum),
	}
	copy(eh.Ident[:], elf.ELFMAG)
	eh.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	eh.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	eh.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	_ = binary.Write(&hdr, le, &eh)
	_ = binary.Write(&hdr, le, &elf.Prog64{Type: uint32(elf.PT_NOTE), Off: noteOff, Filesz: uint64(len(notes)), Align: 4})
	for _, s := range segs {
		var flags elf.ProgFlag
		if s.m.Read {
			flags |= elf.PF_R
		}
		if s.m.Write {
			flags |= elf.PF_W
		}
		if s.m.Exec {
			flags |= elf.PF_X
		}
		_ = binary.Write(&hdr, le, &elf.Prog64{
			Type: uint32(elf.PT_LOAD), Flags: uint32(flags), Off: s.off, Vaddr: s.m.Start,
			Filesz: s.filesz, Memsz: s.m.End - s.m.Start, Align: pageSize,
		})
	}
	hdr.Write(notes)
	if _, err := cw.f.WriteAt(hdr.Bytes(), 0); err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for _, s := range segs {
		if s.filesz == 0 {
			continue
		}
		st.Dumped++
		n, err := cw.copySegment(s, buf)
		st.Written += n
		if err != nil {
			return err
		}
	}
	return cw.f.Truncate(int64(off))
}

// dumpSize is how many bytes of m the core holds (the kernel's
// vma_dump_size with coredump_filter 0x33); written says that the process
// wrote to some page of a private file mapping (relocations, RELRO).
func dumpSize(m *Mapping, elfHeader, written bool) uint64 {
	size := m.End - m.Start
	switch {
	case !m.Read || strings.HasPrefix(m.Path, "[vvar"):
		return 0
	case m.Path == "[vdso]":
		return size
	case m.Inode == 0 || anonymousShared(m):
		return size // anonymous, private or shared (OPcache's memory)
	case m.Shared:
		return 0 // a file mapped shared: its contents are the file's
	case m.Write || written:
		return size // .data, .bss, relocated RELRO: written pages of a private file mapping
	case elfHeader && m.Offset == 0:
		return pageSize // the ELF header page, for the build-id
	}
	return 0
}

// anonymousShared reports whether m is shared anonymous memory, which the
// kernel shows as a file: /dev/zero or a System V segment, both backed
// by shmem, or a memfd.
func anonymousShared(m *Mapping) bool {
	return strings.HasPrefix(m.Path, "/dev/zero") || strings.HasPrefix(m.Path, "/SYSV") ||
		strings.HasPrefix(m.Path, "/memfd:") || strings.HasPrefix(m.Path, "/anon_hugepage")
}

// pmFile is the pagemap bit of a page that is a file page or shared
// anonymous memory; a present private page without it is a copy the
// process wrote.
const pmFile = 1 << 61

// written reports whether a private file mapping holds pages the process
// wrote (the kernel dumps such a mapping whole: it has an anon_vma), from
// /proc/PID/pagemap.
func (cw *coreWriter) written(m *Mapping) bool {
	if m.Inode == 0 || m.Shared || !m.Read {
		return false
	}
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", cw.p.pid))
	if err != nil {
		return false
	}
	defer pm.Close()
	buf := make([]byte, 8*512)
	for a := m.Start; a < m.End; {
		n := min((m.End-a)/pageSize, 512)
		k, _ := pm.ReadAt(buf[:8*n], int64(a/pageSize*8))
		for i := 0; i+8 <= k; i += 8 {
			e := binary.LittleEndian.Uint64(buf[i:])
			if e&pmPresent != 0 && e&pmFile == 0 {
				return true
			}
		}
		a += n * pageSize
	}
	return false
}

// elfHeader reports whether the mapping starts with the ELF magic.
func (cw *coreWriter) elfHeader(m *Mapping) bool {
	if m.Offset != 0 || !m.Read {
		return false
	}
	var magic [4]byte
	if n, _ := cw.p.mem.ReadAt(magic[:], int64(m.Start)); n < 4 {
		return false
	}
	return string(magic[:]) == elf.ELFMAG
}

// copySegment writes the contents of one segment, leaving zero pages as
// holes. Anonymous private memory is what was copied during the stop
// (pages not present then are zero: untouched); shared memory is read
// from its shmem file where the kernel allows (/proc/PID/map_files: holes
// stay holes, nothing is allocated in the process), else live.
func (cw *coreWriter) copySegment(s segment, buf []byte) (int64, error) {
	m := s.m
	var written int64
	emit := func(data []byte, addr uint64) error {
		for i := 0; i < len(data); i += pageSize {
			end := i + pageSize
			if end > len(data) {
				end = len(data)
			}
			if allZero(data[i:end]) {
				continue
			}
			if _, err := cw.f.WriteAt(data[i:end], int64(s.off+addr-m.Start)+int64(i)); err != nil {
				return err
			}
			written += int64(end - i)
		}
		return nil
	}
	if m.Inode == 0 && !m.Shared {
		// Anonymous private memory: the copies taken during the stop;
		// without a copy of everything (Options.LiveMemory), also the
		// pages present now, read live (untouched pages are zeros: they
		// are not read, which would map them in the process).
		var runs [][2]uint64
		for _, fz := range cw.p.mem.frozen {
			lo, hi := max(fz.start, m.Start), min(fz.start+uint64(len(fz.data)), m.Start+s.filesz)
			if lo < hi {
				runs = append(runs, [2]uint64{lo, hi})
			}
		}
		if !cw.p.frozen {
			if pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", cw.p.pid)); err == nil {
				present, _ := presentRuns(pm, m.Start, m.Start+s.filesz)
				pm.Close()
				runs = append(runs, present...)
			}
		}
		for _, r := range runs {
			for a := r[0]; a < r[1]; {
				n := min(uint64(len(buf)), r[1]-a)
				chunk := buf[:n]
				if k, _ := cw.p.mem.ReadAt(chunk, int64(a)); k < len(chunk) {
					clear(chunk[k:])
				}
				if err := emit(chunk, a); err != nil {
					return written, err
				}
				a += n
			}
		}
		return written, nil
	}
	if m.Shared && anonymousShared(m) {
		if ok, err := cw.copyShmem(s, buf, emit); ok || err != nil {
			return written, err
		}
	}
	for a := m.Start; a < m.Start+s.filesz; {
		n := min(uint64(len(buf)), m.Start+s.filesz-a)
		chunk := buf[:n]
		if k, _ := cw.p.mem.ReadAt(chunk, int64(a)); k < len(chunk) {
			// Read page by page; unreadable pages stay holes (zeros).
			for i := uint64(0); i < n; i += pageSize {
				pg := chunk[i:min(i+pageSize, n)]
				if k, _ := cw.p.mem.readDirect(pg, a+i); k < len(pg) {
					clear(pg)
				}
			}
		}
		if err := emit(chunk, a); err != nil {
			return written, err
		}
		a += n
	}
	return written, nil
}

// copyShmem reads shared anonymous memory from its shmem file through
// /proc/PID/map_files, skipping holes with SEEK_DATA/SEEK_HOLE; it
// returns false when the file cannot be opened (not root).
func (cw *coreWriter) copyShmem(s segment, buf []byte, emit func([]byte, uint64) error) (bool, error) {
	m := s.m
	f, err := os.Open(fmt.Sprintf("/proc/%d/map_files/%x-%x", cw.p.pid, m.Start, m.End))
	if err != nil {
		return false, nil
	}
	defer f.Close()
	fd := int(f.Fd())
	base := int64(m.Offset)
	end := base + int64(s.filesz)
	for pos := base; pos < end; {
		data, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if err != nil || data >= end {
			break // ENXIO: no data after pos
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil || hole > end {
			hole = end
		}
		for a := data; a < hole; {
			n := min(int64(len(buf)), hole-a)
			k, rerr := f.ReadAt(buf[:n], a)
			if k > 0 {
				if err := emit(buf[:k], m.Start+uint64(a-base)); err != nil {
					return true, err
				}
			}
			if rerr != nil && rerr != io.EOF {
				return true, fmt.Errorf("read %s: %w", f.Name(), rerr)
			}
			if k == 0 {
				break
			}
			a += int64(k)
		}
		pos = hole
	}
	return true, nil
}

func allZero(b []byte) bool {
	for len(b) >= 8 {
		if binary.LittleEndian.Uint64(b) != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func align(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// notes builds the PT_NOTE segment.
func (cw *coreWriter) notes() []byte {
	p := cw.p
	var b bytes.Buffer
	for i, th := range p.threads {
		b.Write(note("CORE", elfcore.NT_PRSTATUS, prstatus(th, p)))
		if i == 0 {
			b.Write(note("CORE", elfcore.NT_PRPSINFO, prpsinfo(p)))
			b.Write(note("CORE", elfcore.NT_AUXV, p.auxvRaw))
			b.Write(note("CORE", elfcore.NT_FILE, fileNote(p.maps)))
		}
	}
	return b.Bytes()
}

func note(name string, typ uint32, desc []byte) []byte {
	var b bytes.Buffer
	le := binary.LittleEndian
	nb := append([]byte(name), 0)
	_ = binary.Write(&b, le, [3]uint32{uint32(len(nb)), uint32(len(desc)), typ})
	b.Write(nb)
	b.Write(make([]byte, align(uint64(len(nb)), 4)-uint64(len(nb))))
	b.Write(desc)
	b.Write(make([]byte, align(uint64(len(desc)), 4)-uint64(len(desc))))
	return b.Bytes()
}

// prstatus encodes struct elf_prstatus (x86-64, 336 bytes).
func prstatus(th elfcore.Thread, p *Process) []byte {
	d := make([]byte, 336)
	le := binary.LittleEndian
	le.PutUint32(d[32:], uint32(th.TID))
	le.PutUint32(d[36:], uint32(p.psinfo.PPID))
	r := th.Regs
	for i, v := range []uint64{r.R15, r.R14, r.R13, r.R12, r.Rbp, r.Rbx, r.R11, r.R10, r.R9, r.R8,
		r.Rax, r.Rcx, r.Rdx, r.Rsi, r.Rdi, r.OrigRax, r.Rip, r.Cs, r.Eflags, r.Rsp, r.Ss,
		r.FsBase, r.GsBase, r.Ds, r.Es, r.Fs, r.Gs} {
		le.PutUint64(d[112+8*i:], v)
	}
	return d
}

// prpsinfo encodes struct elf_prpsinfo (x86-64, 136 bytes).
func prpsinfo(p *Process) []byte {
	d := make([]byte, 136)
	le := binary.LittleEndian
	ps := p.psinfo
	d[1] = ps.State
	le.PutUint32(d[16:], uint32(ps.UID))
	le.PutUint32(d[20:], uint32(ps.GID))
	le.PutUint32(d[24:], uint32(ps.PID))
	le.PutUint32(d[28:], uint32(ps.PPID))
	copy(d[40:55], ps.Comm)
	copy(d[56:135], ps.Args)
	return d
}

// fileNote encodes NT_FILE: the file-backed mappings.
func fileNote(maps []Mapping) []byte {
	var ents, names bytes.Buffer
	le := binary.LittleEndian
	n := 0
	for _, m := range maps {
		if m.Inode == 0 || m.Path == "" {
			continue
		}
		_ = binary.Write(&ents, le, [3]uint64{m.Start, m.End, m.Offset / pageSize})
		names.WriteString(m.Path)
		if m.Deleted {
			names.WriteString(" (deleted)")
		}
		names.WriteByte(0)
		n++
	}
	var b bytes.Buffer
	_ = binary.Write(&b, le, [2]uint64{uint64(n), pageSize})
	b.Write(ents.Bytes())
	b.Write(names.Bytes())
	return b.Bytes()
}
