// Package roots finds, on this host, the root directories that the
// processes of containers and chroots see: a core dumped by a process
// inside one names its files as that process saw them (/usr/sbin/php-fpm8.4
// of the container's image), and only that root holds them. It reads the
// state the container runtimes keep on the host (Docker, containerd and
// Kubernetes, Podman and CRI-O, LXC, LXD and Incus, systemd-nspawn), the
// roots of running processes (/proc/PID/root: any chroot or container with
// a process still running) and directories named by the user; the caller
// picks the root whose files have the build-ids the core records.
package roots

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/coroner-dev/coroner/internal/regular"
)

// Root is a directory of this host that is the root of a container, a
// chroot or a machine, with what names it.
type Root struct {
	// Dir is the root directory on this host.
	Dir string
	// Runtime is what keeps it: "docker", "containerd", "podman" (also
	// CRI-O), "lxc", "lxd", "incus", "nspawn", "process" (the root of a
	// running process), "core-dir" (a directory above the core file),
	// "given" (named by the user).
	Runtime string
	// Name, ID and Image name the container when the runtime records
	// them; Pod and Namespace the Kubernetes pod.
	Name, ID, Image, Pod, Namespace string
}

// String describes the root for people: "docker container web (3f2a9c1b0d4e,
// image php:8.4-fpm) at DIR".
func (r Root) String() string {
	var b strings.Builder
	switch r.Runtime {
	case "given":
		b.WriteString("root")
	case "core-dir":
		b.WriteString("root above the core")
	case "process":
		b.WriteString("root of a running process")
	case "docker-layer", "containerd-layer", "podman-layer":
		b.WriteString(strings.TrimSuffix(r.Runtime, "-layer") + " image layers")
	default:
		b.WriteString(r.Runtime + " container")
	}
	if r.Name != "" {
		b.WriteString(" " + r.Name)
	}
	var extra []string
	if r.ID != "" {
		extra = append(extra, shortID(r.ID))
	}
	if r.Pod != "" {
		p := "pod " + r.Pod
		if r.Namespace != "" {
			p = "pod " + r.Namespace + "/" + r.Pod
		}
		extra = append(extra, p)
	}
	if r.Image != "" {
		extra = append(extra, "image "+r.Image)
	}
	if len(extra) > 0 {
		b.WriteString(" (" + strings.Join(extra, ", ") + ")")
	}
	b.WriteString(" at " + r.Dir)
	return b.String()
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Options say where to look.
type Options struct {
	// Host is prepended to the runtimes' state directories and /proc
	// ("" is this host's "/"): a test builds a runtime's layout below a
	// temporary directory.
	Host string
	// NoProcesses leaves the roots of running processes out.
	NoProcesses bool
	// Layers adds, last, the layers of the images and containers the
	// runtimes keep unpacked (Docker's overlay2 diff directories,
	// containerd's and Podman's snapshots): each holds part of a root,
	// so a file found in one is only the process's file when its
	// build-id says so. They outlive the containers: a core of a
	// container since removed finds its files there.
	Layers bool
}

// maxRoots bounds the roots listed (a host with thousands of containers
// is searched in its first maxRoots).
const maxRoots = 4096

// maxStateFile bounds a runtime's state file read (config.v2.json,
// containers.json, an OCI config.json).
const maxStateFile = 16 << 20

// Discover lists the roots of the containers, machines and chrooted
// processes of this host, runtimes' records first (they name the
// container), then the roots of running processes not already listed.
// Missing state directories are no error: the runtime is not installed.
func Discover(opts Options) []Root {
	var out []Root
	for _, f := range []func(string) []Root{docker, containerd, podman, lxc, nspawn} {
		out = append(out, f(opts.Host)...)
	}
	if !opts.NoProcesses {
		out = append(out, processes(opts.Host, out)...)
	}
	if opts.Layers {
		out = append(out, layers(opts.Host)...)
	}
	if len(out) > maxRoots {
		out = out[:maxRoots]
	}
	return out
}

func host(h, p string) string { return regular.Within(h, p) }

func readJSON(path string, v any) error {
	b, err := regular.ReadFile(path, maxStateFile)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	return nil
}

func isDir(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

func subdirs(dir string) []string {
	es, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range es {
		if e.IsDir() {
			out = append(out, e.Name())
		}
		if len(out) >= maxRoots {
			break
		}
	}
	return out
}

// docker reads /var/lib/docker/containers/ID/config.v2.json: the root of
// a container is its overlay2 "merged" directory (mounted while it runs)
// or, with the containerd snapshotter, containerd's rootfs of the task.
func docker(h string) []Root {
	base := host(h, "/var/lib/docker")
	var out []Root
	for _, id := range subdirs(filepath.Join(base, "containers")) {
		var cfg struct {
			ID     string
			Name   string
			Driver string
			Config struct{ Image string }
			State  struct {
				Running bool
				Pid     int
			}
		}
		if readJSON(filepath.Join(base, "containers", id, "config.v2.json"), &cfg) != nil {
			continue
		}
		if cfg.ID == "" || !safeName(cfg.ID) {
			cfg.ID = id
		}
		if !safeName(cfg.Driver) {
			cfg.Driver = ""
		}
		r := Root{Runtime: "docker", Name: strings.TrimPrefix(cfg.Name, "/"), ID: cfg.ID, Image: cfg.Config.Image}
		var dirs []string
		if mid, err := regular.ReadFile(filepath.Join(base, "image", cfg.Driver, "layerdb", "mounts", cfg.ID, "mount-id"), 4096); err == nil && cfg.Driver != "" {
			if m := strings.TrimSpace(string(mid)); safeName(m) {
				dirs = append(dirs, filepath.Join(base, cfg.Driver, m, "merged"))
			}
		}
		dirs = append(dirs, host(h, "/run/containerd/io.containerd.runtime.v2.task/moby/"+cfg.ID+"/rootfs"))
		if cfg.State.Running && cfg.State.Pid > 0 {
			dirs = append(dirs, host(h, "/proc/"+strconv.Itoa(cfg.State.Pid)+"/root"))
		}
		for _, d := range dirs {
			if isDir(d) {
				r.Dir = d
				out = append(out, r)
				break
			}
		}
	}
	return out
}

// ociAnnotations is the part of an OCI runtime spec (config.json) that
// names a Kubernetes container.
type ociSpec struct {
	Annotations map[string]string `json:"annotations"`
}

// containerd reads the task directories of containerd (and k3s's): each
// running container has its rootfs mounted there and its OCI spec beside
// it, whose annotations name the Kubernetes pod (the CRI plugin's).
func containerd(h string) []Root {
	var out []Root
	for _, base := range []string{"/run/containerd/io.containerd.runtime.v2.task", "/run/k3s/containerd/io.containerd.runtime.v2.task"} {
		base = host(h, base)
		for _, ns := range subdirs(base) {
			if ns == "moby" {
				continue // Docker's, listed with their names by docker()
			}
			for _, id := range subdirs(filepath.Join(base, ns)) {
				dir := filepath.Join(base, ns, id, "rootfs")
				if !isDir(dir) {
					continue
				}
				r := Root{Dir: dir, Runtime: "containerd", ID: id, Namespace: ns}
				var spec ociSpec
				if readJSON(filepath.Join(base, ns, id, "config.json"), &spec) == nil {
					a := spec.Annotations
					if a["io.kubernetes.cri.container-type"] == "sandbox" {
						continue // the pause container of a pod
					}
					r.Name = a["io.kubernetes.cri.container-name"]
					r.Pod = a["io.kubernetes.cri.sandbox-name"]
					if n := a["io.kubernetes.cri.sandbox-namespace"]; n != "" {
						r.Namespace = n
					}
					r.Image = a["io.kubernetes.cri.image-name"]
				}
				out = append(out, r)
			}
		}
	}
	return out
}

// podman reads containers/storage (Podman, Buildah and CRI-O):
// overlay-containers/containers.json lists the containers and the layer
// whose "merged" directory is their root while they run.
func podman(h string) []Root {
	var out []Root
	bases := []string{host(h, "/var/lib/containers/storage"), host(h, "/run/containers/storage"), host(h, "/root/.local/share/containers/storage")}
	homes, _ := filepath.Glob(host(h, "/home/*/.local/share/containers/storage")) // rootless Podman
	for _, base := range append(bases, homes...) {
		var cs []struct {
			ID       string   `json:"id"`
			Names    []string `json:"names"`
			Image    string   `json:"image"`
			Layer    string   `json:"layer"`
			Metadata string   `json:"metadata"`
		}
		if readJSON(filepath.Join(base, "overlay-containers", "containers.json"), &cs) != nil {
			continue
		}
		for _, c := range cs {
			if !safeName(c.Layer) {
				continue
			}
			dir := filepath.Join(base, "overlay", c.Layer, "merged")
			if !isDir(dir) {
				continue
			}
			r := Root{Dir: dir, Runtime: "podman", ID: c.ID, Image: c.Image}
			if len(c.Names) > 0 {
				r.Name = c.Names[0]
			}
			var md struct {
				ImageName string `json:"image-name"`
				Name      string `json:"name"`
				PodName   string `json:"pod-name"`
			}
			if c.Metadata != "" && json.Unmarshal([]byte(c.Metadata), &md) == nil {
				if md.ImageName != "" {
					r.Image = md.ImageName
				}
				if r.Name == "" {
					r.Name = md.Name
				}
				r.Pod = md.PodName
			}
			out = append(out, r)
		}
	}
	return out
}

// layerDirs are where the runtimes keep image and container layers
// unpacked, by runtime.
var layerDirs = []struct{ runtime, glob string }{
	{"docker", "/var/lib/docker/overlay2/*/diff"},
	{"containerd", "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs"},
	{"containerd", "/var/lib/rancher/k3s/agent/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs"},
	{"podman", "/var/lib/containers/storage/overlay/*/diff"},
}

// layers lists the unpacked layers of images and containers, newest
// first (a rebuilt image's layers before the old ones).
func layers(h string) []Root {
	var out []Root
	for _, l := range layerDirs {
		ms, _ := filepath.Glob(host(h, l.glob))
		type dated struct {
			dir string
			mt  int64
		}
		var ds []dated
		for _, m := range ms {
			if st, err := os.Stat(m); err == nil && st.IsDir() {
				ds = append(ds, dated{m, st.ModTime().UnixNano()})
			}
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i].mt > ds[j].mt })
		for _, d := range ds {
			out = append(out, Root{Dir: d.dir, Runtime: l.runtime + "-layer", ID: filepath.Base(filepath.Dir(d.dir))})
		}
	}
	return out
}

// lxc lists the rootfs directories of LXC, LXD and Incus containers.
func lxc(h string) []Root {
	var out []Root
	add := func(runtime, dir string) {
		for _, name := range subdirs(host(h, dir)) {
			if d := filepath.Join(host(h, dir), name, "rootfs"); isDir(d) {
				out = append(out, Root{Dir: d, Runtime: runtime, Name: name})
			}
		}
	}
	add("lxc", "/var/lib/lxc")
	add("lxd", "/var/lib/lxd/containers")
	add("lxd", "/var/snap/lxd/common/lxd/containers")
	add("incus", "/var/lib/incus/containers")
	for _, runtime := range []string{"lxd", "incus"} {
		pools := "/var/lib/incus/storage-pools"
		if runtime == "lxd" {
			pools = "/var/snap/lxd/common/lxd/storage-pools"
		}
		for _, p := range subdirs(host(h, pools)) {
			add(runtime, filepath.Join(pools, p, "containers"))
		}
	}
	return out
}

// nspawn lists systemd-nspawn's machines: the running ones
// (/run/systemd/machines/NAME says ROOT=) and the images in
// /var/lib/machines.
func nspawn(h string) []Root {
	var out []Root
	seen := map[string]bool{}
	if es, err := os.ReadDir(host(h, "/run/systemd/machines")); err == nil {
		for _, e := range es {
			b, err := regular.ReadFile(filepath.Join(host(h, "/run/systemd/machines"), e.Name()), 1<<16)
			if err != nil {
				continue
			}
			for _, line := range strings.Split(string(b), "\n") {
				if root, ok := strings.CutPrefix(line, "ROOT="); ok && filepath.IsAbs(root) {
					d := host(h, root)
					if isDir(d) && !seen[d] {
						seen[d] = true
						out = append(out, Root{Dir: d, Runtime: "nspawn", Name: e.Name()})
					}
				}
			}
		}
	}
	for _, name := range subdirs(host(h, "/var/lib/machines")) {
		if d := filepath.Join(host(h, "/var/lib/machines"), name); !seen[d] {
			out = append(out, Root{Dir: d, Runtime: "nspawn", Name: name})
		}
	}
	return out
}

// processes lists the roots of running processes that are not this
// host's root nor one already known (same directory): chroots and
// containers of runtimes coroner does not know. A root directory owned by
// another user than root or the one running coroner is left out (anyone
// can chroot into a directory of theirs in a user namespace). Each distinct root is
// listed once, through the first process found in it; a container is
// named by the id in its cgroup when it has one.
func processes(h string, known []Root) []Root {
	proc := host(h, "/proc")
	self, err := os.Stat(host(h, "/"))
	if err != nil {
		return nil
	}
	seen := map[dirKey]bool{}
	if k, ok := fileKey(self); ok {
		seen[k] = true
	}
	for _, r := range known {
		if st, err := os.Stat(r.Dir); err == nil {
			if k, ok := fileKey(st); ok {
				seen[k] = true
			}
		}
	}
	es, err := os.ReadDir(proc)
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range es {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	sort.Ints(pids)
	var out []Root
	for _, pid := range pids {
		dir := filepath.Join(proc, strconv.Itoa(pid), "root")
		st, err := os.Stat(dir)
		if err != nil {
			continue
		}
		k, ok := fileKey(st)
		if !ok || seen[k] || !trustedOwner(st) {
			continue
		}
		seen[k] = true
		r := Root{Dir: dir, Runtime: "process"}
		// A chroot's root is a directory of this host's namespace too:
		// name it by that path, which outlives the process.
		if target, err := os.Readlink(dir); err == nil && target != "/" && filepath.IsAbs(target) {
			if tst, err := os.Stat(host(h, target)); err == nil && os.SameFile(st, tst) {
				r.Dir = host(h, target)
			}
		}
		if comm, err := readProc(filepath.Join(proc, strconv.Itoa(pid), "comm"), 256); err == nil {
			r.Name = fmt.Sprintf("%s (pid %d)", strings.TrimSpace(string(comm)), pid)
		}
		if cg, err := readProc(filepath.Join(proc, strconv.Itoa(pid), "cgroup"), 1<<16); err == nil {
			r.ID = cgroupContainerID(cg)
		}
		out = append(out, r)
		if len(out) >= maxRoots {
			break
		}
	}
	return out
}

// readProc reads at most max bytes of a file of /proc (or of a test's
// stand-in for it).
func readProc(path string, max int64) ([]byte, error) {
	f, err := regular.OpenHostFile(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

// cgroupContainerID finds a container id (64 hex digits) in a
// /proc/PID/cgroup file: docker-ID.scope, cri-containerd-ID.scope,
// crio-ID.scope, libpod-ID.scope, /docker/ID, /kubepods/.../ID.
func cgroupContainerID(b []byte) string {
	for _, line := range bytes.Split(b, []byte("\n")) {
		for _, part := range strings.FieldsFunc(string(line), func(r rune) bool { return r == '/' || r == ':' }) {
			part = strings.TrimSuffix(part, ".scope")
			if i := strings.LastIndexAny(part, "-"); i >= 0 {
				part = part[i+1:]
			}
			if len(part) == 64 && isHex(part) {
				return part
			}
		}
	}
	return ""
}

// safeName reports whether a name read from a runtime's state file can be
// one component of a path (not empty, no "/", not "." or "..").
func safeName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\x00")
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Ancestors lists the directories above path, nearest first, up to (not
// including) "/": a process in a chroot whose core_pattern is relative
// (or whose core handler writes into its root) leaves its core inside the
// root, so the root is one of them. Directories owned by another user than
// root or the one running coroner are left out (a user who can write
// where cores land could plant a root of their own there).
func Ancestors(path string) []Root {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil
	}
	var out []Root
	for d, n := filepath.Dir(abs), 0; d != "/" && d != "." && n < 64; d, n = filepath.Dir(d), n+1 {
		if st, err := os.Stat(d); err == nil && st.IsDir() && trustedOwner(st) {
			out = append(out, Root{Dir: d, Runtime: "core-dir"})
		}
	}
	return out
}

// Match picks from roots the one that names=id: the container's name,
// its id or a prefix of it (at least 4 characters), or its directory.
func Match(roots []Root, name string) (Root, bool) {
	for _, r := range roots {
		if r.Name == name || r.ID == name || r.Dir == name {
			return r, true
		}
	}
	if len(name) >= 4 {
		for _, r := range roots {
			if strings.HasPrefix(r.ID, name) {
				return r, true
			}
		}
	}
	return Root{}, false
}
