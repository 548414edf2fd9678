package audit

import (
	"fmt"
	"path"
	"strconv"
	"strings"
)

// apache reports whether the installation named name runs PHP in Apache.
func (a *auditor) apache(name string) bool {
	for _, in := range a.r.Installations {
		if in.Name == name {
			return in.isApache()
		}
	}
	return false
}

func (a *auditor) add(f Finding) {
	switch {
	case f.Target != "":
	case f.Pool != "" && a.apache(f.Installation):
		f.Target = f.Installation + " children"
	case f.Pool != "":
		f.Target = f.Installation + " pool " + f.Pool
	default:
		f.Target = f.Installation
	}
	if f.Evidence == nil {
		f.Evidence = []Evidence{}
	}
	a.r.Findings = append(a.r.Findings, f)
}

func evs(ss ...Setting) []Evidence {
	var out []Evidence
	for _, s := range ss {
		if s.Evidence != nil {
			out = append(out, *s.Evidence)
		}
	}
	return out
}

func mib(n int64) string {
	if n < 0 {
		return "unlimited"
	}
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d MiB", (n+(1<<20)-1)>>20)
}

// patternEval is the verdict on one core_pattern value.
type patternEval struct {
	status Status
	msg    string
	fix    string
}

func (a *auditor) evalPattern(p string) patternEval {
	switch {
	case p == "":
		return patternEval{StatusRisky, "empty core_pattern: the kernel writes \"core\" into the crashing process's current directory", "set kernel.core_pattern to an absolute path or systemd-coredump"}
	case strings.HasPrefix(p, "|"):
		prog := pipeProgram(p)
		if prog == "" {
			return patternEval{StatusBlocks, "pipe pattern without a program", "set kernel.core_pattern to an absolute path or systemd-coredump"}
		}
		if !a.h.exists(prog) {
			return patternEval{StatusBlocks, fmt.Sprintf("cores are piped to %s, which is not installed: the kernel drops every core", prog), "install the handler or point kernel.core_pattern to an absolute directory"}
		}
		return patternEval{StatusOK, fmt.Sprintf("cores are piped to %s (%s)", prog, handlerOf(p)), ""}
	case strings.HasPrefix(p, "/"):
		dir := path.Dir(p)
		if !a.h.isDir(dir) {
			return patternEval{StatusBlocks, fmt.Sprintf("cores go to %s, which does not exist: the kernel cannot create the file", dir), "create " + dir + " (mode 1733) or change kernel.core_pattern"}
		}
		return patternEval{StatusOK, "cores are written to " + dir, ""}
	}
	return patternEval{StatusRisky, fmt.Sprintf("relative pattern %q: the kernel writes the core into the worker's current directory, which for PHP-FPM is the directory of the running script (the document root): it must be writable by the pool user, and a core there (with the whole memory of the worker: sessions, passwords, keys) may be downloadable over HTTP", p), "point kernel.core_pattern to an absolute directory or systemd-coredump (coroner fix --capture)"}
}

// checkKernel evaluates the machine-wide settings.
func (a *auditor) checkKernel() {
	k := &a.r.Kernel
	cp := k.CorePattern
	ev := a.evalPattern(cp.Value)
	f := Finding{Layer: LayerKernel, Check: "kernel.core_pattern", Status: ev.status, Message: ev.msg, Evidence: evs(cp), Fix: ev.fix}
	if c, ok := k.Configured["kernel.core_pattern"]; ok && c.Value != cp.Value {
		cev := a.evalPattern(c.Value)
		f.Evidence = append(f.Evidence, *c.Evidence)
		if cev.status == StatusOK {
			f.Status = StatusPending
			f.Message = fmt.Sprintf("running: %s; configured %q (%s) is not applied yet", ev.msg, c.Value, cev.msg)
			f.Fix = "sysctl --system"
		} else {
			if f.Status == StatusOK {
				f.Status = StatusRisky
			}
			f.Message += fmt.Sprintf("; at boot it becomes %q: %s", c.Value, cev.msg)
		}
	}
	a.add(f)
	// Later checks judge the pattern that will apply: the configured one
	// when only a sysctl run is missing.
	a.pattern = cp.Value
	if f.Status == StatusPending {
		a.pattern = k.Configured["kernel.core_pattern"].Value
		cp = k.Configured["kernel.core_pattern"]
	}

	// core_uses_pid
	if !strings.HasPrefix(cp.Value, "|") {
		usesPID := strings.TrimSpace(k.CoreUsesPID.Value) == "1"
		if !strings.Contains(cp.Value, "%p") && !strings.Contains(cp.Value, "%P") && !usesPID {
			a.add(Finding{Layer: LayerKernel, Check: "kernel.core_uses_pid", Status: StatusRisky,
				Message:  "core_pattern has no %p and core_uses_pid=0: every crash overwrites the previous core",
				Evidence: evs(cp, k.CoreUsesPID), Fix: "add %p to kernel.core_pattern"})
		} else {
			a.add(Finding{Layer: LayerKernel, Check: "kernel.core_uses_pid", Status: StatusOK, Message: "core file names carry the pid", Evidence: evs(k.CoreUsesPID)})
		}
	}

	// suid_dumpable
	sd := strings.TrimSpace(k.SuidDumpable.Value)
	switch sd {
	case "0":
		a.add(Finding{Layer: LayerKernel, Check: "fs.suid_dumpable", Status: StatusInfo, Evidence: evs(k.SuidDumpable),
			Message: "fs.suid_dumpable=0: workers that switched from root to the pool user are not dumpable unless the pool sets process.dumpable = yes"})
	case "1":
		a.add(Finding{Layer: LayerKernel, Check: "fs.suid_dumpable", Status: StatusRisky, Evidence: evs(k.SuidDumpable),
			Message: "fs.suid_dumpable=1 (debug): every set-uid process dumps core as its user, a known security risk", Fix: "set fs.suid_dumpable=0 and process.dumpable = yes in the pools"})
	case "2":
		st, msg := StatusOK, "fs.suid_dumpable=2 (suidsafe): processes that switched user dump core as root, with an absolute or pipe core_pattern only"
		if !strings.HasPrefix(cp.Value, "/") && !strings.HasPrefix(cp.Value, "|") {
			st, msg = StatusRisky, "fs.suid_dumpable=2 with a relative core_pattern: the kernel refuses to dump processes that switched user (\"Unsafe core_pattern used with fs.suid_dumpable=2\")"
		}
		a.add(Finding{Layer: LayerKernel, Check: "fs.suid_dumpable", Status: st, Message: msg, Evidence: evs(k.SuidDumpable)})
	default:
		a.add(Finding{Layer: LayerKernel, Check: "fs.suid_dumpable", Status: StatusRisky, Message: fmt.Sprintf("unexpected value %q", sd), Evidence: evs(k.SuidDumpable)})
	}

	if strings.HasPrefix(cp.Value, "|") {
		pl := strings.TrimSpace(k.CorePipeLimit.Value)
		msg := "kernel.core_pipe_limit=" + pl
		if pl == "0" {
			msg += ": no limit on parallel pipe dumps, and the kernel does not wait for the handler, so /proc/PID may vanish before it reads the crashed process's metadata"
		}
		a.add(Finding{Layer: LayerKernel, Check: "kernel.core_pipe_limit", Status: StatusInfo, Message: msg, Evidence: evs(k.CorePipeLimit)})
		a.checkHandler()
	}
}

// checkHandler looks at the configuration of the pipe handler.
func (a *auditor) checkHandler() {
	k := &a.r.Kernel
	switch handlerOf(a.pattern) {
	case "systemd-coredump":
		a.checkCoredumpConf()
	case "apport":
		a.checkApport()
	case "abrt":
		a.checkAbrt()
	case "other":
		a.add(Finding{Layer: LayerHandler, Check: "handler.other", Status: StatusInfo, Message: "cores are piped to " + pipeProgram(a.pattern) + ", which coroner does not know: check where it stores them", Evidence: evs(k.CorePattern)})
	}
}

// coredumpSettings returns the effective systemd-coredump settings.
func (a *auditor) coredumpSettings() map[string]Setting {
	entries, w := loadSystemdConf(a.h, "coredump")
	for _, x := range w {
		a.warn(x)
	}
	out := map[string]Setting{
		"Storage": {Value: "external", Default: true}, "ProcessSizeMax": {Value: "2G", Default: true},
		"ExternalSizeMax": {Value: "2G", Default: true}, "JournalSizeMax": {Value: "767M", Default: true},
		"MaxUse": {Value: "", Default: true}, "KeepFree": {Value: "", Default: true},
	}
	for _, e := range entries {
		if e.Section != "Coredump" {
			continue
		}
		if _, ok := out[e.Key]; ok {
			out[e.Key] = Setting{Value: e.Value, Evidence: &Evidence{File: e.File, Line: e.Line, Text: e.Key + "=" + e.Value}}
		}
	}
	return out
}

func (a *auditor) maxExpected() int64 {
	var n int64
	for _, in := range a.r.Installations {
		if in.ExpectedCoreSize > n {
			n = in.ExpectedCoreSize
		}
	}
	if n == 0 {
		n = coreMargin + 128<<20
	}
	return n
}

func (a *auditor) checkCoredumpConf() {
	s := a.coredumpSettings()
	exp := a.maxExpected()
	st := strings.ToLower(s["Storage"].Value)
	switch st {
	case "none":
		a.add(Finding{Layer: LayerHandler, Check: "coredump.storage", Status: StatusBlocks, Evidence: evs(s["Storage"]),
			Message: "systemd-coredump Storage=none: cores are logged but not kept", Fix: "Storage=external in /etc/systemd/coredump.conf.d/"})
	case "journal":
		a.add(Finding{Layer: LayerHandler, Check: "coredump.storage", Status: StatusRisky, Evidence: evs(s["Storage"]),
			Message: "systemd-coredump Storage=journal: cores larger than JournalSizeMax (" + s["JournalSizeMax"].Value + ") are truncated", Fix: "Storage=external"})
	default:
		a.add(Finding{Layer: LayerHandler, Check: "coredump.storage", Status: StatusOK, Evidence: evs(s["Storage"]),
			Message: "systemd-coredump stores cores in /var/lib/systemd/coredump (Storage=" + s["Storage"].Value + ")"})
	}
	for _, key := range []string{"ProcessSizeMax", "ExternalSizeMax"} {
		v := s[key]
		n, ok := parseBytes(v.Value)
		switch {
		case !ok:
			a.add(Finding{Layer: LayerHandler, Check: "coredump." + strings.ToLower(key), Status: StatusRisky, Evidence: evs(v), Message: fmt.Sprintf("%s=%q is not a size systemd understands", key, v.Value)})
		case n >= 0 && n < exp:
			a.add(Finding{Layer: LayerHandler, Check: "coredump." + strings.ToLower(key), Status: StatusBlocks, Evidence: evs(v),
				Message: fmt.Sprintf("%s=%s is smaller than an expected php-fpm core (~%s): the core is dropped or truncated", key, v.Value, mib(exp)),
				Fix:     fmt.Sprintf("%s=%dM or more", key, (2*exp)>>20)})
		default:
			a.add(Finding{Layer: LayerHandler, Check: "coredump." + strings.ToLower(key), Status: StatusOK, Evidence: evs(v), Message: fmt.Sprintf("%s=%s allows a ~%s core", key, v.Value, mib(exp))})
		}
	}
	dir := "/var/lib/systemd/coredump"
	free, ok := freeBytes(a.h, dir)
	kf := s["KeepFree"]
	if n, okn := parseBytes(kf.Value); ok && okn && kf.Value != "" && n > 0 && free-exp < n {
		a.add(Finding{Layer: LayerHandler, Check: "coredump.keepfree", Status: StatusRisky, Evidence: evs(kf),
			Message: fmt.Sprintf("KeepFree=%s but only %s are free: systemd-coredump deletes old cores and may not keep the new one", kf.Value, mib(free))})
	}
	if mu := s["MaxUse"]; mu.Value != "" {
		if n, okn := parseBytes(mu.Value); okn && n >= 0 && n < exp {
			a.add(Finding{Layer: LayerHandler, Check: "coredump.maxuse", Status: StatusBlocks, Evidence: evs(mu),
				Message: fmt.Sprintf("MaxUse=%s is smaller than one core (~%s): every core is removed right after being written", mu.Value, mib(exp)), Fix: "raise MaxUse"})
		}
	}
	a.checkSpace(dir, "systemd-coredump's store", "")
}

func (a *auditor) checkSpace(dir, what, inst string) {
	exp := a.maxExpected()
	free, ok := freeBytes(a.h, dir)
	if !ok {
		return
	}
	f := Finding{Layer: LayerDisk, Check: "disk.free", Installation: inst, Evidence: []Evidence{{File: existingDir(a.h, dir), Text: mib(free) + " free"}}}
	switch {
	case free < exp:
		f.Status, f.Message = StatusBlocks, fmt.Sprintf("%s (%s) has %s free, less than one expected core (~%s)", what, dir, mib(free), mib(exp))
		f.Fix = "free space or move cores to a larger file system"
	case free < 3*exp:
		f.Status, f.Message = StatusRisky, fmt.Sprintf("%s (%s) has %s free: room for fewer than 3 cores of ~%s", what, dir, mib(free), mib(exp))
	default:
		f.Status, f.Message = StatusOK, fmt.Sprintf("%s (%s) has %s free for cores of ~%s", what, dir, mib(free), mib(exp))
	}
	a.add(f)
}

func (a *auditor) checkApport() {
	k := &a.r.Kernel
	a.add(Finding{Layer: LayerHandler, Check: "apport.handler", Status: StatusRisky, Evidence: evs(k.CorePattern),
		Message: "cores are piped to Apport: it keeps them only inside /var/crash/*.crash reports, skips a program's crash while an earlier report of it is still there (CrashCounter), and ignores binaries that no package owns",
		Fix:     "for reliable cores point kernel.core_pattern to an absolute directory or systemd-coredump and disable apport (systemctl disable --now apport)"})
	if b, err := a.h.readFile("/etc/default/apport"); err == nil {
		for i, l := range strings.Split(string(b), "\n") {
			s := strings.ReplaceAll(strings.TrimSpace(l), " ", "")
			if s == "enabled=0" {
				a.add(Finding{Layer: LayerHandler, Check: "apport.enabled", Status: StatusRisky, Evidence: []Evidence{{File: "/etc/default/apport", Line: i + 1, Text: strings.TrimSpace(l)}},
					Message: "Apport is disabled (enabled=0) but still set as core_pattern: at the next boot core_pattern reverts to the kernel default \"core\""})
			}
		}
	}
	for _, in := range a.r.Installations {
		if in.Binary == "" {
			continue
		}
		crashName := strings.ReplaceAll(in.Binary, "/", "_")
		for _, c := range a.h.glob("/var/crash/" + crashName + ".*.crash") {
			a.add(Finding{Layer: LayerHandler, Check: "apport.pending_report", Status: StatusBlocks, Installation: in.Name, Evidence: []Evidence{{File: c}},
				Message: "an earlier crash report of " + in.Binary + " is still in /var/crash: Apport skips further crashes of the same program until it is removed",
				Fix:     "read it (coroner analyze " + c + "), then remove it"})
		}
		if a.h.exists(in.Binary) && !a.dpkgOwns(in.Binary) {
			a.add(Finding{Layer: LayerHandler, Check: "apport.unpackaged", Status: StatusBlocks, Installation: in.Name, Evidence: []Evidence{{File: in.Binary}},
				Message: in.Binary + " belongs to no package: Apport ignores its crashes", Fix: "point kernel.core_pattern to an absolute directory or systemd-coredump"})
		}
	}
	a.checkSpace("/var/crash", "Apport's /var/crash", "")
}

// dpkgOwns reports whether a dpkg file list names bin.
func (a *auditor) dpkgOwns(bin string) bool {
	lists := a.h.glob("/var/lib/dpkg/info/*.list")
	if len(lists) > 5000 {
		lists = lists[:5000]
	}
	for _, l := range lists {
		b, err := a.h.readFile(l)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line == bin {
				return true
			}
		}
	}
	return false
}

func (a *auditor) checkAbrt() {
	k := &a.r.Kernel
	a.add(Finding{Layer: LayerHandler, Check: "abrt.handler", Status: StatusInfo, Evidence: evs(k.CorePattern),
		Message: "cores are piped to ABRT: they land in problem directories under /var/spool/abrt (file coredump)"})
	conf := "/etc/abrt/abrt-action-save-package-data.conf"
	if b, err := a.h.readFile(conf); err == nil {
		ini := ParseINI(conf, b, nil)
		if e, ok := lookup(ini.Entries, "ProcessUnpackaged"); ok && !iniBool(e.Value) {
			for _, in := range a.r.Installations {
				if in.Binary != "" && a.h.exists(in.Binary) && !a.rpmLikeOwned(in.Binary) {
					a.add(Finding{Layer: LayerHandler, Check: "abrt.unpackaged", Status: StatusBlocks, Installation: in.Name,
						Evidence: []Evidence{{File: conf, Line: e.Line, Text: e.Key + " = " + e.Raw}},
						Message:  in.Binary + " is not known to come from a package and ABRT drops crashes of unpackaged programs (ProcessUnpackaged = no)", Fix: "ProcessUnpackaged = yes"})
				}
			}
		}
	}
	dir := "/var/spool/abrt"
	if b, err := a.h.readFile("/etc/abrt/abrt.conf"); err == nil {
		ini := ParseINI("/etc/abrt/abrt.conf", b, nil)
		if e, ok := lookup(ini.Entries, "DumpLocation"); ok && strings.HasPrefix(e.Value, "/") {
			dir = e.Value
		}
		if e, ok := lookup(ini.Entries, "MaxCrashReportsSize"); ok {
			if n, err := strconv.ParseInt(e.Value, 10, 64); err == nil && n > 0 && n<<20 < a.maxExpected() {
				a.add(Finding{Layer: LayerHandler, Check: "abrt.max_size", Status: StatusBlocks, Evidence: []Evidence{{File: "/etc/abrt/abrt.conf", Line: e.Line, Text: e.Key + " = " + e.Raw}},
					Message: fmt.Sprintf("MaxCrashReportsSize=%s MiB is smaller than one php-fpm core (~%s): ABRT deletes it", e.Value, mib(a.maxExpected())), Fix: "raise MaxCrashReportsSize"})
			}
		}
	}
	a.checkSpace(dir, "ABRT's dump location", "")
}

// rpmLikeOwned: without an rpm database reader, binaries under /usr are
// assumed packaged, others not.
func (a *auditor) rpmLikeOwned(bin string) bool {
	return strings.HasPrefix(bin, "/usr/") || strings.HasPrefix(bin, "/opt/remi/")
}

// checkInstallation runs the per-installation and per-pool checks.
func (a *auditor) checkInstallation(in *Installation) {
	a.checkSystemd(in)
	for _, p := range in.Pools {
		if in.isApache() {
			a.checkApache(in, p)
			continue
		}
		a.checkPool(in, p)
	}
	a.checkProcesses(in)
	a.checkPHP(in)
}

func (a *auditor) checkSystemd(in *Installation) {
	if in.Unit == "" {
		return
	}
	if in.UnitFile == "" {
		a.add(Finding{Layer: LayerSystemd, Check: "systemd.unit", Installation: in.Name, Status: StatusInfo,
			Message: "no systemd unit " + in.Unit + " found: LimitCORE does not apply; the limits of whoever starts php-fpm do"})
		return
	}
	soft, _, err := parseRlimit(in.LimitCore.Value)
	f := Finding{Layer: LayerSystemd, Check: "systemd.limitcore", Installation: in.Name, Evidence: evs(in.LimitCore)}
	overridden := in.GlobalRlimitCore.Evidence != nil
	allPools := len(in.Pools) > 0
	for _, p := range in.Pools {
		if p.RlimitCore.Evidence == nil {
			allPools = false
		}
	}
	switch {
	case err != nil:
		f.Status, f.Message = StatusRisky, fmt.Sprintf("LimitCORE=%q: %v", in.LimitCore.Value, err)
	case soft == 0 && overridden && in.isApache():
		f.Status, f.Message = StatusOK, "LimitCORE soft limit is 0, but the `ulimit -c` of "+evFile(in.GlobalRlimitCore)+" raises it for Apache"
	case soft == 0 && (overridden || allPools):
		f.Status, f.Message = StatusOK, "LimitCORE soft limit is 0, but FPM's rlimit_core raises it for the workers"
	case soft == 0 && (handlerOf(a.pattern) == "apport" || handlerOf(a.pattern) == "abrt"):
		f.Status, f.Message = StatusRisky, "the service starts with a core size limit of 0 and FPM does not raise it; "+handlerOf(a.pattern)+" still gets the crash, but a limit of 0 is often why cores go missing"
		f.Fix = "LimitCORE=infinity in /etc/systemd/system/" + in.Unit + ".d/"
	case soft == 0 && in.isApache():
		f.Status, f.Message = StatusBlocks, "the service starts with a core size limit of 0, which Apache's children inherit (Apache has no setting of its own for it)"
		f.Fix = "LimitCORE=infinity in /etc/systemd/system/" + in.Unit + ".d/"
	case soft == 0:
		f.Status, f.Message = StatusBlocks, "the service starts with a core size limit of 0 and FPM does not raise it (no rlimit_core): workers inherit 0"
		f.Fix = "LimitCORE=infinity in /etc/systemd/system/" + in.Unit + ".d/ (or rlimit_core = unlimited in the pools)"
	case soft > 0 && soft < in.ExpectedCoreSize && !overridden && !allPools:
		f.Status, f.Message = StatusBlocks, fmt.Sprintf("LimitCORE=%s is smaller than an expected core (~%s): cores are truncated", in.LimitCore.Value, mib(in.ExpectedCoreSize))
		f.Fix = "LimitCORE=infinity"
	default:
		f.Status, f.Message = StatusOK, "LimitCORE="+in.LimitCore.Value
	}
	if !a.r.Systemd {
		f.Message += " (systemd is not running here: the unit applies only when systemd starts " + serverName(in) + ")"
		if f.Status == StatusBlocks {
			f.Status = StatusRisky
		}
	}
	a.add(f)
}

// workerLimit is the core size limit the pool's workers get, with the
// setting that decided it.
func workerLimit(in *Installation, p *Pool, systemd bool) (int64, Setting, string) {
	if p.RlimitCore.Evidence != nil {
		n, ok := fpmRlimit(p.RlimitCore.Value)
		if ok {
			return n, p.RlimitCore, "pool rlimit_core"
		}
	}
	if in.GlobalRlimitCore.Evidence != nil {
		if in.isApache() {
			if n, ok := limitBytes(in.GlobalRlimitCore.Value); ok {
				if n > 0 {
					n *= 1024 // ulimit -c counts 1024-byte blocks
				}
				return n, in.GlobalRlimitCore, "ulimit -c in " + evFile(in.GlobalRlimitCore)
			}
		} else if n, ok := fpmRlimit(in.GlobalRlimitCore.Value); ok {
			return n, in.GlobalRlimitCore, "global rlimit_core"
		}
	}
	if in.UnitFile != "" && systemd {
		soft, _, err := parseRlimit(in.LimitCore.Value)
		if err == nil {
			return soft, in.LimitCore, "systemd LimitCORE"
		}
	}
	return -2, Setting{}, "the environment " + serverName(in) + " is started from"
}

// serverName is the program of the installation: php-fpm, apache2, httpd.
func serverName(in *Installation) string {
	if in.isApache() && in.Binary != "" {
		return path.Base(in.Binary)
	}
	if in.isApache() {
		return "Apache"
	}
	return "php-fpm"
}

func fpmRlimit(v string) (int64, bool) {
	v = strings.TrimSpace(v)
	if strings.EqualFold(v, "unlimited") {
		return -1, true
	}
	n, err := strconv.ParseInt(v, 10, 64)
	return n, err == nil && n >= 0
}

func (a *auditor) checkPool(in *Installation, p *Pool) {
	k := &a.r.Kernel
	pipe := strings.HasPrefix(a.pattern, "|")
	// rlimit_core chain
	n, s, from := workerLimit(in, p, a.r.Systemd)
	f := Finding{Layer: LayerFPM, Check: "fpm.rlimit_core", Installation: in.Name, Pool: p.Name, Evidence: evs(s)}
	if p.RlimitCore.Evidence != nil {
		if _, ok := fpmRlimit(p.RlimitCore.Value); !ok {
			a.add(Finding{Layer: LayerFPM, Check: "fpm.rlimit_core_value", Installation: in.Name, Pool: p.Name, Status: StatusRisky, Evidence: evs(p.RlimitCore),
				Message: fmt.Sprintf("rlimit_core = %q is neither \"unlimited\" nor a number: FPM refuses to start", p.RlimitCore.Value)})
		}
	}
	blockStatus := StatusBlocks
	if h := handlerOf(a.pattern); pipe && (h == "apport" || h == "abrt") {
		blockStatus = StatusRisky // these handlers ignore RLIMIT_CORE for their own store
	}
	switch {
	case n == -2:
		f.Status, f.Message = StatusRisky, "no rlimit_core in FPM and no systemd unit: workers get the core limit of "+from+" (often 0)"
		f.Fix = "rlimit_core = unlimited in the pool"
	case n == 0:
		f.Status, f.Message = blockStatus, "workers run with a core size limit of 0 (from "+from+")"
		f.Fix = "rlimit_core = unlimited in the pool"
	case n > 0 && n < in.ExpectedCoreSize:
		f.Status, f.Message = blockStatus, fmt.Sprintf("workers' core size limit %s (from %s) is smaller than an expected core (~%s): cores are truncated", mib(n), from, mib(in.ExpectedCoreSize))
		f.Fix = "rlimit_core = unlimited in the pool"
	default:
		f.Status, f.Message = StatusOK, "workers' core size limit: "+mib(n)+" (from "+from+")"
	}
	a.add(f)

	// dumpability
	user := p.User.Value
	dumpable := iniBool(p.Dumpable.Value)
	sd := strings.TrimSpace(k.SuidDumpable.Value)
	df := Finding{Layer: LayerFPM, Check: "fpm.process_dumpable", Installation: in.Name, Pool: p.Name, Evidence: evs(p.Dumpable, p.User, k.SuidDumpable)}
	switch {
	case dumpable:
		df.Status, df.Message = StatusOK, "process.dumpable = yes: workers stay dumpable after switching to user "+orDash(user)
	case user == "" || user == "root":
		df.Status, df.Message = StatusOK, "workers do not switch user, so they stay dumpable"
	case sd == "0":
		df.Status = StatusBlocks
		df.Message = fmt.Sprintf("workers switch from root to %s, which makes them non-dumpable (fs.suid_dumpable=0), and process.dumpable is not set: the kernel writes no core (FPM logs \"(SIGSEGV)\" without \"- core dumped\")", user)
		df.Fix = "process.dumpable = yes in the pool"
	case sd == "2" && !pipe && !strings.HasPrefix(a.pattern, "/"):
		df.Status, df.Message = StatusBlocks, "workers are non-dumpable for a user switch and fs.suid_dumpable=2 refuses the relative core_pattern"
		df.Fix = "process.dumpable = yes in the pool"
	default:
		df.Status, df.Message = StatusOK, "fs.suid_dumpable="+sd+" lets workers dump core after switching user"
	}
	a.add(df)

	// where the core lands
	cp := a.pattern
	switch {
	case pipe:
	case strings.HasPrefix(cp, "/"):
		dir := path.Dir(cp)
		p.CoreDir = dir
		if a.h.isDir(dir) {
			writer, group := user, p.Group.Value
			if !dumpable && user != "" && user != "root" && sd == "2" {
				writer = "root"
			}
			if writer == "" {
				writer = "root"
			}
			ok, known := canWrite(a.h, a.acc, writer, group, dir)
			wf := Finding{Layer: LayerDisk, Check: "disk.writable", Installation: in.Name, Pool: p.Name, Evidence: []Evidence{{File: dir}}}
			switch {
			case !known:
				wf.Status, wf.Message = StatusRisky, fmt.Sprintf("cannot tell whether %s may write to %s (user unknown in /etc/passwd)", writer, dir)
			case !ok:
				wf.Status, wf.Message = StatusBlocks, fmt.Sprintf("%s cannot create files in %s: the core is not written", writer, dir)
				wf.Fix = "chmod 1733 " + dir
			default:
				wf.Status, wf.Message = StatusOK, writer+" may write cores to "+dir
			}
			a.add(wf)
			a.checkSpace(dir, "the core directory", in.Name)
		}
	default:
		p.CoreDir = "(cwd)"
		if sd == "2" && !dumpable && user != "" && user != "root" {
			break // already blocked: suid_dumpable=2 refuses relative patterns
		}
		writer := user
		if writer == "" {
			writer = "root"
		}
		a.checkWebRoots(in, p, writer)
		if p.Chdir.Value != "" && a.h.isDir(p.Chdir.Value) {
			// FPM starts workers in chdir; a script's directory replaces it
			// during a request, so this is where idle-time crashes land.
			p.CoreDir = p.Chdir.Value
			if ok, known := canWrite(a.h, a.acc, writer, p.Group.Value, p.Chdir.Value); known && !ok {
				a.add(Finding{Layer: LayerDisk, Check: "disk.writable", Installation: in.Name, Pool: p.Name, Status: StatusRisky,
					Evidence: evs(p.Chdir), Message: fmt.Sprintf("%s cannot create files in the pool's chdir %s, where a relative core_pattern puts cores of workers that crash before serving a request (during a request the cwd is the script's directory)", writer, p.Chdir.Value),
					Fix: "point kernel.core_pattern to an absolute directory (coroner fix --capture)"})
			}
		}
	}
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (a *auditor) checkProcesses(in *Installation) {
	for _, pr := range in.Processes {
		target := fmt.Sprintf("%s pid %d (%s", in.Name, pr.PID, pr.Role)
		if pr.Pool != "" {
			target += " " + pr.Pool
		}
		target += ")"
		ev := []Evidence{{File: fmt.Sprintf("/proc/%d/limits", pr.PID), Text: "Max core file size " + pr.CoreSoft + " " + pr.CoreHard}}
		var pool *Pool
		for _, p := range in.Pools {
			if p.Name == pr.Pool {
				pool = p
			}
		}
		if pr.Role == "worker" {
			soft, ok := limitBytes(pr.CoreSoft)
			f := Finding{Layer: LayerProcess, Check: "process.core_limit", Installation: in.Name, Pool: pr.Pool, Target: target, Evidence: ev}
			switch {
			case !ok:
				f.Status, f.Message = StatusInfo, "core limit unreadable"
			case soft == 0 || (soft > 0 && soft < in.ExpectedCoreSize):
				f.Status, f.Message = StatusBlocks, "this running worker has a core size limit of "+mib(soft)
				f.Fix = "rlimit_core = unlimited, then reload php-fpm"
				if in.isApache() {
					f.Fix = "LimitCORE=infinity for " + orStr(in.Unit, "Apache") + ", then restart it"
				}
				if pool != nil {
					if n, _, _ := workerLimit(in, pool, a.r.Systemd); n == -1 || n >= in.ExpectedCoreSize {
						f.Status, f.Message = StatusPending, "this running worker still has a core size limit of "+mib(soft)+"; the configuration raises it after a reload"
						f.Fix = "systemctl reload " + in.Unit
					}
				}
			default:
				f.Status, f.Message = StatusOK, "running worker core size limit: "+mib(soft)
			}
			f.Target = target
			a.add(f)
			if pr.Dumpable != nil {
				d := Finding{Layer: LayerProcess, Check: "process.dumpable", Installation: in.Name, Pool: pr.Pool, Target: target, Evidence: []Evidence{{File: fmt.Sprintf("/proc/%d/status", pr.PID), Text: "owner of /proc/PID files"}}}
				if *pr.Dumpable {
					d.Status, d.Message = StatusOK, "the running worker is dumpable"
				} else {
					d.Status, d.Message = StatusBlocks, "the running worker is not dumpable (its /proc entry belongs to root): it will leave no core"
					d.Fix = "process.dumpable = yes, then reload php-fpm"
					if in.isApache() {
						d.Fix = "CoreDumpDirectory in Apache's configuration, then reload it"
						if pool != nil && iniBool(pool.Dumpable.Value) {
							d.Status, d.Message, d.Fix = StatusPending, "the running child is not dumpable yet; CoreDumpDirectory applies once Apache is reloaded", reloadCmd(in)
						}
					}
					if pool != nil && iniBool(pool.Dumpable.Value) {
						d.Status, d.Message, d.Fix = StatusPending, "the running worker is not dumpable yet; the pool's process.dumpable applies after a reload", "systemctl reload "+in.Unit
					}
				}
				a.add(d)
			}
		}
		if pr.CoredumpFilter != "" {
			v, err := strconv.ParseUint(pr.CoredumpFilter, 16, 64)
			f := Finding{Layer: LayerProcess, Check: "process.coredump_filter", Installation: in.Name, Pool: pr.Pool, Target: target,
				Evidence: []Evidence{{File: fmt.Sprintf("/proc/%d/coredump_filter", pr.PID), Text: pr.CoredumpFilter}}}
			switch {
			case err != nil:
				f.Status, f.Message = StatusInfo, "unreadable coredump_filter"
			case v&0x2 == 0:
				f.Status, f.Message = StatusRisky, "coredump_filter lacks bit 1 (shared anonymous memory): opcache's shared memory is left out, so PHP function and file names are missing from cores"
				f.Fix = "echo 0x33 > /proc/PID/coredump_filter for the master before it forks"
			case v&0x1 == 0:
				f.Status, f.Message = StatusRisky, "coredump_filter lacks bit 0 (private anonymous memory): the PHP heap and stacks are left out"
			default:
				f.Status, f.Message = StatusOK, "coredump_filter 0x"+pr.CoredumpFilter+" keeps private and shared anonymous memory"
			}
			a.add(f)
		}
	}
}

func (a *auditor) checkPHP(in *Installation) {
	v := parsePHPVersion(in.Version)
	ini := in.INI
	jf := Finding{Layer: LayerPHP, Check: "php.jit", Installation: in.Name, Status: StatusInfo, Evidence: evs(ini["opcache.jit"], ini["opcache.jit_buffer_size"])}
	jf.Message = fmt.Sprintf("opcache.jit=%s: %s; jit_buffer_size=%s", showVal(ini["opcache.jit"]), in.JIT.Description, showVal(ini["opcache.jit_buffer_size"]))
	if in.JIT.Active {
		jf.Message += " (JIT active)"
	} else {
		jf.Message += " (JIT not active)"
	}
	a.add(jf)
	for _, key := range []string{"pcre.jit", "memory_limit", "zend.max_allowed_stack_size", "opcache.memory_consumption"} {
		s, ok := ini[key]
		if !ok {
			continue
		}
		a.add(Finding{Layer: LayerPHP, Check: "php." + key, Installation: in.Name, Status: StatusInfo, Evidence: evs(s), Message: key + "=" + showVal(s)})
	}
	// overrides between files (Debian's 10-opcache.ini after php.ini)
	a.overrides(in)

	pcreOn := iniBool(ini["pcre.jit"].Value)
	if in.JIT.Active && in.JIT.Tracing && pcreOn && (!v.known() || v.less(8, 4)) {
		a.add(Finding{Layer: LayerPHP, Check: "php.tracing_jit_pcre_jit", Installation: in.Name, Status: StatusRisky, Evidence: evs(ini["opcache.jit"], ini["pcre.jit"]),
			Message: "tracing JIT together with PCRE JIT on PHP " + orUnknown(in.Version) + ": the combination behind known crash families (php-src#15199, #7817, #8149; PCRE2 JIT stack exhaustion)",
			Fix:     "coroner fix --mitigate=function-jit (or no-pcre-jit)"})
	}
	if in.JIT.Active {
		for _, e := range in.Extensions {
			if why, ok := matchConflict(e); ok {
				a.add(Finding{Layer: LayerPHP, Check: "php.jit_extension_conflict", Installation: in.Name, Status: StatusRisky,
					Message: "JIT with extension " + e + ": " + why, Fix: "coroner fix --mitigate=no-jit"})
			}
		}
	}
	switch {
	case v.known() && v.less(8, 3):
		a.add(Finding{Layer: LayerPHP, Check: "php.recursion_guard", Installation: in.Name, Status: StatusRisky,
			Message: "PHP " + in.Version + " has no zend.max_allowed_stack_size (8.3+): deep recursion through internal callbacks (preg_replace_callback, array_map, usort...) overflows the C stack and the worker dies with SIGSEGV instead of an Error"})
	case v.known():
		if s := ini["zend.max_allowed_stack_size"]; strings.TrimSpace(s.Value) == "-1" {
			a.add(Finding{Layer: LayerPHP, Check: "php.recursion_guard", Installation: in.Name, Status: StatusRisky, Evidence: evs(s),
				Message: "zend.max_allowed_stack_size=-1 turns off the stack overflow guard: deep recursion ends in SIGSEGV"})
		}
	}
	// Per-pool differences.
	for _, p := range in.Pools {
		for _, key := range []string{"opcache.jit", "pcre.jit", "memory_limit", "opcache.jit_buffer_size", "opcache.memory_consumption"} {
			ps, ok := p.INI[key]
			if !ok {
				continue
			}
			msg := fmt.Sprintf("pool sets %s=%s", key, showVal(ps))
			st := StatusInfo
			if in.isApache() {
				msg = fmt.Sprintf("Apache's configuration sets %s=%s (php_value / php_admin_value)", key, showVal(ps))
			}
			if key == "opcache.jit_buffer_size" || key == "opcache.memory_consumption" {
				msg += ", which has no effect there (read once by the master at startup)"
				st = StatusRisky
			}
			if key == "opcache.jit" {
				pj := jitState(p.Effective, in.Extensions)
				msg += ": " + pj.Description
				if pj.on() && !in.JIT.Active {
					msg += " (no effect: the JIT is not active in the master)"
				}
				if in.isApache() {
					msg += "; the JIT is set up when Apache starts, from the ini files: a php_value or php_admin_value cannot turn it on, and to switch it off or change its mode for good write it in " + orStr(lastDir(in.ScanDirs), "mod_php's conf.d") + " (coroner fix --mitigate does)"
					st = StatusRisky
				}
			}
			a.add(Finding{Layer: LayerPHP, Check: "php.pool_override", Installation: in.Name, Pool: p.Name, Status: st, Evidence: evs(ps), Message: msg})
		}
	}
}

func (a *auditor) overrides(in *Installation) {
	// Re-derive assignments in order from the effective computation input.
	seen := map[string]*Evidence{}
	for _, f := range in.INIFiles {
		data, err := a.h.readFile(f)
		if err != nil && data == nil {
			continue
		}
		for _, e := range ParseINI(f, data, nil).Entries {
			k := strings.ToLower(e.Key)
			if !wanted(k) {
				continue
			}
			ev := &Evidence{File: f, Line: e.Line, Text: e.Key + " = " + e.Raw}
			if prev, ok := seen[k]; ok && prev.File != f {
				a.add(Finding{Layer: LayerPHP, Check: "php.ini_override", Installation: in.Name, Status: StatusInfo, Evidence: []Evidence{*ev, *prev},
					Message: fmt.Sprintf("%s in %s overrides %s (read later in the scan order)", k, path.Base(f), prev.File)})
			}
			seen[k] = ev
		}
	}
}

func showVal(s Setting) string {
	v := s.Value
	if s.Evidence != nil && v == "" {
		if i := strings.Index(s.Evidence.Text, "= "); i >= 0 {
			v = s.Evidence.Text[i+2:]
		}
	}
	if v == "" {
		v = `""`
	}
	if s.Default {
		v += " (default)"
	}
	return v
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown version)"
	}
	return s
}

// verdicts sets each pool's CoresWritten from the blocking findings.
func (a *auditor) verdicts() {
	for _, in := range a.r.Installations {
		for _, p := range in.Pools {
			p.CoresWritten = true
			for _, f := range a.r.Findings {
				if f.Layer == LayerPHP {
					continue
				}
				applies := (f.Installation == "" || f.Installation == in.Name) && (f.Pool == "" || f.Pool == p.Name)
				if !applies {
					continue
				}
				switch f.Status {
				case StatusBlocks:
					p.CoresWritten = false
				case StatusPending:
					p.Pending = true
				}
			}
		}
	}
}
