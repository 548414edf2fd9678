package logs

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CoreFile is a core dump found on disk, with what its name and mtime say.
type CoreFile struct {
	Path string `json:"path"`
	// PID is the dumped process's pid from the name, else from the core's
	// own notes (NT_PRPSINFO) for an uncompressed ELF core renamed without
	// it; 0 when unknown.
	PID int `json:"pid,omitempty"`
	// PIDFrom says where PID came from: "name" or "notes".
	PIDFrom string `json:"pid_from,omitempty"`
	// Time is the dump time from the name (%t seconds or systemd's
	// microseconds), else the file's modification time.
	Time time.Time `json:"time"`
	Size int64     `json:"size"`
}

// FindCores lists core files in the given files and directories, and in
// the directories' immediate subdirectories (ABRT's problem directories,
// one directory per crash). In a directory, a file counts as a core when its
// name starts with "core" (the kernel's default, systemd-coredump's naming,
// ABRT's "coredump").
func FindCores(paths []string) []CoreFile {
	var out []CoreFile
	add := func(p string, fi os.FileInfo) {
		if !fi.Mode().IsRegular() {
			return
		}
		c := CoreFile{Path: p, Time: fi.ModTime(), Size: fi.Size()}
		pid, t := parseCoreName(filepath.Base(p))
		c.PID = pid
		if pid > 0 {
			c.PIDFrom = "name"
		} else if pid = corePID(p); pid > 0 {
			c.PID, c.PIDFrom = pid, "notes"
		}
		if !t.IsZero() {
			c.Time = t
		}
		out = append(out, c)
	}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			continue
		}
		if !fi.IsDir() {
			add(p, fi)
			continue
		}
		scanDir(p, 1, add)
	}
	return out
}

func scanDir(dir string, depth int, add func(string, os.FileInfo)) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			if depth > 0 {
				scanDir(p, depth-1, add)
			}
			continue
		}
		if !strings.HasPrefix(e.Name(), "core") {
			continue
		}
		if fi, err := e.Info(); err == nil {
			add(p, fi)
		}
	}
}

// parseCoreName extracts the pid and time from core file names such as
// "core.php-fpm8.2.14502.1795728000" (core_pattern core.%e.%p.%t),
// "core.14502" (core_uses_pid), and systemd-coredump's
// "core.php-fpm8\x2e2.33.<boot-id>.14502.1795728000123456.zst".
func parseCoreName(name string) (pid int, t time.Time) {
	for _, ext := range []string{".zst", ".lz4", ".xz", ".gz"} {
		name = strings.TrimSuffix(name, ext)
	}
	fields := strings.FieldsFunc(name, func(r rune) bool { return r == '.' || r == '-' || r == '_' })
	// systemd-coredump: a 32-hex boot id, then pid, then microseconds.
	for i, f := range fields {
		if len(f) == 32 && isHexString(f) && i+2 < len(fields) {
			p, err1 := strconv.Atoi(fields[i+1])
			us, err2 := strconv.ParseInt(fields[i+2], 10, 64)
			if err1 == nil && err2 == nil {
				return p, time.UnixMicro(us)
			}
		}
	}
	// Trailing numeric fields: [..., pid, epoch] or [..., pid].
	var nums []int64
	for i := len(fields) - 1; i >= 1 && len(nums) < 2; i-- {
		n, err := strconv.ParseInt(fields[i], 10, 64)
		if err != nil {
			break
		}
		nums = append(nums, n)
	}
	switch {
	case len(nums) == 2 && nums[0] > 1e9 && nums[0] < 1e10 && nums[1] > 0 && nums[1] < 1<<22:
		return int(nums[1]), time.Unix(nums[0], 0)
	case len(nums) >= 1 && nums[0] > 0 && nums[0] < 1<<22:
		return int(nums[0]), time.Time{}
	}
	return 0, time.Time{}
}

func isHexString(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// DiscoverCoreDirs returns the directories where this host writes cores:
// the directory of an absolute kernel.core_pattern, systemd-coredump's
// store when the pattern pipes to it, and Apport's /var/crash.
func DiscoverCoreDirs() []string {
	var out []string
	b, err := os.ReadFile("/proc/sys/kernel/core_pattern")
	if err == nil {
		p := strings.TrimSpace(string(b))
		switch {
		case strings.HasPrefix(p, "|") && strings.Contains(p, "systemd-coredump"):
			out = append(out, "/var/lib/systemd/coredump")
		case strings.HasPrefix(p, "/"):
			out = append(out, filepath.Dir(p))
		}
	}
	for _, d := range []string{"/var/lib/systemd/coredump", "/var/crash"} {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() && !contains(out, d) {
			out = append(out, d)
		}
	}
	return out
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// corePID reads the pid from an uncompressed ELF core's NT_PRPSINFO note
// (x86-64 layout: pr_pid at offset 24), or returns 0.
func corePID(path string) int {
	f, err := elf.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	if f.Type != elf.ET_CORE {
		return 0
	}
	for _, p := range f.Progs {
		if p.Type != elf.PT_NOTE || p.Filesz > 16<<20 {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			continue
		}
		for len(b) >= 12 {
			nsz := int(binary.LittleEndian.Uint32(b[0:4]))
			dsz := int(binary.LittleEndian.Uint32(b[4:8]))
			typ := binary.LittleEndian.Uint32(b[8:12])
			np, dp := (nsz+3)&^3, (dsz+3)&^3
			if nsz > len(b) || dsz > len(b) || 12+np+dp > len(b) {
				break
			}
			name := bytes.TrimRight(b[12:12+nsz], "\x00")
			desc := b[12+np : 12+np+dsz]
			if typ == 3 && string(name) == "CORE" && len(desc) >= 28 { // NT_PRPSINFO
				if pid := int(int32(binary.LittleEndian.Uint32(desc[24:28]))); pid > 0 {
					return pid
				}
			}
			b = b[12+np+dp:]
		}
	}
	return 0
}
