// Package elfcore reads Linux x86-64 ELF core files: the threads and their
// registers, the signal, the mapped files, the auxiliary vector and the
// dumped process's memory. Memory that the kernel did not dump (read-only
// text of mapped files) is read from the files on disk, optionally below a
// sysroot. Like debug/elf, it reads lazily: a 200 MB core is memory-mapped,
// never loaded whole.
package elfcore

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/coroner-dev/coroner/internal/regular"
)

// Options tune how a core is opened.
type Options struct {
	// Sysroot is prepended to the paths of mapped files when their
	// contents are read from disk (for analysing a core on another host).
	Sysroot string
	// Exe overrides the path of the main executable.
	Exe string
	// Name is how errors name the core (the file the user named, when
	// path is a decompressed copy); "" means path.
	Name string
	// Stop, when it returns an error, makes every read of the process's
	// memory fail with it: an analysis whose budget is used up ends
	// quickly, with what it found so far.
	Stop func() error
	// LeaveMapped makes Close leave the core and the files read for it
	// memory-mapped (their descriptors are closed): for a process that
	// exits after one analysis, whose exit drops every mapping at once.
	// Unmapping them one by one, each with a TLB shootdown on the other
	// processors running the process's threads, cost 3-6 ms of a 70 ms
	// analysis of a php-fpm core.
	LeaveMapped bool
}

// Mapping is one memory area of the process (one PT_LOAD segment), with the
// file that backs it when NT_FILE names one.
type Mapping struct {
	Start, End uint64
	// Offset is the offset in Path of Start.
	Offset            uint64
	Path              string
	Read, Write, Exec bool
	// Dumped is the number of bytes of the mapping present in the core.
	Dumped uint64
	// Cut is the number of bytes the core should hold after Dumped but
	// lost because the file is truncated: that memory is unknown (it is
	// not read from the mapped file either, which may differ).
	Cut uint64
	// Deleted is true when the kernel marked the file "(deleted)".
	Deleted bool

	fileOff uint64 // offset of the dumped bytes in the core file
}

// Contains reports whether addr lies in the mapping.
func (m *Mapping) Contains(addr uint64) bool { return addr >= m.Start && addr < m.End }

// Perm formats the permissions like /proc/PID/maps ("r-xp").
func (m *Mapping) Perm() string {
	b := []byte("---p")
	if m.Read {
		b[0] = 'r'
	}
	if m.Write {
		b[1] = 'w'
	}
	if m.Exec {
		b[2] = 'x'
	}
	return string(b)
}

// File is an open core file.
type File struct {
	path     string
	name     string // for errors
	size     int64
	f        *os.File
	data     []byte // mmapped core, or nil
	opts     Options
	mappings []Mapping
	threads  []Thread
	siginfo  Siginfo
	psinfo   Psinfo
	auxv     map[uint64]uint64
	files    []FileMapping
	warnings []string
	exe      string
	// truncated: a PT_LOAD segment lies (partly) past the end of the file;
	// expected is the size the file must have to hold every segment.
	truncated bool
	expected  int64

	mu      sync.Mutex // guards backing and files: File is safe for concurrent reads
	backing map[string]*backingFile
	// hostFiles, when set (SetFiles), says which file of this host holds
	// each mapped path, "" for none.
	hostFiles map[string]string
}

// backingFile is a file a core maps, read for the memory the core did not
// dump. The first reads are pread(2)s; after backingReadsBeforeMap of them
// the file is mapped. An analysis reads a few bytes from most mapped files
// (an extension's name, a build-id note: 89 reads in 23 files for a
// php-fpm core) and a pread costs ~2 µs where a mapping and its first page
// fault cost ~25 µs on a virtual machine; a file read more often is worth
// mapping.
type backingFile struct {
	f     *os.File
	size  int64
	reads atomic.Int32
	// mapOnce maps the file once; data is the mapping (nil before, or
	// when mapping failed: reads stay preads).
	mapOnce sync.Once
	data    []byte
	mapped  atomic.Bool
	err     error
}

// backingReadsBeforeMap is how many reads of a backing file are preads.
const backingReadsBeforeMap = 32

// readAt reads the file at off into p (preads first, then the mapping).
func (b *backingFile) readAt(p []byte, off uint64) int {
	if !b.mapped.Load() && b.reads.Add(1) > backingReadsBeforeMap && b.size > 0 {
		b.mapOnce.Do(func() {
			if d, err := mmapFile(b.f, b.size); err == nil {
				b.data = d
			}
			b.mapped.Store(true)
		})
	}
	if b.mapped.Load() && b.data != nil {
		if off < uint64(len(b.data)) {
			return copy(p, b.data[off:])
		}
		return 0
	}
	if off > math.MaxInt64 {
		return 0
	}
	k, _ := b.f.ReadAt(p, int64(off))
	return k
}

func (b *backingFile) close(unmap bool) {
	b.mapOnce.Do(func() { b.mapped.Store(true) }) // no mapping after this
	if b.data != nil {
		if unmap {
			munmap(b.data)
		}
		b.data = nil
	}
	if b.f != nil {
		b.f.Close()
		b.f = nil
	}
}

// errNoFile is why memory of a mapped file is not read from disk when no
// file of this host is the one the process mapped (SetFiles).
var errNoFile = errors.New("no file of this host has the build-id the process mapped")

// Open opens the core file at path.
func Open(path string) (*File, error) { return OpenWithOptions(path, Options{}) }

// OpenWithOptions opens the core file at path with options.
func OpenWithOptions(path string, opts Options) (*File, error) {
	f, err := regular.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open core: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat core: %w", err)
	}
	c := &File{path: path, name: opts.Name, size: st.Size(), f: f, opts: opts, backing: map[string]*backingFile{}}
	if c.name == "" {
		c.name = path
	}
	if st.Mode().IsRegular() && st.Size() > 0 {
		c.data, _ = mmapFile(f, st.Size()) // fall back to pread when mmap fails
	}
	if err := c.load(); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close releases the core and any mapped files opened to read memory.
func (c *File) Close() error {
	for _, b := range c.backing {
		b.close(!c.opts.LeaveMapped)
	}
	if c.data != nil {
		if !c.opts.LeaveMapped {
			munmap(c.data)
		}
		c.data = nil
	}
	return c.f.Close()
}

// readCore reads from the core file itself.
func (c *File) readCore(p []byte, off int64) (int, error) {
	if c.data != nil {
		if off < 0 || off >= int64(len(c.data)) {
			return 0, io.EOF
		}
		n := copy(p, c.data[off:])
		if n < len(p) {
			return n, io.EOF
		}
		return n, nil
	}
	return c.f.ReadAt(p, off)
}

type coreReader struct{ c *File }

func (r coreReader) ReadAt(p []byte, off int64) (int, error) { return r.c.readCore(p, off) }

func (c *File) load() error {
	ef, err := elf.NewFile(coreReader{c})
	if err != nil {
		return fmt.Errorf("read ELF header of %s: %w", c.name, err)
	}
	if ef.Type != elf.ET_CORE {
		return fmt.Errorf("%s is an ELF %s, not a core file", c.name, ef.Type)
	}
	if ef.Machine != elf.EM_X86_64 || ef.Class != elf.ELFCLASS64 {
		return fmt.Errorf("%s: unsupported core machine %s/%s (only x86-64 is supported)", c.name, ef.Machine, ef.Class)
	}
	noteBudget := int64(MaxNoteBytes)
	var cutSegs, missingSegs, wrapping int // segments cut short, missing, with a wrapping size
	var cutBytes uint64
	for _, p := range ef.Progs {
		if end := p.Off + p.Filesz; p.Filesz > 0 && end >= p.Off && int64(end) > c.expected {
			c.expected = int64(end)
		}
		switch p.Type {
		case elf.PT_LOAD:
			m := Mapping{
				Start: p.Vaddr, End: p.Vaddr + p.Memsz, Dumped: p.Filesz, fileOff: p.Off,
				Read: p.Flags&elf.PF_R != 0, Write: p.Flags&elf.PF_W != 0, Exec: p.Flags&elf.PF_X != 0,
			}
			if m.End < m.Start {
				wrapping++
				continue
			}
			if m.Dumped > p.Memsz {
				m.Dumped = p.Memsz
			}
			size := uint64(c.size)
			if m.Dumped > 0 && p.Off >= size {
				m.Dumped, m.Cut = 0, m.Dumped
				missingSegs++
			} else if m.Dumped > size-p.Off {
				m.Cut = m.Dumped - (size - p.Off)
				m.Dumped = size - p.Off
				cutSegs++
			}
			if m.Cut > 0 {
				c.truncated = true
				cutBytes += m.Cut
			}
			c.mappings = append(c.mappings, m)
		case elf.PT_NOTE:
			c.readNotes(p, &noteBudget)
		}
	}
	if wrapping > 0 {
		c.warn("%d PT_LOAD segments have a wrapping size; ignored", wrapping)
	}
	if c.truncated {
		// One statement, not one per segment (a cut 200 MB core has
		// hundreds).
		c.warn("core is truncated: the file has %d of the %d bytes its program headers describe; %d memory segments are missing and %d cut short (%d bytes of memory lost)",
			c.size, c.expected, missingSegs, cutSegs, cutBytes)
	}
	sort.Slice(c.mappings, func(i, j int) bool { return c.mappings[i].Start < c.mappings[j].Start })
	if len(c.files) == 0 && len(c.mappings) > 0 {
		fm, err := c.filesFromLinkMap()
		if err != nil {
			c.warn("core has no NT_FILE note and the dynamic linker's list could not be read: %v; libraries are unknown", err)
		} else {
			c.warn("core has no NT_FILE note (written by gdb's gcore?): mapped files were taken from the dynamic linker's list")
		}
		c.files = fm
	}
	c.attachFiles()
	c.addUndumpedFiles()
	c.exe = c.findExe()
	if len(c.threads) == 0 {
		c.warn("core has no NT_PRSTATUS note: no threads or registers")
	}
	return nil
}

// readNotes decodes the notes of one PT_NOTE segment, reading at most
// what the file holds and what is left of budget (MaxNoteBytes for all
// segments together).
func (c *File) readNotes(p *elf.Prog, budget *int64) {
	size := p.Filesz
	if p.Off > uint64(c.size) {
		c.truncated = true
		c.warn("core is truncated: note segment at offset %d starts past the end of the file", p.Off)
		return
	}
	if avail := uint64(c.size) - p.Off; size > avail {
		c.truncated = true
		c.warn("core is truncated: note segment has %d of %d bytes", avail, size)
		size = avail
	}
	if size > uint64(*budget) {
		c.warn("PT_NOTE of %d bytes is more than the %d bytes of notes read from a core; only the start is read", p.Filesz, MaxNoteBytes)
		size = uint64(*budget)
	}
	*budget -= int64(size)
	var buf []byte
	if c.data != nil {
		buf = c.data[p.Off : p.Off+size : p.Off+size] // no copy of a mapped core
	} else {
		buf = make([]byte, size)
		n, err := c.readCore(buf, int64(p.Off))
		if err != nil && n < len(buf) {
			c.warn("read note segment: %v", err)
			buf = buf[:n]
		}
	}
	threads := 0
	err := WalkNotes(buf, func(n Note) bool {
		if n.Name != "CORE" && n.Name != "LINUX" {
			return true
		}
		if n.Type == NT_PRSTATUS {
			if threads++; len(c.threads) >= MaxThreads {
				return true // counted, not decoded
			}
		}
		c.decodeNote(n)
		return true
	})
	if err != nil {
		c.warn("read notes: %v", err)
	}
	if len(c.threads) >= MaxThreads && threads > len(c.threads) {
		c.warn("core has %d threads; only the first %d are read (the thread that caused the dump comes first)", threads, MaxThreads)
	}
}

func (c *File) decodeNote(n Note) {
	switch n.Type {
	case NT_PRSTATUS:
		t, err := DecodePrstatus(n.Desc)
		if err != nil {
			c.warn("%v", err)
			return
		}
		c.threads = append(c.threads, t)
	case NT_PRPSINFO:
		ps, err := DecodePrpsinfo(n.Desc)
		if err != nil {
			c.warn("%v", err)
			return
		}
		c.psinfo = ps
	case NT_SIGINFO:
		si, err := DecodeSiginfo(n.Desc)
		if err != nil {
			c.warn("%v", err)
			return
		}
		if !c.siginfo.Present {
			c.siginfo = si
		}
	case NT_AUXV:
		c.auxv = DecodeAuxv(n.Desc)
	case NT_FILE:
		fm, err := DecodeFileNote(n.Desc)
		if err != nil {
			c.warn("%v", err)
		}
		c.files = fm
	}
}

// attachFiles names the PT_LOAD mappings from the NT_FILE note.
func (c *File) attachFiles() {
	for _, fm := range c.files {
		i := sort.Search(len(c.mappings), func(i int) bool { return c.mappings[i].End > fm.Start })
		for ; i < len(c.mappings) && c.mappings[i].Start < fm.End; i++ {
			m := &c.mappings[i]
			if m.Start < fm.Start || m.End > fm.End {
				continue
			}
			m.Path = fm.Path
			m.Offset = fm.Offset + (m.Start - fm.Start)
			if strings.HasSuffix(m.Path, " (deleted)") {
				m.Path = strings.TrimSuffix(m.Path, " (deleted)")
				m.Deleted = true
			}
		}
	}
}

// addUndumpedFiles adds mappings for NT_FILE entries that have no PT_LOAD
// segment at all (gdb's gcore leaves read-only file mappings out of the
// core): their contents are read from the file, their permissions from the
// file's program headers.
func (c *File) addUndumpedFiles() {
	var extra []Mapping
	type perms struct{ write, exec map[uint64]bool }
	byPath := map[string]*perms{}
	opened := 0
	for _, fm := range c.files {
		i := sort.Search(len(c.mappings), func(i int) bool { return c.mappings[i].End > fm.Start })
		if i < len(c.mappings) && c.mappings[i].Start < fm.End {
			continue // (partly) present in the core
		}
		m := Mapping{Start: fm.Start, End: fm.End, Offset: fm.Offset, Path: fm.Path, Read: true}
		if strings.HasSuffix(m.Path, " (deleted)") {
			m.Path = strings.TrimSuffix(m.Path, " (deleted)")
			m.Deleted = true
		}
		pp, ok := byPath[m.Path]
		if !ok && opened < MaxObjects {
			// The permissions of each segment of the file, read once per file.
			opened++
			pp = &perms{write: map[uint64]bool{}, exec: map[uint64]bool{}}
			if ef, err := regular.OpenELF(c.HostPath(m.Path)); err == nil {
				for _, p := range ef.Progs {
					if p.Type == elf.PT_LOAD {
						pp.write[p.Off&^0xfff] = p.Flags&elf.PF_W != 0
						pp.exec[p.Off&^0xfff] = p.Flags&elf.PF_X != 0
					}
				}
				ef.Close()
			}
			byPath[m.Path] = pp
		}
		if pp != nil {
			m.Write, m.Exec = pp.write[fm.Offset], pp.exec[fm.Offset]
		}
		extra = append(extra, m)
	}
	if len(extra) == 0 {
		return
	}
	c.warn("%d file mappings are not in the core (written by gdb's gcore?); their contents are read from the files", len(extra))
	if opened == MaxObjects {
		c.warn("the core maps more than %d files; the permissions of the others are unknown", MaxObjects)
	}
	c.mappings = append(c.mappings, extra...)
	sort.Slice(c.mappings, func(i, j int) bool { return c.mappings[i].Start < c.mappings[j].Start })
}

// findExe returns the path of the main executable as the dumped process
// saw it (HostPath maps it to --exe).
func (c *File) findExe() string {
	if entry, ok := c.auxv[AT_ENTRY]; ok {
		if m := c.Mapping(entry); m != nil && m.Path != "" {
			return m.Path
		}
	}
	if phdr, ok := c.auxv[AT_PHDR]; ok {
		if m := c.Mapping(phdr); m != nil && m.Path != "" {
			return m.Path
		}
	}
	if len(c.files) > 0 {
		return c.files[0].Path
	}
	return c.opts.Exe
}

func (c *File) warn(format string, args ...any) {
	c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
}

// Name returns how errors name the core (Options.Name, else its path).
func (c *File) Name() string { return c.name }

// Path returns the path the core was opened from.
func (c *File) Path() string { return c.path }

// Size returns the size of the core file in bytes.
func (c *File) Size() int64 { return c.size }

// Warnings returns problems found while reading the core (truncation,
// malformed notes); the rest of the core is still usable.
func (c *File) Warnings() []string { return append([]string(nil), c.warnings...) }

// Truncated reports whether the file ends before the memory it says it
// holds: the dump was cut short (RLIMIT_CORE, a full disk, a size limit of
// the core handler) and some memory reads as missing.
func (c *File) Truncated() bool { return c.truncated }

// ExpectedSize is the size the file must have to hold every segment its
// program headers describe (more than Size when Truncated).
func (c *File) ExpectedSize() int64 { return c.expected }

// Mappings returns the memory areas of the process, sorted by address.
func (c *File) Mappings() []Mapping { return c.mappings }

// Files returns the NT_FILE entries (file-backed mappings) as the kernel wrote them.
func (c *File) Files() []FileMapping { return c.files }

// Mapping returns the mapping containing addr, or nil.
func (c *File) Mapping(addr uint64) *Mapping {
	i := sort.Search(len(c.mappings), func(i int) bool { return c.mappings[i].End > addr })
	if i < len(c.mappings) && c.mappings[i].Start <= addr {
		return &c.mappings[i]
	}
	return nil
}

// Threads returns the threads; the first is the one that caused the dump.
func (c *File) Threads() []Thread { return c.threads }

// Crashed returns the thread that received the fatal signal, or nil when
// the core has no threads.
func (c *File) Crashed() *Thread {
	for i := range c.threads {
		if c.siginfo.Present && c.threads[i].Signal == c.siginfo.Signo && c.threads[i].Signal != 0 {
			return &c.threads[i]
		}
	}
	if len(c.threads) > 0 {
		return &c.threads[0]
	}
	return nil
}

// Signal returns NT_SIGINFO, or the current signal of the first thread when
// the core has no NT_SIGINFO note (Present is then false).
func (c *File) Signal() Siginfo {
	if c.siginfo.Present {
		return c.siginfo
	}
	if len(c.threads) > 0 {
		return Siginfo{Signo: c.threads[0].Signal}
	}
	return Siginfo{}
}

// Process returns NT_PRPSINFO.
func (c *File) Process() Psinfo { return c.psinfo }

// Auxv returns the auxiliary vector (key -> value).
func (c *File) Auxv() map[uint64]uint64 { return c.auxv }

// Executable returns the path of the main executable as mapped.
func (c *File) Executable() string { return c.exe }

// SetFiles says which file of this host holds each file the process
// mapped, overriding the sysroot and the executable override for the paths
// it names. An empty value means that no file here is the one the process
// ran (another build of it, or none): HostPath returns "" for it and its
// memory that the core did not dump reads as missing, never as the bytes
// of another file. Call it before reading memory; later calls replace the
// mapping and forget the files already opened.
func (c *File) SetFiles(files map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, b := range c.backing {
		if b.f != nil {
			b.close(true)
		}
	}
	c.backing = map[string]*backingFile{}
	c.hostFiles = files
}

// HostPath maps a path of the dumped process to a path on this host,
// applying the files given to SetFiles, the sysroot and the executable
// override; "" means that no file of this host holds it.
func (c *File) HostPath(p string) string {
	c.mu.Lock()
	hp, ok := c.hostFiles[p]
	c.mu.Unlock()
	if ok {
		return hp
	}
	return c.hostPath(p)
}

func (c *File) hostPath(p string) string {
	if c.opts.Exe != "" && p == c.exe {
		return c.opts.Exe
	}
	if p == "" {
		return p
	}
	return regular.Within(c.opts.Sysroot, p)
}

// ErrNotDumped is returned for memory that is neither in the core nor in a
// readable mapped file.
var ErrNotDumped = errors.New("memory not in core")

// ReadAt reads the process's virtual memory at addr into p (io.ReaderAt).
// Bytes missing from the core are read from the mapped file on disk.
func (c *File) ReadAt(p []byte, addr int64) (int, error) {
	if c.opts.Stop != nil {
		if err := c.opts.Stop(); err != nil {
			return 0, err
		}
	}
	n := 0
	for n < len(p) {
		a := uint64(addr) + uint64(n)
		m := c.Mapping(a)
		if m == nil {
			return n, fmt.Errorf("read %#x: %w (unmapped)", a, ErrNotDumped)
		}
		want := p[n:]
		if rem := m.End - a; uint64(len(want)) > rem {
			want = want[:rem]
		}
		k, err := c.readMapping(m, want, a)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (c *File) readMapping(m *Mapping, p []byte, a uint64) (int, error) {
	rel := a - m.Start
	n := 0
	if rel < m.Dumped {
		want := p
		if rem := m.Dumped - rel; uint64(len(want)) > rem {
			want = want[:rem]
		}
		k, err := c.readCore(want, int64(m.fileOff+rel))
		n += k
		if k < len(want) {
			return n, fmt.Errorf("read %#x from core: %w", a, err)
		}
		if n == len(p) {
			return n, nil
		}
	}
	// Memory the core should hold but lost to truncation is unknown: the
	// file on disk has the initial contents of a writable mapping, not
	// the process's.
	if m.Cut > 0 && rel+uint64(n) < m.Dumped+m.Cut && (m.Write || m.Path == "") {
		return n, fmt.Errorf("read %#x: %w (cut: the core is truncated)", a+uint64(n), ErrNotDumped)
	}
	// The rest is not in the core: read it from the mapped file.
	if m.Path == "" || strings.HasPrefix(m.Path, "[") {
		return n, fmt.Errorf("read %#x: %w (anonymous memory not dumped)", a+uint64(n), ErrNotDumped)
	}
	b := c.backingFile(m.Path)
	if b.err != nil {
		return n, fmt.Errorf("read %#x from %s: %w", a+uint64(n), m.Path, b.err)
	}
	off := m.Offset + rel + uint64(n)
	k := b.readAt(p[n:], off)
	// Bytes past the end of the file inside the mapping read as zero
	// (the kernel maps them as a zero-filled tail page).
	for i := n + k; i < len(p); i++ {
		p[i] = 0
	}
	return len(p), nil
}

func (c *File) backingFile(path string) *backingFile {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.backing[path]; ok {
		return b
	}
	b := &backingFile{}
	c.backing[path] = b
	if len(c.backing) > MaxObjects {
		b.err = fmt.Errorf("more than %d mapped files read", MaxObjects)
		return b
	}
	hp, ok := c.hostFiles[path]
	if !ok {
		hp = c.hostPath(path)
	}
	if hp == "" {
		b.err = errNoFile
		return b
	}
	f, err := regular.Open(hp)
	if err != nil {
		b.err = err
		return b
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		b.err = err
		return b
	}
	if !readableBacking(f, st) {
		f.Close()
		b.err = errors.New("neither an ELF file nor readable by everyone: not read on behalf of a core")
		return b
	}
	b.f, b.size = f, st.Size()
	return b
}

// readableBacking reports whether a file may serve as the contents of a
// mapping a core names: an ELF file (the text the kernel does not dump),
// or a file everyone may read. A crafted core could otherwise name a
// private file (/etc/shadow) as mapped memory and have its contents shown
// as strings of the crashed process.
func readableBacking(f *os.File, st os.FileInfo) bool {
	if st.Mode().Perm()&0o004 != 0 {
		return true
	}
	var magic [4]byte
	n, _ := f.ReadAt(magic[:], 0)
	return n == 4 && string(magic[:]) == "\x7fELF"
}

// ReadUint64 reads a little-endian 64-bit word at addr.
func (c *File) ReadUint64(addr uint64) (uint64, error) {
	if c.opts.Stop != nil {
		if err := c.opts.Stop(); err != nil {
			return 0, err
		}
	}
	var b [8]byte
	if m := c.Mapping(addr); m != nil && c.data != nil {
		rel := addr - m.Start
		if rel+8 <= m.Dumped && rel+8 <= m.End-m.Start {
			off := m.fileOff + rel
			if off+8 <= uint64(len(c.data)) {
				d := c.data[off : off+8]
				return uint64(d[0]) | uint64(d[1])<<8 | uint64(d[2])<<16 | uint64(d[3])<<24 |
					uint64(d[4])<<32 | uint64(d[5])<<40 | uint64(d[6])<<48 | uint64(d[7])<<56, nil
			}
		}
	}
	if _, err := c.ReadAt(b[:], int64(addr)); err != nil {
		return 0, err
	}
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56, nil
}

// ReadDumped reads process memory at addr only from the core itself, never
// from files on disk: what the process really had (for build-ids, and to
// detect files changed since the crash).
func (c *File) ReadDumped(p []byte, addr uint64) (int, error) {
	if c.opts.Stop != nil {
		if err := c.opts.Stop(); err != nil {
			return 0, err
		}
	}
	m := c.Mapping(addr)
	if m == nil {
		return 0, fmt.Errorf("read %#x: %w (unmapped)", addr, ErrNotDumped)
	}
	rel := addr - m.Start
	if rel >= m.Dumped {
		return 0, fmt.Errorf("read %#x: %w", addr, ErrNotDumped)
	}
	want := p
	if rem := m.Dumped - rel; uint64(len(want)) > rem {
		want = want[:rem]
	}
	n, err := c.readCore(want, int64(m.fileOff+rel))
	if n < len(p) && err == nil {
		err = fmt.Errorf("read %#x: %w (only %d of %d bytes in core)", addr, ErrNotDumped, n, len(p))
	}
	return n, err
}
