package coredumps

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/regular"
)

// Default Apport locations.
const (
	DefaultApportCrashDir = "/var/crash"
	DefaultApportCoreDir  = "/var/lib/apport/coredump"
)

// errStopParse stops ParseCrash once the CoreDump field has been seen.
var errStopParse = errors.New("stop")

type stopWriter struct{}

func (stopWriter) Write([]byte) (int, error) { return 0, errStopParse }

// apportEntry reads the text fields of a .crash report (stopping at the
// embedded core) and builds an entry from them.
func apportEntry(path string, fi os.FileInfo) (*Entry, error) {
	f, err := regular.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep, err := ParseCrash(f, func(key string) io.Writer {
		if key == "CoreDump" {
			return stopWriter{}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStopParse) {
		return nil, err
	}
	e := &Entry{Source: SourceApport, ID: fi.Name(), Path: path, Report: path, Size: fi.Size(), Time: fi.ModTime()}
	applyCrashFields(e, rep)
	hasCore := false
	for _, k := range rep.Binary {
		if k == "CoreDump" {
			hasCore = true
		}
	}
	if !hasCore {
		e.Path = ""
		e.Why = "the report has no CoreDump field"
	}
	return e, nil
}

// applyCrashFields copies what a .crash report says into e.
func applyCrashFields(e *Entry, rep *CrashReport) {
	f := rep.Fields
	e.Exe = f["ExecutablePath"]
	if n, err := strconv.Atoi(strings.TrimSpace(f["Signal"])); err == nil {
		e.Signal = n
	}
	if t, err := time.ParseInLocation(time.ANSIC, f["Date"], time.Local); err == nil {
		e.Time = t
	}
	for _, line := range strings.Split(f["ProcStatus"], "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(v)
		if len(fields) == 0 {
			continue
		}
		n, _ := strconv.Atoi(fields[0])
		switch k {
		case "Pid":
			e.PID = n
		case "Uid":
			e.UID = n
		case "Gid":
			e.GID = n
		case "Name":
			e.Comm = fields[0]
		}
	}
	for _, k := range []string{"ProblemType", "Package", "ProcCmdline", "ProcCwd", "DistroRelease", "Title", "SignalName", "CrashCounter"} {
		e.meta("apport."+k, f[k])
	}
}

// apportCoreEntry builds an entry for a core in /var/lib/apport/coredump:
// core.<exe path with / and . as _>.<uid>.<boot-id>.<pid>.<start time>.
func apportCoreEntry(path string, fi os.FileInfo) (*Entry, bool) {
	name := fi.Name()
	if !strings.HasPrefix(name, "core.") {
		return nil, false
	}
	e := &Entry{Source: SourceApport, ID: name, Path: path, Size: fi.Size(), Time: fi.ModTime()}
	parts := strings.Split(compressedTrim(name), ".")
	if k := len(parts); k >= 6 {
		e.PID, _ = strconv.Atoi(parts[k-2])
		e.UID, _ = strconv.Atoi(parts[k-4])
		e.meta("boot_id", parts[k-3])
	}
	return e, true
}

func compressedTrim(name string) string {
	for _, ext := range []string{".zst", ".lz4", ".xz", ".gz"} {
		name = strings.TrimSuffix(name, ext)
	}
	return name
}

// isCrashFile tells whether path looks like an Apport report.
func isCrashFile(path string) bool {
	if strings.HasSuffix(path, ".crash") {
		return true
	}
	f, err := regular.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 12)
	n, _ := io.ReadFull(f, b)
	return string(b[:n]) == "ProblemType:"
}

// abrtEntry builds an entry from an ABRT problem directory (files
// executable, pid, uid, time, reason, cmdline, coredump...).
func abrtEntry(dir string) (*Entry, bool) {
	core := ""
	for _, name := range []string{"coredump", "coredump.zst", "coredump.lz4", "coredump.xz", "coredump.gz"} {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.Mode().IsRegular() {
			core = filepath.Join(dir, name)
			break
		}
	}
	read := func(name string) string {
		b, err := readSmall(filepath.Join(dir, name), 64<<10)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	analyzer := read("analyzer")
	if core == "" && analyzer == "" {
		return nil, false
	}
	e := &Entry{Source: SourceABRT, ID: filepath.Base(dir), Path: core, Report: dir}
	e.Exe = read("executable")
	e.PID, _ = strconv.Atoi(read("pid"))
	e.UID, _ = strconv.Atoi(read("uid"))
	if ts, err := strconv.ParseInt(read("time"), 10, 64); err == nil {
		e.Time = time.Unix(ts, 0)
	}
	reason := read("reason")
	if s := read("signal"); s != "" {
		e.Signal = signalNumber(s)
	} else if i := strings.Index(reason, "killed by signal "); i >= 0 {
		e.Signal = signalNumber(strings.Fields(reason[i+len("killed by signal "):] + " ")[0])
	} else if i := strings.Index(reason, "killed by SIG"); i >= 0 {
		e.Signal = signalNumber(strings.Fields(reason[i+len("killed by "):] + " ")[0])
	}
	e.meta("abrt.reason", reason)
	e.meta("abrt.cmdline", read("cmdline"))
	e.meta("abrt.analyzer", analyzer)
	e.meta("abrt.package", read("package"))
	if core != "" {
		if fi, err := os.Stat(core); err == nil {
			e.Size = fi.Size()
			if e.Time.IsZero() {
				e.Time = fi.ModTime()
			}
		}
	} else {
		e.Why = "the problem directory has no coredump file"
	}
	return e, true
}

// readSmall reads at most limit bytes of a file.
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := regular.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, limit))
}
