package audit

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestFailedApplyLeavesNoManifest: an apply that fails half-way (its last
// file is immutable) undoes what it wrote and leaves no manifest that a
// rollback would pick: only manifest.failed.json, with the reason. A
// rollback then finds nothing to undo instead of claiming removals.
func TestFailedApplyLeavesNoManifest(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chattr +i needs root")
	}
	root := copyTree(t, filepath.Join("testdata", "debian12-defects"))
	r := mustRun(t, Options{Root: root})
	plan, err := PlanFix(r, FixOptions{Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	last := -1
	for i, c := range plan.Changes {
		if !c.Dir && c.Existed {
			last = i
		}
	}
	if last <= 0 {
		t.Fatalf("no existing file changed after another change: %d", last)
	}
	locked := filepath.Join(root, plan.Changes[last].Path)
	if out, err := exec.Command("chattr", "+i", locked).CombinedOutput(); err != nil {
		t.Skipf("chattr +i: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("chattr", "-i", locked).Run() })
	before := snapshot(t, root)
	if _, err := plan.Apply(r); err == nil {
		t.Fatal("apply over an immutable file succeeded")
	}
	after := snapshot(t, root)
	for k, v := range before {
		if after[k] != v {
			t.Errorf("%s not undone", k)
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok && !strings.HasPrefix(k, "var/lib/coroner") && k != "var" && k != "var/lib" {
			t.Errorf("left behind: %s", k)
		}
	}
	state := filepath.Join(root, DefaultStateDir)
	for _, pattern := range []string{manifestName, pendingManifestName} {
		if m, _ := filepath.Glob(filepath.Join(state, "*", pattern)); len(m) > 0 {
			t.Errorf("a failed apply left %v", m)
		}
	}
	failed, _ := filepath.Glob(filepath.Join(state, "*", failedManifestName))
	if len(failed) != 1 {
		t.Fatalf("failed manifests: %v", failed)
	}
	var m Manifest
	b, _ := os.ReadFile(failed[0])
	if err := json.Unmarshal(b, &m); err != nil || m.Failed == "" {
		t.Errorf("failed manifest: %v %+v", err, m)
	}
	if res, err := Rollback(root, "", false); err == nil {
		t.Errorf("rollback after a failed apply: %+v", res)
	}
}

// TestInterruptedApply: what an apply killed half-way leaves (a pending
// manifest, the last file not yet written, temp files next to the files
// it wrote and in a directory it created) is rolled back completely, the
// temp files removed, and nothing that was never written is claimed.
func TestInterruptedApply(t *testing.T) {
	root := copyTree(t, filepath.Join("testdata", "debian12-defects"))
	before := snapshot(t, root)
	r := mustRun(t, Options{Root: root})
	plan, err := PlanFix(r, FixOptions{Capture: true})
	if err != nil {
		t.Fatal(err)
	}
	manifest, err := plan.Apply(r)
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(manifest)
	var m Manifest
	b, _ := os.ReadFile(manifest)
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// Killed before the last file was written, and before the manifest
	// was completed.
	var lastNew, lastOld, createdDir string
	for _, e := range m.Entries {
		switch {
		case e.Dir:
			createdDir = filepath.Join(root, e.Path)
		case e.Existed:
			lastOld = e.Path
			old, _ := os.ReadFile(filepath.Join(dir, e.Backup))
			os.WriteFile(filepath.Join(root, e.Path), old, os.FileMode(e.Mode))
		default:
			lastNew = e.Path
		}
	}
	if lastOld == "" || createdDir == "" {
		t.Fatalf("plan without an existing file or a created directory: %+v", m.Entries)
	}
	if lastNew != "" {
		os.Remove(filepath.Join(root, lastNew))
	}
	if err := os.Rename(manifest, filepath.Join(dir, pendingManifestName)); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{createdDir, filepath.Dir(filepath.Join(root, lastOld))} {
		if err := os.WriteFile(filepath.Join(d, ".coroner-123456789"), []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	res, err := Rollback(root, "", false)
	if err != nil {
		t.Fatalf("rollback: %v", err)
	}
	if len(res.Skipped) > 0 {
		t.Errorf("skipped: %v", res.Skipped)
	}
	for _, p := range append(res.Removed, res.Restored...) {
		if p == lastNew || p == lastOld {
			t.Errorf("rollback claims %s, which the interrupted apply never wrote", p)
		}
	}
	got := snapshot(t, root)
	for k, v := range before {
		if got[k] != v {
			t.Errorf("%s not restored", k)
		}
	}
	for k := range got {
		if _, ok := before[k]; !ok && !strings.HasPrefix(k, "var/lib/coroner") && k != "var" && k != "var/lib" {
			t.Errorf("left behind: %s", k)
		}
	}
}
