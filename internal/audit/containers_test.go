package audit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestContainers audits a host with a Docker container: a pipe handler
// receives the cores of its workers, a file pattern writes them inside the
// container.
func TestContainers(t *testing.T) {
	root := filepath.Join(t.TempDir(), "host")
	if out, err := exec.Command("cp", "-a", filepath.Join("testdata", "debian12-clean"), root).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v\n%s", err, out)
	}
	find := func() *Finding {
		r := mustRun(t, Options{Root: root})
		for i := range r.Findings {
			if r.Findings[i].Check == "kernel.core_pattern.containers" {
				return &r.Findings[i]
			}
		}
		return nil
	}
	if f := find(); f != nil {
		t.Fatalf("a host without containers has a containers finding: %+v", f)
	}
	const id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for p, content := range map[string]string{
		"var/lib/docker/containers/" + id + "/config.v2.json":              `{"ID":"` + id + `","Name":"/shop-fpm","Driver":"overlay2","Config":{"Image":"php:8.4-fpm"}}`,
		"var/lib/docker/image/overlay2/layerdb/mounts/" + id + "/mount-id": "abc",
		"var/lib/docker/overlay2/abc/merged/.keep":                         "",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := find()
	if f == nil || f.Status != StatusOK || !strings.Contains(f.Message, "docker shop-fpm") || !strings.Contains(f.Message, "systemd-coredump") {
		t.Fatalf("pipe handler with a container: %+v", f)
	}
	// A file pattern: the kernel opens it in the container's root.
	for _, p := range []string{"proc/sys/kernel/core_pattern"} {
		if err := os.WriteFile(filepath.Join(root, p), []byte("/var/crash/core.%e.%p\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(root, "var/crash"), 0o1733)
	sysctls, _ := filepath.Glob(filepath.Join(root, "etc/sysctl.d/*"))
	for _, s := range sysctls {
		os.Remove(s)
	}
	f = find()
	if f == nil || f.Status != StatusRisky || !strings.Contains(f.Message, "inside the container") || !strings.Contains(f.Fix, "/var/crash") {
		t.Fatalf("file pattern with a container: %+v", f)
	}
}
