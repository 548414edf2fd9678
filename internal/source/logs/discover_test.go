package logs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDiscover(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/nginx/nginx.conf", "http {\n  error_log /srv/log/ngx-error.log warn;\n  access_log /srv/log/ngx-access.log combined;\n}\n")
	write("srv/log/ngx-error.log", "")
	write("srv/log/ngx-error.log.1", "")
	write("srv/log/ngx-error.log.2.gz", "")
	write("srv/log/ngx-access.log", "")
	write("etc/php/8.2/fpm/php-fpm.conf", "[global]\nerror_log = /var/log/php8.2-fpm.log\n")
	write("etc/php/8.2/fpm/pool.d/www.conf", "[www]\nslowlog = /var/log/$pool.slow.log\n")
	write("var/log/php8.2-fpm.log", "")
	write("var/log/php8.2-fpm.log.1", "")
	write("var/log/www.slow.log", "")
	write("var/log/kern.log", "")
	write("var/log/kern.log.1", "")
	write("var/log/nginx/error.log", "")
	var got []string
	for _, in := range Discover(DiscoverOptions{Root: root, NoCommands: true}) {
		got = append(got, strings.TrimPrefix(in.Path, root)+"="+string(in.Format))
	}
	want := []string{
		"/srv/log/ngx-error.log.2.gz=nginx-error", "/srv/log/ngx-error.log.1=nginx-error", "/srv/log/ngx-error.log=nginx-error",
		"/srv/log/ngx-access.log=access", "/var/log/nginx/error.log=nginx-error",
		"/var/log/php8.2-fpm.log.1=php-fpm", "/var/log/php8.2-fpm.log=php-fpm", "/var/log/www.slow.log=php-fpm-slowlog",
		"/var/log/kern.log.1=kernel", "/var/log/kern.log=kernel",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestDiscoverApache: the main server's ErrorLog of Debian's apache2
// (${APACHE_LOG_DIR} from envvars, whose $SUFFIX is empty for the main
// instance) and of RHEL's httpd (relative to ServerRoot), with rotations;
// a piped ErrorLog is left to the journal; a ForensicLog of an included
// file is read, a piped one is not.
func TestDiscoverApache(t *testing.T) {
	root := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		p = filepath.Join(root, p)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/apache2/envvars", "export APACHE_LOG_DIR=/srv/apache$SUFFIX\n")
	write("etc/apache2/apache2.conf", "ErrorLog ${APACHE_LOG_DIR}/main-error.log\n<VirtualHost *:80>\n  ErrorLog \"|/usr/bin/logger -t site\"\n</VirtualHost>\n")
	write("srv/apache/main-error.log", "")
	write("srv/apache/main-error.log.1", "")
	write("etc/httpd/conf/httpd.conf", "ServerRoot \"/etc/httpd\"\nErrorLog \"logs/error_log\"\n")
	write("etc/httpd/logs/error_log", "")
	write("etc/apache2/conf-enabled/forensic.conf", "<IfModule log_forensic_module>\n  ForensicLog ${APACHE_LOG_DIR}/forensic.log\n</IfModule>\n")
	write("srv/apache/forensic.log", "")
	write("etc/httpd/conf.d/pipe.conf", "ForensicLog \"|/usr/bin/rotatelogs /x 86400\"\n")
	var got []string
	for _, in := range Discover(DiscoverOptions{Root: root, NoCommands: true}) {
		got = append(got, strings.TrimPrefix(in.Path, root)+"="+string(in.Format))
	}
	want := []string{"/srv/apache/main-error.log.1=apache-error", "/srv/apache/main-error.log=apache-error", "/srv/apache/forensic.log=apache-forensic", "/etc/httpd/logs/error_log=apache-error"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("discovered %v, want %v", got, want)
	}
}
