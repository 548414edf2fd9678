package audit

import (
	"fmt"
	"path"
	"regexp"
	"strings"
	"sync"
)

// Apache httpd with mod_php runs PHP inside its children: the layers that
// decide whether a crashing child leaves a core are Apache's own. Its
// children switch from root to User, which makes them non-dumpable under
// fs.suid_dumpable=0; Apache makes them dumpable again (prctl
// PR_SET_DUMPABLE) only when CoreDumpDirectory is set, and its crash
// handler (sig_coredump) changes into that directory before it re-raises
// the signal, so a relative core_pattern lands there. The core size limit
// comes from the service (systemd LimitCORE) or from `ulimit -c` in the
// environment apachectl starts it from (Debian's /etc/apache2/envvars).

// SAPIs an Installation runs PHP as.
const (
	SAPIFPM    = "fpm-fcgi"
	SAPIApache = "apache2handler"
)

// Bounds on what is read of an Apache configuration.
const (
	maxApacheFiles = 512
	maxApacheDepth = 16
)

// apacheConfig is what coroner reads of an Apache httpd configuration.
type apacheConfig struct {
	files      []string
	serverRoot string
	user       Setting
	group      Setting
	coreDir    Setting
	phpModule  Setting // LoadModule php*_module PATH
	phpIniDir  Setting
	mpm        string
	values     []iniAssignment // php_value / php_admin_value / *_flag lines
	warnings   []string
}

// apacheDirective is one directive line: its name as written, its
// arguments (quotes removed) and where it is.
type apacheDirective struct {
	name string
	args []string
	ev   Evidence
}

var apacheVarRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`) })

// parseApacheDirectives splits an Apache configuration file into
// directives: comments and blank lines dropped, backslash continuations
// joined, ${VAR} replaced from env. Section markers (<IfModule ...>,
// </Directory>) are returned as directives named "<IfModule" or
// "</Directory>". It never fails: what it cannot read it skips.
func parseApacheDirectives(file string, data []byte, env map[string]string) []apacheDirective {
	var out []apacheDirective
	lines := strings.Split(string(data), "\n")
	for i := 0; i < len(lines); i++ {
		start := i + 1
		l := strings.TrimRight(lines[i], "\r")
		for strings.HasSuffix(l, "\\") && i+1 < len(lines) && len(l) < maxConfigFile {
			i++
			l = strings.TrimSuffix(l, "\\") + " " + strings.TrimSpace(strings.TrimRight(lines[i], "\r"))
		}
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' {
			continue
		}
		t = apacheVarRe().ReplaceAllStringFunc(t, func(m string) string {
			if v, ok := env[m[2:len(m)-1]]; ok {
				return v
			}
			return m
		})
		words := apacheWords(t)
		if len(words) == 0 || words[0] == "" {
			continue
		}
		name := words[0]
		if strings.HasPrefix(name, "<") {
			name = strings.TrimSuffix(name, ">")
		}
		out = append(out, apacheDirective{name: name, args: words[1:], ev: Evidence{File: file, Line: start, Text: clip(t)}})
	}
	return out
}

// apacheWords splits a directive line into words; double- or
// single-quoted words keep their spaces.
func apacheWords(s string) []string {
	var out []string
	for len(s) > 0 && len(out) < 64 {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		if q := s[0]; q == '"' || q == '\'' {
			end := strings.IndexByte(s[1:], q)
			if end < 0 {
				out = append(out, s[1:])
				break
			}
			out = append(out, s[1:1+end])
			s = s[2+end:]
			continue
		}
		end := strings.IndexAny(s, " \t")
		if end < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:end])
		s = s[end:]
	}
	return out
}

// loadApacheConfig reads the Apache configuration main (following Include
// and IncludeOptional) with env for ${VAR}.
func loadApacheConfig(h *host, main, serverRoot string, env map[string]string) (*apacheConfig, error) {
	if !h.exists(main) {
		return nil, fmt.Errorf("no Apache configuration %s", main)
	}
	c := &apacheConfig{serverRoot: serverRoot}
	c.read(h, main, env, 0, true)
	return c, nil
}

func (c *apacheConfig) warn(format string, args ...any) {
	if len(c.warnings) < 100 {
		c.warnings = append(c.warnings, fmt.Sprintf(format, args...))
	}
}

// abs makes p absolute against ServerRoot, as Apache does.
func (c *apacheConfig) abs(p string) string {
	if p == "" || strings.HasPrefix(p, "/") {
		return p
	}
	return path.Join(c.serverRoot, p)
}

func (c *apacheConfig) read(h *host, file string, env map[string]string, depth int, must bool) {
	if depth > maxApacheDepth {
		c.warn("%s: includes nested more than %d deep: not read", file, maxApacheDepth)
		return
	}
	if len(c.files) >= maxApacheFiles {
		c.warn("more than %d Apache configuration files: %s and later ones not read", maxApacheFiles, file)
		return
	}
	data, err := h.readFile(file)
	if err != nil {
		if must {
			c.warn("%v", err)
		}
		if data == nil {
			return
		}
	}
	c.files = append(c.files, file)
	for _, d := range parseApacheDirectives(file, data, env) {
		switch strings.ToLower(d.name) {
		case "serverroot":
			if len(d.args) > 0 {
				c.serverRoot = d.args[0]
			}
		case "include", "includeoptional":
			if len(d.args) == 0 {
				continue
			}
			pattern := c.abs(d.args[0])
			matches := []string{pattern}
			if strings.ContainsAny(pattern, "*?[") {
				matches = h.glob(pattern)
			} else if h.isDir(pattern) {
				matches, _ = h.listDir(pattern, "")
			}
			for _, m := range matches {
				c.read(h, m, env, depth+1, strings.EqualFold(d.name, "include") && !strings.ContainsAny(pattern, "*?["))
			}
		case "user":
			if len(d.args) > 0 {
				ev := d.ev
				c.user = Setting{Value: d.args[0], Evidence: &ev}
			}
		case "group":
			if len(d.args) > 0 {
				ev := d.ev
				c.group = Setting{Value: d.args[0], Evidence: &ev}
			}
		case "coredumpdirectory":
			if len(d.args) > 0 {
				ev := d.ev
				c.coreDir = Setting{Value: c.abs(d.args[0]), Evidence: &ev}
			}
		case "phpinidir":
			if len(d.args) > 0 {
				ev := d.ev
				c.phpIniDir = Setting{Value: c.abs(d.args[0]), Evidence: &ev}
			}
		case "loadmodule":
			if len(d.args) < 2 {
				continue
			}
			mod := strings.ToLower(d.args[0])
			switch {
			case strings.HasPrefix(mod, "php") && strings.HasSuffix(mod, "_module"):
				ev := d.ev
				c.phpModule = Setting{Value: c.abs(d.args[1]), Evidence: &ev}
			case strings.HasPrefix(mod, "mpm_") && strings.HasSuffix(mod, "_module"):
				c.mpm = strings.TrimSuffix(strings.TrimPrefix(mod, "mpm_"), "_module")
			}
		case "php_value", "php_admin_value", "php_flag", "php_admin_flag":
			if len(d.args) < 1 {
				continue
			}
			v := ""
			if len(d.args) > 1 {
				v = d.args[1]
			}
			if strings.HasSuffix(strings.ToLower(d.name), "_flag") {
				if iniBool(v) {
					v = "1"
				} else {
					v = ""
				}
			}
			if len(c.values) < 1000 {
				c.values = append(c.values, iniAssignment{key: strings.ToLower(d.args[0]), value: v, raw: strings.Join(d.args[1:], " "), ev: d.ev})
			}
		}
	}
}

// apacheEnvvars reads Debian's /etc/apache2/envvars: the exported
// variables the configuration uses (APACHE_RUN_USER...) and a `ulimit -c`
// line, which sets the core size limit apachectl starts Apache with.
func apacheEnvvars(h *host, file string) (map[string]string, Setting) {
	env := map[string]string{}
	var ulimit Setting
	data, err := h.readFile(file)
	if err != nil && data == nil {
		return env, ulimit
	}
	for i, l := range strings.Split(string(data), "\n") {
		t := strings.TrimSpace(l)
		if t == "" || t[0] == '#' {
			continue
		}
		if rest, ok := strings.CutPrefix(t, "export "); ok {
			if k, v, ok := strings.Cut(strings.TrimSpace(rest), "="); ok && len(env) < 200 {
				env[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"'`)
			}
			continue
		}
		if f := strings.Fields(t); len(f) >= 3 && f[0] == "ulimit" && (f[1] == "-c" || f[1] == "-Sc" || f[1] == "-Hc") {
			ulimit = Setting{Value: f[2], Evidence: &Evidence{File: file, Line: i + 1, Text: clip(t)}}
		}
	}
	return env, ulimit
}

var libphpRe = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`libphp([0-9]+(\.[0-9]+)?)?\.so`) })

// discoverApache finds Apache httpd installations that load mod_php
// (Debian's /etc/apache2, RHEL's /etc/httpd).
func discoverApache(h *host, warn func(string)) []*Installation {
	var out []*Installation
	for _, l := range []struct {
		name, conf, root, envvars, unit, binary, layout string
	}{
		{"apache2", "/etc/apache2/apache2.conf", "/etc/apache2", "/etc/apache2/envvars", "apache2.service", "/usr/sbin/apache2", "debian"},
		{"httpd", "/etc/httpd/conf/httpd.conf", "/etc/httpd", "", "httpd.service", "/usr/sbin/httpd", "rhel"},
	} {
		if !h.exists(l.conf) {
			continue
		}
		in := &Installation{Name: l.name, Layout: l.layout, SAPI: SAPIApache, ServerConfig: l.conf, ServerRoot: l.root, Envvars: l.envvars,
			Unit: l.unit, Binary: l.binary}
		c, err := loadApacheConfig(h, l.conf, l.root, nil)
		if err != nil {
			warn(err.Error())
			continue
		}
		if c.phpModule.Value == "" {
			continue // Apache without mod_php (PHP through FPM is audited as FPM)
		}
		out = append(out, in)
	}
	return out
}

// explicitApache describes the Apache configuration given on the command
// line (Options.ApacheConfig).
func explicitApache(h *host, opts Options) *Installation {
	conf := path.Clean(opts.ApacheConfig)
	root := opts.ServerRoot
	if root == "" {
		root = path.Dir(conf)
	}
	in := &Installation{Name: "apache2", Layout: "explicit", SAPI: SAPIApache, ServerConfig: conf, ServerRoot: root,
		Unit: opts.Unit, Binary: opts.Binary, Version: opts.PHPVersion}
	if in.Binary == "" {
		for _, b := range []string{"/usr/sbin/apache2", "/usr/sbin/httpd"} {
			if h.exists(b) {
				in.Binary = b
				break
			}
		}
	}
	if path.Base(in.Binary) == "httpd" {
		in.Name = "httpd"
	}
	return in
}

// loadApache reads an Apache installation: its configuration, mod_php's
// version and ini files, the service's LimitCORE, the running processes.
func (a *auditor) loadApache(in *Installation, opts Options) error {
	h := a.h
	env, ulimit := map[string]string{}, Setting{}
	if in.Envvars != "" {
		env, ulimit = apacheEnvvars(h, in.Envvars)
	}
	c, err := loadApacheConfig(h, in.ServerConfig, in.ServerRoot, env)
	if err != nil {
		return err
	}
	for _, w := range c.warnings {
		a.warn(in.Name + ": " + w)
	}
	in.ConfigFiles = append(in.ConfigFiles, c.files...)
	if in.Envvars != "" && h.exists(in.Envvars) {
		in.ConfigFiles = append(in.ConfigFiles, in.Envvars)
	}
	if c.phpModule.Value == "" {
		a.warn(in.Name + ": " + in.ServerConfig + " loads no PHP module (LoadModule php_module): PHP does not run inside this Apache")
	}
	in.PHPModule = c.phpModule.Value
	in.MPM = c.mpm
	in.CoreDumpDirectory = c.coreDir
	if ulimit.Evidence != nil {
		in.GlobalRlimitCore = ulimit
	}
	if in.Version == "" {
		if m := libphpRe().FindStringSubmatch(path.Base(in.PHPModule)); m != nil && strings.Contains(m[1], ".") {
			in.Version = m[1]
		}
	}
	if in.Version == "" && in.PHPModule != "" {
		in.Version = binaryVersion(h, in.PHPModule)
	}
	if in.Version != "" {
		in.Name += " (mod_php " + in.Version + ")"
	} else {
		in.Name += " (mod_php)"
	}
	// mod_php's ini files: Debian's per-SAPI directory, else RHEL's /etc/php.ini
	v := parsePHPVersion(in.Version)
	switch {
	case v.known() && h.isDir(fmt.Sprintf("/etc/php/%d.%d/apache2", v.major, v.minor)):
		base := fmt.Sprintf("/etc/php/%d.%d/apache2", v.major, v.minor)
		in.PHPIni, in.ScanDirs = base+"/php.ini", []string{base + "/conf.d"}
	case h.exists("/etc/php.ini"):
		in.PHPIni, in.ScanDirs = "/etc/php.ini", []string{"/etc/php.d"}
	}
	if c.phpIniDir.Value != "" {
		in.PHPIni = path.Join(c.phpIniDir.Value, "php.ini")
	}
	if opts.PHPIni != "" {
		in.PHPIni = opts.PHPIni
	}
	if opts.PHPIniScanDir != "" {
		def := in.ScanDirs
		in.ScanDirs = nil
		for _, d := range strings.Split(opts.PHPIniScanDir, ":") {
			if d == "" {
				in.ScanDirs = append(in.ScanDirs, def...)
				continue
			}
			in.ScanDirs = append(in.ScanDirs, d)
		}
	}
	pc := loadPHPConfig(h, in.PHPIni, in.ScanDirs, nil)
	for _, w := range pc.warnings {
		a.warn(in.Name + ": " + w)
	}
	in.INIFiles = pc.files
	in.ConfigFiles = append(in.ConfigFiles, pc.files...)
	in.Extensions = pc.extensions
	if in.Extensions == nil {
		in.Extensions = []string{}
	}
	if !v.known() {
		a.warn(in.Name + ": PHP version unknown (give --php-version); version defaults assumed for 8.0-8.3")
	}
	in.INI = effective(v, pc.assign, nil)
	in.JIT = jitState(in.INI, in.Extensions)

	// The children are the "pool": they run as User, dumpable when
	// CoreDumpDirectory is set.
	p := &Pool{Name: path.Base(in.Binary), File: in.ServerConfig, User: c.user, Group: c.group}
	if p.Name == "." || p.Name == "" {
		p.Name = "apache2"
	}
	if c.coreDir.Evidence != nil {
		p.Dumpable = Setting{Value: "yes", Evidence: c.coreDir.Evidence}
	} else {
		p.Dumpable = Setting{Value: "no", Default: true}
	}
	if len(c.values) > 0 {
		p.INI = map[string]Setting{}
		for _, x := range c.values {
			if wanted(x.key) {
				ev := x.ev
				p.INI[x.key] = Setting{Value: x.value, Evidence: &ev}
			}
		}
	}
	p.Effective = effective(v, pc.assign, c.values)
	in.Pools = []*Pool{p}

	a.loadUnit(in)
	in.Processes = apacheProcesses(h, in)
	in.ExpectedCoreSize = expectedCoreSize(in.INI)
	return nil
}

// apacheProcesses finds the running Apache parent and children of the
// installation: processes of its executable started with its
// configuration (-f FILE, or none for the distribution's own); a process
// whose parent is one of them is a child.
func apacheProcesses(h *host, in *Installation) []Process {
	bin := in.Binary
	if !h.live() || bin == "" {
		return nil
	}
	ours := func(exe, title string) bool {
		if exe != bin && path.Base(exe) != path.Base(bin) {
			return false
		}
		f := strings.Fields(title)
		for i := 0; i+1 < len(f); i++ {
			if f[i] == "-f" {
				return path.Clean(f[i+1]) == in.ServerConfig || path.Join(in.ServerRoot, f[i+1]) == in.ServerConfig
			}
		}
		return in.Layout != "explicit"
	}
	out := procsOf(h, ours)
	parents := map[int]bool{}
	for _, p := range out {
		parents[p.PID] = true
	}
	for i := range out {
		out[i].Role = "master"
		if parents[out[i].PPID] {
			out[i].Role = "worker"
			out[i].Pool = path.Base(bin)
		}
	}
	return out
}

// lastDir is the last of dirs, "" when there is none.
func lastDir(dirs []string) string {
	if len(dirs) == 0 {
		return ""
	}
	return dirs[len(dirs)-1]
}

// checkApache judges the layers of an Apache child's core: its core size
// limit (the service's LimitCORE or envvars' ulimit -c), its dumpability
// (CoreDumpDirectory against fs.suid_dumpable) and where the core lands.
func (a *auditor) checkApache(in *Installation, p *Pool) {
	k := &a.r.Kernel
	pipe := strings.HasPrefix(a.pattern, "|")
	n, s, from := workerLimit(in, p, a.r.Systemd)
	blockStatus := StatusBlocks
	if h := handlerOf(a.pattern); pipe && (h == "apport" || h == "abrt") {
		blockStatus = StatusRisky // these handlers ignore RLIMIT_CORE for their own store
	}
	unitFix := "LimitCORE=infinity in /etc/systemd/system/" + orStr(in.Unit, "apache2.service") + ".d/"
	if !a.r.Systemd && in.Envvars != "" {
		unitFix = "ulimit -c unlimited in " + in.Envvars
	}
	f := Finding{Layer: LayerApache, Check: "apache.core_limit", Installation: in.Name, Pool: p.Name, Evidence: evs(s)}
	switch {
	case n == -2:
		f.Status, f.Message = StatusRisky, "no LimitCORE and no `ulimit -c`: Apache's children get the core limit of "+from+" (often 0)"
		f.Fix = unitFix
	case n == 0:
		f.Status, f.Message = blockStatus, "Apache's children run with a core size limit of 0 (from "+from+")"
		f.Fix = unitFix
	case n > 0 && n < in.ExpectedCoreSize:
		f.Status, f.Message = blockStatus, fmt.Sprintf("Apache's children's core size limit %s (from %s) is smaller than an expected core (~%s): cores are truncated", mib(n), from, mib(in.ExpectedCoreSize))
		f.Fix = unitFix
	default:
		f.Status, f.Message = StatusOK, "Apache's children's core size limit: "+mib(n)+" (from "+from+")"
	}
	a.add(f)

	user := p.User.Value
	dumpable := iniBool(p.Dumpable.Value)
	sd := strings.TrimSpace(k.SuidDumpable.Value)
	dir := in.CoreDumpDirectory.Value
	df := Finding{Layer: LayerApache, Check: "apache.core_dump_directory", Installation: in.Name, Pool: p.Name, Evidence: evs(in.CoreDumpDirectory, p.User, k.SuidDumpable)}
	switch {
	case dumpable:
		df.Status, df.Message = StatusOK, "CoreDumpDirectory "+dir+": Apache makes its children dumpable again after they switch to user "+orDash(user)+" (prctl PR_SET_DUMPABLE)"
	case user == "" || user == "root":
		df.Status, df.Message = StatusOK, "Apache's children do not switch user, so they stay dumpable"
	case sd == "0":
		df.Status = StatusBlocks
		df.Message = fmt.Sprintf("Apache's children switch from root to %s, which makes them non-dumpable (fs.suid_dumpable=0), and no CoreDumpDirectory is set, the only thing that makes Apache mark them dumpable again: the kernel writes no core (the error log says AH00052 \"exit signal ...\" without \"possible coredump in\")", user)
		df.Fix = "CoreDumpDirectory " + DefaultCoreDir + " in Apache's configuration"
	case sd == "2" && !pipe && !strings.HasPrefix(a.pattern, "/"):
		df.Status, df.Message = StatusBlocks, "Apache's children are non-dumpable after the user switch and fs.suid_dumpable=2 refuses the relative core_pattern"
		df.Fix = "CoreDumpDirectory " + DefaultCoreDir + " in Apache's configuration"
	default:
		df.Status, df.Message = StatusOK, "fs.suid_dumpable="+sd+" lets Apache's children dump core after switching user"
	}
	a.add(df)
	if dumpable && dir != "" && !a.h.isDir(dir) {
		a.add(Finding{Layer: LayerApache, Check: "apache.core_dump_directory_exists", Installation: in.Name, Pool: p.Name, Status: StatusRisky, Evidence: evs(in.CoreDumpDirectory),
			Message: "CoreDumpDirectory " + dir + " does not exist: Apache refuses to start with it (AH00100)", Fix: "mkdir -m 1733 " + dir})
	}

	// where the core lands: an absolute core_pattern's directory, or with a
	// relative one the directory sig_coredump changes to (CoreDumpDirectory;
	// a child that overflowed its stack cannot run the handler and dumps in
	// its own working directory)
	writer := user
	if writer == "" || (!dumpable && sd == "2") {
		writer = "root"
	}
	land := ""
	switch {
	case pipe:
	case strings.HasPrefix(a.pattern, "/"):
		land = path.Dir(a.pattern)
	case dir != "":
		land = dir
		a.add(Finding{Layer: LayerApache, Check: "apache.relative_core_pattern", Installation: in.Name, Pool: p.Name, Status: StatusRisky, Evidence: evs(k.CorePattern, in.CoreDumpDirectory),
			Message: "relative core_pattern: Apache's crash handler changes into CoreDumpDirectory before it re-raises the signal, so cores land in " + dir + ", except those of a child whose stack overflowed (the handler cannot run on the exhausted stack): they land in the child's working directory",
			Fix:     "point kernel.core_pattern to an absolute directory (coroner fix --capture)"})
	default:
		p.CoreDir = "(cwd)"
	}
	if land != "" {
		p.CoreDir = land
		if a.h.isDir(land) {
			ok, known := canWrite(a.h, a.acc, writer, p.Group.Value, land)
			wf := Finding{Layer: LayerDisk, Check: "disk.writable", Installation: in.Name, Pool: p.Name, Evidence: []Evidence{{File: land}}}
			switch {
			case !known:
				wf.Status, wf.Message = StatusRisky, fmt.Sprintf("cannot tell whether %s may write to %s (user unknown in /etc/passwd)", writer, land)
			case !ok:
				wf.Status, wf.Message = StatusBlocks, fmt.Sprintf("%s cannot create files in %s: the core is not written", writer, land)
				wf.Fix = "chmod 1733 " + land
			default:
				wf.Status, wf.Message = StatusOK, writer+" may write cores to "+land
			}
			a.add(wf)
			a.checkSpace(land, "the core directory", in.Name)
		}
	}
}
