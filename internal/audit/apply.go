package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Manifest records what one `coroner fix --apply` changed, so that
// `coroner fix --rollback` can undo it.
type Manifest struct {
	ID      string          `json:"id"`
	Created time.Time       `json:"created"`
	Root    string          `json:"root"`
	Entries []ManifestEntry `json:"entries"`
	Reload  []string        `json:"reload"`
	// Failed is why the apply failed (its changes were undone; the
	// manifest is kept as manifest.failed.json, never rolled back).
	Failed string `json:"failed,omitempty"`
	// UndoFailed says what could not be undone after a failed apply.
	UndoFailed string `json:"undo_failed,omitempty"`
}

// ManifestEntry is one changed file or created directory.
type ManifestEntry struct {
	Path    string `json:"path"` // resolved, in the audited system's view
	Dir     bool   `json:"dir,omitempty"`
	Existed bool   `json:"existed"`
	Mode    uint32 `json:"mode"`
	UID     int    `json:"uid"`
	GID     int    `json:"gid"`
	Backup  string `json:"backup,omitempty"` // file name in the manifest's directory
	NewHash string `json:"new_sha256,omitempty"`
}

// Manifest files in a fix's state directory: the manifest of a completed
// apply; of an apply in progress (or interrupted: killed, crashed), which a
// rollback also undoes; of a failed apply, already undone.
const (
	manifestName        = "manifest.json"
	pendingManifestName = "manifest.pending.json"
	failedManifestName  = "manifest.failed.json"
)

// tempPrefix starts the names of the temporary files of writeAtomic; one
// left by a killed apply is removed by the next apply or rollback.
const tempPrefix = ".coroner-"

// allowedDirs are the directories a fix may write into (after resolving
// symlinks): /etc, the state dir, the core dir's parent, and the
// directories of the configuration files the audit read.
func (p *Plan) allowedDirs(h *host, r *Report) []string {
	views := []string{"/etc", p.StateDir}
	for _, c := range p.Changes {
		if c.Dir {
			views = append(views, path.Dir(c.Path))
		}
	}
	for _, in := range r.Installations {
		for _, f := range in.ConfigFiles {
			views = append(views, path.Dir(f))
		}
		views = append(views, in.ScanDirs...)
	}
	var out []string
	for _, v := range views {
		if rd, err := resolveExisting(h.resolve(v)); err == nil {
			out = append(out, rd)
		}
	}
	return out
}

// resolveExisting resolves symlinks in the longest existing prefix of p and
// appends the rest.
func resolveExisting(p string) (string, error) {
	p = filepath.Clean(p)
	rest := ""
	for {
		if _, err := os.Lstat(p); err == nil {
			rp, err := filepath.EvalSymlinks(p)
			if err != nil {
				return "", err
			}
			return filepath.Join(rp, rest), nil
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest), nil
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}

func within(p, dir string) bool {
	if dir == "/" {
		return true
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

// target resolves where a change really writes, refusing symlinks that
// lead out of the allowed directories (and out of the root).
func target(h *host, viewPath string, allowed []string) (string, error) {
	// Symlinks inside a tree are followed as the audited system would
	// (absolute targets inside the root), then whatever is left is
	// resolved on this machine.
	rp, err := resolveExisting(h.resolve(viewPath))
	if err != nil {
		return "", fmt.Errorf("resolve %s: %w", viewPath, err)
	}
	rootReal, err := filepath.EvalSymlinks(h.root)
	if err != nil {
		return "", fmt.Errorf("resolve root: %w", err)
	}
	if !within(rp, rootReal) {
		return "", fmt.Errorf("refusing to write %s: it resolves to %s, outside the root %s", viewPath, rp, h.root)
	}
	for _, d := range allowed {
		if within(rp, d) {
			return rp, nil
		}
	}
	return "", fmt.Errorf("refusing to write %s: it resolves (through a symlink) to %s, outside the expected directories", viewPath, h.display(rp))
}

// Apply writes the plan: every file atomically (temp file + rename in the
// same directory), after backing up every file it replaces into a new
// directory under the state dir together with a rollback manifest. It
// returns the manifest's path. r is the report the plan was made from.
func (p *Plan) Apply(r *Report) (string, error) {
	h, err := newHost(p.Root)
	if err != nil {
		return "", err
	}
	if len(p.Changes) == 0 {
		return "", nil
	}
	allowed := p.allowedDirs(h, r)
	// Resolve and check everything before touching anything.
	targets := make([]string, len(p.Changes))
	for i, c := range p.Changes {
		t, err := target(h, c.Path, allowed)
		if err != nil {
			return "", err
		}
		targets[i] = t
	}
	stateReal, err := target(h, p.StateDir, allowed)
	if err != nil {
		return "", err
	}
	removeStaleTemps(targets)
	id := time.Now().UTC().Format("20060102T150405.000000000Z")
	dir := filepath.Join(stateReal, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create state directory: %w", err)
	}
	m := &Manifest{ID: id, Created: time.Now().UTC(), Root: h.root, Reload: p.Reload}
	// Directories first (files may live in them), then files.
	for i, c := range p.Changes {
		t := targets[i]
		view := h.display(t)
		if c.Dir {
			created, err := mkdirAll(t, fs.FileMode(c.Mode))
			for _, d := range created {
				m.Entries = append(m.Entries, ManifestEntry{Path: h.display(d), Dir: true, Mode: c.Mode})
			}
			if err != nil {
				return "", p.abort(h, m, dir, fmt.Errorf("create %s: %w", c.Path, err))
			}
			continue
		}
		e := ManifestEntry{Path: view, Mode: c.Mode}
		if st, err := os.Stat(t); err == nil {
			old, err := os.ReadFile(t)
			if err != nil {
				return "", p.abort(h, m, dir, fmt.Errorf("read %s for backup: %w", c.Path, err))
			}
			e.Existed = true
			e.Mode = uint32(st.Mode().Perm())
			if sys, ok := st.Sys().(*syscall.Stat_t); ok {
				e.UID, e.GID = int(sys.Uid), int(sys.Gid)
			}
			e.Backup = fmt.Sprintf("backup-%03d-%s", i, path.Base(t))
			if err := writeAtomic(filepath.Join(dir, e.Backup), old, 0o600, -1, -1); err != nil {
				return "", p.abort(h, m, dir, fmt.Errorf("back up %s: %w", c.Path, err))
			}
		} else {
			created, err := mkdirAll(filepath.Dir(t), 0o755)
			for _, d := range created {
				m.Entries = append(m.Entries, ManifestEntry{Path: h.display(d), Dir: true, Mode: 0o755})
			}
			if err != nil {
				return "", p.abort(h, m, dir, fmt.Errorf("create directory for %s: %w", c.Path, err))
			}
		}
		sum := sha256.Sum256(c.New)
		e.NewHash = hex.EncodeToString(sum[:])
		// Record the entry before writing, so an abort (or a rollback
		// after a crash) restores it.
		m.Entries = append(m.Entries, e)
		if err := saveManifest(dir, pendingManifestName, m); err != nil {
			return "", p.abort(h, m, dir, err)
		}
		uid, gid := -1, -1
		if e.Existed {
			uid, gid = e.UID, e.GID
		}
		if err := writeAtomic(t, c.New, fs.FileMode(e.Mode), uid, gid); err != nil {
			return "", p.abort(h, m, dir, fmt.Errorf("write %s: %w", c.Path, err))
		}
	}
	if err := saveManifest(dir, pendingManifestName, m); err != nil {
		return "", p.abort(h, m, dir, err)
	}
	// Only now is there a fix to roll back.
	if err := os.Rename(filepath.Join(dir, pendingManifestName), filepath.Join(dir, manifestName)); err != nil {
		return "", p.abort(h, m, dir, fmt.Errorf("complete the manifest: %w", err))
	}
	return filepath.Join(dir, manifestName), nil
}

// abort undoes a partially applied plan and reports the original error.
// No manifest that a rollback would pick is left: the record of the
// failed apply is kept as manifest.failed.json.
func (p *Plan) abort(h *host, m *Manifest, dir string, cause error) error {
	m.Failed = cause.Error()
	_, undoErr := rollbackManifest(h, m, dir, true)
	if undoErr != nil {
		m.UndoFailed = undoErr.Error()
	}
	_ = saveManifest(dir, failedManifestName, m)
	_ = os.Remove(filepath.Join(dir, pendingManifestName))
	_ = os.Remove(filepath.Join(dir, manifestName))
	if undoErr != nil {
		return fmt.Errorf("%w (and undoing the partial change failed: %v; see %s)", cause, undoErr, filepath.Join(dir, failedManifestName))
	}
	return cause
}

// removeStaleTemps removes the temporary files a killed apply left next to
// the files it was writing (".coroner-" and digits, as os.CreateTemp names
// them): they would keep a created directory from being removed.
func removeStaleTemps(paths []string) {
	seen := map[string]bool{}
	for _, p := range paths {
		for _, dir := range []string{p, filepath.Dir(p)} {
			if seen[dir] {
				continue
			}
			seen[dir] = true
			ents, err := os.ReadDir(dir)
			if err != nil {
				continue
			}
			for _, e := range ents {
				name := e.Name()
				if !e.Type().IsRegular() || !strings.HasPrefix(name, tempPrefix) || strings.Trim(strings.TrimPrefix(name, tempPrefix), "0123456789") != "" {
					continue
				}
				_ = os.Remove(filepath.Join(dir, name))
			}
		}
	}
}

// mkdirAll creates dir and missing parents with mode, returning the
// directories it created, outermost first.
func mkdirAll(dir string, mode fs.FileMode) ([]string, error) {
	var missing []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		if _, err := os.Stat(d); err == nil {
			break
		}
		missing = append(missing, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	var created []string
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		m := fs.FileMode(0o755)
		if i == 0 {
			m = mode
		}
		if err := os.Mkdir(d, m.Perm()); err != nil {
			return created, err
		}
		created = append(created, d)
		// Mkdir applies the umask and ignores sticky: set the mode exactly.
		if err := os.Chmod(d, m.Perm()|(m&fs.ModeSticky)|stickyOf(m)); err != nil {
			return created, err
		}
	}
	return created, nil
}

// stickyOf maps the octal 01000 bit of a raw mode to fs.ModeSticky.
func stickyOf(m fs.FileMode) fs.FileMode {
	if uint32(m)&0o1000 != 0 {
		return fs.ModeSticky
	}
	return 0
}

// writeAtomic writes data to a temp file in p's directory, syncs it, sets
// mode (and owner when uid >= 0) and renames it over p.
func writeAtomic(p string, data []byte, mode fs.FileMode, uid, gid int) error {
	f, err := os.CreateTemp(filepath.Dir(p), tempPrefix+"*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, mode.Perm()); err != nil {
		return err
	}
	if uid >= 0 && os.Geteuid() == 0 {
		if err := os.Lchown(tmp, uid, gid); err != nil {
			return err
		}
	}
	return os.Rename(tmp, p)
}

func saveManifest(dir, name string, m *Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := writeAtomic(filepath.Join(dir, name), append(b, '\n'), 0o600, -1, -1); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return nil
}

// RollbackResult says what a rollback did.
type RollbackResult struct {
	Manifest string   `json:"manifest"`
	Restored []string `json:"restored"`
	Removed  []string `json:"removed"`
	Skipped  []string `json:"skipped"` // with the reason
	Reload   []string `json:"reload"`
}

// Rollback undoes the latest applied fix recorded under stateDir of the
// tree at root ("" = this machine), or the latest apply that was
// interrupted (killed before it completed). A file changed again since the
// fix is left alone (listed in Skipped) unless force is set. A failed apply
// was undone when it failed and is never picked.
func Rollback(root, stateDir string, force bool) (*RollbackResult, error) {
	h, err := newHost(root)
	if err != nil {
		return nil, err
	}
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	base := h.real(stateDir)
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, fmt.Errorf("no fix to roll back: %w", err)
	}
	type candidate struct{ id, name string }
	var cands []candidate
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		for _, name := range []string{manifestName, pendingManifestName} {
			if _, err := os.Stat(filepath.Join(base, e.Name(), name)); err == nil {
				cands = append(cands, candidate{e.Name(), name})
				break
			}
		}
	}
	if len(cands) == 0 {
		return nil, fmt.Errorf("no fix to roll back in %s", stateDir)
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].id < cands[j].id })
	last := cands[len(cands)-1]
	dir := filepath.Join(base, last.id)
	path := filepath.Join(dir, last.name)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", path, err)
	}
	var paths []string
	for _, e := range m.Entries {
		paths = append(paths, h.real(e.Path))
	}
	removeStaleTemps(paths)
	res, err := rollbackManifest(h, &m, dir, force)
	if err != nil {
		return res, err
	}
	res.Manifest = path
	if len(res.Skipped) == 0 {
		if err := os.Rename(path, filepath.Join(dir, "manifest.rolled-back.json")); err != nil {
			return res, fmt.Errorf("mark manifest rolled back: %w", err)
		}
	}
	return res, nil
}

func rollbackManifest(h *host, m *Manifest, dir string, force bool) (*RollbackResult, error) {
	res := &RollbackResult{Reload: m.Reload, Restored: []string{}, Removed: []string{}, Skipped: []string{}}
	rootReal, err := filepath.EvalSymlinks(h.root)
	if err != nil {
		return res, fmt.Errorf("resolve root: %w", err)
	}
	var errs []error
	for i := len(m.Entries) - 1; i >= 0; i-- {
		e := m.Entries[i]
		t := h.real(e.Path)
		// The manifest holds resolved paths: a symlink there now means
		// someone changed the tree; do not follow it.
		if rp, err := resolveExisting(t); err != nil || rp != t || !within(rp, rootReal) {
			res.Skipped = append(res.Skipped, e.Path+": path now goes through a symlink; not touched")
			continue
		}
		if e.Dir {
			err := os.Remove(t)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				// Never created (the apply stopped before), or removed
				// since: nothing to undo, nothing to claim.
			case err != nil:
				res.Skipped = append(res.Skipped, e.Path+": directory not removed ("+err.Error()+")")
			default:
				res.Removed = append(res.Removed, e.Path)
			}
			continue
		}
		cur, err := os.ReadFile(t)
		if e.Existed && err == nil {
			// The apply stopped before writing this file: it still holds
			// what the backup holds.
			if old, berr := os.ReadFile(filepath.Join(dir, e.Backup)); berr == nil && bytes.Equal(old, cur) {
				continue
			}
		}
		if err == nil && e.NewHash != "" && !force {
			sum := sha256.Sum256(cur)
			if hex.EncodeToString(sum[:]) != e.NewHash {
				res.Skipped = append(res.Skipped, e.Path+": changed since the fix (use --force to restore anyway)")
				continue
			}
		}
		if !e.Existed {
			err := os.Remove(t)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				// Never written: nothing to remove, nothing to claim.
			case err != nil:
				errs = append(errs, fmt.Errorf("remove %s: %w", e.Path, err))
			default:
				res.Removed = append(res.Removed, e.Path)
			}
			continue
		}
		old, err := os.ReadFile(filepath.Join(dir, e.Backup))
		if err != nil {
			errs = append(errs, fmt.Errorf("read backup of %s: %w", e.Path, err))
			continue
		}
		if err := writeAtomic(t, old, fs.FileMode(e.Mode), e.UID, e.GID); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", e.Path, err))
			continue
		}
		res.Restored = append(res.Restored, e.Path)
	}
	return res, errors.Join(errs...)
}

// Reload runs reload commands (from Plan.Reload or RollbackResult.Reload)
// one after the other on this machine, writing what it runs to log. It
// stops at the first failure.
func Reload(cmds []string, log io.Writer) error {
	for _, c := range cmds {
		f := strings.Fields(c)
		if len(f) == 0 {
			continue
		}
		if strings.Contains(c, "<") {
			return fmt.Errorf("cannot run %q: no running php-fpm master found; reload it yourself", c)
		}
		fmt.Fprintf(log, "running: %s\n", c)
		cmd := exec.Command(f[0], f[1:]...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %w", c, err)
		}
	}
	return nil
}
