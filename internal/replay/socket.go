package replay

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
)

// SocketSearch says where FindSocket reads the PHP-FPM configuration: the
// same as `coroner audit` (audit.Options): Root is the tree whose
// configuration is read ("" for this machine), FPMConfig one php-fpm.conf
// to read instead of discovering the installations.
type SocketSearch struct {
	Root      string
	FPMConfig string
}

// FoundSocket is the socket of the crashed worker's pool, and where its
// listen was found.
type FoundSocket struct {
	// Socket is "unix:/path" or "tcp:HOST:PORT", as --socket takes it.
	Socket string
	// Pool is the pool's name; Installation the FPM installation it
	// belongs to ("php8.2-fpm"); Listen the listen value with the file and
	// line it was read from.
	Pool, Installation string
	Listen             audit.Setting
	// Why says it in words: "the listen of pool www in FILE:LINE".
	Why string
}

// SocketError says why no socket was found for a core: what was tried.
type SocketError struct{ msg string }

func (e *SocketError) Error() string { return e.msg }

func socketErrorf(format string, a ...any) error { return &SocketError{fmt.Sprintf(format, a...)} }

// FindSocket finds the FPM socket of the pool whose worker crashed, for
// replaying the core's request without --socket: the pool named by the
// worker's process title ("php-fpm: pool www"), looked up in the PHP-FPM
// configuration `coroner audit` reads. When several installations define a
// pool of that name, the one whose running master forked the worker (the
// core's parent pid) is taken, else the one of the core's PHP version; when
// that still leaves several, or none, it returns a *SocketError saying what
// was tried. Sections of the same name in one installation are one pool
// (FPM merges them, the last listen wins). A worker that ran in a
// container or chroot (rep.Root) is looked for in its root, unless s says
// where to look; a TCP listen in a container, another network namespace,
// is refused.
func FindSocket(rep *crash.Report, s SocketSearch) (*FoundSocket, error) {
	pool := rep.Process.FPMPool()
	if pool == "" {
		title := strings.TrimSpace(rep.Process.Args)
		if title == "" {
			return nil, socketErrorf("the core does not say which PHP-FPM pool its worker served (it records no process title)")
		}
		return nil, socketErrorf("the core does not say which PHP-FPM pool its worker served (its process title is %q, not \"php-fpm: pool NAME\")", title)
	}
	// A worker that ran in a container or a chroot (the core's files were
	// found there) has its FPM configuration there, not on this host.
	var in *crash.Root
	if r := rep.Root; r != nil && r.Dir != "" && r.Runtime != "host" && r.Runtime != "sysroot" && s.Root == "" && s.FPMConfig == "" {
		if strings.HasSuffix(r.Runtime, "-layer") {
			return nil, socketErrorf("pool %s: the worker ran in a %s container that is gone (its files were found in image layers only), and its socket with it", pool, strings.TrimSuffix(r.Runtime, "-layer"))
		}
		in, s.Root = r, r.Dir
	}
	ar, err := audit.Run(audit.Options{Root: s.Root, FPMConfig: s.FPMConfig})
	if err != nil {
		return nil, socketErrorf("pool %s: cannot read the PHP-FPM configuration: %v", pool, err)
	}
	f, err := findSocket(rep, pool, ar, s)
	if err != nil || in == nil {
		return f, err
	}
	what := "the " + in.Runtime + " container"
	if in.Name != "" {
		what += " " + in.Name
	}
	switch in.Runtime {
	case "given", "core-dir":
		what = "the chroot"
	case "process":
		what = "the root of a running process"
	}
	if strings.HasPrefix(f.Socket, "tcp:") && in.Runtime != "given" && in.Runtime != "core-dir" {
		return nil, socketErrorf("pool %s listens on %s inside %s the worker ran in (%s), whose network may not be this host's", pool, strings.TrimPrefix(f.Socket, "tcp:"), what, in.Dir)
	}
	f.Why += fmt.Sprintf(", in %s the worker ran in (%s)", what, in.Dir)
	return f, nil
}

// candidate is one installation's pool of the wanted name.
type candidate struct {
	in     *audit.Installation
	listen audit.Setting
	// sections counts the sections of the pool's name (FPM merges them).
	sections int
}

func findSocket(rep *crash.Report, pool string, ar *audit.Report, s SocketSearch) (*FoundSocket, error) {
	var read []string // what was read, for the errors
	var cands []candidate
	fpm := 0
	for _, in := range ar.Installations {
		if in.SAPI != audit.SAPIFPM {
			continue
		}
		fpm++
		var names []string
		c := candidate{in: in}
		for _, p := range in.Pools {
			names = append(names, p.Name)
			if p.Name != pool {
				continue
			}
			c.sections++
			// FPM merges sections of the same name: the last listen wins.
			if p.Listen.Evidence != nil || c.listen.Value == "" {
				c.listen = p.Listen
			}
		}
		what := in.FPMConfig
		if len(names) > 0 {
			what += " (pools " + strings.Join(names, ", ") + ")"
		} else {
			what += " (no pool)"
		}
		read = append(read, what)
		if c.sections > 0 {
			cands = append(cands, c)
		}
	}
	if fpm == 0 {
		where := "this host"
		if s.Root != "" {
			where = s.Root
		}
		msg := fmt.Sprintf("pool %s: no PHP-FPM configuration found in %s (looked for /etc/php/*/fpm/php-fpm.conf, /etc/php-fpm.conf, /etc/opt/remi/php*/php-fpm.conf); name it with --fpm-config", pool, where)
		return nil, &SocketError{msg}
	}
	if len(cands) == 0 {
		return nil, socketErrorf("no pool %s in the PHP-FPM configuration: read %s", pool, strings.Join(read, "; "))
	}
	why := ""
	if len(cands) > 1 {
		cands, why = narrow(rep, cands)
	}
	if len(cands) > 1 {
		var list []string
		for _, c := range cands {
			list = append(list, fmt.Sprintf("%s (listen %s)", where(c.listen, c.in.FPMConfig), showListen(c.listen)))
		}
		return nil, socketErrorf("pool %s is defined by %d PHP-FPM installations, and the core does not say which one ran the worker: %s", pool, len(cands), strings.Join(list, "; "))
	}
	c := cands[0]
	network, address, err := audit.ListenSocket(c.listen.Value)
	if err != nil {
		return nil, socketErrorf("pool %s in %s: %v", pool, where(c.listen, c.in.FPMConfig), err)
	}
	if network == "unix" && s.Root != "" && s.Root != "/" {
		address = filepath.Join(s.Root, address)
	}
	f := &FoundSocket{Socket: network + ":" + address, Pool: pool, Installation: c.in.Name, Listen: c.listen}
	f.Why = fmt.Sprintf("the listen of pool %s in %s", pool, where(c.listen, c.in.FPMConfig))
	if c.sections > 1 {
		f.Why += fmt.Sprintf(" (the last of the %d [%s] sections, which FPM merges into one pool)", c.sections, pool)
	}
	if why != "" {
		f.Why += "; " + why
	}
	return f, nil
}

// narrow picks among installations that all define the pool: the one
// whose running master is the core's parent, else those of the core's PHP
// version (an installation of unknown version stays).
func narrow(rep *crash.Report, cands []candidate) ([]candidate, string) {
	if ppid := rep.Process.PPID; ppid > 0 {
		for _, c := range cands {
			for _, p := range c.in.Processes {
				if p.Role == "master" && p.PID == ppid {
					return []candidate{c}, fmt.Sprintf("its master (pid %d) forked the crashed worker", ppid)
				}
			}
		}
	}
	if rep.PHP == nil || rep.PHP.Version == "" {
		return cands, ""
	}
	v := rep.PHP.Version
	var keep []candidate
	for _, c := range cands {
		if c.in.Version == "" || c.in.Version == v || strings.HasPrefix(v, c.in.Version+".") {
			keep = append(keep, c)
		}
	}
	if len(keep) == 0 || len(keep) == len(cands) {
		return cands, ""
	}
	return keep, fmt.Sprintf("the other installations defining it run another PHP version than the core's %s", v)
}

// where is the file and line a listen came from (the pool's file when it
// is not set).
func where(l audit.Setting, config string) string {
	if l.Evidence != nil {
		if l.Evidence.Line > 0 {
			return fmt.Sprintf("%s:%d", l.Evidence.File, l.Evidence.Line)
		}
		return l.Evidence.File
	}
	return config
}

func showListen(l audit.Setting) string {
	if l.Value == "" {
		return "unset"
	}
	return l.Value
}
