package logs

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/coroner-dev/coroner/internal/regular"
)

// DiscoverOptions tune Discover; Root prefixes every path (for tests and
// chroots).
type DiscoverOptions struct {
	Root string
	// NoCommands disables running dmesg/journalctl when no kernel log file
	// exists.
	NoCommands bool
}

// Discover finds the logs of a host laid out like Debian/Ubuntu or RHEL:
// nginx, Apache, PHP-FPM (master log and slowlogs, from the FPM
// configuration when readable) and the kernel (kern.log, messages, syslog;
// else the journal or dmesg). Each live log comes with its rotations,
// oldest first.
func Discover(o DiscoverOptions) []Input {
	r := func(p string) string { return filepath.Join(o.Root, p) }
	var out []Input
	seen := map[string]bool{}
	add := func(p string, f Format, why string) {
		for _, x := range Rotations(p) {
			if seen[x] {
				continue
			}
			seen[x] = true
			if fi, err := os.Stat(x); err != nil || fi.IsDir() {
				continue
			}
			out = append(out, Input{Path: x, Format: f, Why: why})
		}
	}
	// nginx: configured paths, then the default ones.
	for _, d := range configDirectives([]string{r("/etc/nginx/nginx.conf"), r("/etc/nginx/conf.d/*.conf"), r("/etc/nginx/sites-enabled/*")},
		regexp.MustCompile(`^\s*(error_log|access_log)\s+([^\s;]+)`)) {
		if strings.HasPrefix(d.value, "/") {
			f := FormatNginxError
			if d.key == "access_log" {
				f = FormatNginxAccess
			}
			add(r(d.value), f, "nginx "+d.key+" in "+d.file)
		}
	}
	add(r("/var/log/nginx/error.log"), FormatNginxError, "nginx default")
	add(r("/var/log/nginx/access.log"), FormatNginxAccess, "nginx default")
	// PHP-FPM: error_log and slowlog from the configuration, then defaults.
	fpmConf := []string{r("/etc/php/*/fpm/php-fpm.conf"), r("/etc/php/*/fpm/pool.d/*.conf"), r("/etc/php-fpm.conf"),
		r("/etc/php-fpm.d/*.conf"), r("/etc/opt/remi/*/php-fpm.conf"), r("/etc/opt/remi/*/php-fpm.d/*.conf")}
	for _, d := range configDirectives(fpmConf, regexp.MustCompile(`^\s*(error_log|slowlog)\s*=\s*(\S+)`)) {
		v := strings.ReplaceAll(d.value, "$pool", "*")
		if !strings.HasPrefix(v, "/") {
			v = "/var/log/" + v // relative to FPM's prefix, /var on Debian and RHEL
		}
		f := FormatFPM
		if d.key == "slowlog" {
			f = FormatSlowlog
		}
		ms, _ := filepath.Glob(r(v))
		if !strings.Contains(v, "*") {
			ms = []string{r(v)}
		}
		for _, m := range ms {
			add(m, f, "php-fpm "+d.key+" in "+d.file)
		}
	}
	globAdd := func(pattern string, f Format, why string) {
		ms, _ := filepath.Glob(r(pattern))
		sort.Strings(ms)
		for _, m := range ms {
			if base, _ := rotationKey(m); base != m {
				continue // a rotation: added with its live file
			}
			add(m, f, why)
		}
	}
	globAdd("/var/log/php*-fpm.log", FormatFPM, "php-fpm default (Debian)")
	globAdd("/var/log/php-fpm/error.log", FormatFPM, "php-fpm default (RHEL)")
	globAdd("/var/log/php-fpm/*slow*.log", FormatSlowlog, "php-fpm slowlog (RHEL)")
	globAdd("/var/log/php*-fpm*slow*.log", FormatSlowlog, "php-fpm slowlog")
	// Containers: Docker's json-file logs and Kubernetes' pod logs hold
	// what nginx and PHP-FPM running in them wrote to stdout and stderr.
	globAdd("/var/lib/docker/containers/*/*-json.log", FormatAuto, "docker container log")
	globAdd("/var/log/pods/*/*/*.log", FormatAuto, "kubernetes pod log")
	// Apache: the main server's ErrorLog (where Apache records its
	// children's deaths, AH00051/AH00052), then the defaults.
	for _, l := range []struct{ conf, root, envvars string }{
		{"/etc/apache2/apache2.conf", "/etc/apache2", "/etc/apache2/envvars"},
		{"/etc/httpd/conf/httpd.conf", "/etc/httpd", ""},
	} {
		vars := map[string]string{"APACHE_LOG_DIR": "/var/log/apache2"}
		if l.envvars != "" {
			for _, d := range configDirectives([]string{r(l.envvars)}, regexp.MustCompile(`^\s*export\s+(APACHE_LOG_DIR)=(\S+)`)) {
				vars[d.key] = os.Expand(d.value, func(string) string { return "" }) // $SUFFIX is empty for the main instance
			}
		}
		for _, d := range configDirectives([]string{r(l.conf)}, regexp.MustCompile(`^\s*(ErrorLog)\s+(\S+)`)) {
			v := os.Expand(d.value, func(k string) string { return vars[k] })
			switch {
			case strings.HasPrefix(v, "|") || strings.HasPrefix(v, "syslog") || v == "":
				continue // a piped logger or syslog: read with the journal or syslog
			case !strings.HasPrefix(v, "/"):
				v = filepath.Join(l.root, v)
			}
			add(r(v), FormatApacheError, "Apache ErrorLog in "+l.conf)
		}
		// mod_log_forensic's ForensicLog (the request a dead child was
		// serving), wherever the configuration sets it.
		confs := []string{r(l.conf)}
		for _, g := range []string{"conf-enabled/*.conf", "mods-enabled/*.conf", "sites-enabled/*", "conf.d/*.conf", "conf.modules.d/*.conf"} {
			confs = append(confs, r(filepath.Join(l.root, g)))
		}
		for _, d := range configDirectives(confs, regexp.MustCompile(`^\s*(ForensicLog)\s+(\S+)`)) {
			v := os.Expand(d.value, func(k string) string { return vars[k] })
			switch {
			case strings.HasPrefix(v, "|") || v == "":
				continue // a piped logger
			case !strings.HasPrefix(v, "/"):
				v = filepath.Join(l.root, v)
			}
			add(r(v), FormatApacheForensic, "Apache ForensicLog in "+strings.TrimPrefix(d.file, o.Root))
		}
	}
	// Apache: the defaults.
	add(r("/var/log/apache2/error.log"), FormatApacheError, "apache default (Debian)")
	add(r("/var/log/httpd/error_log"), FormatApacheError, "apache default (RHEL)")
	// Kernel.
	kernel := false
	for _, p := range []string{"/var/log/kern.log", "/var/log/messages", "/var/log/syslog"} {
		if _, err := os.Stat(r(p)); err == nil {
			add(r(p), FormatKernel, "kernel/syslog default")
			kernel = true
			break
		}
	}
	if !kernel && !o.NoCommands && o.Root == "" {
		if journalPresent() {
			if _, err := exec.LookPath("journalctl"); err == nil {
				out = append(out, Input{Path: "cmd:journalctl -q --no-pager -o json -k", Format: FormatKernel, Why: "journal (kernel)"},
					Input{Path: "cmd:journalctl -q --no-pager -o json SYSLOG_IDENTIFIER=systemd-coredump", Format: FormatKernel, Why: "journal (systemd-coredump)"})
				kernel = true
			}
		}
		if !kernel {
			if _, err := exec.LookPath("dmesg"); err == nil {
				out = append(out, Input{Path: "cmd:dmesg", Format: FormatKernel, Why: "kernel ring buffer (no kern.log found)"})
			}
		}
	}
	return out
}

func journalPresent() bool {
	for _, d := range []string{"/var/log/journal", "/run/log/journal"} {
		ents, err := os.ReadDir(d)
		if err == nil && len(ents) > 0 {
			return true
		}
	}
	return false
}

type directive struct{ file, key, value string }

// configDirectives greps simple "key value" directives out of config files.
func configDirectives(globs []string, re *regexp.Regexp) []directive {
	var out []directive
	for _, g := range globs {
		ms, _ := filepath.Glob(g)
		sort.Strings(ms)
		for _, m := range ms {
			f, err := regular.Open(m)
			if err != nil {
				continue
			}
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				if x := re.FindStringSubmatch(sc.Text()); x != nil {
					out = append(out, directive{m, x[1], strings.Trim(x[2], `"'`)})
				}
			}
			f.Close()
		}
	}
	return out
}
