package audit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgainstPHPFPM compares the effective configuration coroner computes
// with what the real php-fpm binary reports (-i) for the same php.ini and
// scan directories, including Debian's conf.d where 10-opcache.ini sets
// opcache.jit=off after php.ini.
func TestAgainstPHPFPM(t *testing.T) {
	bins, _ := filepath.Glob("/usr/sbin/php-fpm[0-9]*")
	if len(bins) == 0 {
		t.Skip("no php-fpm installed (apt-get install php8.2-fpm)")
	}
	bin := bins[0]
	ver := strings.TrimPrefix(filepath.Base(bin), "php-fpm")
	sysScan := "/etc/php/" + ver + "/fpm/conf.d"
	dir := t.TempDir()
	write := func(name, s string) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ini := write("php.ini", "[PHP]\nmemory_limit = 200M ; inline comment\n[opcache]\nopcache.jit=tracing\nopcache.jit_buffer_size=32M\npcre.jit=0\n")
	write("d/50-a.ini", "opcache.jit_buffer_size=\"48M\" ; quoted\npcre.jit = yes\n")
	write("d/60-b.ini", "memory_limit=${CORONER_ORACLE_MEM}\n")
	write("d/README", "not an ini file\n")
	conf := write("fpm.conf", "[global]\nerror_log = /dev/null\n[www]\nlisten = 127.0.0.1:9999\npm = static\npm.max_children = 1\n")

	for _, tc := range []struct {
		name, scan string
	}{
		{"system scan dir first", sysScan + ":" + filepath.Join(dir, "d")},
		{"empty element = default", ":" + filepath.Join(dir, "d")},
		{"own dir only", filepath.Join(dir, "d")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin, "-c", ini, "-i")
			cmd.Env = append(os.Environ(), "PHP_INI_SCAN_DIR="+tc.scan, "CORONER_ORACLE_MEM=300M")
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("%s -i: %v", bin, err)
			}
			php := map[string]string{}
			var parsed []string
			lines := strings.Split(string(out), "\n")
			for i, l := range lines {
				f := strings.SplitN(l, " => ", 3)
				if len(f) == 3 {
					php[f[0]] = f[1]
				}
				if strings.HasPrefix(l, "Additional .ini files parsed => ") {
					s := strings.TrimPrefix(l, "Additional .ini files parsed => ")
					for j := i + 1; strings.HasSuffix(strings.TrimSpace(s), ","); j++ {
						s += lines[j]
					}
					for _, p := range strings.Split(s, ",") {
						if p = strings.TrimSpace(p); p != "" && p != "(none)" {
							parsed = append(parsed, p)
						}
					}
				}
			}
			r := mustRun(t, Options{FPMConfig: conf, PHPIni: ini, PHPIniScanDir: tc.scan, PHPVersion: ver,
				Env: map[string]string{"CORONER_ORACLE_MEM": "300M"}})
			in := r.Installations[0]
			if got := strings.Join(in.INIFiles[1:], ","); got != strings.Join(parsed, ",") {
				t.Errorf("ini order:\n got %s\nwant %s", got, strings.Join(parsed, ","))
			}
			for _, k := range []string{"memory_limit", "opcache.jit_buffer_size", "opcache.jit", "pcre.jit"} {
				want, ok := php[k]
				got := in.INI[k].Value
				if !ok && strings.HasPrefix(k, "opcache.") {
					// opcache not loaded: coroner must say so
					if in.JIT.Active || contains(in.Extensions, "opcache") {
						t.Errorf("php-fpm has no opcache, coroner: JIT %+v, extensions %v", in.JIT, in.Extensions)
					}
					continue
				}
				switch {
				case want == "no value":
					want = ""
				case want == "On":
					want = "1"
				case want == "Off":
					want = ""
				}
				if k == "pcre.jit" {
					if iniBool(got) != (want == "1") {
						t.Errorf("%s: coroner %q, php-fpm %q", k, got, php[k])
					}
					continue
				}
				if got != want {
					t.Errorf("%s: coroner %q, php-fpm %q", k, got, php[k])
				}
			}
		})
	}
}
