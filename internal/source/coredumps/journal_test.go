package coredumps

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/compressed"
)

// exportFields reads an export stream into entries of name -> value (the
// binary values read whole).
func exportFields(t *testing.T, data []byte) ([]map[string]string, error) {
	t.Helper()
	var out []map[string]string
	cur := map[string]string{}
	err := ReadExport(bytes.NewReader(data), func(f *ExportField) error {
		if f.Name == "" {
			out = append(out, cur)
			cur = map[string]string{}
			return nil
		}
		if f.Binary {
			b, err := io.ReadAll(f.Data)
			if err != nil {
				return err
			}
			cur[f.Name] = string(b)
			return nil
		}
		cur[f.Name] = string(f.Value)
		return nil
	})
	return out, err
}

func binField(name string, v []byte) []byte {
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(v)))
	return append(append(append([]byte(name+"\n"), n[:]...), v...), '\n')
}

func TestReadExport(t *testing.T) {
	var s []byte
	s = append(s, "__CURSOR=s=1;i=1\nMESSAGE=hello\n"...)
	s = append(s, binField("COREDUMP", []byte("\x7fELF\n\nA=B\n"))...)
	s = append(s, binField("MESSAGE2", nil)...)
	s = append(s, "\n\nCOREDUMP_PID=7\n"...) // a last entry without its empty line
	got, err := exportFields(t, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0]["MESSAGE"] != "hello" || got[0]["COREDUMP"] != "\x7fELF\n\nA=B\n" || got[0]["__CURSOR"] != "s=1;i=1" ||
		got[1]["COREDUMP_PID"] != "7" {
		t.Fatalf("got %q", got)
	}

	// A length field of 2^62: an error, nothing allocated from it.
	var huge [8]byte
	binary.LittleEndian.PutUint64(huge[:], 1<<62)
	if _, err := exportFields(t, append([]byte("COREDUMP\n"), huge[:]...)); err == nil || !strings.Contains(err.Error(), "not believable") {
		t.Errorf("huge length: %v", err)
	}
	// A believable length the stream does not hold: cut short.
	binary.LittleEndian.PutUint64(huge[:], 1<<30)
	if _, err := exportFields(t, append(append([]byte("COREDUMP\n"), huge[:]...), "\x7fELF"...)); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short value: %v", err)
	}
	for _, bad := range []string{"lower=case\n", "COREDUMP\n\x01\x00", "A\n\x01\x00\x00\x00\x00\x00\x00\x00xy", "=v\n"} {
		if _, err := exportFields(t, []byte(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// A text value over the bound is skipped, not kept.
	long := "MESSAGE=" + strings.Repeat("x", maxExportText+maxExportName+10) + "\nB=1\n\n"
	got, err = exportFields(t, []byte(long))
	if err != nil || len(got) != 1 || got[0]["MESSAGE"] != "" || got[0]["B"] != "1" {
		t.Errorf("long text: %v %d %q %d", err, len(got), got[0]["B"], len(got[0]["MESSAGE"]))
	}
}

// journalCoreFixture crashes the real test program, keeps its core in a
// journal file as systemd-coredump does with Storage=journal (one record
// with the core, one without: Storage=none), and returns the journal and
// the record's crash time.
func journalCoreFixture(t *testing.T) (rc *realCore, journal string, ts time.Time) {
	t.Helper()
	rc = getRealCore(t)
	dir := t.TempDir()
	ts = time.Date(2026, 12, 1, 10, 0, 0, 123456000, time.UTC)
	journal = labtest.CoredumpJournal(t, dir, "system",
		labtest.CoredumpRecord{PID: rc.PID + 7, Signal: 6, Exe: rc.Exe, Comm: "crash", Time: ts.Add(-time.Hour)},
		labtest.CoredumpRecord{PID: rc.PID, Signal: 11, Exe: rc.Exe, Comm: "crash", Time: ts, Core: rc.Core,
			Extra: map[string]string{"COREDUMP_UNIT": "crash.service"}})
	return rc, journal, ts
}

// TestJournalCore: a core systemd-coredump kept in the journal (the
// COREDUMP field of its record, written to a real journal file by
// systemd-journal-remote) is discovered as analysable under its name,
// and Resolve extracts it by name, by pid and as the latest, byte for byte
// the core of the crashed program, into a private file removed by cleanup.
func TestJournalCore(t *testing.T) {
	rc, journal, ts := journalCoreFixture(t)
	raw, err := os.ReadFile(rc.Core)
	if err != nil {
		t.Fatal(err)
	}
	opts := DiscoverOptions{Sources: []string{SourceSystemd}, SystemdDir: t.TempDir(), Journal: journal}
	entries, warns := Discover(opts)
	for _, w := range warns {
		t.Errorf("warning: %v", w)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d entries, want 2: %+v", len(entries), entries)
	}
	e, gone := entries[0], entries[1]
	name := JournalName(rc.PID, ts.UnixMicro())
	if e.Journal != name || e.ID != name || e.Name() != name || e.Path != "" || e.PID != rc.PID || !e.Time.Equal(ts) || e.Signal != 11 {
		t.Errorf("journal core entry: %+v", e)
	}
	if e.Analysable != Yes || e.Truncated != No || e.CoreSize != int64(len(raw)) || e.BuildID == "" || e.Meta["journal.COREDUMP_UNIT"] != "crash.service" {
		t.Errorf("journal core not inspected: analysable %s (%s) truncated %s size %d build-id %q meta %v", e.Analysable, e.Why, e.Truncated, e.CoreSize, e.BuildID, e.Meta)
	}
	if gone.Journal != "" || gone.Analysable != No || gone.Name() != "" {
		t.Errorf("record without a core: %+v", gone)
	}
	var table bytes.Buffer
	WriteTableIn(&table, entries, false, time.UTC)
	if !strings.Contains(table.String(), name) || !strings.Contains(table.String(), "journal") {
		t.Errorf("the table does not name the core:\n%s", table.String())
	}
	quick := opts
	quick.Quick = true
	if qe, _ := Discover(quick); len(qe) != 2 || qe[0].Journal != name || qe[0].Analysable == No {
		t.Errorf("quick: %+v", qe)
	}

	tmp := t.TempDir()
	compressed.TempDir = tmp
	defer func() { compressed.TempDir = "" }()
	for _, c := range []struct {
		what string
		id   string
		opts ResolveOptions
	}{
		{"name", name, ResolveOptions{Discover: opts}},
		{"pid", "", ResolveOptions{PID: rc.PID, Discover: opts}},
		{"latest", "", ResolveOptions{Latest: true, Discover: opts}},
	} {
		t.Run(c.what, func(t *testing.T) {
			got, plain, cleanup, err := Resolve(c.id, c.opts)
			if err != nil {
				t.Fatal(err)
			}
			st, err := os.Stat(plain)
			if err != nil {
				t.Fatal(err)
			}
			if filepath.Dir(plain) != tmp || st.Mode().Perm() != 0o600 {
				t.Errorf("extracted to %s mode %v, want a 0600 file in the temporary directory", plain, st.Mode().Perm())
			}
			b, _ := os.ReadFile(plain)
			if !bytes.Equal(b, raw) {
				t.Errorf("extracted %d bytes, not the core's %d", len(b), len(raw))
			}
			if got.Journal != name || got.Analysable != Yes || got.Truncated != No || got.Exe != rc.Exe {
				t.Errorf("entry %+v", got)
			}
			cleanup()
			if _, err := os.Stat(plain); !os.IsNotExist(err) {
				t.Errorf("cleanup left %s", plain)
			}
		})
	}

	// --max-core-size cuts the extraction: a truncated core.
	got, plain, cleanup, err := Resolve(name, ResolveOptions{Discover: opts, Decompress: compressed.Options{MaxBytes: int64(len(raw) / 2)}})
	if err != nil {
		t.Fatal(err)
	}
	if fileSize(plain) != int64(len(raw)/2) || got.Truncated != Yes {
		t.Errorf("cut extraction: %d bytes, truncated %s", fileSize(plain), got.Truncated)
	}
	cleanup()

	// Names that the journal does not hold.
	for _, bad := range []string{JournalName(rc.PID, ts.UnixMicro()+1), JournalName(rc.PID+7, ts.Add(-time.Hour).UnixMicro())} {
		if _, _, _, err := Resolve(bad, ResolveOptions{Discover: opts}); err == nil {
			t.Errorf("%s resolved", bad)
		}
	}
	if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
}

// TestJournalCoreMatchesCoredumpctl: coredumpctl, systemd's own tool,
// extracts the same core from the journal file (when it is installed).
func TestJournalCoreMatchesCoredumpctl(t *testing.T) {
	bin, err := exec.LookPath("coredumpctl")
	if err != nil {
		t.Skip("coredumpctl is not installed (scripts/deps.sh takes it out of Debian's systemd-coredump package, whose install would take over kernel.core_pattern)")
	}
	rc, journal, ts := journalCoreFixture(t)
	out := filepath.Join(t.TempDir(), "core")
	if msg, err := exec.Command(bin, "--file="+journal, "dump", "COREDUMP_PID="+strconv.Itoa(rc.PID), "-o", out).CombinedOutput(); err != nil {
		t.Skipf("coredumpctl dump: %v: %s", err, msg)
	}
	_, plain, cleanup, err := Resolve(JournalName(rc.PID, ts.UnixMicro()), ResolveOptions{Discover: DiscoverOptions{Journal: journal}})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if fileSHA(t, out) != fileSHA(t, plain) {
		t.Errorf("coredumpctl and coroner extract different cores")
	}
}

func TestJournalName(t *testing.T) {
	for _, c := range []struct {
		s    string
		pid  int
		usec int64
		ok   bool
	}{
		{"journal:42:1700000000123456", 42, 1700000000123456, true},
		{"journal:42", 0, 0, false},
		{"journal:-1:5", 0, 0, false},
		{"journal:1:x", 0, 0, false},
		{"core.1.2", 0, 0, false},
	} {
		pid, usec, ok := ParseJournalName(c.s)
		if pid != c.pid || usec != c.usec || ok != c.ok {
			t.Errorf("%s: %d %d %v", c.s, pid, usec, ok)
		}
		if ok && JournalName(pid, usec) != c.s {
			t.Errorf("%s: name %s", c.s, JournalName(pid, usec))
		}
	}
}

// TestJournalCoreWithoutOutputFields: a journalctl older than systemd 236
// refuses --output-fields; the core is then read from the record's full
// export (every field, the others skipped). The old journalctl is the real
// one behind a wrapper that refuses the option as it did.
func TestJournalCoreWithoutOutputFields(t *testing.T) {
	rc, journal, ts := journalCoreFixture(t)
	real, err := exec.LookPath("journalctl")
	if err != nil {
		t.Skip("journalctl is not installed")
	}
	wrapper := filepath.Join(t.TempDir(), "journalctl")
	script := "#!/bin/sh\nfor a in \"$@\"; do case $a in --output-fields*) echo \"journalctl: unrecognized option '$a'\" >&2; exit 1;; esac; done\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	old := journalctlPath
	journalctlPath = func() (string, error) { return wrapper, nil }
	defer func() { journalctlPath = old }()
	_, plain, cleanup, err := Resolve(JournalName(rc.PID, ts.UnixMicro()), ResolveOptions{Discover: DiscoverOptions{Journal: journal}})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if fileSHA(t, plain) != fileSHA(t, rc.Core) {
		t.Errorf("the core read without --output-fields differs from the original")
	}
}
