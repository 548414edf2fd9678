package audit

import (
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
)

// maxProcs bounds how many /proc entries are looked at.
const maxProcs = 100000

// fpmProcesses finds running php-fpm masters and workers by their process
// titles ("php-fpm: master process (CONF)", "php-fpm: pool NAME").
func fpmProcesses(h *host, warn func(string)) []Process {
	ents, err := os.ReadDir(h.real("/proc"))
	if err != nil {
		return nil
	}
	var out []Process
	for i, e := range ents {
		if i >= maxProcs {
			break
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := "/proc/" + e.Name()
		cmd, err := h.readFile(dir + "/cmdline")
		if err != nil {
			continue
		}
		title := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		var p Process
		switch {
		case strings.HasPrefix(title, "php-fpm: master process"):
			p.Role = "master"
			if i := strings.IndexByte(title, '('); i >= 0 {
				p.Config = strings.TrimSuffix(strings.TrimSpace(title[i+1:]), ")")
			}
		case strings.HasPrefix(title, "php-fpm: pool "):
			p.Role = "worker"
			p.Pool = strings.TrimSpace(strings.TrimPrefix(title, "php-fpm: pool "))
		default:
			continue
		}
		p.PID = pid
		readProcess(h, &p, warn)
		out = append(out, p)
	}
	return out
}

// procsOf finds the running processes whose executable (or, when it
// cannot be read, process title) match says are wanted, with their limits
// and dumpability (live machine only).
func procsOf(h *host, match func(exe, title string) bool) []Process {
	ents, err := os.ReadDir(h.real("/proc"))
	if err != nil {
		return nil
	}
	var out []Process
	for i, e := range ents {
		if i >= maxProcs {
			break
		}
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		dir := "/proc/" + e.Name()
		exe, _ := os.Readlink(h.real(dir + "/exe"))
		exe = strings.TrimSuffix(exe, " (deleted)")
		cmd, _ := h.readFile(dir + "/cmdline")
		title := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		if exe == "" && title == "" || !match(exe, title) {
			continue
		}
		p := Process{PID: pid}
		readProcess(h, &p, func(string) {})
		out = append(out, p)
	}
	return out
}

// readProcess fills what /proc says of p.PID: parent, uid, core limits,
// coredump_filter, cwd and dumpability.
func readProcess(h *host, p *Process, warn func(string)) {
	pid := p.PID
	dir := "/proc/" + strconv.Itoa(pid)
	{
		if st, err := h.readFile(dir + "/status"); err == nil {
			for _, l := range strings.Split(string(st), "\n") {
				f := strings.Fields(l)
				if len(f) >= 2 && f[0] == "PPid:" {
					p.PPID, _ = strconv.Atoi(f[1])
				}
				if len(f) >= 3 && f[0] == "Uid:" {
					p.UID, _ = strconv.Atoi(f[2]) // effective uid
				}
			}
		}
		if lim, err := h.readFile(dir + "/limits"); err == nil {
			p.CoreSoft, p.CoreHard = coreLimitLine(string(lim))
		} else {
			warn("process " + strconv.Itoa(pid) + ": " + err.Error())
		}
		if f, err := h.readTrim(dir + "/coredump_filter"); err == nil {
			p.CoredumpFilter = strings.TrimSpace(f)
		}
		if c, err := os.Readlink(h.real(dir + "/cwd")); err == nil {
			p.Cwd = c
		}
		if p.Config != "" && !strings.HasPrefix(p.Config, "/") && p.Cwd != "" && h.live() {
			// the title repeats -y as given; best effort: the master's cwd
			p.Config = path.Join(p.Cwd, p.Config)
		}
		if h.live() && p.UID != 0 {
			// A non-dumpable process's /proc/PID files belong to root
			// (task_dump_owner), which is how its dumpable flag shows.
			if st, err := os.Stat(dir + "/status"); err == nil {
				if sys, ok := st.Sys().(*syscall.Stat_t); ok {
					d := sys.Uid != 0
					p.Dumpable = &d
				}
			}
		}
	}
}

// coreLimitLine extracts "Max core file size" soft and hard values.
func coreLimitLine(limits string) (string, string) {
	for _, l := range strings.Split(limits, "\n") {
		if !strings.HasPrefix(l, "Max core file size") {
			continue
		}
		f := strings.Fields(strings.TrimPrefix(l, "Max core file size"))
		if len(f) >= 2 {
			return f[0], f[1]
		}
	}
	return "", ""
}

// limitBytes converts "unlimited" / a number to bytes (-1 = unlimited).
func limitBytes(s string) (int64, bool) {
	if s == "unlimited" || s == "infinity" {
		return -1, true
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// users reads /etc/passwd and /etc/group of the audited system.
type accounts struct {
	uid  map[string]int
	gid  map[string]int
	pgid map[string]int // primary group of a user
	mem  map[string][]string
}

func readAccounts(h *host) *accounts {
	a := &accounts{uid: map[string]int{}, gid: map[string]int{}, pgid: map[string]int{}, mem: map[string][]string{}}
	if b, err := h.readFile("/etc/passwd"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Split(l, ":")
			if len(f) >= 4 {
				u, e1 := strconv.Atoi(f[2])
				g, e2 := strconv.Atoi(f[3])
				if e1 == nil && e2 == nil {
					a.uid[f[0]], a.pgid[f[0]] = u, g
				}
			}
		}
	}
	if b, err := h.readFile("/etc/group"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			f := strings.Split(l, ":")
			if len(f) >= 4 {
				if g, err := strconv.Atoi(f[2]); err == nil {
					a.gid[f[0]] = g
					if f[3] != "" {
						a.mem[f[0]] = strings.Split(f[3], ",")
					}
				}
			}
		}
	}
	return a
}

// canWrite reports whether user (with group) may create files in dir of
// the audited system, from the directory's mode bits and owner. known is
// false when the directory or the user cannot be resolved.
func canWrite(h *host, acc *accounts, user, group, dir string) (ok, known bool) {
	st, err := os.Stat(h.resolve(dir))
	if err != nil {
		return false, true
	}
	sys, isUnix := st.Sys().(*syscall.Stat_t)
	if !isUnix {
		return false, false
	}
	uid, uok := acc.uid[user]
	if user == "root" {
		uid, uok = 0, true
	}
	if !uok {
		return false, false
	}
	if uid == 0 {
		return true, true
	}
	m := st.Mode().Perm()
	if int(sys.Uid) == uid {
		return m&0o300 == 0o300, true
	}
	gid, gok := acc.gid[group]
	if !gok {
		gid = acc.pgid[user]
	}
	inGroup := int(sys.Gid) == gid || int(sys.Gid) == acc.pgid[user]
	for name, g := range acc.gid {
		if g == int(sys.Gid) {
			for _, m := range acc.mem[name] {
				if m == user {
					inGroup = true
				}
			}
		}
	}
	if inGroup {
		return m&0o030 == 0o030, true
	}
	return m&0o003 == 0o003, true
}

// existingDir returns dir or its nearest existing parent.
func existingDir(h *host, dir string) string {
	for d := path.Clean(dir); ; d = path.Dir(d) {
		if h.isDir(d) || d == "/" {
			return d
		}
	}
}

// freeBytes returns the space available to unprivileged users on the file
// system holding dir.
func freeBytes(h *host, dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(h.resolve(existingDir(h, dir)), &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * int64(st.Bsize), true
}
