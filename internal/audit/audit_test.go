package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// copyTree copies a fixture tree (files, dirs, symlinks) into a temp dir.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "root")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, out)
		case info.IsDir():
			return os.MkdirAll(out, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, info.Mode().Perm())
		}
	})
	if err != nil {
		t.Fatalf("copy %s: %v", src, err)
	}
	return dst
}

// snapshot hashes every file, symlink and directory of a tree, except the
// fix state directory.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	state := filepath.Join(root, "var/lib/coroner/fix")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == state {
			return filepath.SkipDir
		}
		rel, _ := filepath.Rel(root, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out[rel] = "link:" + l
		case info.IsDir():
			out[rel] = "dir:" + info.Mode().String()
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			out[rel] = info.Mode().String() + ":" + hex.EncodeToString(s[:])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func statusOf(r *Report, check string) []Status {
	var out []Status
	for _, f := range r.Find(check) {
		out = append(out, f.Status)
	}
	return out
}

func hasStatus(r *Report, check string, st Status) bool {
	for _, s := range statusOf(r, check) {
		if s == st {
			return true
		}
	}
	return false
}

// problems lists blocking and risky findings, except those no
// configuration change can remove (the PHP version itself).
func problems(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		if (f.Status == StatusBlocks || f.Status == StatusRisky) && f.Check != "php.recursion_guard" {
			out = append(out, string(f.Status)+" "+f.Check+" "+f.Target+": "+f.Message)
		}
	}
	return out
}

func mustRun(t *testing.T, o Options) *Report {
	t.Helper()
	r, err := Run(o)
	if err != nil {
		t.Fatalf("Run(%+v): %v", o, err)
	}
	return r
}

func TestFixtureDefects(t *testing.T) {
	type want struct {
		check string
		st    Status
	}
	cases := []struct {
		tree     string
		installs []string
		versions []string
		want     []want
	}{
		{"debian12-defects", []string{"php8.2-fpm", "php8.3-fpm"}, []string{"8.2", "8.3"}, []want{
			{"kernel.core_pattern", StatusRisky}, {"kernel.core_uses_pid", StatusRisky},
			{"systemd.limitcore", StatusBlocks}, {"fpm.rlimit_core", StatusBlocks}, {"fpm.process_dumpable", StatusBlocks},
			{"process.core_limit", StatusBlocks}, {"process.coredump_filter", StatusRisky},
			{"php.tracing_jit_pcre_jit", StatusRisky}, {"php.recursion_guard", StatusRisky}, {"php.ini_override", StatusInfo},
			{"disk.docroot", StatusBlocks},
		}},
		{"ubuntu2204-apport", []string{"php8.1-fpm"}, []string{"8.1"}, []want{
			{"apport.handler", StatusRisky}, {"apport.pending_report", StatusBlocks},
			{"php.tracing_jit_pcre_jit", StatusRisky}, {"php.jit_extension_conflict", StatusRisky}, {"php.recursion_guard", StatusRisky},
		}},
		{"ubuntu2404-apport", []string{"php8.3-fpm"}, []string{"8.3"}, []want{
			{"apport.handler", StatusRisky}, {"apport.enabled", StatusRisky}, {"apport.unpackaged", StatusBlocks},
			{"systemd.limitcore", StatusRisky}, {"php.recursion_guard", StatusRisky},
		}},
		{"rhel9-coredump", []string{"php-fpm"}, []string{"8.0.30"}, []want{
			{"coredump.storage", StatusBlocks}, {"coredump.processsizemax", StatusBlocks},
			{"systemd.limitcore", StatusBlocks}, {"fpm.rlimit_core", StatusBlocks}, {"fpm.process_dumpable", StatusBlocks},
		}},
		{"rhel9-abrt", []string{"php-fpm"}, []string{"8.1.27"}, []want{
			{"kernel.core_pattern", StatusBlocks},
		}},
	}
	for _, c := range cases {
		t.Run(c.tree, func(t *testing.T) {
			r := mustRun(t, Options{Root: filepath.Join("testdata", c.tree)})
			var names, versions []string
			for _, in := range r.Installations {
				names = append(names, in.Name)
				versions = append(versions, in.Version)
			}
			if strings.Join(names, ",") != strings.Join(c.installs, ",") || strings.Join(versions, ",") != strings.Join(c.versions, ",") {
				t.Errorf("installations %v %v, want %v %v", names, versions, c.installs, c.versions)
			}
			for _, w := range c.want {
				if !hasStatus(r, w.check, w.st) {
					t.Errorf("%s: got statuses %v, want one %s", w.check, statusOf(r, w.check), w.st)
				}
			}
			if r.CoresWritten() {
				t.Errorf("a defective tree is reported as writing cores")
			}
			for _, f := range r.Findings {
				if f.Status == StatusBlocks && len(f.Evidence) == 0 {
					t.Errorf("%s blocks without evidence", f.Check)
				}
			}
		})
	}
}

func TestFixtureClean(t *testing.T) {
	for _, tree := range []string{"debian12-clean", "rhel9-clean"} {
		t.Run(tree, func(t *testing.T) {
			r := mustRun(t, Options{Root: filepath.Join("testdata", tree)})
			if len(r.Installations) != 1 {
				t.Fatalf("installations: %d", len(r.Installations))
			}
			if p := problems(r); len(p) > 0 {
				t.Errorf("clean tree has problems:\n%s", strings.Join(p, "\n"))
			}
			if !r.CoresWritten() {
				t.Errorf("clean tree: cores not written")
			}
			if len(r.Warnings) > 0 {
				t.Errorf("warnings: %v", r.Warnings)
			}
		})
	}
}

func TestEvidenceLines(t *testing.T) {
	r := mustRun(t, Options{Root: "testdata/debian12-defects"})
	in := r.Installations[0]
	// Debian's conf.d/10-opcache.ini (a symlink into mods-available) beats php.ini.
	jit := in.INI["opcache.jit"]
	if jit.Evidence == nil || jit.Evidence.File != "/etc/php/8.2/fpm/conf.d/10-opcache.ini" || jit.Evidence.Line != 4 {
		t.Errorf("opcache.jit evidence %+v", jit.Evidence)
	}
	if in.JIT.Active || in.JIT.Mode != "disable" {
		t.Errorf("JIT %+v, want disable (unquoted off reads as empty)", in.JIT)
	}
	buf := in.INI["opcache.jit_buffer_size"]
	if buf.Value != "64M" || buf.Evidence.File != "/etc/php/8.2/fpm/php.ini" || buf.Evidence.Line != 14 {
		t.Errorf("jit_buffer_size %+v %+v", buf, buf.Evidence)
	}
	p := in.Pools[0]
	if p.Name != "www" || p.User.Value != "www-data" || p.User.Evidence.Line != 5 || p.LastLine != 13 {
		t.Errorf("pool %+v", p)
	}
	// $pool expansion
	if v := p.INI["error_log"].Value; v != "/var/log/fpm-www.log" {
		t.Errorf("$pool not expanded: %q", v)
	}
	in83 := r.Installations[1]
	if !in83.JIT.Active || !in83.JIT.Tracing {
		t.Errorf("8.3 JIT %+v, want active tracing", in83.JIT)
	}
	if v := in83.Pools[0].Effective["memory_limit"]; v.Value != "512M" {
		t.Errorf("pool php_admin_value not applied: %+v", v)
	}
}

func TestHostileInput(t *testing.T) {
	r := mustRun(t, Options{Root: "testdata/hostile"})
	all := strings.Join(r.Warnings, "\n")
	for _, w := range []string{
		"include loop", "matches no file", "is a directory", "dangling.conf does not exist",
		"unterminated double quote", "line without '='", "bad section header", "${UNSET_VAR}", "empty key",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("no warning mentioning %q in:\n%s", w, all)
		}
	}
	if !hasStatus(r, "systemd.limitcore", StatusRisky) {
		t.Errorf("broken LimitCORE not reported: %v", statusOf(r, "systemd.limitcore"))
	}
	if !hasStatus(r, "fpm.rlimit_core_value", StatusRisky) {
		t.Errorf("rlimit_core = lots not reported")
	}
	var buf bytes.Buffer
	if err := r.WriteText(&buf, true); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	// An explicit config that does not exist is an error, not a panic.
	if _, err := Run(Options{Root: "testdata/hostile", FPMConfig: "/etc/nope.conf"}); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing --fpm-config: err = %v", err)
	}
	if _, err := Run(Options{Root: "testdata/does-not-exist"}); err == nil {
		t.Errorf("missing root: no error")
	}
}

func TestUnreadableFile(t *testing.T) {
	if os.Geteuid() == 0 {
		// Root reads mode-000 files; drop to nobody for this check.
		if _, err := exec.LookPath("setpriv"); err != nil {
			t.Skip("needs setpriv to drop root")
		}
	}
	root := copyTree(t, "testdata/debian12-clean")
	pool := filepath.Join(root, "etc/php/8.2/fpm/pool.d/www.conf")
	if err := os.Chmod(pool, 0); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		r := mustRun(t, Options{Root: root})
		if !strings.Contains(strings.Join(r.Warnings, "\n"), "not readable") {
			t.Errorf("warnings: %v", r.Warnings)
		}
		return
	}
	// As root: run the real CLI code path as an unprivileged user.
	for _, d := range []string{filepath.Dir(filepath.Dir(root)), filepath.Dir(root)} {
		_ = os.Chmod(d, 0o755)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "-test.run=^TestUnreadableHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "CORONER_UNREADABLE_ROOT="+root)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "--- PASS: TestUnreadableHelper") {
		t.Fatalf("helper did not run:\n%s", out)
	}
}

// TestUnreadableHelper runs as an unprivileged user under TestUnreadableFile.
func TestUnreadableHelper(t *testing.T) {
	root := os.Getenv("CORONER_UNREADABLE_ROOT")
	if root == "" {
		t.Skip("helper for TestUnreadableFile")
	}
	r := mustRun(t, Options{Root: root})
	all := strings.Join(r.Warnings, "\n")
	if !strings.Contains(all, "www.conf is not readable (permission denied") {
		t.Errorf("warnings: %s", all)
	}
}

func TestFixApplyAuditRollback(t *testing.T) {
	for _, tree := range []string{"debian12-defects", "ubuntu2204-apport", "ubuntu2404-apport", "rhel9-coredump", "rhel9-abrt"} {
		t.Run(tree, func(t *testing.T) {
			root := copyTree(t, filepath.Join("testdata", tree))
			before := snapshot(t, root)
			r := mustRun(t, Options{Root: root})
			plan, err := PlanFix(r, FixOptions{Capture: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(plan.Changes) == 0 {
				t.Fatal("no changes planned for a defective tree")
			}
			var diff bytes.Buffer
			if err := plan.WriteDiff(&diff); err != nil {
				t.Fatal(err)
			}
			manifest, err := plan.Apply(r)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if _, err := os.Stat(manifest); err != nil {
				t.Fatalf("manifest: %v", err)
			}
			after := mustRun(t, Options{Root: root})
			for _, f := range after.Findings {
				if f.Status == StatusBlocks {
					t.Errorf("after fix still blocks: %s %s: %s", f.Check, f.Target, f.Message)
				}
			}
			if !after.CoresWritten() {
				t.Errorf("after fix: cores not written")
			}
			// A second plan on the fixed tree has nothing left to do.
			plan2, err := PlanFix(after, FixOptions{Capture: true})
			if err != nil {
				t.Fatal(err)
			}
			if len(plan2.Changes) != 0 {
				var b bytes.Buffer
				_ = plan2.WriteDiff(&b)
				t.Errorf("fix is not idempotent:\n%s", b.String())
			}
			res, err := Rollback(root, "", false)
			if err != nil {
				t.Fatalf("rollback: %v", err)
			}
			if len(res.Skipped) > 0 {
				t.Errorf("skipped: %v", res.Skipped)
			}
			got := snapshot(t, root)
			for k, v := range before {
				if got[k] != v {
					t.Errorf("%s not restored: %q != %q", k, got[k], v)
				}
			}
			var extra []string
			for k := range got {
				if _, ok := before[k]; !ok && !strings.HasPrefix(k, "var/lib/coroner") && k != "var" && k != "var/lib" {
					extra = append(extra, k)
				}
			}
			sort.Strings(extra)
			if len(extra) > 0 {
				t.Errorf("left behind after rollback: %v", extra)
			}
			if _, err := Rollback(root, "", false); err == nil {
				t.Errorf("second rollback found something to undo")
			}
		})
	}
}

// TestDiffAppliesWithPatch checks the printed diff against patch(1).
func TestDiffAppliesWithPatch(t *testing.T) {
	if _, err := exec.LookPath("patch"); err != nil {
		t.Skip("patch not installed")
	}
	root := copyTree(t, "testdata/debian12-defects")
	r := mustRun(t, Options{Root: root})
	plan, err := PlanFix(r, FixOptions{Capture: true, Mitigate: crash.MitigateFunctionJIT})
	if err != nil {
		t.Fatal(err)
	}
	var diff bytes.Buffer
	for _, c := range plan.Changes {
		if c.Dir || !c.Existed {
			continue
		}
		a := splitLines(c.Old)
		if err := unifiedDiff(&diff, "a"+c.Path, "b"+c.Path, a, splitLines(c.New)); err != nil {
			t.Fatal(err)
		}
	}
	if diff.Len() == 0 {
		t.Fatal("no diff of an existing file")
	}
	cmd := exec.Command("patch", "-p1", "-s", "-d", root)
	cmd.Stdin = &diff
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("patch: %v\n%s\n%s", err, out, diff.String())
	}
	for _, c := range plan.Changes {
		if c.Dir || !c.Existed {
			continue
		}
		got, _ := os.ReadFile(filepath.Join(root, c.Path))
		if strings.TrimSuffix(string(got), "\n") != strings.TrimSuffix(string(c.New), "\n") {
			t.Errorf("%s after patch:\n%s\nwant:\n%s", c.Path, got, c.New)
		}
	}
}

func TestMitigate(t *testing.T) {
	root := copyTree(t, "testdata/debian12-defects")
	r := mustRun(t, Options{Root: root})
	if !hasStatus(r, "php.tracing_jit_pcre_jit", StatusRisky) {
		t.Fatal("precondition: tracing+PCRE JIT risk not reported")
	}
	for _, prof := range []crash.Mitigation{crash.MitigateFunctionJIT, crash.MitigateNoPCREJIT, crash.MitigateNoJIT} {
		r := mustRun(t, Options{Root: root})
		plan, err := PlanFix(r, FixOptions{Mitigate: prof})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := plan.Apply(r); err != nil {
			t.Fatal(err)
		}
		after := mustRun(t, Options{Root: root})
		in := after.Installations[1]
		if in.INIFiles[len(in.INIFiles)-1] != "/etc/php/8.3/fpm/conf.d/99-coroner-mitigation.ini" {
			t.Errorf("%s: mitigation file not read last: %v", prof, in.INIFiles)
		}
		switch prof {
		case crash.MitigateFunctionJIT:
			if in.JIT.Mode != "function" || !in.JIT.Active {
				t.Errorf("function-jit: JIT %+v", in.JIT)
			}
		case crash.MitigateNoPCREJIT:
			if iniBool(in.INI["pcre.jit"].Value) {
				t.Errorf("no-pcre-jit: pcre.jit=%q", in.INI["pcre.jit"].Value)
			}
		case crash.MitigateNoJIT:
			if in.JIT.Active {
				t.Errorf("no-jit: JIT still active %+v", in.JIT)
			}
		}
		if hasStatus(after, "php.tracing_jit_pcre_jit", StatusRisky) {
			t.Errorf("%s: risk still reported", prof)
		}
		if _, err := Rollback(root, "", false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := PlanFix(r, FixOptions{Mitigate: "fast"}); err == nil {
		t.Errorf("unknown profile accepted")
	}
}

func TestRefuseSymlinkOut(t *testing.T) {
	t.Run("pool file links out of the FPM directories", func(t *testing.T) {
		root := copyTree(t, "testdata/debian12-defects")
		pool := filepath.Join(root, "etc/php/8.2/fpm/pool.d/www.conf")
		b, _ := os.ReadFile(pool)
		srv := filepath.Join(root, "srv/www.conf")
		if err := os.MkdirAll(filepath.Dir(srv), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(srv, b, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(pool); err != nil {
			t.Fatal(err)
		}
		// ".." beyond the root stays at the root, as in a chroot
		if err := os.Symlink("../../../../../../../../../srv/www.conf", pool); err != nil {
			t.Fatal(err)
		}
		refused(t, root, func() {
			if got, _ := os.ReadFile(srv); !bytes.Equal(got, b) {
				t.Errorf("file outside the expected directories was changed")
			}
		})
	})
	t.Run("sysctl.d is an absolute symlink", func(t *testing.T) {
		root := copyTree(t, "testdata/debian12-defects")
		evil := "/tmp/coroner-test-evil-" + filepath.Base(filepath.Dir(root))
		if err := os.Symlink(evil, filepath.Join(root, "etc/sysctl.d")); err != nil {
			t.Fatal(err)
		}
		refused(t, root, func() {
			if _, err := os.Lstat(evil); err == nil {
				os.RemoveAll(evil)
				t.Errorf("apply wrote outside the root: %s", evil)
			}
		})
	})
}

// refused checks that fix --capture --apply on root fails without changing
// the tree, then runs check.
func refused(t *testing.T, root string, check func()) {
	t.Helper()
	before := snapshot(t, root)
	r := mustRun(t, Options{Root: root})
	plan, err := PlanFix(r, FixOptions{Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.Apply(r); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("apply through a symlink: err = %v", err)
	} else {
		t.Logf("refused: %v", err)
	}
	after := snapshot(t, root)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s changed by a refused apply", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s created by a refused apply", k)
		}
	}
	check()
}

func TestRollbackKeepsLaterEdits(t *testing.T) {
	root := copyTree(t, "testdata/rhel9-coredump")
	r := mustRun(t, Options{Root: root})
	plan, err := PlanFix(r, FixOptions{Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.Apply(r); err != nil {
		t.Fatal(err)
	}
	pool := filepath.Join(root, "etc/php-fpm.d/www.conf")
	edited := []byte("[www]\nuser = apache\n; edited by hand after the fix\n")
	if err := os.WriteFile(pool, edited, 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Rollback(root, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 1 || !strings.Contains(res.Skipped[0], "www.conf") {
		t.Errorf("skipped = %v", res.Skipped)
	}
	if got, _ := os.ReadFile(pool); !bytes.Equal(got, edited) {
		t.Errorf("hand edit overwritten")
	}
}

func TestDecodeJIT(t *testing.T) {
	for in, want := range map[string]string{
		"tracing": "tracing", "1254": "1254", "function": "function", "": "disable", "off": "off", "0": "off", "1205": "1205",
	} {
		if got := decodeJIT(in).Mode; got != want {
			t.Errorf("decodeJIT(%q).Mode = %q, want %q", in, got, want)
		}
	}
	if !decodeJIT("1254").Tracing || decodeJIT("1205").Tracing {
		t.Errorf("tracing trigger digit misread")
	}
	if d := decodeJIT("1205").Description; !strings.Contains(d, "script load") {
		t.Errorf("1205: %s", d)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"128M": 128 << 20, "64m": 64 << 20, "1G": 1 << 30, "512K": 512 << 10, "0": 0, "-1": -1, "100": 100} {
		if got, ok := parseSize(in); !ok || got != want {
			t.Errorf("parseSize(%q) = %d %v", in, got, ok)
		}
	}
	for _, bad := range []string{"", "M", "lots", "99999999999999999999G"} {
		if _, ok := parseSize(bad); ok {
			t.Errorf("parseSize(%q) accepted", bad)
		}
	}
}

// TestRootSymlinks: under --root, absolute symlinks point inside the tree,
// as they would on the audited system, never at this machine's files.
func TestRootSymlinks(t *testing.T) {
	root := copyTree(t, "testdata/debian12-clean")
	fpm := filepath.Join(root, "etc/php/8.2/fpm")
	// pool.d moved to /srv/pools, linked absolutely
	if err := os.Rename(filepath.Join(fpm, "pool.d"), filepath.Join(root, "srv-pools")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/srv-pools", filepath.Join(fpm, "pool.d")); err != nil {
		t.Fatal(err)
	}
	// an ini linked absolutely to a file that exists in the tree and,
	// with other content, on this machine (/etc/hostname)
	if err := os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("memory_limit = 77M\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/hostname", filepath.Join(fpm, "conf.d/90-abs.ini")); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, Options{Root: root})
	in := r.Installations[0]
	if len(in.Pools) != 1 || in.Pools[0].File != "/etc/php/8.2/fpm/pool.d/www.conf" {
		t.Fatalf("pools through an absolute symlink: %+v (warnings %v)", in.Pools, r.Warnings)
	}
	if v := in.INI["memory_limit"]; v.Value != "77M" {
		t.Errorf("memory_limit = %q from %+v, want 77M from the tree's /etc/hostname", v.Value, v.Evidence)
	}
	if p := problems(r); len(p) > 0 {
		t.Errorf("problems: %v", p)
	}
}
