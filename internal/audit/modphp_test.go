package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApacheModPHP: whether the host's Apache runs PHP inside its
// children, from Debian's and RHEL's layouts (following IncludeOptional
// globs), a given configuration, an Apache that serves no PHP itself (PHP
// behind proxy_fcgi), and a host without Apache.
func TestApacheModPHP(t *testing.T) {
	noPHP := t.TempDir()
	for name, text := range map[string]string{
		"etc/apache2/apache2.conf":             "IncludeOptional mods-enabled/*.load\n",
		"etc/apache2/mods-enabled/mpm.load":    "LoadModule mpm_event_module /usr/lib/apache2/modules/mod_mpm_event.so\n",
		"etc/apache2/mods-enabled/proxy.load":  "LoadModule proxy_fcgi_module /usr/lib/apache2/modules/mod_proxy_fcgi.so\n",
		"srv/site/httpd.conf":                  "# a vhost\nLoadModule php7_module /opt/php/libphp7.so\n",
		"etc/apache2/mods-available/php8.load": "LoadModule php_module /usr/lib/apache2/modules/libphp8.2.so\n",
	} {
		p := filepath.Join(noPHP, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		root, config string
		known        bool
		module, why  string
	}{
		{"testdata/debian12-apache", "", true, "/usr/lib/apache2/modules/libphp8.2.so", "/etc/apache2/mods-enabled/php8.2.load:2: LoadModule php_module"},
		{"testdata/rhel9-httpd", "", true, "/etc/httpd/modules/libphp.so", "/etc/httpd/conf.modules.d/15-php.conf:5: LoadModule php_module"},
		{"testdata/debian12-clean", "", false, "", "no Apache configuration found"},
		{noPHP, "", true, "", "/etc/apache2/apache2.conf loads no PHP module"},
		{noPHP, "/srv/site/httpd.conf", true, "/opt/php/libphp7.so", "/srv/site/httpd.conf:2: LoadModule php7_module"},
	} {
		m, err := ApacheModPHP(c.root, c.config)
		if err != nil {
			t.Fatalf("%s %s: %v", c.root, c.config, err)
		}
		if m.Known() != c.known || m.Module != c.module || m.Loaded() != (c.module != "") || !strings.Contains(m.Why(), c.why) {
			t.Errorf("%s %s: %+v (%s), want known %v, module %q, why %q", c.root, c.config, m, m.Why(), c.known, c.module, c.why)
		}
	}

	// On this machine a relative --apache-config is the working directory's.
	t.Chdir(filepath.Join(noPHP, "srv"))
	m, err := ApacheModPHP("", "site/httpd.conf")
	if err != nil || m.Config != filepath.Join(noPHP, "srv/site/httpd.conf") || m.Module != "/opt/php/libphp7.so" {
		t.Errorf("relative configuration: %+v, %v", m, err)
	}
	r, err := Run(Options{ApacheConfig: "site/httpd.conf"})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Installations) != 1 || r.Installations[0].ServerConfig != filepath.Join(noPHP, "srv/site/httpd.conf") {
		t.Errorf("audit of a relative --apache-config: %+v (warnings %q)", r.Installations, r.Warnings)
	}
}
