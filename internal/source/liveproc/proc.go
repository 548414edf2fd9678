package liveproc

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// maxMapsBytes bounds how much of /proc/PID/maps is read (a process with
// 65,530 mappings, the default vm.max_map_count, has about 6 MB of it).
const maxMapsBytes = 16 << 20

// Mapping is one line of /proc/PID/maps: the memory area as a core would
// describe it, plus what only a live process tells.
type Mapping struct {
	elfcore.Mapping
	// Shared is true for MAP_SHARED mappings ("rw-s": OPcache's shared
	// memory, System V segments, files mapped shared).
	Shared bool
	// Inode is the inode of the mapped file (0 for anonymous memory).
	Inode uint64
}

// ParseMaps parses the text of /proc/PID/maps into mappings sorted by
// address. Lines that do not parse are skipped and counted in bad. Paths
// keep their spaces; a " (deleted)" suffix sets Deleted.
func ParseMaps(b []byte) (maps []Mapping, bad int) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if len(line) == 0 {
			continue
		}
		m, ok := parseMapsLine(string(line))
		if !ok {
			bad++
			continue
		}
		maps = append(maps, m)
	}
	sort.SliceStable(maps, func(i, j int) bool { return maps[i].Start < maps[j].Start })
	return maps, bad
}

// parseMapsLine parses "start-end perms offset dev inode   path".
func parseMapsLine(line string) (Mapping, bool) {
	var m Mapping
	field := func() string {
		line = strings.TrimLeft(line, " ")
		i := strings.IndexByte(line, ' ')
		if i < 0 {
			f := line
			line = ""
			return f
		}
		f := line[:i]
		line = line[i+1:]
		return f
	}
	rng, perms, off, dev, inode := field(), field(), field(), field(), field()
	dash := strings.IndexByte(rng, '-')
	if dash < 0 || len(perms) < 4 || dev == "" || inode == "" {
		return m, false
	}
	start, err1 := strconv.ParseUint(rng[:dash], 16, 64)
	end, err2 := strconv.ParseUint(rng[dash+1:], 16, 64)
	offset, err3 := strconv.ParseUint(off, 16, 64)
	ino, err4 := strconv.ParseUint(inode, 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || end < start {
		return m, false
	}
	m.Start, m.End, m.Offset = start, end, offset
	m.Read, m.Write, m.Exec = perms[0] == 'r', perms[1] == 'w', perms[2] == 'x'
	m.Shared, m.Inode = perms[3] == 's', ino
	m.Path = strings.TrimLeft(line, " ")
	if strings.HasSuffix(m.Path, " (deleted)") {
		m.Path = strings.TrimSuffix(m.Path, " (deleted)")
		m.Deleted = true
	}
	if m.Read {
		m.Dumped = m.End - m.Start
	}
	return m, true
}

// status is what coroner uses of /proc/PID/status.
type status struct {
	Name      string
	State     byte
	TGID      int
	PPID      int
	TracerPID int
	UID, GID  int // real ids
	CapEff    uint64
	Threads   int
}

// parseStatus parses /proc/PID/status.
func parseStatus(b []byte) status {
	var s status
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		first := v
		if i := strings.IndexAny(v, " \t"); i >= 0 {
			first = v[:i]
		}
		switch k {
		case "Name":
			s.Name = v
		case "State":
			if v != "" {
				s.State = v[0]
			}
		case "Tgid":
			s.TGID, _ = strconv.Atoi(first)
		case "PPid":
			s.PPID, _ = strconv.Atoi(first)
		case "TracerPid":
			s.TracerPID, _ = strconv.Atoi(first)
		case "Uid":
			s.UID, _ = strconv.Atoi(first)
		case "Gid":
			s.GID, _ = strconv.Atoi(first)
		case "CapEff":
			s.CapEff, _ = strconv.ParseUint(first, 16, 64)
		case "Threads":
			s.Threads, _ = strconv.Atoi(first)
		}
	}
	return s
}

// Stat is what coroner uses of /proc/PID/stat: the scheduler's view of a
// process.
type Stat struct {
	// State is the one-letter state (R running, S sleeping, D
	// uninterruptible sleep, T stopped, t traced, Z zombie).
	State byte
	// UserTicks and SystemTicks are utime and stime in clock ticks
	// (USER_HZ, 100 on Linux x86-64).
	UserTicks, SystemTicks uint64
	// StartTicks is the start time in clock ticks after boot.
	StartTicks uint64
}

// ParseStat parses /proc/PID/stat; the command name may hold spaces and
// parentheses, so the fields are counted from the last ')'.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("stat: no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime is field 14, stime 15, starttime 22.
	if len(f) < 20 {
		return s, fmt.Errorf("stat: %d fields after the command name, want 20", len(f))
	}
	if f[0] != "" {
		s.State = f[0][0]
	}
	s.UserTicks, _ = strconv.ParseUint(f[11], 10, 64)
	s.SystemTicks, _ = strconv.ParseUint(f[12], 10, 64)
	s.StartTicks, _ = strconv.ParseUint(f[19], 10, 64)
	return s, nil
}

// ReadStat reads /proc/PID/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	return ParseStat(b)
}

// TicksPerSecond is USER_HZ, the unit of the times in /proc/PID/stat (100 on
// every Linux x86-64 kernel).
const TicksPerSecond = 100

// tasks lists the thread ids of pid.
func tasks(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	tids := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			tids = append(tids, tid)
		}
	}
	sort.Ints(tids)
	return tids, nil
}

// cmdlineArgs turns /proc/PID/cmdline into pr_psargs's form: arguments
// joined by spaces, cut at 80 bytes.
func cmdlineArgs(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	s := strings.ReplaceAll(string(b), "\x00", " ")
	if len(s) > 80 {
		s = s[:80]
	}
	return s
}

// readLimited reads at most limit bytes of a /proc file.
func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	_, err = buf.ReadFrom(&limitedReader{f: f, n: limit})
	return buf.Bytes(), err
}

type limitedReader struct {
	f *os.File
	n int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		return 0, fmt.Errorf("%s is larger than %d bytes", filepath.Base(l.f.Name()), l.n)
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.f.Read(p)
	l.n -= int64(n)
	return n, err
}
