package audit

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Options selects what to audit.
type Options struct {
	// Root is the tree to audit ("" or "/" = this machine). Under a root,
	// /proc values come from ROOT/proc files and every other path below is
	// taken inside the root.
	Root string
	// FPMConfig audits this php-fpm.conf only (e.g. a lab's config in a
	// temporary directory) instead of discovering installations.
	FPMConfig string
	// PHPIni is the php.ini FPM loads (default: the layout's, or the one
	// next to FPMConfig's installation).
	PHPIni string
	// PHPIniScanDir has PHP_INI_SCAN_DIR semantics: directories separated
	// by ':', an empty element standing for the compiled-in scan directory.
	PHPIniScanDir string
	// PHPVersion ("8.2") overrides version detection.
	PHPVersion string
	// Binary is the php-fpm executable (for version detection).
	Binary string
	// Unit is the systemd unit of the explicit FPMConfig.
	Unit string
	// Prefix resolves relative include= in FPM configuration (FPM's -p).
	Prefix string
	// NginxConfig is the nginx.conf whose document roots are checked for a
	// relative core_pattern (default /etc/nginx/nginx.conf and Apache's).
	NginxConfig string
	// Env supplies ${VAR} values for ini files when the running master's
	// environment cannot be read.
	Env map[string]string
	// ApacheConfig audits this Apache httpd configuration (with mod_php)
	// only, instead of discovering installations; ServerRoot is its
	// ServerRoot (default: the file's directory). PHPIni, PHPIniScanDir,
	// PHPVersion, Binary and Unit apply to it as to FPMConfig.
	ApacheConfig string
	ServerRoot   string
}

// isApache reports whether PHP runs inside Apache httpd (mod_php).
func (in *Installation) isApache() bool { return in.SAPI == SAPIApache }

// Run audits the host (or tree) described by opts.
func Run(opts Options) (*Report, error) {
	h, err := newHost(opts.Root)
	if err != nil {
		return nil, err
	}
	for _, p := range []*string{&opts.FPMConfig, &opts.PHPIni, &opts.Prefix, &opts.NginxConfig, &opts.ApacheConfig, &opts.ServerRoot, &opts.Binary} {
		*p = h.given(*p)
	}
	r := &Report{Schema: SchemaVersion, Root: h.root, Live: h.live(), Warnings: []string{}, Findings: []Finding{}}
	warn := func(s string) { r.Warnings = append(r.Warnings, s) }
	r.Systemd = systemdRunning(h)
	r.Kernel = readKernel(h, warn)
	procs := fpmProcesses(h, warn)

	var cands []*Installation
	switch {
	case opts.FPMConfig != "":
		cands = []*Installation{explicitInstallation(h, opts, procs)}
	case opts.ApacheConfig != "":
		cands = []*Installation{explicitApache(h, opts)}
	default:
		cands = discover(h)
		cands = append(cands, discoverApache(h, warn)...)
		if len(cands) == 0 {
			warn("no PHP-FPM installation found (looked for /etc/php/*/fpm/php-fpm.conf, /etc/php-fpm.conf, /etc/opt/remi/php*/php-fpm.conf) and no Apache with mod_php (/etc/apache2, /etc/httpd); use --fpm-config or --apache-config")
		}
	}
	a := &auditor{h: h, r: r, acc: readAccounts(h), procs: procs}
	a.roots = webRoots(h, opts.NginxConfig, warn)
	for _, in := range cands {
		load := a.load
		if in.isApache() {
			load = a.loadApache
		} else {
			in.SAPI = SAPIFPM
		}
		if err := load(in, opts); err != nil {
			if opts.FPMConfig != "" || opts.ApacheConfig != "" {
				return nil, err
			}
			warn(err.Error())
			continue
		}
		r.Installations = append(r.Installations, in)
	}
	a.checkKernel()
	a.checkContainers()
	for _, in := range r.Installations {
		a.checkInstallation(in)
	}
	a.verdicts()
	return r, nil
}

// systemdRunning reports whether systemd is PID 1 (sd_booted: /run/systemd/system exists).
func systemdRunning(h *host) bool {
	return h.isDir("/run/systemd/system")
}

var debianRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/etc/php/([0-9]+\.[0-9]+)/fpm/php-fpm\.conf$`) })
var remiRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^/etc/opt/remi/php([0-9])([0-9]+)/php-fpm\.conf$`) })

// discover finds installations in the Debian, RHEL and Remi layouts.
func discover(h *host) []*Installation {
	var out []*Installation
	for _, f := range h.glob("/etc/php/*/fpm/php-fpm.conf") {
		m := debianRe().FindStringSubmatch(f)
		if m == nil {
			continue
		}
		v := m[1]
		out = append(out, &Installation{
			Name: "php" + v + "-fpm", Layout: "debian", Version: v, FPMConfig: f,
			PHPIni: "/etc/php/" + v + "/fpm/php.ini", ScanDirs: []string{"/etc/php/" + v + "/fpm/conf.d"},
			Unit: "php" + v + "-fpm.service", Binary: "/usr/sbin/php-fpm" + v,
		})
	}
	if h.exists("/etc/php-fpm.conf") {
		out = append(out, &Installation{
			Name: "php-fpm", Layout: "rhel", FPMConfig: "/etc/php-fpm.conf",
			PHPIni: "/etc/php.ini", ScanDirs: []string{"/etc/php.d"},
			Unit: "php-fpm.service", Binary: "/usr/sbin/php-fpm",
		})
	}
	for _, f := range h.glob("/etc/opt/remi/php*/php-fpm.conf") {
		m := remiRe().FindStringSubmatch(f)
		if m == nil {
			continue
		}
		n := "php" + m[1] + m[2]
		base := "/etc/opt/remi/" + n
		out = append(out, &Installation{
			Name: n + "-php-fpm", Layout: "remi", Version: m[1] + "." + m[2], FPMConfig: f,
			PHPIni: base + "/php.ini", ScanDirs: []string{base + "/php.d"},
			Unit: n + "-php-fpm.service", Binary: "/opt/remi/" + n + "/root/usr/sbin/php-fpm",
		})
	}
	return out
}

// explicitInstallation describes the FPMConfig given on the command line,
// borrowing defaults from the layout its path or version suggests.
func explicitInstallation(h *host, opts Options, procs []Process) *Installation {
	in := &Installation{Name: "php-fpm", Layout: "explicit", FPMConfig: path.Clean(opts.FPMConfig), Unit: opts.Unit, Binary: opts.Binary, Version: opts.PHPVersion}
	if m := debianRe().FindStringSubmatch(in.FPMConfig); m != nil && in.Version == "" {
		in.Version = m[1]
	}
	if in.Binary == "" && h.live() {
		for _, p := range procs {
			if p.Role == "master" && p.Config == in.FPMConfig {
				if exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", p.PID)); err == nil {
					in.Binary = strings.TrimSuffix(exe, " (deleted)")
				}
			}
		}
	}
	if in.Version == "" && in.Binary != "" {
		in.Version = binaryVersion(h, in.Binary)
	}
	if v := parsePHPVersion(in.Version); v.known() {
		vs := fmt.Sprintf("%d.%d", v.major, v.minor)
		if h.exists("/etc/php/" + vs + "/fpm") {
			in.Name = "php" + vs + "-fpm"
			in.PHPIni = "/etc/php/" + vs + "/fpm/php.ini"
			in.ScanDirs = []string{"/etc/php/" + vs + "/fpm/conf.d"}
			// The unit is not guessed: an explicit config is usually not
			// the one the distribution's unit starts.
		}
	}
	if in.PHPIni == "" && h.exists("/etc/php.ini") {
		in.PHPIni, in.ScanDirs = "/etc/php.ini", []string{"/etc/php.d"}
	}
	return in
}

var versionRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`X-Powered-By: PHP/([0-9]+\.[0-9]+\.[0-9]+)`) })

// binaryVersion finds PHP's version string in the php-fpm executable.
func binaryVersion(h *host, bin string) string {
	f, err := os.Open(h.resolve(bin))
	if err != nil {
		return ""
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var carry []byte
	for total := 0; total < 256<<20; {
		n, err := f.Read(buf)
		if n > 0 {
			chunk := append(carry, buf[:n]...)
			if m := versionRe().FindSubmatch(chunk); m != nil {
				return string(m[1])
			}
			if len(chunk) > 64 {
				carry = append([]byte(nil), chunk[len(chunk)-64:]...)
			}
			total += n
		}
		if err == io.EOF || err != nil {
			break
		}
	}
	return ""
}

// auditor carries the state of one audit.
type auditor struct {
	h     *host
	r     *Report
	acc   *accounts
	procs []Process
	// pattern is the core_pattern the checks judge (see checkKernel).
	pattern string
	// roots are the web servers' document roots (root / DocumentRoot lines).
	roots []Evidence
}

func (a *auditor) warn(s string) { a.r.Warnings = append(a.r.Warnings, s) }

// load reads an installation's FPM, PHP and systemd configuration.
func (a *auditor) load(in *Installation, opts Options) error {
	h := a.h
	env := opts.Env
	var master *Process
	for i, p := range a.procs {
		if p.Role == "master" && p.Config == in.FPMConfig {
			master = &a.procs[i]
		}
	}
	if master != nil && h.live() {
		if e := procEnviron(master.PID); e != nil {
			env = e
		}
	}
	if in.Version == "" {
		in.Version = opts.PHPVersion
	}
	if in.Version == "" && in.Binary != "" {
		in.Version = binaryVersion(h, in.Binary)
	}
	if opts.PHPIni != "" {
		in.PHPIni = opts.PHPIni
	}
	scan := opts.PHPIniScanDir
	if scan == "" && env != nil {
		if v, ok := env["PHP_INI_SCAN_DIR"]; ok {
			scan = v
		}
	}
	if scan != "" {
		def := in.ScanDirs
		in.ScanDirs = nil
		for _, d := range strings.Split(scan, ":") {
			if d == "" {
				in.ScanDirs = append(in.ScanDirs, def...)
				continue
			}
			in.ScanDirs = append(in.ScanDirs, d)
		}
	}

	fc, err := loadFPMConfig(h, in.FPMConfig, opts.Prefix, env)
	if err != nil {
		return fmt.Errorf("%s: %w", in.Name, err)
	}
	for _, w := range fc.warnings {
		a.warn(w)
	}
	in.ConfigFiles = append(in.ConfigFiles, fc.files...)
	if len(fc.pools) == 0 {
		a.warn(fmt.Sprintf("%s: %s defines no pool (FPM refuses to start)", in.Name, in.FPMConfig))
	}
	in.GlobalRlimitCore = settingOf(fc.global, "rlimit_core", "")

	pc := loadPHPConfig(h, in.PHPIni, in.ScanDirs, env)
	for _, w := range pc.warnings {
		a.warn(in.Name + ": " + w)
	}
	in.INIFiles = pc.files
	in.ConfigFiles = append(in.ConfigFiles, pc.files...)
	in.Extensions = pc.extensions
	if in.Extensions == nil {
		in.Extensions = []string{}
	}
	v := parsePHPVersion(in.Version)
	if !v.known() {
		a.warn(in.Name + ": PHP version unknown (give --php-version); version defaults assumed for 8.0-8.3")
	}
	in.INI = effective(v, pc.assign, nil)
	in.JIT = jitState(in.INI, in.Extensions)
	for _, fp := range fc.pools {
		p := &Pool{Name: fp.name, File: fp.file, Line: fp.line, LastLine: fp.lastLine}
		p.User = settingOf(fp.entries, "user", "")
		p.Group = settingOf(fp.entries, "group", "")
		p.Chdir = settingOf(fp.entries, "chdir", "")
		p.RlimitCore = settingOf(fp.entries, "rlimit_core", "")
		p.Dumpable = settingOf(fp.entries, "process.dumpable", "no")
		p.Listen = settingOf(fp.entries, "listen", "")
		p.StatusPath = settingOf(fp.entries, "pm.status_path", "")
		p.StatusListen = settingOf(fp.entries, "pm.status_listen", "")
		p.SlowlogTimeout = settingOf(fp.entries, "request_slowlog_timeout", "0")
		p.TerminateTimeout = settingOf(fp.entries, "request_terminate_timeout", "0")
		pa := poolINI(fp)
		if len(pa) > 0 {
			p.INI = map[string]Setting{}
			for _, x := range pa {
				ev := x.ev
				p.INI[x.key] = Setting{Value: x.value, Evidence: &ev}
			}
		}
		p.Effective = effective(v, pc.assign, pa)
		in.Pools = append(in.Pools, p)
	}

	a.loadUnit(in)

	for _, p := range a.procs {
		if p.Role == "master" && p.Config == in.FPMConfig {
			in.Processes = append(in.Processes, p)
			for _, w := range a.procs {
				if w.Role == "worker" && w.PPID == p.PID {
					in.Processes = append(in.Processes, w)
				}
			}
		}
	}
	in.ExpectedCoreSize = expectedCoreSize(in.INI)
	return nil
}

// loadUnit reads the installation's systemd unit: its LimitCORE, else
// systemd's DefaultLimitCORE, else systemd's default (soft 0).
func (a *auditor) loadUnit(in *Installation) {
	h := a.h
	if in.Unit != "" {
		if u := loadUnit(h, in.Unit); u != nil {
			in.UnitFile, in.DropIns = u.file, u.dropIns
			in.ConfigFiles = append(in.ConfigFiles, u.file)
			in.ConfigFiles = append(in.ConfigFiles, u.dropIns...)
			for _, w := range u.warnings {
				a.warn(w)
			}
			if e, ok := lastUnitEntry(u.entries, "Service", "LimitCORE"); ok {
				in.LimitCore = Setting{Value: e.Value, Evidence: &Evidence{File: e.File, Line: e.Line, Text: "LimitCORE=" + e.Value}}
			}
		}
		if in.LimitCore.Value == "" && in.LimitCore.Evidence == nil {
			sys, w := loadSystemdConf(h, "system")
			for _, x := range w {
				a.warn(x)
			}
			if e, ok := lastUnitEntry(sys, "Manager", "DefaultLimitCORE"); ok {
				in.LimitCore = Setting{Value: e.Value, Evidence: &Evidence{File: e.File, Line: e.Line, Text: "DefaultLimitCORE=" + e.Value}}
			} else {
				// systemd raises the hard limit but keeps the kernel's soft 0.
				in.LimitCore = Setting{Value: "0:infinity", Default: true}
				if in.UnitFile != "" {
					in.LimitCore.Evidence = &Evidence{File: in.UnitFile, Text: "no LimitCORE= (systemd default: soft 0, hard infinity)"}
				}
			}
		}
	}
}

// procEnviron reads a live process's environment.
func procEnviron(pid int) map[string]string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return nil
	}
	env := map[string]string{}
	for _, kv := range bytes.Split(b, []byte{0}) {
		if i := bytes.IndexByte(kv, '='); i > 0 {
			env[string(kv[:i])] = string(kv[i+1:])
		}
	}
	return env
}

// coreMargin is added to the opcache SHM and JIT buffer for the rest of a
// worker's memory (heap, stacks, libraries' data).
const coreMargin = 64 << 20

func expectedCoreSize(ini map[string]Setting) int64 {
	n := int64(coreMargin)
	if iniBool(ini["opcache.enable"].Value) {
		if mc, ok := parseSize(ini["opcache.memory_consumption"].Value); ok && mc > 0 {
			n += mc << 20 // megabytes
		}
		// the buffer is only mapped when the JIT is not disabled
		if jb, ok := parseSize(ini["opcache.jit_buffer_size"].Value); ok && jb > 0 && decodeJIT(ini["opcache.jit"].Value).Mode != "disable" {
			n += jb
		}
	}
	return n
}

// jitState decodes opcache.jit and decides whether the JIT really runs.
func jitState(ini map[string]Setting, exts []string) JIT {
	j := decodeJIT(ini["opcache.jit"].Value)
	if s := ini["opcache.jit"]; strings.TrimSpace(s.Value) == "" && s.Evidence != nil {
		// An unquoted off/no/false/none is read as "", which zend_jit_config
		// treats as "disable", not as "off".
		if raw := strings.ToLower(strings.TrimSpace(s.Evidence.Text[strings.Index(s.Evidence.Text, "=")+1:])); raw != "" && raw != `""` {
			j.Description = "JIT disabled: the unquoted " + raw + " is read as an empty string, which PHP treats as disable (the JIT cannot be switched on at run time, not even by a pool's php_value)"
		}
	}
	buf, _ := parseSize(ini["opcache.jit_buffer_size"].Value)
	opc := contains(exts, "opcache")
	j.Active = j.on() && buf > 0 && opc && iniBool(ini["opcache.enable"].Value)
	switch {
	case !j.on():
	case !opc:
		j.Description += "; opcache is not loaded, so no JIT"
	case buf <= 0:
		j.Description += "; opcache.jit_buffer_size=0, so no JIT"
	case !iniBool(ini["opcache.enable"].Value):
		j.Description += "; opcache.enable=0, so no JIT"
	}
	return j
}

func sortStrings(s []string) { sort.Strings(s) }

func itoa(n int) string { return strconv.Itoa(n) }
