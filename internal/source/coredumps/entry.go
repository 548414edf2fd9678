// Package coredumps discovers core dumps on a host: wherever kernel.core_pattern
// writes them (also relative patterns, in PHP-FPM document roots and working
// directories), systemd-coredump's store, Apport's .crash reports and core
// directory, ABRT problem directories, and directories named by the user.
// It lists them with what each store knows, tells whether a core is
// truncated and whether it can still be analysed (the executable on disk has
// the build-id the core recorded), and turns any identifier into a plain,
// uncompressed core file (Resolve).
package coredumps

import (
	"time"

	"github.com/coroner-dev/coroner/internal/signals"
)

// Sources of an Entry.
const (
	SourcePattern = "core_pattern" // where kernel.core_pattern writes cores
	SourceSystemd = "systemd"      // systemd-coredump's store / journal
	SourceApport  = "apport"       // Apport .crash reports and /var/lib/apport/coredump
	SourceABRT    = "abrt"         // ABRT problem directories
	SourceDir     = "dir"          // a directory or file given by the user
)

// Tri is a yes / no / unknown answer.
type Tri string

// Values of Tri.
const (
	Yes     Tri = "yes"
	No      Tri = "no"
	Unknown Tri = "unknown"
)

// Entry is one core dump found on the host.
type Entry struct {
	Source string `json:"source"`
	// ID is the store's name for the entry (file or directory name).
	ID string `json:"id"`
	// Path is the file that holds the core: the core itself, a compressed
	// core, or the .crash report that embeds it. Empty when the store knows
	// of a crash whose core was not kept.
	Path string `json:"path,omitempty"`
	// Report is the .crash file or ABRT directory the entry came from.
	Report string `json:"report,omitempty"`
	// Journal names a core systemd-coredump kept in the journal itself
	// (Storage=journal: the COREDUMP field of its record) rather than in a
	// file: "journal:PID:USEC" (JournalName), which coroner analyze takes.
	// Path is then empty.
	Journal string `json:"journal,omitempty"`
	PID     int    `json:"pid,omitempty"`
	// PIDFrom says where PID comes from: "store" (the store's metadata),
	// "core" (the core's own notes) or "name" (only the file name, when
	// the core's notes were not read: least sure).
	PIDFrom string `json:"pid_from,omitempty"`
	// TIDs are the process's threads as the core's notes list them (the
	// thread that dumped first), when the notes were read.
	TIDs   []int  `json:"tids,omitempty"`
	UID    int    `json:"uid"`
	GID    int    `json:"gid,omitempty"`
	Exe    string `json:"exe,omitempty"`
	Comm   string `json:"comm,omitempty"`
	Signal int    `json:"signal,omitempty"`
	// Time is when the process crashed (store metadata, else the file's
	// modification time).
	Time time.Time `json:"time"`
	// Size is the size on disk of Path.
	Size int64 `json:"size"`
	// CoreSize is the uncompressed size of the core when known.
	CoreSize int64 `json:"core_size,omitempty"`
	// Compression is "" for a plain core, else zstd, lz4, xz, gzip or zlib.
	Compression string `json:"compression,omitempty"`
	Truncated   Tri    `json:"truncated"`
	// TruncatedWhy says how truncation was detected (or why it is unknown).
	TruncatedWhy string `json:"truncated_why,omitempty"`
	Analysable   Tri    `json:"analysable"`
	// Why explains Analysable when it is not Yes (or adds a caveat).
	Why string `json:"why,omitempty"`
	// BuildID is the executable's build-id recorded in the core;
	// FileBuildID the one of the executable on disk now.
	BuildID     string `json:"build_id,omitempty"`
	FileBuildID string `json:"file_build_id,omitempty"`
	// PHPModule is the library of PHP the process mapped when its
	// executable is not PHP itself (libphp8.2.so of Apache's mod_php,
	// FrankenPHP), from the core's NT_FILE; MapsKnown says the core's
	// mappings were read, so that an empty PHPModule means it maps none.
	PHPModule string `json:"php_module,omitempty"`
	MapsKnown bool   `json:"maps_known,omitempty"`
	// Meta holds the store's own fields (xattrs, journal, .crash, ABRT files).
	Meta map[string]string `json:"meta,omitempty"`

	// cursor is the journal cursor of the record holding the core (Journal).
	cursor string
	// namePID is the pid the file name gives (core.%e.%p.%t), used when
	// neither the store nor the core's notes tell.
	namePID int
}

// Name is what names the entry's core to coroner analyze: its file (Path),
// else its journal name (Journal); "" when the core was not kept.
func (e *Entry) Name() string {
	if e.Path != "" {
		return e.Path
	}
	return e.Journal
}

// SignalName returns the SIGxxx name of the entry's signal, or "".
func (e *Entry) SignalName() string { return signals.Name(e.Signal) }

// signalNumber parses "11", "SIGSEGV" or "SEGV".
func signalNumber(s string) int {
	n, _ := signals.Parse(s)
	return int(n)
}

func (e *Entry) meta(k, v string) {
	if v == "" {
		return
	}
	if e.Meta == nil {
		e.Meta = map[string]string{}
	}
	e.Meta[k] = v
}
