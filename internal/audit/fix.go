package audit

import (
	"fmt"
	"os"
	"path"
	"sort"
	"strings"

	"github.com/coroner-dev/coroner/crash"
)

// Default locations of fix state and of cores written by a file pattern.
const (
	DefaultStateDir = "/var/lib/coroner/fix"
	DefaultCoreDir  = "/var/lib/coroner/cores"
)

// FixOptions selects what `coroner fix` changes.
type FixOptions struct {
	// Capture makes the next crash leave a core.
	Capture bool
	// Mitigate is one of crash.Mitigations, or "".
	Mitigate crash.Mitigation
	// CoreDir is where a rewritten core_pattern puts cores (DefaultCoreDir).
	CoreDir string
	// StateDir keeps backups and rollback manifests (DefaultStateDir),
	// inside the root when auditing a tree.
	StateDir string
	// SAPI limits the installation changes to those running PHP this way
	// (SAPIFPM, SAPIApache); "" changes every installation.
	SAPI string
}

// Change is one file the fix writes (or one directory it creates).
type Change struct {
	Path    string   `json:"path"` // in the audited system's view
	Dir     bool     `json:"dir,omitempty"`
	Mode    uint32   `json:"mode"`
	Existed bool     `json:"existed"`
	Old     []byte   `json:"-"`
	New     []byte   `json:"-"`
	Reasons []string `json:"reasons"`
}

// Plan is the set of changes a fix makes, and what must be reloaded.
type Plan struct {
	Root     string    `json:"root"`
	StateDir string    `json:"state_dir"`
	Changes  []*Change `json:"changes"`
	// Reload lists the commands that make the running system use the
	// changes, in order.
	Reload []string `json:"reload"`
	Notes  []string `json:"notes"`
	live   bool
}

// fileEdit collects line edits to one existing file.
type fileEdit struct {
	lines   []string
	replace map[int]string   // 1-based line -> new text
	insert  map[int][]string // after 1-based line -> new lines
	reasons []string
}

type planner struct {
	h       *host
	r       *Report
	opts    FixOptions
	plan    *Plan
	edits   map[string]*fileEdit
	reloads map[string]bool
}

// PlanFix computes the changes for the profiles in opts from an audit
// report made with the same root.
func PlanFix(r *Report, opts FixOptions) (*Plan, error) {
	if !opts.Capture && opts.Mitigate == "" {
		return nil, fmt.Errorf("nothing to do: choose --capture and/or --mitigate=%s|%s|%s", crash.MitigateFunctionJIT, crash.MitigateNoPCREJIT, crash.MitigateNoJIT)
	}
	if opts.SAPI != "" && opts.SAPI != SAPIFPM && opts.SAPI != SAPIApache {
		return nil, fmt.Errorf("unknown SAPI %q (want %s or %s)", opts.SAPI, SAPIFPM, SAPIApache)
	}
	if opts.Mitigate != "" && !opts.Mitigate.Valid() {
		return nil, fmt.Errorf("unknown mitigation %q (want %s, %s or %s)", opts.Mitigate, crash.MitigateFunctionJIT, crash.MitigateNoPCREJIT, crash.MitigateNoJIT)
	}
	if opts.CoreDir == "" {
		opts.CoreDir = DefaultCoreDir
	}
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	h, err := newHost(r.Root)
	if err != nil {
		return nil, err
	}
	pl := &planner{h: h, r: r, opts: opts, edits: map[string]*fileEdit{}, reloads: map[string]bool{},
		plan: &Plan{Root: h.root, StateDir: opts.StateDir, live: h.live(), Reload: []string{}, Notes: []string{}, Changes: []*Change{}}}
	if opts.Capture {
		pl.capture()
	}
	if opts.Mitigate != "" {
		pl.mitigate()
	}
	if err := pl.finishEdits(); err != nil {
		return nil, err
	}
	pl.orderReloads()
	return pl.plan, nil
}

// wants reports whether the fix changes the installation (FixOptions.SAPI).
func (pl *planner) wants(in *Installation) bool {
	sapi := in.SAPI
	if sapi == "" {
		sapi = SAPIFPM
	}
	return pl.opts.SAPI == "" || pl.opts.SAPI == sapi
}

func (pl *planner) bad(check, inst, pool string) []Finding {
	var out []Finding
	for _, f := range pl.r.Findings {
		if f.Check == check && (inst == "" || f.Installation == inst) && (pool == "" || f.Pool == pool) &&
			(f.Status == StatusBlocks || f.Status == StatusRisky) {
			out = append(out, f)
		}
	}
	return out
}

func (pl *planner) newFile(p string, content string, mode uint32, reason string) {
	c := &Change{Path: p, Mode: mode, New: []byte(content), Reasons: []string{reason}}
	if old, err := pl.h.readFile(p); err == nil {
		c.Old, c.Existed = old, true
		if st, err := os.Stat(pl.h.resolve(p)); err == nil {
			c.Mode = uint32(st.Mode().Perm())
		}
		if string(old) == content {
			return // already in place
		}
	}
	pl.plan.Changes = append(pl.plan.Changes, c)
}

func (pl *planner) edit(file string) (*fileEdit, error) {
	if e, ok := pl.edits[file]; ok {
		return e, nil
	}
	data, err := pl.h.readFile(file)
	if err != nil {
		return nil, fmt.Errorf("fix: %w", err)
	}
	e := &fileEdit{lines: strings.Split(string(data), "\n"), replace: map[int]string{}, insert: map[int][]string{}}
	pl.edits[file] = e
	return e, nil
}

func (pl *planner) capture() {
	r := pl.r
	k := r.Kernel
	// 1. core_pattern: anything but a working systemd-coredump or an
	// absolute directory gets an absolute pattern in sysctl.d.
	needPattern := len(pl.bad("kernel.core_pattern", "", "")) > 0 || len(pl.bad("kernel.core_uses_pid", "", "")) > 0 ||
		len(pl.bad("apport.handler", "", "")) > 0 || len(pl.bad("apport.pending_report", "", "")) > 0 ||
		len(pl.bad("apport.unpackaged", "", "")) > 0 || len(pl.bad("abrt.unpackaged", "", "")) > 0
	var sysctl []string
	if needPattern {
		pattern := path.Join(pl.opts.CoreDir, "core.%e.%p.%t")
		sysctl = append(sysctl, "kernel.core_pattern = "+pattern)
		if !pl.h.isDir(pl.opts.CoreDir) {
			pl.plan.Changes = append(pl.plan.Changes, &Change{Path: pl.opts.CoreDir, Dir: true, Mode: 0o1733,
				Reasons: []string{"directory for cores: writable by every pool user, not listable (mode 1733, like /var/crash)"}})
		}
		if k.Handler == "apport" {
			pl.plan.Notes = append(pl.plan.Notes, "Apport rewrites core_pattern when its service starts: disable it (systemctl disable --now apport) or the sysctl.d setting is lost at boot")
		}
		if c, ok := k.Configured["kernel.core_pattern"]; ok && c.Evidence != nil && path.Base(c.Evidence.File) > "60-coroner-core.conf" {
			pl.plan.Notes = append(pl.plan.Notes, fmt.Sprintf("%s sorts after 60-coroner-core.conf and also sets kernel.core_pattern (line %d): remove that line", c.Evidence.File, c.Evidence.Line))
		}
	}
	if strings.TrimSpace(k.SuidDumpable.Value) == "1" {
		sysctl = append(sysctl, "fs.suid_dumpable = 2")
	}
	if len(sysctl) > 0 {
		pl.newFile("/etc/sysctl.d/60-coroner-core.conf", "# Written by coroner fix --capture: where crashing processes leave their cores.\n"+strings.Join(sysctl, "\n")+"\n", 0o644,
			"kernel core settings that let a crashing php-fpm worker leave a core")
		pl.reloads["sysctl --system"] = true
	}
	// 2. systemd-coredump limits.
	if k.Handler == "systemd-coredump" && !needPattern {
		var lines []string
		if len(pl.bad("coredump.storage", "", "")) > 0 {
			lines = append(lines, "Storage=external")
		}
		size := fmt.Sprintf("%dM", (2*pl.maxExpected())>>20)
		for _, key := range []string{"ProcessSizeMax", "ExternalSizeMax", "MaxUse"} {
			if len(pl.bad("coredump."+strings.ToLower(key), "", "")) > 0 {
				lines = append(lines, key+"="+size)
			}
		}
		if len(lines) > 0 {
			pl.newFile("/etc/systemd/coredump.conf.d/60-coroner.conf", "# Written by coroner fix --capture: keep whole php-fpm cores.\n[Coredump]\n"+strings.Join(lines, "\n")+"\n", 0o644,
				"systemd-coredump settings that drop or truncate php-fpm cores")
		}
	}
	for _, in := range r.Installations {
		if !pl.wants(in) {
			continue
		}
		// 3. LimitCORE drop-in.
		// Only when the unit's limit is a problem: the pool lines below
		// raise the workers' limit by themselves.
		if in.UnitFile != "" && len(pl.bad("systemd.limitcore", in.Name, "")) > 0 {
			if soft, _, err := parseRlimit(in.LimitCore.Value); err != nil || soft != -1 {
				pl.newFile("/etc/systemd/system/"+in.Unit+".d/60-coroner-core.conf",
					"# Written by coroner fix --capture: no core size limit for "+serverName(in)+".\n[Service]\nLimitCORE=infinity\n", 0o644,
					in.Unit+" starts with LimitCORE="+in.LimitCore.Value)
				pl.reloads["systemctl daemon-reload"] = true
				pl.reloads["systemctl restart "+in.Unit] = true
			}
		}
		if in.isApache() {
			pl.captureApache(in)
			continue
		}
		// 4. Pool lines.
		for _, p := range in.Pools {
			if n, _ := fpmRlimit(p.RlimitCore.Value); p.RlimitCore.Evidence == nil || n != -1 {
				pl.setPoolLine(in, p, "rlimit_core", "unlimited", p.RlimitCore)
			}
			if !iniBool(p.Dumpable.Value) && p.User.Value != "" && p.User.Value != "root" {
				pl.setPoolLine(in, p, "process.dumpable", "yes", p.Dumpable)
			}
		}
	}
}

func (pl *planner) maxExpected() int64 {
	a := &auditor{r: pl.r}
	return a.maxExpected()
}

// setPoolLine replaces the pool's existing line for key, or adds it at the
// end of the pool's section.
func (pl *planner) setPoolLine(in *Installation, p *Pool, key, value string, cur Setting) {
	e, err := pl.edit(orStr(evFile(cur), p.File))
	if err != nil {
		pl.plan.Notes = append(pl.plan.Notes, err.Error())
		return
	}
	line := key + " = " + value
	if cur.Evidence != nil && cur.Evidence.Line > 0 {
		e.replace[cur.Evidence.Line] = line
	} else {
		e.insert[p.LastLine] = append(e.insert[p.LastLine], line)
	}
	e.reasons = append(e.reasons, fmt.Sprintf("pool %s: %s", p.Name, line))
	pl.reloads[reloadCmd(in)] = true
}

// reloadCmd is how the installation's FPM re-reads its configuration: a
// systemd reload, else USR2 to the running master. Apache reloads
// gracefully (SIGUSR1), re-reading mod_php's ini files too.
func reloadCmd(in *Installation) string {
	if in.Unit != "" {
		return "systemctl reload " + in.Unit
	}
	if in.isApache() {
		for _, p := range in.Processes {
			if p.Role == "master" {
				return fmt.Sprintf("kill -USR1 %d", p.PID)
			}
		}
		if in.ServerConfig != "" && in.Layout == "explicit" {
			return orStr(in.Binary, "apache2") + " -f " + in.ServerConfig + " -k graceful"
		}
		return "apachectl -k graceful"
	}
	for _, p := range in.Processes {
		if p.Role == "master" {
			return fmt.Sprintf("kill -USR2 %d", p.PID)
		}
	}
	return "kill -USR2 <pid of the php-fpm master of " + in.FPMConfig + ">"
}

// captureApache makes Apache's children leave cores: CoreDumpDirectory
// (which makes them dumpable again after the user switch) in a file of
// its own that Apache's configuration includes, and the directory.
func (pl *planner) captureApache(in *Installation) {
	if len(pl.bad("apache.core_dump_directory", in.Name, "")) == 0 && len(pl.bad("apache.core_dump_directory_exists", in.Name, "")) == 0 {
		return
	}
	dir := in.CoreDumpDirectory.Value
	if dir == "" {
		dir = pl.opts.CoreDir
		conf := ""
		switch {
		case pl.h.isDir(path.Join(in.ServerRoot, "conf-enabled")):
			conf = path.Join(in.ServerRoot, "conf-enabled", "coroner-coredump.conf")
		case pl.h.isDir(path.Join(in.ServerRoot, "conf.d")):
			conf = path.Join(in.ServerRoot, "conf.d", "coroner-coredump.conf")
		}
		if conf == "" {
			pl.plan.Notes = append(pl.plan.Notes, in.Name+": add \"CoreDumpDirectory "+dir+"\" to "+in.ServerConfig+" (no conf-enabled/ or conf.d/ directory to put it in)")
		} else {
			pl.newFile(conf, "# Written by coroner fix --capture: Apache makes its children dumpable again after the\n# switch to its User only when CoreDumpDirectory is set, and changes there before dumping.\nCoreDumpDirectory "+dir+"\n", 0o644,
				in.Name+": no CoreDumpDirectory, so its children are not dumpable after switching user")
			pl.reloads[reloadCmd(in)] = true
		}
	}
	if !pl.h.isDir(dir) && !pl.plannedDir(dir) {
		pl.plan.Changes = append(pl.plan.Changes, &Change{Path: dir, Dir: true, Mode: 0o1733,
			Reasons: []string{"directory for cores: writable by every user, not listable (mode 1733, like /var/crash)"}})
	}
}

// plannedDir reports whether the plan already creates dir.
func (pl *planner) plannedDir(dir string) bool {
	for _, c := range pl.plan.Changes {
		if c.Dir && c.Path == dir {
			return true
		}
	}
	return false
}

func evFile(s Setting) string {
	if s.Evidence != nil {
		return s.Evidence.File
	}
	return ""
}

func orStr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (pl *planner) mitigate() {
	var lines []string
	var keys []string
	switch pl.opts.Mitigate {
	case crash.MitigateFunctionJIT:
		lines, keys = []string{"opcache.jit = function"}, []string{"opcache.jit"}
	case crash.MitigateNoPCREJIT:
		lines, keys = []string{"pcre.jit = 0"}, []string{"pcre.jit"}
	case crash.MitigateNoJIT:
		lines, keys = []string{"opcache.jit = disable", "opcache.jit_buffer_size = 0"}, []string{"opcache.jit", "opcache.jit_buffer_size"}
	}
	for _, in := range pl.r.Installations {
		if !pl.wants(in) {
			continue
		}
		if len(in.ScanDirs) == 0 {
			pl.plan.Notes = append(pl.plan.Notes, in.Name+": no ini scan directory known; give --php-ini-scan-dir")
			continue
		}
		dir := in.ScanDirs[len(in.ScanDirs)-1]
		name := mitigationName(pl.h, dir)
		if pl.opts.Mitigate == crash.MitigateFunctionJIT {
			if s := in.INI["opcache.jit_buffer_size"]; func() bool { n, _ := parseSize(s.Value); return n <= 0 }() {
				pl.plan.Notes = append(pl.plan.Notes, in.Name+": opcache.jit_buffer_size is 0, so the JIT is off anyway; function-JIT changes nothing until a buffer is set")
			}
		}
		pl.newFile(path.Join(dir, name), "; Written by coroner fix --mitigate="+string(pl.opts.Mitigate)+"; read last in the scan order.\n"+strings.Join(lines, "\n")+"\n", 0o644,
			in.Name+": mitigation "+string(pl.opts.Mitigate))
		if in.isApache() {
			pl.plan.Notes = append(pl.plan.Notes, in.Name+": PHP runs inside Apache (mod_php): the setting is in mod_php's ini directory "+dir+", read when Apache starts or reloads; php_value / php_admin_value cannot switch the JIT")
		}
		pl.reloads[reloadCmd(in)] = true
		// Pool values of the same keys would win over the ini file.
		for _, p := range in.Pools {
			for _, k := range keys {
				if s, ok := p.INI[k]; ok && s.Evidence != nil {
					e, err := pl.edit(s.Evidence.File)
					if err != nil {
						pl.plan.Notes = append(pl.plan.Notes, err.Error())
						continue
					}
					ln := s.Evidence.Line
					if ln >= 1 && ln <= len(e.lines) {
						comment, what := "; ", "pool "+p.Name
						if in.isApache() {
							comment, what = "# ", in.Name+"'s configuration" // php_admin_value lines of Apache
						}
						e.replace[ln] = comment + "disabled by coroner fix --mitigate=" + string(pl.opts.Mitigate) + ": " + strings.TrimSpace(e.lines[ln-1])
						e.reasons = append(e.reasons, fmt.Sprintf("%s: its %s would override the mitigation", what, k))
					}
				}
			}
		}
	}
}

// mitigationName picks 99-coroner-mitigation.ini, or a name that sorts
// after every ini file already in dir.
func mitigationName(h *host, dir string) string {
	list, _ := h.listDir(dir, ".ini")
	for _, n := range []string{"99-coroner-mitigation.ini", "zz-coroner-mitigation.ini", "zzzz-coroner-mitigation.ini", "~coroner-mitigation.ini"} {
		last := true
		for _, f := range list {
			if b := path.Base(f); b > n && !strings.Contains(b, "coroner-mitigation") {
				last = false
			}
		}
		if last {
			return n
		}
	}
	return "~coroner-mitigation.ini"
}

func (pl *planner) finishEdits() error {
	files := make([]string, 0, len(pl.edits))
	for f := range pl.edits {
		files = append(files, f)
	}
	sort.Strings(files)
	for _, f := range files {
		e := pl.edits[f]
		var out []string
		if len(e.insert[0]) > 0 {
			out = append(out, e.insert[0]...)
		}
		for i, l := range e.lines {
			ln := i + 1
			if r, ok := e.replace[ln]; ok {
				out = append(out, r)
			} else {
				out = append(out, l)
			}
			out = append(out, e.insert[ln]...)
		}
		newData := strings.Join(out, "\n")
		old := strings.Join(e.lines, "\n")
		if newData == old {
			continue
		}
		mode := uint32(0o644)
		if st, err := os.Stat(pl.h.resolve(f)); err == nil {
			mode = uint32(st.Mode().Perm())
		}
		pl.plan.Changes = append(pl.plan.Changes, &Change{Path: f, Existed: true, Mode: mode, Old: []byte(old), New: []byte(newData), Reasons: e.reasons})
	}
	return nil
}

func (pl *planner) orderReloads() {
	order := func(c string) int {
		switch {
		case strings.HasPrefix(c, "sysctl"):
			return 0
		case c == "systemctl daemon-reload":
			return 1
		case strings.HasPrefix(c, "systemctl restart"):
			return 2
		}
		return 3
	}
	var cmds []string
	restarted := map[string]bool{}
	for c := range pl.reloads {
		if strings.HasPrefix(c, "systemctl restart ") {
			restarted[strings.TrimPrefix(c, "systemctl restart ")] = true
		}
	}
	for c := range pl.reloads {
		if strings.HasPrefix(c, "systemctl reload ") && restarted[strings.TrimPrefix(c, "systemctl reload ")] {
			continue // a restart includes the reload
		}
		cmds = append(cmds, c)
	}
	sort.Slice(cmds, func(i, j int) bool {
		if order(cmds[i]) != order(cmds[j]) {
			return order(cmds[i]) < order(cmds[j])
		}
		return cmds[i] < cmds[j]
	})
	pl.plan.Reload = cmds
	if !pl.r.Systemd && len(cmds) > 0 {
		pl.plan.Notes = append(pl.plan.Notes, "systemd is not PID 1 here: restart php-fpm (or Apache) the way it is started on this machine instead of systemctl")
	}
}
