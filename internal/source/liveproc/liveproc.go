// Package liveproc reads a running Linux x86-64 process the way package
// elfcore reads a core file: threads with their registers, the mapped
// files, the auxiliary vector and the process's memory, behind the same
// methods, so that the analysis (unwinding, symbols, the PHP runtime)
// runs unchanged on a process that is still alive (Delve's proc/core and
// proc/native are the model).
//
// Attach stops the process only briefly: every thread is stopped with
// PTRACE_SEIZE + PTRACE_INTERRUPT (no SIGSTOP is sent, a blocking system
// call is restarted afterwards), its registers are read with
// PTRACE_GETREGS, the process's private writable memory (stacks, heap,
// the PHP VM stack and executor globals) is copied with process_vm_readv,
// and every thread is detached. What was not copied (shared memory such as
// OPcache's, the code of mapped files) is read live afterwards. The pause
// is measured (Process.Pause) and no thread is ever left stopped: the
// tracing runs on an OS thread of its own that ends with it, and the
// kernel releases whatever that thread still traced when it ends.
//
// Process also writes an ELF core of what it read (WriteCore), which
// elfcore, coroner and gdb read like one the kernel wrote.
package liveproc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// Options tune Attach.
type Options struct {
	// LiveMemory copies only the used part of each thread's stack while
	// the process is stopped (what unwinding needs to agree with the
	// registers); the rest of its memory is read afterwards, while it runs
	// on, so its PHP state may have moved on a little from the registers.
	LiveMemory bool
	// MaxFrozen bounds the private memory copied while stopped (default
	// 256 MiB); mappings beyond it are read live.
	MaxFrozen int64
}

// maxFrozenDefault is Options.MaxFrozen's default.
const maxFrozenDefault = 256 << 20

// Process is a snapshot of a live process: registers taken during a brief
// stop, memory read from the copies taken then or live. It offers the
// methods of elfcore.File that the analysis uses.
type Process struct {
	pid      int
	maps     []Mapping
	emaps    []elfcore.Mapping
	threads  []elfcore.Thread
	auxv     map[uint64]uint64
	auxvRaw  []byte
	psinfo   elfcore.Psinfo
	stat     Stat
	exe      string
	root     string // the process's root directory when not "/" (chroot)
	pause    Pause
	taken    time.Time
	mem      *memory
	warnings []string
	frozen   bool
}

// Attach takes a snapshot of the running process pid (see the package
// comment). The returned error is a *RefusedError or *TracedError when the
// kernel does not allow it, with the reason in words.
func Attach(pid int, opts Options) (*Process, error) {
	if pid <= 0 {
		return nil, fmt.Errorf("snapshot: invalid pid %d", pid)
	}
	if pid == os.Getpid() {
		return nil, fmt.Errorf("snapshot: pid %d is coroner itself", pid)
	}
	dir := fmt.Sprintf("/proc/%d", pid)
	sb, err := os.ReadFile(dir + "/status")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("snapshot: no process %d", pid)
		}
		return nil, &RefusedError{PID: pid, Op: "read " + dir + "/status", Err: err}
	}
	st := parseStatus(sb)
	if st.TracerPID != 0 {
		return nil, tracedBy(pid, st.TracerPID)
	}
	if st.State == 'Z' || st.State == 'X' {
		return nil, fmt.Errorf("snapshot: pid %d has exited (zombie)", pid)
	}
	p := &Process{pid: pid, mem: &memory{pid: pid}}
	mb, err := readLimited(dir+"/maps", maxMapsBytes)
	if err != nil {
		return nil, &RefusedError{PID: pid, Op: "read " + dir + "/maps", Err: err}
	}
	var bad int
	p.maps, bad = ParseMaps(mb)
	if bad > 0 {
		p.warn("%d lines of %s/maps did not parse", bad, dir)
	}
	if len(p.maps) == 0 {
		return nil, fmt.Errorf("snapshot: pid %d has no memory mappings (a kernel thread?)", pid)
	}
	p.emaps = make([]elfcore.Mapping, len(p.maps))
	for i := range p.maps {
		p.emaps[i] = p.maps[i].Mapping
	}
	p.auxvRaw, err = readLimited(dir+"/auxv", 64<<10)
	if err != nil {
		return nil, &RefusedError{PID: pid, Op: "read " + dir + "/auxv", Err: err}
	}
	p.auxv = elfcore.DecodeAuxv(p.auxvRaw)
	cmd, _ := readLimited(dir+"/cmdline", 4096)
	p.psinfo = elfcore.Psinfo{State: st.State, UID: st.UID, GID: st.GID, PID: pid, PPID: st.PPID, Comm: comm(pid), Args: cmdlineArgs(cmd)}
	if root, err := os.Readlink(dir + "/root"); err == nil && root != "/" {
		p.root = dir + "/root" // the files as the process sees them, also inside a chroot
	}
	p.exe = p.findExe()
	p.stat, _ = ReadStat(pid)

	max := opts.MaxFrozen
	if max <= 0 {
		max = maxFrozenDefault
	}
	// Which private pages are present is read before the stop (it is the
	// slow part); the stop copies them, and the stacks as they are then.
	var runs [][2]uint64
	if !opts.LiveMemory {
		runs = p.privateRuns(max)
		var size uint64
		for _, r := range runs {
			size += r[1] - r[0]
		}
		p.mem.reserve(size)
	}
	during := func(threads []elfcore.Thread) (int64, error) {
		var n int64
		if !opts.LiveMemory {
			n = p.copyPrivate(runs)
		}
		return n + p.copyStacks(threads), nil
	}
	p.taken = time.Now()
	threads, pause, err := freeze(pid, during)
	p.pause = pause
	if err != nil {
		var re *RefusedError
		if errors.As(err, &re) {
			re.Reason = explain(pid, re.Err)
		}
		return nil, err
	}
	p.frozen = !opts.LiveMemory
	// The main thread first: in a PHP worker it runs the VM.
	for i := range threads {
		if threads[i].TID == pid && i != 0 {
			threads[0], threads[i] = threads[i], threads[0]
		}
	}
	p.threads = threads
	return p, nil
}

// privateRuns lists the pages present in memory (or swapped out) of the
// readable private writable mappings (stacks, heap, .data and .bss of the
// mapped objects), up to max bytes. /proc/PID/pagemap tells which pages
// are present: the untouched rest of an 8 MiB thread stack or of a 2 MiB
// PHP heap chunk is not copied (read live it is what it was: zeros, or the
// file's bytes).
func (p *Process) privateRuns(max int64) [][2]uint64 {
	var total int64
	pm, err := os.Open(fmt.Sprintf("/proc/%d/pagemap", p.pid))
	if err != nil {
		p.warn("read /proc/%d/pagemap: %v; all private memory is copied", p.pid, err)
	} else {
		defer pm.Close()
	}
	over := false
	var runs [][2]uint64
	for _, m := range p.maps {
		if !m.Read || !m.Write || m.Shared || strings.HasPrefix(m.Path, "[v") {
			continue
		}
		mr := [][2]uint64{{m.Start, m.End}}
		if pm != nil {
			if r, err := presentRuns(pm, m.Start, m.End); err == nil {
				mr = r
			}
		}
		for _, r := range mr {
			size := int64(r[1] - r[0])
			if total+size > max {
				over = true
				continue
			}
			runs = append(runs, r)
			total += size
		}
	}
	if over {
		p.warn("more than %d bytes of private memory: the rest was read after the process resumed", max)
	}
	return runs
}

// copyPrivate copies runs of private memory; it runs while the process is
// stopped.
func (p *Process) copyPrivate(runs [][2]uint64) int64 {
	var total int64
	for _, r := range runs {
		total += int64(r[1] - r[0])
	}
	if bad := p.mem.copyRuns(runs); bad > 0 {
		p.warn("%d pages of private memory could not be read while the process was stopped", bad)
	}
	return total
}

// redZone is the area below the stack pointer that x86-64 code may use
// without moving it.
const redZone = 128

// copyStacks copies the used part of each thread's stack: from its stack
// pointer (less the red zone) to the end of the mapping that holds it.
func (p *Process) copyStacks(threads []elfcore.Thread) int64 {
	var total int64
	for _, th := range threads {
		sp := th.Regs.Rsp - redZone
		m := p.Mapping(sp)
		if m == nil || !m.Write {
			continue
		}
		start := sp &^ (pageSize - 1)
		if f := p.mem.frozenAt(start); f != nil && f.start+uint64(len(f.data)) >= m.End {
			continue // copied already (two threads on one stack, or with the private memory)
		}
		data, _ := p.mem.copyRange(start, m.End)
		p.mem.frozen = append(p.mem.frozen, frozen{start: start, data: data})
		sort.Slice(p.mem.frozen, func(i, j int) bool { return p.mem.frozen[i].start < p.mem.frozen[j].start })
		total += int64(len(data))
	}
	return total
}

// pagemap entry bits (Documentation/admin-guide/mm/pagemap.rst).
const (
	pmPresent = 1 << 63
	pmSwapped = 1 << 62
)

// presentRuns returns the runs of pages of [start, end) that are present
// in memory or swapped out, from /proc/PID/pagemap.
func presentRuns(pm *os.File, start, end uint64) ([][2]uint64, error) {
	var runs [][2]uint64
	buf := make([]byte, 8*512)
	for a := start; a < end; {
		n := (end - a) / pageSize
		if n > 512 {
			n = 512
		}
		k, err := pm.ReadAt(buf[:8*n], int64(a/pageSize*8))
		if k < int(8*n) {
			return nil, fmt.Errorf("pagemap at %#x: %w", a, err)
		}
		for i := uint64(0); i < n; i++ {
			e := binary.LittleEndian.Uint64(buf[8*i:])
			if e&(pmPresent|pmSwapped) == 0 {
				continue
			}
			pg := a + i*pageSize
			if l := len(runs); l > 0 && runs[l-1][1] == pg {
				runs[l-1][1] = pg + pageSize
			} else {
				runs = append(runs, [2]uint64{pg, pg + pageSize})
			}
		}
		a += n * pageSize
	}
	return runs, nil
}

func (p *Process) warn(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
}

// findExe returns the main executable as mapped (the mapping holding
// AT_ENTRY), else /proc/PID/exe.
func (p *Process) findExe() string {
	for _, key := range []uint64{elfcore.AT_ENTRY, elfcore.AT_PHDR} {
		if v, ok := p.auxv[key]; ok {
			if m := p.Mapping(v); m != nil && m.Path != "" {
				return m.Path
			}
		}
	}
	exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.pid))
	return strings.TrimSuffix(exe, " (deleted)")
}

// Close releases the files opened to read memory. The process itself was
// released when Attach returned.
func (p *Process) Close() error {
	p.mem.close()
	return nil
}

// PID returns the process id.
func (p *Process) PID() int { return p.pid }

// Pause returns how long the process was stopped, and what was done then.
func (p *Process) Pause() Pause { return p.pause }

// Taken returns when the process was stopped.
func (p *Process) Taken() time.Time { return p.taken }

// Frozen reports whether private memory was copied while the process was
// stopped (else all memory was read after it resumed).
func (p *Process) Frozen() bool { return p.frozen }

// Stat returns the scheduler's view of the process just before the stop
// (state, CPU time).
func (p *Process) Stat() Stat { return p.stat }

// LiveMappings returns the mappings with what only /proc tells (shared, inode).
func (p *Process) LiveMappings() []Mapping { return p.maps }

// Path returns a name for the snapshot ("pid N").
func (p *Process) Path() string { return fmt.Sprintf("pid %d", p.pid) }

// Size returns 0: a live process has no file.
func (p *Process) Size() int64 { return 0 }

// Warnings returns what went wrong without spoiling the snapshot.
func (p *Process) Warnings() []string { return append([]string(nil), p.warnings...) }

// Truncated is always false for a live process.
func (p *Process) Truncated() bool { return false }

// ExpectedSize is 0: a live process has no file size to fall short of.
func (p *Process) ExpectedSize() int64 { return 0 }

// Mappings returns the memory areas of the process, sorted by address.
func (p *Process) Mappings() []elfcore.Mapping { return p.emaps }

// Mapping returns the mapping containing addr, or nil.
func (p *Process) Mapping(addr uint64) *elfcore.Mapping {
	lo, hi := 0, len(p.emaps)
	for lo < hi {
		mid := (lo + hi) / 2
		if p.emaps[mid].End > addr {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if lo < len(p.emaps) && p.emaps[lo].Start <= addr {
		return &p.emaps[lo]
	}
	return nil
}

// Threads returns the threads with the registers read during the stop,
// the main thread first.
func (p *Process) Threads() []elfcore.Thread { return p.threads }

// Crashed returns the main thread: nothing crashed, but the analysis
// reads the PHP runtime from the registers of the first thread.
func (p *Process) Crashed() *elfcore.Thread {
	if len(p.threads) == 0 {
		return nil
	}
	return &p.threads[0]
}

// Signal returns an empty Siginfo: a live process received no fatal signal.
func (p *Process) Signal() elfcore.Siginfo { return elfcore.Siginfo{} }

// Process returns the process's ids and names in NT_PRPSINFO's form.
func (p *Process) Process() elfcore.Psinfo { return p.psinfo }

// Auxv returns the auxiliary vector.
func (p *Process) Auxv() map[uint64]uint64 { return p.auxv }

// Executable returns the path of the main executable as mapped.
func (p *Process) Executable() string { return p.exe }

// HostPath returns where coroner opens a file the process mapped: through
// /proc/PID/root when the process runs in a chroot, else the path itself.
//
// A file deleted or replaced since the process mapped it (a library
// upgraded under a running php-fpm) is opened through
// /proc/PID/map_files, which still reaches the file the process runs.
func (p *Process) HostPath(path string) string {
	for _, m := range p.maps {
		if m.Path == path && m.Deleted && m.Offset == 0 {
			mf := fmt.Sprintf("/proc/%d/map_files/%x-%x", p.pid, m.Start, m.End)
			if f, err := os.Open(mf); err == nil {
				f.Close()
				return mf
			}
			break
		}
	}
	if p.root != "" && path != "" && filepath.IsAbs(path) {
		return p.root + path
	}
	return path
}

// ReadAt reads the process's memory at addr.
func (p *Process) ReadAt(b []byte, addr int64) (int, error) { return p.mem.ReadAt(b, addr) }

// ReadDumped is ReadAt: a live process's memory is what it really has.
func (p *Process) ReadDumped(b []byte, addr uint64) (int, error) {
	return p.mem.ReadAt(b, int64(addr))
}

// ReadUint64 reads a little-endian 64-bit word at addr.
func (p *Process) ReadUint64(addr uint64) (uint64, error) {
	var b [8]byte
	if _, err := p.mem.ReadAt(b[:], int64(addr)); err != nil {
		return 0, err
	}
	return uint64(b[0]) | uint64(b[1])<<8 | uint64(b[2])<<16 | uint64(b[3])<<24 |
		uint64(b[4])<<32 | uint64(b[5])<<40 | uint64(b[6])<<48 | uint64(b[7])<<56, nil
}
