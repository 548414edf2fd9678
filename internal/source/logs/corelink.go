package logs

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// CoreLinks says which of the cores were linked to incidents, and why the
// others were not: a core that matches no crash is a finding in itself
// (another program crashed, the logs do not reach back that far, or the
// pid was reused).
type CoreLinks struct {
	// Cores counts the cores with a file; Linked those linked to an incident.
	Cores  int `json:"cores"`
	Linked int `json:"linked"`
	// NotKept counts store records of crashes whose core was not kept.
	NotKept int `json:"not_kept,omitempty"`
	// Unlinked lists the cores not linked to any incident, with the reason.
	Unlinked []UnlinkedCore `json:"unlinked,omitempty"`
}

// UnlinkedCore is a core no incident took, and why.
type UnlinkedCore struct {
	// Path is the core file (or the journal name of a core kept in
	// systemd's journal).
	Path string    `json:"path"`
	PID  int       `json:"pid,omitempty"`
	Comm string    `json:"comm,omitempty"`
	Exe  string    `json:"exe,omitempty"`
	Time time.Time `json:"time,omitzero"`
	// PHP is true when the core is of a PHP process (by its executable or
	// command name).
	PHP bool   `json:"php"`
	Why string `json:"why"`
}

// coreMatch is a candidate link between an incident and a core.
type coreMatch struct {
	inc, core int
	d         time.Duration
	byThread  bool // the incident's pid is a thread of the core's process, not its pid
}

// sameProcessName compares a command name from a log (comm, up to 15
// characters as the kernel prints it) with a core's: equal, or one a
// prefix of the other (comm is truncated). Unknown names do not differ.
func sameProcessName(a, b string) bool {
	a, b = strings.TrimSpace(a), strings.TrimSpace(b)
	if a == "" || b == "" {
		return true
	}
	if len(a) > 15 {
		a = a[:15]
	}
	if len(b) > 15 {
		b = b[:15]
	}
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

// coreName is the command name a core records, else its executable's base
// name.
func coreName(c *coredumps.Entry) string {
	if c.Comm != "" {
		return c.Comm
	}
	if c.Exe != "" {
		return filepath.Base(c.Exe)
	}
	return ""
}

// hasThread reports whether tid is one of the core's threads.
func hasThread(c *coredumps.Entry, tid int) bool {
	for _, t := range c.TIDs {
		if t == tid {
			return true
		}
	}
	return false
}

// linkCores attaches core files to incidents by the facts the cores hold:
// the pid (the core's own notes, or its store's metadata), any of its
// threads (the kernel's segfault line names the thread that faulted), its
// command name (a different program with a reused pid is not the same
// crash) and its dump time. Cores of unknown pid (a bare "core") go by time
// alone, with low confidence. It returns each incident's core entry and
// what became of every core.
func linkCores(incs []*Incident, cores []*coredumps.Entry) (map[*Incident]*coredumps.Entry, CoreLinks) {
	byInc := map[*Incident]*coredumps.Entry{}
	var cl CoreLinks
	used := map[int]bool{}
	why := map[int]string{}
	for i, c := range cores {
		if c.Name() == "" {
			used[i] = true
			cl.NotKept++
			continue
		}
		cl.Cores++
	}
	// Cores a log named (systemd-coredump's COREDUMP_FILENAME).
	for _, inc := range incs {
		if inc.Core == "" {
			continue
		}
		for i, c := range cores {
			if c.Path == inc.Core && !used[i] {
				used[i] = true
				byInc[inc] = c
			}
		}
	}
	// Candidates by pid or thread id, nearest in time first.
	var cands []coreMatch
	for ii, inc := range incs {
		if inc.Core != "" || inc.PID == 0 {
			continue
		}
		for i, c := range cores {
			if used[i] {
				continue
			}
			byThread := false
			switch {
			case c.PID == inc.PID:
			case hasThread(c, inc.PID):
				byThread = true
			default:
				continue
			}
			// A thread may carry a name of its own (pthread_setname_np):
			// the kernel line prints it, the core the process's.
			if !byThread && !sameProcessName(inc.Comm, coreName(c)) {
				why[i] = fmt.Sprintf("pid %d crashed at %s as %s in the logs, but the core is of %s: the pid was reused by another program",
					inc.PID, clock(inc.Time), inc.Comm, coreName(c))
				continue
			}
			cands = append(cands, coreMatch{ii, i, absDur(c.Time.Sub(inc.Time)), byThread})
		}
	}
	sort.SliceStable(cands, func(a, b int) bool { return cands[a].d < cands[b].d })
	for _, m := range cands {
		inc, c := incs[m.inc], cores[m.core]
		if used[m.core] || inc.Core != "" {
			if !used[m.core] && why[m.core] == "" {
				why[m.core] = fmt.Sprintf("pid %d crashed at %s, but the core was dumped at %s and that crash already has a nearer core",
					inc.PID, clock(inc.Time), clock(c.Time))
			}
			continue
		}
		used[m.core] = true
		byInc[inc] = c
		inc.Core = c.Name()
		inc.CoreConfidence = ConfHigh
		who := fmt.Sprintf("core of pid %d", c.PID)
		if m.byThread {
			who = fmt.Sprintf("core of pid %d, whose thread %d is the one the logs name", c.PID, inc.PID)
		}
		reason := fmt.Sprintf("%s (%s, pid read from %s), dumped %s from the crash", who, c.Source, pidSource(c), roundDur(m.d))
		switch {
		case m.d > coreWindow || inc.Time.IsZero():
			inc.CoreConfidence = ConfMedium
			reason = fmt.Sprintf("%s (%s), but dumped %s away (pid reuse is possible)", who, c.Source, roundDur(m.d))
		case c.PIDFrom == "name":
			inc.CoreConfidence = ConfMedium
			reason += "; the pid comes from the file name only (the core's notes were not read)"
		}
		inc.Links = append(inc.Links, Link{Source: "core", Kind: "core", Time: c.Time, File: c.Name(), Confidence: inc.CoreConfidence, Reason: reason})
	}
	// Cores of unknown pid, by time alone.
	for _, inc := range incs {
		if inc.Core != "" || inc.Time.IsZero() || (!inc.CoreDumped && inc.Pool != "") {
			continue
		}
		best, bestD := -1, time.Duration(0)
		for i, c := range cores {
			if used[i] || c.PID != 0 || !sameProcessName(inc.Comm, coreName(c)) {
				continue
			}
			d := absDur(c.Time.Sub(inc.Time))
			if d <= 10*time.Second && (best < 0 || d < bestD) {
				best, bestD = i, d
			}
		}
		if best >= 0 {
			used[best] = true
			byInc[inc] = cores[best]
			inc.Core = cores[best].Name()
			inc.CoreConfidence = ConfLow
			inc.Links = append(inc.Links, Link{Source: "core", Kind: "core", Time: cores[best].Time, File: cores[best].Name(), Confidence: ConfLow,
				Reason: fmt.Sprintf("core file of unknown pid, modified %s from the crash", roundDur(bestD))})
		}
	}
	for i, c := range cores {
		if c.Name() == "" {
			continue
		}
		if used[i] {
			cl.Linked++
			continue
		}
		u := UnlinkedCore{Path: c.Name(), PID: c.PID, Comm: c.Comm, Exe: c.Exe, Time: c.Time,
			PHP: IsPHPCommand(c.Exe) || IsPHPCommand(c.Comm) || c.PHPModule != "", Why: why[i]}
		if u.Why == "" {
			u.Why = unlinkedWhy(c, incs)
		}
		cl.Unlinked = append(cl.Unlinked, u)
	}
	return byInc, cl
}

// pidSource says in words where a core entry's pid comes from.
func pidSource(c *coredumps.Entry) string {
	switch c.PIDFrom {
	case "core":
		return "the core's notes"
	case "store":
		return "the store's metadata"
	case "name":
		return "the file name"
	}
	return "unknown"
}

// unlinkedWhy explains why no incident took core c.
func unlinkedWhy(c *coredumps.Entry, incs []*Incident) string {
	if c.PID == 0 {
		return "its pid is unknown (the core's notes could not be read) and no crash without a core was logged within 10s of it"
	}
	var first, last time.Time
	for _, inc := range incs {
		if inc.Time.IsZero() {
			continue
		}
		if first.IsZero() || inc.Time.Before(first) {
			first = inc.Time
		}
		if inc.Time.After(last) {
			last = inc.Time
		}
	}
	s := fmt.Sprintf("no crash of pid %d in the logs read", c.PID)
	if c.PIDFrom == "name" {
		s += " (pid taken from the file name: the core's notes were not read)"
	}
	switch {
	case first.IsZero():
	case !c.Time.IsZero() && c.Time.Before(first.Add(-coreWindow)):
		s += fmt.Sprintf("; the core (%s) is older than the logs' first crash (%s)", clock(c.Time), clock(first))
	case !c.Time.IsZero() && c.Time.After(last.Add(coreWindow)):
		s += fmt.Sprintf("; the core (%s) is newer than the logs' last crash (%s)", clock(c.Time), clock(last))
	}
	return s
}

func clock(t time.Time) string {
	if t.IsZero() {
		return "(time unknown)"
	}
	return t.Format("2006-01-02 15:04:05")
}
