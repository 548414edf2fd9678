package coredumps

import (
	"bufio"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coroner-dev/coroner/internal/regular"
)

// PatternGlob turns a kernel.core_pattern (not a |pipe) into a shell glob
// that matches the files it produces: every %-specifier becomes "*", "%%"
// a literal "%", and glob metacharacters of the literal text are escaped.
// usesPID is kernel.core_uses_pid: without %p in the pattern the kernel then
// appends ".PID".
func PatternGlob(pattern string, usesPID bool) string {
	var b strings.Builder
	hasPID := false
	lastStar := false
	star := func() {
		if !lastStar {
			b.WriteByte('*')
		}
		lastStar = true
	}
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c == '%' && i+1 < len(pattern) {
			i++
			switch pattern[i] {
			case '%':
				b.WriteByte('%')
				lastStar = false
			case 'p', 'P', 'i', 'I':
				hasPID = hasPID || pattern[i] == 'p'
				star()
			case 'c', 'd', 'e', 'E', 'f', 'g', 'h', 's', 't', 'u', 'F', 'C':
				star()
			}
			continue
		}
		lastStar = false
		switch c {
		case '*', '?', '[', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	g := b.String()
	if usesPID && !hasPID {
		g += ".*"
	}
	return g
}

// readSysctl reads a /proc/sys file, trimmed.
func readSysctl(path string) string {
	f, err := regular.OpenHostFile(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// Configuration files that name PHP-FPM working directories and web roots.
var (
	fpmConfigGlobs = []string{
		"/etc/php/*/fpm/pool.d/*.conf", "/etc/php/*/fpm/php-fpm.conf",
		"/etc/php-fpm.d/*.conf", "/etc/php-fpm.conf",
		"/usr/local/etc/php-fpm.d/*.conf", "/usr/local/etc/php-fpm.conf",
	}
	webConfigGlobs = []string{
		"/etc/nginx/nginx.conf", "/etc/nginx/conf.d/*.conf", "/etc/nginx/sites-enabled/*",
		"/etc/apache2/sites-enabled/*", "/etc/httpd/conf/httpd.conf", "/etc/httpd/conf.d/*.conf",
	}
	reChdir   = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*chdir\s*=\s*"?([^";]+)"?`) })
	reRoot    = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*root\s+"?([^";\s]+)"?\s*;`) })
	reDocRoot = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\s*DocumentRoot\s+"?([^"\s]+)"?`) })
)

// workDir is a directory a relative core_pattern may write into; walk says
// whether its subdirectories are candidates too.
type workDir struct {
	path string
	walk bool
}

// workDirs lists the directories a relative core_pattern may write into:
// the current directories of running PHP-FPM and web-server processes,
// PHP-FPM pool chdir settings and web-server document roots (with their
// subdirectories: PHP runs with the script's directory as cwd), and "/"
// (a daemon's cwd).
func workDirs() []workDir {
	seen := map[string]bool{}
	var dirs []workDir
	walk := false
	add := func(d string) {
		d = filepath.Clean(d)
		if !filepath.IsAbs(d) || seen[d] || strings.ContainsAny(d, "$") {
			return
		}
		seen[d] = true
		dirs = append(dirs, workDir{d, walk && d != "/"})
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/comm")
	for _, p := range procs {
		comm := readSysctl(p)
		if strings.HasPrefix(comm, "php-fpm") || strings.HasPrefix(comm, "php-cgi") || comm == "apache2" || comm == "httpd" {
			if cwd, err := os.Readlink(filepath.Join(filepath.Dir(p), "cwd")); err == nil {
				add(cwd)
			}
		}
	}
	scan := func(globs []string, res ...*regexp.Regexp) {
		for _, g := range globs {
			files, _ := filepath.Glob(g)
			for _, file := range files {
				f, err := regular.Open(file)
				if err != nil {
					continue
				}
				sc := bufio.NewScanner(f)
				for sc.Scan() {
					line := sc.Text()
					if strings.HasPrefix(strings.TrimSpace(line), ";") || strings.HasPrefix(strings.TrimSpace(line), "#") {
						continue
					}
					for _, re := range res {
						if m := re.FindStringSubmatch(line); m != nil {
							add(strings.TrimSpace(m[1]))
						}
					}
				}
				f.Close()
			}
		}
	}
	walk = true
	scan(fpmConfigGlobs, reChdir())
	scan(webConfigGlobs, reRoot(), reDocRoot())
	walk = false
	add("/")
	return dirs
}

// Bounds of the walk below each working directory for relative patterns
// (PHP changes into the executed script's directory, usually at most a
// few levels below the document root).
const (
	walkDepth   = 3
	walkMaxDirs = 5000
)

// subdirs lists root and its subdirectories down to walkDepth levels,
// skipping version-control and dependency trees.
func subdirs(root string) []string {
	out := []string{root}
	level := []string{root}
	for depth := 0; depth < walkDepth && len(level) > 0; depth++ {
		var next []string
		for _, d := range level {
			ents, err := os.ReadDir(d)
			if err != nil {
				continue
			}
			for _, e := range ents {
				if !e.IsDir() {
					continue
				}
				switch e.Name() {
				case ".git", ".svn", "node_modules", "proc", "sys", "dev", "run":
					continue
				}
				next = append(next, filepath.Join(d, e.Name()))
				if len(out)+len(next) >= walkMaxDirs {
					return append(out, next...)
				}
			}
		}
		out = append(out, next...)
		level = next
	}
	return out
}

// parseCoreName extracts the pid and dump time from core file names such as
// "core.php-fpm8.2.14502.1795728000" (core_pattern core.%e.%p.%t),
// "core.14502" (core_uses_pid) and systemd-coredump's
// "core.php-fpm8\x2e2.33.<boot-id>.14502.1795728000123456.zst". The pid is
// 0 and the time zero when the name does not tell.
func parseCoreName(name string) (pid int, t time.Time) {
	for _, ext := range []string{".zst", ".lz4", ".xz", ".gz"} {
		name = strings.TrimSuffix(name, ext)
	}
	fields := strings.FieldsFunc(name, func(r rune) bool { return r == '.' || r == '-' || r == '_' })
	// systemd-coredump: a 32-hex boot id, then pid, then microseconds.
	for i, f := range fields {
		if len(f) == 32 && isHex(f) && i+2 < len(fields) {
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
