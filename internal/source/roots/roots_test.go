package roots

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func write(t testing.TB, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t testing.TB, path string) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
}

const dockerID = "3f2a9c1b0d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4"

// layout makes the state directories of each runtime below h, the way
// the runtimes write them, and returns the root directory of each.
func layout(t testing.TB, h string) map[string]string {
	dirs := map[string]string{}
	// Docker with overlay2: the container's config, its layer's mount id,
	// the merged directory (mounted while it runs).
	write(t, h+"/var/lib/docker/containers/"+dockerID+"/config.v2.json",
		`{"ID":"`+dockerID+`","Name":"/shop-fpm","Driver":"overlay2","Config":{"Image":"php:8.4-fpm"},"State":{"Running":true,"Pid":0}}`)
	write(t, h+"/var/lib/docker/image/overlay2/layerdb/mounts/"+dockerID+"/mount-id", "9d1c0ffee\n")
	dirs["docker"] = h + "/var/lib/docker/overlay2/9d1c0ffee/merged"
	mkdir(t, dirs["docker"])
	// A stopped container whose layer is not mounted: no root.
	write(t, h+"/var/lib/docker/containers/aaaa/config.v2.json", `{"ID":"aaaa","Name":"/stopped","Driver":"overlay2"}`)
	// containerd's CRI: a pod's container and its pause container.
	task := h + "/run/containerd/io.containerd.runtime.v2.task/k8s.io/"
	write(t, task+"c0ffee01/config.json", `{"annotations":{"io.kubernetes.cri.container-type":"container","io.kubernetes.cri.container-name":"php-fpm","io.kubernetes.cri.sandbox-name":"shop-7d9f","io.kubernetes.cri.sandbox-namespace":"prod","io.kubernetes.cri.image-name":"registry.example/shop:1.2"}}`)
	dirs["containerd"] = task + "c0ffee01/rootfs"
	mkdir(t, dirs["containerd"])
	write(t, task+"pause01/config.json", `{"annotations":{"io.kubernetes.cri.container-type":"sandbox"}}`)
	mkdir(t, task+"pause01/rootfs")
	// Podman.
	write(t, h+"/var/lib/containers/storage/overlay-containers/containers.json",
		`[{"id":"beef02","names":["blog"],"image":"img","layer":"l4y3r","metadata":"{\"image-name\":\"docker.io/library/php:8.3-fpm\",\"name\":\"blog\"}"}]`)
	dirs["podman"] = h + "/var/lib/containers/storage/overlay/l4y3r/merged"
	mkdir(t, dirs["podman"])
	// LXC and systemd-nspawn.
	dirs["lxc"] = h + "/var/lib/lxc/web1/rootfs"
	mkdir(t, dirs["lxc"])
	dirs["nspawn"] = h + "/var/lib/machines/legacy"
	mkdir(t, dirs["nspawn"])
	return dirs
}

func TestDiscover(t *testing.T) {
	h := t.TempDir()
	dirs := layout(t, h)
	got := Discover(Options{Host: h, NoProcesses: true})
	byRuntime := map[string]Root{}
	for _, r := range got {
		if _, dup := byRuntime[r.Runtime]; dup {
			t.Errorf("two roots of %s: %v", r.Runtime, got)
		}
		byRuntime[r.Runtime] = r
	}
	want := map[string]Root{
		"docker":     {Dir: dirs["docker"], Runtime: "docker", Name: "shop-fpm", ID: dockerID, Image: "php:8.4-fpm"},
		"containerd": {Dir: dirs["containerd"], Runtime: "containerd", Name: "php-fpm", ID: "c0ffee01", Pod: "shop-7d9f", Namespace: "prod", Image: "registry.example/shop:1.2"},
		"podman":     {Dir: dirs["podman"], Runtime: "podman", Name: "blog", ID: "beef02", Image: "docker.io/library/php:8.3-fpm"},
		"lxc":        {Dir: dirs["lxc"], Runtime: "lxc", Name: "web1"},
		"nspawn":     {Dir: dirs["nspawn"], Runtime: "nspawn", Name: "legacy"},
	}
	for k, w := range want {
		if byRuntime[k] != w {
			t.Errorf("%s:\n got %+v\nwant %+v", k, byRuntime[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d roots, want %d: %+v", len(got), len(want), got)
	}
	if r, ok := Match(got, "shop-fpm"); !ok || r.Runtime != "docker" {
		t.Errorf("Match by name: %+v %v", r, ok)
	}
	if r, ok := Match(got, dockerID[:6]); !ok || r.Runtime != "docker" {
		t.Errorf("Match by id prefix: %+v %v", r, ok)
	}
	if _, ok := Match(got, "nothing"); ok {
		t.Error("Match of an unknown name succeeded")
	}
	mkdir(t, h+"/var/lib/docker/overlay2/9d1c0ffee/diff")
	mkdir(t, h+"/var/lib/containers/storage/overlay/l4y3r/diff")
	var layers []string
	for _, r := range Discover(Options{Host: h, NoProcesses: true, Layers: true}) {
		if strings.HasSuffix(r.Runtime, "-layer") {
			layers = append(layers, r.Runtime+" "+r.Dir)
		}
	}
	if strings.Join(layers, "\n") != "docker-layer "+h+"/var/lib/docker/overlay2/9d1c0ffee/diff\npodman-layer "+h+"/var/lib/containers/storage/overlay/l4y3r/diff" {
		t.Errorf("layers: %v", layers)
	}
	s := byRuntime["containerd"].String()
	for _, part := range []string{"containerd container php-fpm", "pod prod/shop-7d9f", "image registry.example/shop:1.2"} {
		if !strings.Contains(s, part) {
			t.Errorf("String() = %q lacks %q", s, part)
		}
	}
}

// TestProcessRoots finds the root of a running process that is not this
// host's: this test's own root is "/", so only processes in chroots or
// containers are listed, none of them "/".
func TestProcessRoots(t *testing.T) {
	for _, r := range Discover(Options{}) {
		if r.Runtime != "process" {
			continue
		}
		st, err := os.Stat(r.Dir)
		if err != nil {
			continue // the process ended meanwhile
		}
		self, _ := os.Stat("/")
		if os.SameFile(st, self) {
			t.Errorf("the host's root listed as a process root: %+v", r)
		}
	}
}

func TestCgroupContainerID(t *testing.T) {
	for in, want := range map[string]string{
		"0::/system.slice/docker-" + dockerID + ".scope\n":                                                      dockerID,
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-pod1.slice/cri-containerd-" + dockerID + ".scope": dockerID,
		"12:memory:/docker/" + dockerID + "\n":                                                                  dockerID,
		"0::/user.slice/user-0.slice/session-1.scope\n":                                                         "",
	} {
		if got := cgroupContainerID([]byte(in)); got != want {
			t.Errorf("cgroupContainerID(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAncestors(t *testing.T) {
	base := t.TempDir()
	core := filepath.Join(base, "srv/chroot/php/var/crash/core.1")
	mkdir(t, filepath.Dir(core))
	var dirs []string
	for _, r := range Ancestors(core) {
		if strings.HasPrefix(r.Dir, base) {
			dirs = append(dirs, strings.TrimPrefix(r.Dir, base))
		}
	}
	if strings.Join(dirs, " ") != "/srv/chroot/php/var/crash /srv/chroot/php/var /srv/chroot/php /srv/chroot /srv " {
		t.Errorf("Ancestors: %q", dirs)
	}
	if os.Geteuid() == 0 {
		// A directory of another user is no root coroner trusts.
		if err := os.Chown(filepath.Join(base, "srv/chroot/php"), 65534, 65534); err != nil {
			t.Fatal(err)
		}
		for _, r := range Ancestors(core) {
			if r.Dir == filepath.Join(base, "srv/chroot/php") {
				t.Errorf("a directory of user 65534 is listed: %+v", r)
			}
		}
	}
}

// FuzzStateFiles feeds arbitrary runtime state files to Discover: it
// never panics and lists only directories that exist.
func FuzzStateFiles(f *testing.F) {
	f.Add([]byte(`{"ID":"x","Name":"/a","Driver":"overlay2","Config":{"Image":"i"}}`), []byte(`[{"id":"b","layer":"l"}]`), []byte(`{"annotations":{}}`), []byte("9d1c0ffee"))
	f.Add([]byte(`{"Driver":"../../../../etc"}`), []byte(`[{"layer":"../../x"}]`), []byte(`null`), []byte("../../.."))
	f.Fuzz(func(t *testing.T, dockerCfg, podmanCfg, ociCfg, mountID []byte) {
		h := t.TempDir()
		write(t, h+"/var/lib/docker/containers/x/config.v2.json", string(dockerCfg))
		write(t, h+"/var/lib/docker/image/overlay2/layerdb/mounts/x/mount-id", string(mountID))
		write(t, h+"/var/lib/containers/storage/overlay-containers/containers.json", string(podmanCfg))
		write(t, h+"/run/containerd/io.containerd.runtime.v2.task/k8s.io/c/config.json", string(ociCfg))
		mkdir(t, h+"/run/containerd/io.containerd.runtime.v2.task/k8s.io/c/rootfs")
		for _, r := range Discover(Options{Host: h, NoProcesses: true}) {
			if !isDir(r.Dir) {
				t.Errorf("listed a root that is not a directory: %+v", r)
			}
		}
	})
}

// TestMain makes the test binary (static: CGO_ENABLED=0) a process that
// waits, when run as the chrooted process of TestChrootedProcess.
func TestMain(m *testing.M) {
	if os.Getenv("CORONER_ROOTS_WAIT") != "" {
		time.Sleep(10 * time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestChrootedProcess runs a process in a chroot and finds its root among
// the roots of running processes, named by its directory.
func TestChrootedProcess(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chroot needs root")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "waiter"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/waiter")
	cmd.Env = []string{"CORONER_ROOTS_WAIT=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: dir}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start a chrooted process: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	want, _ := os.Stat(dir)
	for range 100 {
		for _, r := range Discover(Options{}) {
			st, err := os.Stat(r.Dir)
			if r.Runtime == "process" && err == nil && os.SameFile(st, want) {
				if r.Dir != dir || !strings.Contains(r.Name, "pid "+strconv.Itoa(cmd.Process.Pid)) {
					t.Errorf("the chroot found as %+v, want its directory %s and pid %d", r, dir, cmd.Process.Pid)
				}
				return
			}
		}
		time.Sleep(50 * time.Millisecond) // until the child has chrooted
	}
	t.Fatalf("the root of chrooted process %d is not among %+v", cmd.Process.Pid, Discover(Options{}))
}
