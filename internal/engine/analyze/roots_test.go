package analyze

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/diagnose"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
	"github.com/coroner-dev/coroner/internal/source/roots"
)

// sameAnalysis fails unless got is the analysis of want: the crashed
// thread's frames, the fault and the PHP stack.
func sameAnalysis(t *testing.T, how string, got, want *crash.Report) {
	t.Helper()
	wf, gf := want.CrashedThread().Frames, got.CrashedThread().Frames
	if len(wf) != len(gf) {
		t.Errorf("%s: %d frames, with --sysroot %d", how, len(gf), len(wf))
	}
	for i := range min(len(wf), len(gf)) {
		if wf[i].PC != gf[i].PC || wf[i].Function != gf[i].Function || wf[i].Module != gf[i].Module {
			t.Errorf("%s: frame #%d %s %s in %s, with --sysroot %s %s in %s", how, i, gf[i].PC, gf[i].Function, gf[i].Module, wf[i].PC, wf[i].Function, wf[i].Module)
		}
	}
	if got.Fault.Kind != want.Fault.Kind || got.Fault.Instruction != want.Fault.Instruction {
		t.Errorf("%s: fault %s %q, with --sysroot %s %q", how, got.Fault.Kind, got.Fault.Instruction, want.Fault.Kind, want.Fault.Instruction)
	}
	if (got.PHP == nil) != (want.PHP == nil) {
		t.Fatalf("%s: PHP %v, with --sysroot %v", how, got.PHP != nil, want.PHP != nil)
	}
	if want.PHP != nil && fmt.Sprint(phpNames(got)) != fmt.Sprint(phpNames(want)) {
		t.Errorf("%s: PHP stack %v, with --sysroot %v", how, phpNames(got), phpNames(want))
	}
}

func phpNames(r *crash.Report) []string {
	var out []string
	for _, f := range r.PHP.Frames {
		out = append(out, f.Class+f.CallType+f.Function)
	}
	return out
}

// mountOverlay mounts the root the way container runtimes do: an overlay
// with root as its lower directory, at merged.
func mountOverlay(t *testing.T, lower, dir, merged string) {
	t.Helper()
	upper, work := filepath.Join(dir, "diff"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	opts := "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
	if err := syscall.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		t.Skipf("cannot mount an overlay here (%v): the container layouts are not tested", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(merged, 0); err != nil {
			t.Errorf("unmount %s: %v", merged, err)
		}
	})
}

// TestOtherRoot analyses the core of a php-fpm that ran in a Debian trixie
// chroot (the multi-release lab) on this host, whose files are other
// builds: without its root the report is partial and says so, without a
// guessed frame nor a stale-libraries verdict; with its root given or
// found (a chroot, an overlay mounted like Docker's or Kubernetes', the
// directory holding the core) it is the analysis made with --sysroot.
func TestOtherRoot(t *testing.T) {
	l := labtest.Release(t, "trixie")
	s := l.Scenarios["method-closure-include"]
	if s == nil || l.Sysroot == "" {
		t.Fatalf("the trixie lab has no method-closure-include core in a chroot: %+v", l)
	}
	want, err := Core(s.Core, Options{Sysroot: l.Sysroot})
	if err != nil {
		t.Fatal(err)
	}
	if want.PHP == nil || len(want.CrashedThread().Frames) < 5 {
		t.Fatalf("the reference analysis (--sysroot) is poor: %d frames, PHP %v", len(want.CrashedThread().Frames), want.PHP != nil)
	}

	t.Run("not found", func(t *testing.T) {
		bare, err := Core(s.Core, Options{NoAutoRoot: true})
		if err != nil {
			t.Fatal(err)
		}
		if bare.Root == nil || !slices.Contains(bare.Root.Unresolved, l.PHPFPMInSysroot) || !slices.Contains(bare.Root.Unresolved, "/usr/lib/x86_64-linux-gnu/libc.so.6") {
			t.Fatalf("unresolved objects: %+v", bare.Root)
		}
		unresolved := map[string]bool{}
		for _, p := range bare.Root.Unresolved {
			unresolved[filepath.Base(p)] = true
		}
		for _, m := range bare.Modules {
			if m.Mismatch {
				t.Errorf("%s flagged as replaced by an upgrade: the process ran in another root", m.Path)
			}
		}
		for _, f := range bare.CrashedThread().Frames {
			if unresolved[f.Module] && f.Function != "" {
				t.Errorf("frame named from a file of another build: %+v", f)
			}
		}
		if bare.Fault.Instruction != "" {
			t.Errorf("faulting instruction decoded from another build of libc: %q", bare.Fault.Instruction)
		}
		if !hasWarning(bare, "the report is partial") || !hasWarning(bare, "--sysroot") {
			t.Errorf("no warning says the report is partial and how to complete it: %v", bare.Warnings)
		}
		kb, err := diagnose.Load()
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range kb.Diagnose(bare, diagnose.Evidence{}) {
			if strings.HasPrefix(d.Rule, "stale-libraries") {
				t.Errorf("another root diagnosed as %s", d.Rule)
			}
			if d.Confidence != crash.ConfidenceLow {
				t.Errorf("a partial analysis diagnosed with %s confidence: %s", d.Confidence, d.Rule)
			}
		}
	})

	t.Run("roots", func(t *testing.T) {
		others := filepath.Join(filepath.Dir(l.Sysroot), "bullseye")
		got, err := Core(s.Core, Options{Roots: []string{others, l.Sysroot}, NoAutoRoot: true})
		if err != nil {
			t.Fatal(err)
		}
		sameAnalysis(t, "--roots", got, want)
		if got.Root == nil || got.Root.Dir != l.Sysroot || got.Root.Runtime != "given" || len(got.Root.Unresolved) != 0 {
			t.Errorf("root: %+v", got.Root)
		}
	})

	// The runtimes' layouts, below a directory standing for the host.
	host := t.TempDir()
	defer func(o roots.Options) { discoverOptions = o }(discoverOptions)
	discoverOptions = roots.Options{Host: host, NoProcesses: true}
	const id = "5e1f0a7c9b3d2e4f6a8b0c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d0e1f"
	writeFile(t, host+"/var/lib/docker/containers/"+id+"/config.v2.json",
		`{"ID":"`+id+`","Name":"/shop-fpm","Driver":"overlay2","Config":{"Image":"php:8.4-fpm-trixie"},"State":{"Running":true}}`)
	writeFile(t, host+"/var/lib/docker/image/overlay2/layerdb/mounts/"+id+"/mount-id", "7a6b5c4d")
	dockerRoot := host + "/var/lib/docker/overlay2/7a6b5c4d/merged"
	mountOverlay(t, l.Sysroot, filepath.Dir(dockerRoot), dockerRoot)

	t.Run("docker", func(t *testing.T) {
		got, err := Core(s.Core, Options{})
		if err != nil {
			t.Fatal(err)
		}
		sameAnalysis(t, "docker", got, want)
		r := got.Root
		if r == nil || r.Runtime != "docker" || r.Name != "shop-fpm" || r.ID != id || r.Image != "php:8.4-fpm-trixie" || r.Dir != dockerRoot {
			t.Errorf("root: %+v", r)
		}
	})

	task := host + "/run/containerd/io.containerd.runtime.v2.task/k8s.io/c0ffee"
	writeFile(t, task+"/config.json", `{"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"php-fpm","io.kubernetes.cri.sandbox-name":"shop-5d8c","io.kubernetes.cri.sandbox-namespace":"prod","io.kubernetes.cri.image-name":"registry.example/shop:8.4"}}`)
	mountOverlay(t, l.Sysroot, host+"/var/lib/containerd/snapshots/1", task+"/rootfs")

	t.Run("kubernetes --container", func(t *testing.T) {
		got, err := Core(s.Core, Options{Container: "php-fpm"})
		if err != nil {
			t.Fatal(err)
		}
		sameAnalysis(t, "kubernetes", got, want)
		r := got.Root
		if r == nil || r.Runtime != "containerd" || r.Pod != "shop-5d8c" || r.Namespace != "prod" || r.Image != "registry.example/shop:8.4" {
			t.Errorf("root: %+v", r)
		}
	})

	t.Run("image layers", func(t *testing.T) {
		// The container is gone; its image's layers are unpacked: the
		// executable in one, the libraries in another.
		h := t.TempDir()
		discoverOptions = roots.Options{Host: h, NoProcesses: true, Layers: true}
		base, php := h+"/var/lib/docker/overlay2/b45e/diff", h+"/var/lib/docker/overlay2/9h9/diff"
		cf, err := elfcore.Open(s.Core)
		if err != nil {
			t.Fatal(err)
		}
		for _, fm := range cf.Files() {
			if st, err := os.Stat(filepath.Join(l.Sysroot, fm.Path)); !isObjectPath(fm.Path) || err != nil || !st.Mode().IsRegular() {
				continue // shared memory, /dev/zero, deleted files
			}
			dst := filepath.Join(base, fm.Path)
			if fm.Path == cf.Executable() {
				dst = filepath.Join(php, fm.Path)
			}
			if _, err := os.Stat(dst); err == nil {
				continue
			}
			if err := copyFile(filepath.Join(l.Sysroot, fm.Path), dst); err != nil {
				t.Fatal(err)
			}
		}
		cf.Close()
		got, err := Core(s.Core, Options{})
		if err != nil {
			t.Fatal(err)
		}
		sameAnalysis(t, "image layers", got, want)
		if got.Root == nil || got.Root.Runtime != "docker-layer" || got.Root.Dir != php || len(got.Root.Unresolved) != 0 {
			t.Errorf("root: %+v", got.Root)
		}
	})

	t.Run("core in its root", func(t *testing.T) {
		discoverOptions = roots.Options{Host: t.TempDir(), NoProcesses: true}
		inside := filepath.Join(dockerRoot, "var", "crash", "core.php-fpm8.4")
		if err := os.MkdirAll(filepath.Dir(inside), 0o755); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("cp", "--sparse=always", s.Core, inside).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v\n%s", err, out)
		}
		got, err := Core(inside, Options{})
		if err != nil {
			t.Fatal(err)
		}
		sameAnalysis(t, "core in its root", got, want)
		if got.Root == nil || got.Root.Runtime != "core-dir" || got.Root.Dir != dockerRoot {
			t.Errorf("root: %+v", got.Root)
		}
	})
}

// TestRootOfRunningProcess analyses the trixie chroot's core while a
// process runs in that chroot (as the master of a chrooted php-fpm does
// after one of its workers crashed): its root is found through /proc.
func TestRootOfRunningProcess(t *testing.T) {
	l := labtest.Release(t, "trixie")
	s := l.Scenarios["abort"]
	if s == nil || l.Sysroot == "" {
		t.Fatalf("the trixie lab has no abort core in a chroot: %+v", l)
	}
	want, err := Core(s.Core, Options{Sysroot: l.Sysroot})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/sleep", "600")
	cmd.Env = []string{}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: l.Sysroot}
	if err := cmd.Start(); err != nil {
		t.Skipf("cannot run a process in the chroot (%v)", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	defer func(o roots.Options) { discoverOptions = o }(discoverOptions)
	discoverOptions = roots.Options{}
	var got *crash.Report
	for range 100 { // until the child has chrooted
		if got, err = Core(s.Core, Options{}); err != nil {
			t.Fatal(err)
		}
		if got.Root == nil || len(got.Root.Unresolved) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sameAnalysis(t, "root of a running process", got, want)
	if got.Root == nil || got.Root.Runtime != "process" || got.Root.Dir != l.Sysroot {
		t.Errorf("root: %+v", got.Root)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
