package store

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSQLitePrivate: with the usual umask (022) the database and its WAL
// files are created readable by their owner only, and a database made
// readable by others before is made private when opened.
func TestSQLitePrivate(t *testing.T) {
	old := syscall.Umask(0o022)
	defer syscall.Umask(old)
	dir := t.TempDir()
	p := filepath.Join(dir, "coroner.db")
	ctx := context.Background()
	st, err := Open(ctx, "sqlite:"+p)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.RecordIncident(ctx, &Incident{Host: "h", Time: time.Now(), Kind: "crash", PID: 1}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{p, p + "-wal", p + "-shm"} {
		if st, err := os.Stat(f); err == nil && st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v", filepath.Base(f), st.Mode().Perm())
		}
	}
	st.Close()
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	st, err = Open(ctx, "sqlite:"+p)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("reopened database: mode %v", fi.Mode().Perm())
	}
}
