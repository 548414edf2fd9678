package coredumps

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/coroner-dev/coroner/internal/source/compressed"
)

// DefaultSystemdDir is systemd-coredump's store.
const DefaultSystemdDir = "/var/lib/systemd/coredump"

// SystemdName is a parsed systemd-coredump store file name:
// core.<comm>.<uid>.<boot-id>.<pid>.<usec>[.zst|.lz4|.xz].
type SystemdName struct {
	Comm   string // unescaped
	UID    int
	BootID string
	PID    int
	Time   time.Time
	Ext    string // compression extension, "" when plain
}

// ParseSystemdName parses a store file name (see SystemdName).
func ParseSystemdName(name string) (SystemdName, bool) {
	var n SystemdName
	if !strings.HasPrefix(name, "core.") {
		return n, false
	}
	rest := name[len("core."):]
	for _, ext := range []string{".zst", ".lz4", ".xz"} {
		if strings.HasSuffix(rest, ext) {
			n.Ext, rest = ext, strings.TrimSuffix(rest, ext)
			break
		}
	}
	parts := strings.Split(rest, ".")
	if len(parts) < 5 {
		return n, false
	}
	k := len(parts)
	usec, err1 := strconv.ParseInt(parts[k-1], 10, 64)
	pid, err2 := strconv.Atoi(parts[k-2])
	boot := parts[k-3]
	uid, err3 := strconv.Atoi(parts[k-4])
	if err1 != nil || err2 != nil || err3 != nil || len(boot) != 32 || !isHex(boot) {
		return n, false
	}
	n.Comm = unescapeComm(strings.Join(parts[:k-4], "."))
	n.UID, n.BootID, n.PID = uid, boot, pid
	n.Time = time.UnixMicro(usec)
	return n, true
}

func isHex(s string) bool {
	for _, c := range s {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// unescapeComm undoes systemd's \xNN escaping of the comm in file names.
func unescapeComm(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, err := strconv.ParseUint(s[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// systemdXattrs are the user.coredump.* attributes systemd-coredump sets.
var systemdXattrs = []string{"pid", "uid", "gid", "signal", "timestamp", "rlimit", "hostname", "comm", "exe"}

// readXattrs returns the user.coredump.* attributes of path.
func readXattrs(path string) map[string]string {
	var out map[string]string
	buf := make([]byte, 4096)
	for _, k := range systemdXattrs {
		n, err := syscall.Getxattr(path, "user.coredump."+k, buf)
		if err != nil {
			if errors.Is(err, syscall.ENOTSUP) {
				return out
			}
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = string(bytes.TrimRight(buf[:n], "\x00"))
	}
	return out
}

// systemdEntry builds an entry from a store file.
func systemdEntry(path string, fi os.FileInfo) (*Entry, bool) {
	name, ok := ParseSystemdName(fi.Name())
	if !ok {
		return nil, false
	}
	e := &Entry{Source: SourceSystemd, ID: fi.Name(), Path: path, Size: fi.Size(),
		PID: name.PID, UID: name.UID, Comm: name.Comm, Time: name.Time}
	e.meta("boot_id", name.BootID)
	for k, v := range readXattrs(path) {
		e.meta("xattr."+k, v)
		switch k {
		case "pid":
			if n, err := strconv.Atoi(v); err == nil {
				e.PID = n
			}
		case "uid":
			if n, err := strconv.Atoi(v); err == nil {
				e.UID = n
			}
		case "gid":
			if n, err := strconv.Atoi(v); err == nil {
				e.GID = n
			}
		case "signal":
			e.Signal = signalNumber(v)
		case "timestamp":
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				e.Time = time.UnixMicro(n)
			}
		case "comm":
			e.Comm = v
		case "exe":
			e.Exe = v
		}
	}
	return e, true
}

// JournalCoredump is one systemd-coredump journal record (the COREDUMP_*
// fields, MESSAGE_ID fc2e22bc6ee647b6b90729ab34a250b1).
type JournalCoredump map[string]string

// CoredumpMessageID is the journal MESSAGE_ID of systemd-coredump records.
const CoredumpMessageID = "fc2e22bc6ee647b6b90729ab34a250b1"

// ParseJournalJSON reads `journalctl -o json` output (one JSON object per
// line) and keeps the coredump records. Values that are not strings (binary
// fields are arrays of numbers) are skipped; so are malformed lines, counted
// in the returned warnings.
func ParseJournalJSON(data []byte) ([]JournalCoredump, []string) {
	var out []JournalCoredump
	var warnings []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(sc.Bytes(), &raw); err != nil {
			warnings = append(warnings, fmt.Sprintf("journal line %d: %v", line, err))
			continue
		}
		rec := JournalCoredump{}
		for k, v := range raw {
			if k == "COREDUMP" { // the core itself (Storage=journal)
				rec["COREDUMP"] = "(in journal)"
				continue
			}
			var s string
			if json.Unmarshal(v, &s) == nil {
				rec[k] = s
			}
		}
		if rec["MESSAGE_ID"] != CoredumpMessageID && rec["COREDUMP_PID"] == "" {
			continue
		}
		out = append(out, rec)
	}
	if err := sc.Err(); err != nil {
		warnings = append(warnings, fmt.Sprintf("journal: %v", err))
	}
	return out, warnings
}

// readJournal runs journalctl for coredump records when it is installed,
// from journal ("" = the host's; else a directory or a file), of crashes
// logged at or after since (zero: all).
func readJournal(journal string, timeout time.Duration, since time.Time) ([]JournalCoredump, []string) {
	recs, warns, err := queryJournal(journal, timeout, since)
	if err != nil {
		if errors.Is(err, exec.ErrNotFound) && journal == "" {
			return nil, nil
		}
		return nil, append(warns, err.Error())
	}
	return recs, warns
}

// queryJournal returns the coredump records of journal matching the
// extra journalctl matches (FIELD=value). The cores themselves are not
// read (journalctl writes a field over 4 KiB as null in JSON).
func queryJournal(journal string, timeout time.Duration, since time.Time, matches ...string) ([]JournalCoredump, []string, error) {
	bin, err := journalctlPath()
	if err != nil {
		return nil, nil, fmt.Errorf("journalctl: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := append(journalArgs(journal), "-o", "json", "--no-pager", "-q")
	if !since.IsZero() {
		// The journal's own time is when the record was written, after
		// the crash: every crash since then is kept.
		args = append(args, "--since=@"+strconv.FormatInt(since.Unix(), 10))
	}
	args = append(args, "MESSAGE_ID="+CoredumpMessageID)
	args = append(args, matches...)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: 4 << 10}
	out, err := cmd.Output()
	if err != nil && len(out) == 0 {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, nil, fmt.Errorf("journalctl: %s", msg)
	}
	recs, warns := ParseJournalJSON(out)
	return recs, warns, nil
}

// mergeJournal adds journal records to the systemd entries (matched by
// COREDUMP_FILENAME, else by pid and time) and returns entries for crashes
// whose core the store no longer has (or never had).
func mergeJournal(entries []*Entry, recs []JournalCoredump) []*Entry {
	byPath := map[string]*Entry{}
	byPID := map[int][]*Entry{}
	for _, e := range entries {
		if e.Source == SourceSystemd {
			byPath[e.Path] = e
			byPID[e.PID] = append(byPID[e.PID], e)
		}
	}
	var extra []*Entry
	for _, r := range recs {
		pid, _ := strconv.Atoi(r["COREDUMP_PID"])
		var e *Entry
		if fn := r["COREDUMP_FILENAME"]; fn != "" {
			e = byPath[fn]
		}
		ts := journalTime(r)
		if e == nil {
			for _, c := range byPID[pid] {
				if d := c.Time.Sub(ts); d < 5*time.Second && d > -5*time.Second {
					e = c
				}
			}
		}
		if e == nil && r["COREDUMP"] != "" && pid > 0 && !ts.IsZero() {
			// The core is in the journal record itself (Storage=journal).
			extra = append(extra, journalEntry(r))
			continue
		}
		if e == nil {
			e = &Entry{Source: SourceSystemd, PID: pid, Time: ts, Analysable: No}
			switch {
			case r["COREDUMP"] != "":
				e.Why = "the core is stored in the journal, but its record gives no pid or time"
			case r["COREDUMP_FILENAME"] != "":
				e.Why = "the core " + r["COREDUMP_FILENAME"] + " was removed from the store"
				e.ID = filepath.Base(r["COREDUMP_FILENAME"])
			default:
				e.Why = "systemd-coredump did not keep the core (Storage=none or over its size limits)"
			}
			extra = append(extra, e)
		}
		applyJournal(e, r)
	}
	return extra
}

func journalTime(r JournalCoredump) time.Time {
	for _, k := range []string{"COREDUMP_TIMESTAMP", "__REALTIME_TIMESTAMP"} {
		if n, err := strconv.ParseInt(r[k], 10, 64); err == nil && n > 0 {
			return time.UnixMicro(n)
		}
	}
	return time.Time{}
}

func applyJournal(e *Entry, r JournalCoredump) {
	atoi := func(k string) int { n, _ := strconv.Atoi(r[k]); return n }
	if e.UID == 0 {
		e.UID = atoi("COREDUMP_UID")
	}
	if e.GID == 0 {
		e.GID = atoi("COREDUMP_GID")
	}
	if e.Signal == 0 {
		e.Signal = atoi("COREDUMP_SIGNAL")
	}
	if e.Exe == "" {
		e.Exe = r["COREDUMP_EXE"]
	}
	if e.Comm == "" {
		e.Comm = r["COREDUMP_COMM"]
	}
	for _, k := range []string{"COREDUMP_UNIT", "COREDUMP_CMDLINE", "COREDUMP_CWD", "COREDUMP_PACKAGE_NAME", "COREDUMP_PACKAGE_VERSION", "COREDUMP_RLIMIT", "COREDUMP_SIGNAL_NAME", "COREDUMP_HOSTNAME",
		"COREDUMP_ROOT", "COREDUMP_CGROUP", "COREDUMP_CONTAINER_CMDLINE"} {
		e.meta("journal."+k, r[k])
	}
	if v := r["COREDUMP_TRUNCATED"]; v == "1" || strings.EqualFold(v, "yes") || strings.EqualFold(v, "true") {
		e.Truncated = Yes
		e.TruncatedWhy = "systemd-coredump: COREDUMP_TRUNCATED (over ProcessSizeMax/ExternalSizeMax)"
	}
}

// compressionOf detects the format of a store file by magic bytes.
func compressionOf(path string) (string, error) {
	f, err := compressed.Sniff(path)
	if err != nil {
		return "", err
	}
	if f == compressed.Unknown {
		return "", fmt.Errorf("%s is neither an ELF core nor a compressed one", path)
	}
	return string(f), nil
}
