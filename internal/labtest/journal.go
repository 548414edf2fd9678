package labtest

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"
)

// CoredumpRecord is a systemd-coredump journal record as systemd-coredump
// writes it with Storage=journal: its COREDUMP_* text fields and the core
// itself in the binary field COREDUMP.
type CoredumpRecord struct {
	PID, UID, GID int
	Signal        int
	Exe, Comm     string
	Time          time.Time // COREDUMP_TIMESTAMP (and the record's own time)
	// Core is the core file the COREDUMP field holds ("": none, as with
	// Storage=none).
	Core string
	// Extra are more fields (COREDUMP_UNIT...).
	Extra map[string]string
}

// journalRemote finds systemd-journal-remote (Debian's
// systemd-journal-remote package puts it out of PATH).
func journalRemote() (string, error) {
	if p, err := exec.LookPath("systemd-journal-remote"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/lib/systemd/systemd-journal-remote", "/usr/lib/systemd/systemd-journal-remote"} {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", fmt.Errorf("systemd-journal-remote is not installed (Debian package systemd-journal-remote, scripts/deps.sh)")
}

// CoredumpJournal writes the records into a new journal file dir/NAME.journal
// with systemd-journal-remote (which reads the journal export format), the
// way journald would keep them, and returns its path. It skips the test
// when systemd-journal-remote or journalctl is missing.
func CoredumpJournal(t testing.TB, dir, name string, recs ...CoredumpRecord) string {
	t.Helper()
	remote, err := journalRemote()
	if err != nil {
		t.Skipf("cores kept in the journal: %v", err)
	}
	if _, err := exec.LookPath("journalctl"); err != nil {
		t.Skip("cores kept in the journal: journalctl is not installed")
	}
	exp := filepath.Join(dir, name+".export")
	f, err := os.Create(exp)
	if err != nil {
		t.Fatal(err)
	}
	bw := bufio.NewWriter(f)
	for i, r := range recs {
		if err := WriteCoredumpExport(bw, r, i); err != nil {
			t.Fatal(err)
		}
	}
	if err := bw.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	out := filepath.Join(dir, name+".journal")
	in, err := os.Open(exp)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := exec.Command(remote, "-o", out, "-")
	cmd.Stdin = in
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v: %s", err, msg)
	}
	os.Remove(exp)
	return out
}

// WriteCoredumpExport writes r in the journal export format (text fields
// "NAME=value", the core as the binary field COREDUMP: name, 64-bit
// little-endian length, bytes, newline), streaming the core. seq makes the
// monotonic time of successive records grow.
func WriteCoredumpExport(w io.Writer, r CoredumpRecord, seq int) error {
	usec := r.Time.UnixMicro()
	fields := map[string]string{
		"__REALTIME_TIMESTAMP":  strconv.FormatInt(usec, 10),
		"__MONOTONIC_TIMESTAMP": strconv.Itoa(1000000 + seq),
		"_BOOT_ID":              "0123456789abcdef0123456789abcdef",
		"_HOSTNAME":             "lab",
		"_TRANSPORT":            "journal",
		"SYSLOG_IDENTIFIER":     "systemd-coredump",
		"PRIORITY":              "2",
		"MESSAGE_ID":            "fc2e22bc6ee647b6b90729ab34a250b1",
		"MESSAGE":               fmt.Sprintf("Process %d (%s) of user %d dumped core.", r.PID, r.Comm, r.UID),
		"COREDUMP_PID":          strconv.Itoa(r.PID),
		"COREDUMP_UID":          strconv.Itoa(r.UID),
		"COREDUMP_GID":          strconv.Itoa(r.GID),
		"COREDUMP_SIGNAL":       strconv.Itoa(r.Signal),
		"COREDUMP_EXE":          r.Exe,
		"COREDUMP_COMM":         r.Comm,
		"COREDUMP_TIMESTAMP":    strconv.FormatInt(usec, 10),
		"COREDUMP_HOSTNAME":     "lab",
	}
	for k, v := range r.Extra {
		fields[k] = v
	}
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if _, err := fmt.Fprintf(w, "%s=%s\n", k, fields[k]); err != nil {
			return err
		}
	}
	if r.Core != "" {
		f, err := os.Open(r.Core)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		var n [8]byte
		binary.LittleEndian.PutUint64(n[:], uint64(st.Size()))
		if _, err := fmt.Fprintf(w, "COREDUMP\n%s", n[:]); err != nil {
			return err
		}
		if _, err := io.Copy(w, f); err != nil {
			return err
		}
		if _, err := io.WriteString(w, "\n"); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "\n")
	return err
}
