package coredumps

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/source/compressed"
)

// A core systemd-coredump keeps in the journal itself (Storage=journal: the
// binary field COREDUMP of its record) has no file; coroner names it
// "journal:PID:USEC" (the COREDUMP_PID and COREDUMP_TIMESTAMP of the
// record), a name `coroner cores` prints and `coroner analyze` takes.

// JournalPrefix starts the name of a core kept in the journal.
const JournalPrefix = "journal:"

// DefaultJournalTimeout bounds one extraction of a core from the journal
// (journalctl -o export of one record).
const DefaultJournalTimeout = 10 * time.Minute

// JournalName is the name of the core of the record of process pid that
// crashed at usec (microseconds since the epoch).
func JournalName(pid int, usec int64) string {
	return JournalPrefix + strconv.Itoa(pid) + ":" + strconv.FormatInt(usec, 10)
}

// ParseJournalName parses a name made by JournalName.
func ParseJournalName(s string) (pid int, usec int64, ok bool) {
	rest, found := strings.CutPrefix(s, JournalPrefix)
	if !found {
		return 0, 0, false
	}
	p, u, found := strings.Cut(rest, ":")
	if !found {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(p)
	usec, err2 := strconv.ParseInt(u, 10, 64)
	if err1 != nil || err2 != nil || pid <= 0 || usec <= 0 {
		return 0, 0, false
	}
	return pid, usec, true
}

// journalArgs are journalctl's options selecting the journal: the host's
// (""), a directory (-D, e.g. a copied /var/log/journal or a sysroot's) or
// one journal file (--file).
func journalArgs(journal string) []string {
	if journal == "" {
		return nil
	}
	if fi, err := os.Stat(journal); err == nil && !fi.IsDir() {
		return []string{"--file=" + journal}
	}
	return []string{"--directory=" + journal}
}

// journalctlPath finds journalctl (a test may replace it).
var journalctlPath = func() (string, error) { return exec.LookPath("journalctl") }

// findJournalRecord returns the coredump record named by a journal core
// name (its pid and crash time), from journal ("" = the host's).
func findJournalRecord(name, journal string, timeout time.Duration) (JournalCoredump, error) {
	pid, usec, ok := ParseJournalName(name)
	if !ok {
		return nil, fmt.Errorf("%s is not a journal core name (journal:PID:USEC)", name)
	}
	recs, warns, err := queryJournal(journal, timeout, time.Time{}, "COREDUMP_PID="+strconv.Itoa(pid))
	if err != nil {
		return nil, err
	}
	for _, r := range recs {
		if journalTime(r).UnixMicro() == usec {
			return r, nil
		}
	}
	what := fmt.Sprintf("no systemd-coredump record of pid %d at %s in the journal", pid, time.UnixMicro(usec).UTC().Format(time.RFC3339Nano))
	if journal != "" {
		what += " " + journal
	}
	if len(warns) > 0 {
		what += " (" + warns[0] + ")"
	}
	return nil, errors.New(what)
}

// journalEntry builds the entry of a record whose core is in the journal.
func journalEntry(r JournalCoredump) *Entry {
	pid, _ := strconv.Atoi(r["COREDUMP_PID"])
	ts := journalTime(r)
	name := JournalName(pid, ts.UnixMicro())
	e := &Entry{Source: SourceSystemd, ID: name, Journal: name, PID: pid, Time: ts, cursor: r["__CURSOR"]}
	applyJournal(e, r)
	return e
}

// journalCmd starts journalctl writing the export format of the record at
// cursor (only its COREDUMP field when journalctl knows --output-fields).
// stop ends it.
type journalCmd struct {
	cmd    *exec.Cmd
	out    io.ReadCloser
	stderr *bytes.Buffer
	cancel context.CancelFunc
	ctx    context.Context
}

func startJournalExport(journal, cursor string, timeout time.Duration, fieldsOption bool) (*journalCmd, error) {
	bin, err := journalctlPath()
	if err != nil {
		return nil, fmt.Errorf("the core is in the journal but journalctl is not installed: %w", err)
	}
	if timeout <= 0 {
		timeout = DefaultJournalTimeout
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	args := append(journalArgs(journal), "--no-pager", "-q", "--cursor="+cursor, "-n", "1", "-o", "export")
	if fieldsOption {
		args = append(args, "--output-fields=COREDUMP")
	}
	args = append(args, "MESSAGE_ID="+CoredumpMessageID)
	cmd := exec.CommandContext(ctx, bin, args...)
	stderr := &bytes.Buffer{}
	cmd.Stderr = &limitedWriter{w: stderr, n: 4 << 10}
	out, err := cmd.StdoutPipe()
	if err != nil {
		cancel()
		return nil, fmt.Errorf("journalctl: %w", err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		return nil, fmt.Errorf("start journalctl: %w", err)
	}
	return &journalCmd{cmd: cmd, out: out, stderr: stderr, cancel: cancel, ctx: ctx}, nil
}

// stop ends journalctl (it is killed when it has more to write) and says
// why it failed, if it did before the core was read.
func (j *journalCmd) stop(done bool) error {
	if done {
		j.cancel()
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(j.out, 1<<20))
	j.cancel()
	err := j.cmd.Wait()
	if done {
		return nil
	}
	if errors.Is(j.ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("journalctl did not write the core within its time bound")
	}
	if err != nil {
		msg := strings.TrimSpace(j.stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("journalctl: %s", msg)
	}
	return nil
}

// limitedWriter keeps the first n bytes written to it.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(l.n, len(p))
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}

// withCoredumpField runs journalctl on the record at cursor and calls use
// with a reader of its COREDUMP field (the core, streamed, never whole in
// memory) and its size. A journalctl without --output-fields (before
// systemd 236) writes every field; the others are skipped.
func withCoredumpField(journal, cursor string, timeout time.Duration, use func(r io.Reader, size int64) error) error {
	if cursor == "" {
		return errors.New("the journal record has no cursor")
	}
	err := withCoredumpFieldOnce(journal, cursor, timeout, true, use)
	if err != nil && strings.Contains(err.Error(), "output-fields") {
		err = withCoredumpFieldOnce(journal, cursor, timeout, false, use)
	}
	return err
}

// errNoCoredumpField is returned for a record without a COREDUMP field.
var errNoCoredumpField = errors.New("the journal record holds no core (no COREDUMP field)")

func withCoredumpFieldOnce(journal, cursor string, timeout time.Duration, fieldsOption bool, use func(r io.Reader, size int64) error) error {
	jc, err := startJournalExport(journal, cursor, timeout, fieldsOption)
	if err != nil {
		return err
	}
	found, wrongEntry := false, false
	var useErr error
	perr := ReadExport(jc.out, func(f *ExportField) error {
		switch {
		case f.Entry > 0 || f.Name == "":
			return errStopExport // one record only
		case f.Name == "__CURSOR" && f.Value != nil && string(f.Value) != cursor:
			wrongEntry = true
			return errStopExport
		case f.Name == "COREDUMP" && f.Binary:
			found = true
			useErr = use(f.Data, f.Size)
			return errStopExport
		}
		return nil
	})
	serr := jc.stop(found)
	switch {
	case found:
		return useErr
	case serr != nil:
		return serr
	case perr != nil:
		return fmt.Errorf("read journalctl's export: %w", perr)
	case wrongEntry:
		return fmt.Errorf("journalctl did not write the record at cursor %s", cursor)
	}
	return errNoCoredumpField
}

// extractJournalCore streams the core of e, kept in the journal, into a
// private temporary file (0600, in compressed.TempDir), bounded by opts
// (MaxBytes: the rest reads as truncated) and by timeout.
func extractJournalCore(e *Entry, journal string, timeout time.Duration, opts compressed.Options) (string, func(), error) {
	var path string
	var cleanup func()
	err := withCoredumpField(journal, e.cursor, timeout, func(r io.Reader, size int64) error {
		br := bufio.NewReaderSize(r, 64<<10)
		head, _ := br.Peek(4)
		if string(head) != "\x7fELF" {
			return fmt.Errorf("the COREDUMP field of %s is not an ELF core (starts with % x)", e.Journal, head)
		}
		cut := false
		warnf := opts.Warnf
		opts.Warnf = func(format string, args ...any) {
			cut = true
			if warnf != nil {
				warnf(format, args...)
			}
		}
		var err error
		path, cleanup, err = compressed.ToTempWith(br, compressed.Plain, "journal-"+strconv.Itoa(e.PID), size, opts)
		if err != nil {
			return err
		}
		if got := fileSize(path); !cut && got < size {
			// The stream ended early: journalctl stopped (its time bound).
			return fmt.Errorf("journalctl stopped after %d of the core's %d bytes", got, size)
		}
		return nil
	})
	if err != nil {
		if cleanup != nil {
			cleanup()
		}
		return "", nil, fmt.Errorf("extract %s from the journal: %w", e.Journal, err)
	}
	e.CoreSize = fileSize(path)
	return path, cleanup, nil
}

func fileSize(path string) int64 {
	if st, err := os.Stat(path); err == nil {
		return st.Size()
	}
	return 0
}

// peekJournal reads the notes of a core kept in the journal from a bounded
// prefix of its COREDUMP field.
func peekJournal(e *Entry, journal string, timeout time.Duration) (*CoreInfo, error) {
	var info *CoreInfo
	var ierr error
	err := withCoredumpField(journal, e.cursor, timeout, func(r io.Reader, size int64) error {
		e.CoreSize = size
		info, ierr = ReadCoreInfo(&streamReaderAt{r: r})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", e.Journal, err)
	}
	if ierr != nil {
		ierr = fmt.Errorf("%s: %w", e.Journal, ierr)
	}
	return info, ierr
}
