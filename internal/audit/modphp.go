package audit

import "path"

// ModPHP says whether PHP runs inside a host's Apache httpd (mod_php), as
// the Apache configuration says: Apache's own record of a dead child
// (AH00051/AH00052) is a PHP death only when it does. The zero value says
// that no Apache configuration was found.
type ModPHP struct {
	// Config is the main Apache configuration file read (as the host
	// sees it), "" when there is none.
	Config string `json:"config,omitempty"`
	// Module is the PHP module it loads (the path of LoadModule
	// php*_module), "" when it loads none.
	Module string `json:"module,omitempty"`
	// Evidence is the LoadModule line.
	Evidence *Evidence `json:"evidence,omitempty"`
}

// Known reports whether an Apache configuration was read.
func (m ModPHP) Known() bool { return m.Config != "" }

// Loaded reports whether the configuration loads a PHP module.
func (m ModPHP) Loaded() bool { return m.Module != "" }

// Why says in words what the configuration says about PHP.
func (m ModPHP) Why() string {
	switch {
	case m.Config == "":
		return "no Apache configuration found"
	case m.Module == "":
		return m.Config + " loads no PHP module (no LoadModule php*_module)"
	case m.Evidence != nil:
		return m.Evidence.String() + " loads mod_php"
	}
	return m.Config + " loads mod_php (" + path.Base(m.Module) + ")"
}

// ApacheModPHP reads the Apache configuration of the host under root
// ("" or "/" for this machine): config when given, else Debian's
// /etc/apache2/apache2.conf and RHEL's /etc/httpd/conf/httpd.conf,
// following their includes. The first configuration that loads a PHP
// module wins; else the first one found is reported without one.
func ApacheModPHP(root, config string) (ModPHP, error) {
	h, err := newHost(root)
	if err != nil {
		return ModPHP{}, err
	}
	type layout struct{ conf, root, envvars string }
	layouts := []layout{
		{"/etc/apache2/apache2.conf", "/etc/apache2", "/etc/apache2/envvars"},
		{"/etc/httpd/conf/httpd.conf", "/etc/httpd", ""},
	}
	if config != "" {
		conf := path.Clean(h.given(config))
		layouts = []layout{{conf, path.Dir(conf), ""}}
	}
	var first ModPHP
	for _, l := range layouts {
		if !h.exists(l.conf) {
			continue
		}
		env := map[string]string{}
		if l.envvars != "" {
			env, _ = apacheEnvvars(h, l.envvars)
		}
		c, err := loadApacheConfig(h, l.conf, l.root, env)
		if err != nil {
			continue
		}
		m := ModPHP{Config: l.conf, Module: c.phpModule.Value, Evidence: c.phpModule.Evidence}
		if m.Loaded() {
			return m, nil
		}
		if !first.Known() {
			first = m
		}
	}
	return first, nil
}
