package doctor

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// CrashedPool is the audit's view of a pool that crashed, and what the
// evidence of its crashes says against it: the audit judges the
// configuration on disk now, the crashes happened under whatever was in
// force then.
type CrashedPool struct {
	// Pool is the pool's name, from the FPM log or the worker's title in
	// the core ("php-fpm: pool www").
	Pool string `json:"pool"`
	// Deaths and CoresDumped count its deaths in the logs and how many of
	// them the FPM master logged as "core dumped"; Cores counts the cores
	// analysed.
	Deaths      int `json:"deaths"`
	CoresDumped int `json:"cores_dumped"`
	Cores       int `json:"cores"`
	// Installation and Config say where the audit found the pool ("" when
	// no audited installation has a pool of that name).
	Installation string `json:"installation,omitempty"`
	Config       string `json:"config,omitempty"`
	// CoresWritten is the audit's verdict for the pool (nil when not found).
	CoresWritten *bool `json:"cores_written,omitempty"`
	// CoreDir is where the audit says its cores land ("(cwd)": the
	// crashing script's directory).
	CoreDir string `json:"core_dir,omitempty"`
	// ScriptDirs are the directories of the scripts its workers were
	// running when they crashed (from the cores' requests): the working
	// directory, where a relative core_pattern writes the core.
	ScriptDirs []string `json:"script_dirs,omitempty"`
	// Notes say where the evidence contradicts the audit, or what the
	// audit did not look at, in words.
	Notes []string `json:"notes,omitempty"`
}

// apachePool names the children of an Apache with mod_php as one pool, as
// the audit does (the binary: apache2, httpd).
const apachePool = "apache2"

// poolOf is the FPM pool of a crashed process: the incident's, else the
// worker's title in the core ("php-fpm: pool www"); Apache's children are
// the pool named after Apache's binary.
func poolOf(inc *logs.Incident, rep *crash.Report) string {
	if inc != nil && inc.Pool != "" {
		return inc.Pool
	}
	if rep != nil && rep.PHP != nil && rep.PHP.SAPI == "apache2handler" {
		if b := filepath.Base(rep.Process.Executable); b == "httpd" || b == "apache2" {
			return b
		}
		return apachePool
	}
	if inc != nil && inc.Apache() {
		return apachePool
	}
	if rep != nil {
		return rep.Process.FPMPool()
	}
	return ""
}

// findPool returns the audited installation and pool named name.
func findPool(a *audit.Report, name string) (*audit.Installation, *audit.Pool) {
	if a == nil || name == "" {
		return nil, nil
	}
	for _, in := range a.Installations {
		for _, p := range in.Pools {
			if p.Name == name {
				return in, p
			}
		}
	}
	if name == "apache2" || name == "httpd" {
		// Apache's children under whatever name the binary has here
		for _, in := range a.Installations {
			if in.SAPI == audit.SAPIApache && len(in.Pools) > 0 {
				return in, in.Pools[0]
			}
		}
	}
	return nil, nil
}

// evidenceFor is what the configuration says about the crashes of pool:
// that pool's installation and settings when the audit found it, else the
// first installation's (the base).
func (r *run) evidenceFor(pool string) diagnose.Evidence {
	in, p := findPool(r.res.Audit, pool)
	if in == nil {
		return r.base
	}
	ev := diagnose.Evidence{PHPVersion: in.Version, Extensions: append([]string(nil), in.Extensions...), INI: map[string]string{}}
	for k, s := range in.INI {
		ev.INI[k] = s.Value
	}
	for k, s := range p.Effective {
		ev.INI[k] = s.Value
	}
	return ev
}

// crashedPools audits the pools that crashed: each one's verdict, and the
// contradictions between the audit and the crashes (cores dumped where the
// audit says none can be, none where it says they are, a pool the audit
// does not know, scripts in directories it did not check).
func (r *run) crashedPools() {
	byName := map[string]*CrashedPool{}
	var order []string
	get := func(name string) *CrashedPool {
		cp := byName[name]
		if cp == nil {
			cp = &CrashedPool{Pool: name}
			byName[name] = cp
			order = append(order, name)
		}
		return cp
	}
	lastDump := map[string]time.Time{}
	for _, g := range r.order {
		for _, inc := range g.Incidents {
			name := poolOf(inc, nil)
			if name == "" {
				continue
			}
			cp := get(name)
			cp.Deaths++
			if inc.CoreDumped {
				cp.CoresDumped++
				if inc.Time.After(lastDump[name]) {
					lastDump[name] = inc.Time
				}
			}
		}
		if rep := g.Report; rep != nil {
			var inc *logs.Incident
			for _, i := range g.Incidents {
				if i.PID == rep.Process.PID {
					inc = i
				}
			}
			name := poolOf(inc, rep)
			if name == "" {
				continue
			}
			cp := get(name)
			cp.Cores += len(g.Cores)
			if rep.PHP != nil && rep.PHP.Request != nil && rep.PHP.Request.Script != "" {
				d := filepath.Dir(rep.PHP.Request.Script)
				if !contains(cp.ScriptDirs, d) {
					cp.ScriptDirs = append(cp.ScriptDirs, d)
				}
			}
		}
	}
	a := r.res.Audit
	var audited []string
	if a != nil {
		for _, in := range a.Installations {
			for _, p := range in.Pools {
				audited = append(audited, fmt.Sprintf("%s in %s", p.Name, p.File))
			}
		}
	}
	for _, name := range order {
		cp := byName[name]
		if a == nil {
			r.res.Pools = append(r.res.Pools, cp)
			continue
		}
		in, p := findPool(a, name)
		if p == nil {
			cp.Notes = append(cp.Notes, fmt.Sprintf("pool %s crashed (%d deaths) but the audit found no pool of that name (it audited %s): its settings are unknown here; give its php-fpm.conf with --fpm-config",
				name, cp.Deaths, orNone(audited)))
			r.res.Pools = append(r.res.Pools, cp)
			continue
		}
		cp.Installation, cp.Config, cp.CoreDir = in.Name, p.File, p.CoreDir
		written := p.CoresWritten
		cp.CoresWritten = &written
		who, logged, record, settings := "pool "+name, "the FPM master logged \"core dumped\"", "no \"core dumped\" in the FPM log", "the pool's settings"
		if in.SAPI == audit.SAPIApache {
			who, logged, record, settings = in.Name+"'s children", "Apache logged \"possible coredump\" (AH00051)", "AH00052, not AH00051, in Apache's error log", "Apache's CoreDumpDirectory"
		}
		switch {
		case !written && cp.CoresDumped > 0:
			cp.Notes = append(cp.Notes, fmt.Sprintf("the audit says cores of %s will NOT be written, but %s for %d of its %d deaths (last %s): the crashes happened under another configuration than the one on disk now (kernel.core_pattern, %s or the unit changed since, or the audit read another installation)",
				who, logged, cp.CoresDumped, cp.Deaths, r.inZone(lastDump[name]).Format("2006-01-02 15:04:05 MST"), settings))
		case written && cp.Deaths > 0 && cp.CoresDumped == 0:
			cp.Notes = append(cp.Notes, fmt.Sprintf("the audit says cores of %s are written, but none of its %d deaths dumped core (%s): the running server does not use the configuration on disk yet (restart it), or a layer the audit cannot see blocks them",
				who, cp.Deaths, record))
		}
		if p.CoreDir == "(cwd)" && len(cp.ScriptDirs) > 0 {
			var checked []string
			for _, f := range a.Findings {
				if f.Check == "disk.docroot" && f.Pool == name {
					for _, e := range f.Evidence {
						checked = append(checked, rootOf(e.Text))
					}
				}
			}
			var missed []string
			for _, d := range cp.ScriptDirs {
				if !coveredBy(d, checked) {
					missed = append(missed, d)
				}
			}
			if len(missed) > 0 {
				cp.Notes = append(cp.Notes, fmt.Sprintf("with a relative core_pattern the cores of pool %s land in the crashing script's directory: %s (from the cores' requests), which the audit did not check (it checked the web server's document roots: %s)",
					name, strings.Join(missed, ", "), orNone(checked)))
			}
		}
		r.res.Pools = append(r.res.Pools, cp)
	}
}

// rootOf is the directory of a document-root line of the web server's
// configuration ("root /var/www/html;", "DocumentRoot \"/srv/www\"").
func rootOf(line string) string {
	for _, w := range strings.Fields(line) {
		w = strings.Trim(w, `"';`)
		if strings.HasPrefix(w, "/") {
			return filepath.Clean(w)
		}
	}
	return line
}

// coveredBy reports whether dir is one of the document roots or inside one.
func coveredBy(dir string, roots []string) bool {
	for _, r := range roots {
		if dir == r || strings.HasPrefix(dir, strings.TrimSuffix(r, "/")+"/") {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func orNone(list []string) string {
	if len(list) == 0 {
		return "none"
	}
	sort.Strings(list)
	return strings.Join(list, ", ")
}
