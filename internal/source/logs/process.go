package logs

import (
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// PHP first: coroner explains PHP crashes. The kernel and systemd-coredump
// log every crashing program of the host (python, perl, browsers, C++
// services); counting those as dead PHP workers makes every number wrong.
// Each incident says whether the process that died runs PHP and how that
// is known; summaries and crash groups count PHP processes only unless
// Options.AllProcesses is set.

var (
	// phpCommRE matches the command names (comm, 15 characters, or the
	// executable's base name) of processes that run PHP: php-fpm8.2,
	// php-fpm, php8.3, php, php-cgi, lsphp (LiteSpeed), frankenphp, and
	// FPM's process titles ("php-fpm: pool www").
	phpCommRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`^(php(-fpm|-cgi|-cli)?[0-9.]*|php[0-9.]*-(fpm|cgi)|php-fpm:.*|lsphp[0-9.]*|frankenphp)$`)
	})
	// webServerCommRE matches web servers that may embed PHP (mod_php).
	webServerCommRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^(apache2?|httpd(-prefork|-worker|-event)?)$`) })
	// phpModuleRE matches modules only a PHP process maps: the PHP
	// library of Apache's mod_php and FrankenPHP, the php binaries, and
	// extensions in PHP's extension directories.
	phpModuleRE = sync.OnceValue(func() *regexp.Regexp {
		return regexp.MustCompile(`(^|/)(libphp[0-9.]*\.so[.0-9]*|php-fpm[0-9.]*|php[0-9.]*|php-cgi[0-9.]*|opcache\.so)$|/(lib|lib64)/php[0-9.]*/(modules|[0-9]{8})/`)
	})
)

// IsPHPCommand reports whether a command name (comm) or executable names
// a program that runs PHP (php-fpm, php, php-cgi, lsphp, FrankenPHP).
func IsPHPCommand(comm string) bool {
	comm = strings.TrimSuffix(strings.TrimSpace(comm), " (deleted)")
	if comm == "" {
		return false
	}
	return phpCommRE().MatchString(filepath.Base(comm)) || phpCommRE().MatchString(comm)
}

// IsWebServerCommand reports whether a command name or executable names a
// web server that may run PHP inside itself (Apache httpd with mod_php):
// whether one of its crashes is PHP's is known only from its record of the
// death or from its core.
func IsWebServerCommand(comm string) bool {
	comm = strings.TrimSuffix(strings.TrimSpace(comm), " (deleted)")
	return comm != "" && webServerCommRE().MatchString(filepath.Base(comm))
}

// isPHPModule reports whether a mapped module (path or base name) is one
// only PHP processes load.
func isPHPModule(path string) bool {
	return path != "" && phpModuleRE().MatchString(strings.TrimSuffix(path, " (deleted)"))
}

// classify decides whether the process of an incident runs PHP, from the
// most direct fact available, and records how it knows. An Apache child
// runs PHP only with mod_php: its core says (PHP's library among its
// mappings), or the module it crashed in, or else the Apache
// configuration (modPHP, nil when not read).
func classify(inc *Incident, core *coredumps.Entry, modPHP *ModPHP) {
	inc.PHP, inc.ProcessWhy = false, ""
	set := func(php bool, why string) { inc.PHP, inc.ProcessWhy = php, why }
	switch {
	case inc.Pool != "":
		set(true, "PHP-FPM worker of pool "+inc.Pool+" (the master's record)")
		return
	case IsPHPCommand(inc.Comm):
		set(true, "command "+inc.Comm)
		return
	case IsPHPCommand(inc.Exe):
		set(true, "executable "+inc.Exe)
		return
	}
	if core != nil {
		if IsPHPCommand(core.Exe) || IsPHPCommand(core.Comm) {
			set(true, "the core's executable "+firstNonEmpty(core.Exe, core.Comm))
			return
		}
		if core.PHPModule != "" {
			set(true, firstNonEmpty(filepath.Base(core.Exe), core.Comm, "the process")+" with "+filepath.Base(core.PHPModule)+" loaded (the core's mappings)")
			return
		}
	}
	if f := inc.Fault; f != nil && isPHPModule(f.Module) {
		set(true, "crashed in "+f.Module+", a PHP module")
		return
	}
	for mod := range inc.buildIDs {
		if isPHPModule(mod) {
			set(true, "maps "+filepath.Base(mod)+" (systemd-coredump's module list)")
			return
		}
	}
	who := firstNonEmpty(inc.Comm, inc.Exe)
	if core != nil && who == "" {
		who = firstNonEmpty(core.Comm, core.Exe)
	}
	apache := inc.apache || (who != "" && webServerCommRE().MatchString(filepath.Base(who)))
	if apache {
		what := "Apache child"
		if !inc.apache {
			what = who
		}
		switch {
		case core != nil && core.MapsKnown:
			set(false, what+" whose core maps no PHP library: PHP does not run inside it")
		case modPHP != nil && modPHP.Loaded:
			set(true, what+" with mod_php ("+modPHP.Why+")")
		case modPHP != nil:
			set(false, what+" without mod_php ("+modPHP.Why+")")
		case inc.apache:
			set(false, what+" with no sign of PHP (no core of it read, no PHP module at the fault, and no Apache configuration read to tell whether it loads mod_php)")
		default:
			set(false, who+" with no sign of PHP in the crash (no PHP module at the fault)")
		}
		return
	}
	switch {
	case who == "":
		set(false, "the process is unknown (no command name, pool or core)")
	default:
		set(false, "command "+who+" is not PHP")
	}
}

// processName is how an incident's process is named in summaries: its
// command, else its executable's base name.
func processName(inc *Incident) string {
	switch {
	case inc.Comm != "":
		return inc.Comm
	case inc.Exe != "":
		return filepath.Base(inc.Exe)
	case inc.Pool != "":
		return "php-fpm pool " + inc.Pool
	}
	return "(unknown)"
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
