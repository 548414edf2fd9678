package liveproc

import (
	"errors"
	"fmt"
	"os"
	"sort"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

const pageSize = 4096

// maxCached bounds the pages of live memory kept after they were read once.
const maxCached = 256 << 20

// bypassCache is the read size from which live reads skip the page cache
// (a core being written reads mappings in large blocks, once).
const bypassCache = 64 << 10

// frozen is memory copied while the process was stopped.
type frozen struct {
	start uint64
	data  []byte
}

// memory reads a live process's memory: from the copies taken while it
// was stopped, else live (process_vm_readv, falling back to
// /proc/PID/mem), through a page cache so that the many small reads of
// the PHP walk cost one system call per page.
type memory struct {
	pid    int
	frozen []frozen // sorted by start

	mu      sync.Mutex
	pages   map[uint64][]byte // nil slice: the page could not be read
	cached  int64
	memFile *os.File
	memErr  error
	noVM    bool // process_vm_readv is not available (ENOSYS, EPERM under seccomp)
	spare   []byte
}

func (m *memory) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.memFile != nil {
		m.memFile.Close()
		m.memFile = nil
	}
}

// frozenAt returns the frozen copy holding addr.
func (m *memory) frozenAt(addr uint64) *frozen {
	i := sort.Search(len(m.frozen), func(i int) bool { return m.frozen[i].start+uint64(len(m.frozen[i].data)) > addr })
	if i < len(m.frozen) && m.frozen[i].start <= addr {
		return &m.frozen[i]
	}
	return nil
}

// ReadAt reads len(p) bytes at addr.
func (m *memory) ReadAt(p []byte, off int64) (int, error) {
	addr := uint64(off)
	n := 0
	for n < len(p) {
		a := addr + uint64(n)
		if f := m.frozenAt(a); f != nil {
			n += copy(p[n:], f.data[a-f.start:])
			continue
		}
		// Up to the next frozen copy, read live.
		want := p[n:]
		i := sort.Search(len(m.frozen), func(i int) bool { return m.frozen[i].start > a })
		if i < len(m.frozen) && m.frozen[i].start-a < uint64(len(want)) {
			want = want[:m.frozen[i].start-a]
		}
		k, err := m.readLive(want, a)
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// readLive reads process memory that was not frozen.
func (m *memory) readLive(p []byte, addr uint64) (int, error) {
	if len(p) >= bypassCache {
		return m.readDirect(p, addr)
	}
	n := 0
	for n < len(p) {
		a := addr + uint64(n)
		page := a &^ (pageSize - 1)
		data, err := m.page(page)
		if err != nil {
			return n, err
		}
		n += copy(p[n:], data[a-page:])
	}
	return n, nil
}

func (m *memory) page(page uint64) ([]byte, error) {
	m.mu.Lock()
	data, ok := m.pages[page]
	m.mu.Unlock()
	if ok {
		if data == nil {
			return nil, fmt.Errorf("read %#x: %w (unreadable in the live process)", page, elfcore.ErrNotDumped)
		}
		return data, nil
	}
	data = make([]byte, pageSize)
	if k, err := m.readDirect(data, page); k < pageSize {
		m.remember(page, nil)
		return nil, err
	}
	m.remember(page, data)
	return data, nil
}

func (m *memory) remember(page uint64, data []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.pages == nil {
		m.pages = map[uint64][]byte{}
	}
	if m.cached+pageSize > maxCached {
		return
	}
	m.pages[page] = data
	m.cached += pageSize
}

// readDirect reads live memory with process_vm_readv, else /proc/PID/mem.
func (m *memory) readDirect(p []byte, addr uint64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	n := 0
	if !m.noVMReadv() {
		k, err := unix.ProcessVMReadv(m.pid,
			[]unix.Iovec{{Base: &p[0], Len: uint64(len(p))}},
			[]unix.RemoteIovec{{Base: uintptr(addr), Len: len(p)}}, 0)
		if k > 0 {
			n = k
		}
		if n == len(p) {
			return n, nil
		}
		if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EPERM) {
			m.mu.Lock()
			m.noVM = true
			m.mu.Unlock()
		}
	}
	f, err := m.mem()
	if err != nil {
		return n, err
	}
	k, err := f.ReadAt(p[n:], int64(addr)+int64(n))
	n += k
	if n < len(p) {
		return n, fmt.Errorf("read %#x: %w (unreadable in the live process: %v)", addr+uint64(n), elfcore.ErrNotDumped, err)
	}
	return n, nil
}

func (m *memory) noVMReadv() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.noVM
}

func (m *memory) mem() (*os.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.memFile == nil && m.memErr == nil {
		m.memFile, m.memErr = os.Open(fmt.Sprintf("/proc/%d/mem", m.pid))
	}
	return m.memFile, m.memErr
}

// copyRange reads [start, end) into a new buffer while the process is
// stopped; pages that cannot be read stay zero and are reported in bad.
func (m *memory) copyRange(start, end uint64) (data []byte, bad int) {
	data = make([]byte, end-start)
	if k, _ := m.readDirect(data, start); k == len(data) {
		return data, 0
	}
	for a := start; a < end; a += pageSize {
		if k, _ := m.readDirect(data[a-start:a-start+pageSize], a); k < pageSize {
			bad++
		}
	}
	return data, bad
}

// reserve allocates (and touches) the buffer the copy during the stop
// fills, before the stop: zeroing megabytes is not done while the process
// waits.
func (m *memory) reserve(size uint64) {
	m.spare = make([]byte, size)
	for i := 0; i < len(m.spare); i += pageSize {
		m.spare[i] = 1 // fault the page in now
	}
}

// take returns size bytes of the reserved buffer, or a new one.
func (m *memory) take(size uint64) []byte {
	if uint64(len(m.spare)) >= size {
		b := m.spare[:size:size]
		m.spare = m.spare[size:]
		return b
	}
	return make([]byte, size)
}

// iovMax is the most iovecs one process_vm_readv takes (IOV_MAX).
const iovMax = 1024

// copyRuns copies the runs [start, end) into frozen copies with as few
// system calls as it can (up to iovMax runs per process_vm_readv); a batch
// that fails part way is read again run by run, page by page. It returns
// the number of pages that could not be read (left as zeros).
func (m *memory) copyRuns(runs [][2]uint64) (bad int) {
	for len(runs) > 0 {
		batch := runs
		if len(batch) > iovMax {
			batch = batch[:iovMax]
		}
		runs = runs[len(batch):]
		var size uint64
		for _, r := range batch {
			size += r[1] - r[0]
		}
		buf := m.take(size)
		local := make([]unix.Iovec, len(batch))
		remote := make([]unix.RemoteIovec, len(batch))
		off := uint64(0)
		for i, r := range batch {
			n := r[1] - r[0]
			local[i] = unix.Iovec{Base: &buf[off], Len: n}
			remote[i] = unix.RemoteIovec{Base: uintptr(r[0]), Len: int(n)}
			off += n
		}
		got := 0
		if !m.noVMReadv() {
			got, _ = unix.ProcessVMReadv(m.pid, local, remote, 0)
		}
		off = 0
		for _, r := range batch {
			n := r[1] - r[0]
			data := buf[off : off+n : off+n]
			if uint64(got) < off+n {
				// Not (wholly) read by the batch: again, page by page.
				var b int
				data, b = m.copyRange(r[0], r[1])
				bad += b
			}
			m.frozen = append(m.frozen, frozen{start: r[0], data: data})
			off += n
		}
	}
	sort.Slice(m.frozen, func(i, j int) bool { return m.frozen[i].start < m.frozen[j].start })
	return bad
}
