package coredumps

import (
	"encoding/json"
	"fmt"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/units"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteTable prints entries as an aligned table, newest first as given.
// With verbose, every entry gets its store details; otherwise only the
// reason an entry cannot be analysed (or is truncated) follows it.
func WriteTable(w io.Writer, entries []*Entry, verbose bool) error {
	return WriteTableIn(w, entries, verbose, time.Local)
}

// WriteTableIn is WriteTable with the times shown in loc.
func WriteTableIn(w io.Writer, entries []*Entry, verbose bool, loc *time.Location) error {
	entries = sanitize.Copy(entries) // names, command lines and reasons come from the cores and stores
	if len(entries) == 0 {
		_, err := fmt.Fprintln(w, "No cores found. `coroner audit` tells why crashing workers leave none.")
		return err
	}
	rows := [][]string{{"TIME", "PID", "SIGNAL", "EXECUTABLE", "SIZE", "COMPRESSED", "TRUNCATED", "ANALYSABLE", "SOURCE", "PATH"}}
	notes := [][]string{nil}
	for _, e := range entries {
		t := "-"
		if !e.Time.IsZero() {
			t = e.Time.In(loc).Format("2006-01-02 15:04:05 MST")
		}
		pid := "-"
		if e.PID != 0 {
			pid = strconv.Itoa(e.PID)
		}
		exe := e.Exe
		if exe == "" {
			exe = e.Comm
		}
		size := "-"
		switch {
		case e.Path != "":
			size = units.Bytes(e.Size)
		case e.Journal != "" && e.CoreSize > 0:
			size = units.Bytes(e.CoreSize)
		}
		comp := "no"
		if e.Compression != "" {
			comp = e.Compression
		}
		if e.Journal != "" {
			comp = "journal" // journald's own compression, undone by journalctl
		}
		path := e.Name()
		if path == "" {
			path = orDash(e.Report)
		}
		rows = append(rows, []string{t, pid, orDash(e.SignalName()), orDash(exe), size, comp,
			string(e.Truncated), string(e.Analysable), e.Source, path})
		var n []string
		if e.Why != "" {
			n = append(n, e.Why)
		}
		if e.Truncated == Yes && e.TruncatedWhy != "" {
			n = append(n, "truncated: "+e.TruncatedWhy)
		}
		if verbose {
			if e.CoreSize > 0 && e.Compression != "" {
				n = append(n, "uncompressed size "+units.Bytes(e.CoreSize))
			}
			if e.BuildID != "" {
				n = append(n, "build-id "+e.BuildID)
			}
			for _, k := range sortedKeys(e.Meta) {
				n = append(n, k+": "+e.Meta[k])
			}
		}
		notes = append(notes, n)
	}
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], len(c))
		}
	}
	var b strings.Builder
	for ri, r := range rows {
		for i, c := range r {
			if i == len(r)-1 {
				b.WriteString(c)
				break
			}
			b.WriteString(c + strings.Repeat(" ", width[i]-len(c)+2))
		}
		b.WriteByte('\n')
		for _, n := range notes[ri] {
			b.WriteString("    " + strings.ReplaceAll(n, "\n", " ") + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sortStrings(keys)
	return keys
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}

// JSONEntry is the JSON form of an Entry: the Entry and its derived fields.
type JSONEntry struct {
	*Entry
	SignalName string `json:"signal_name,omitempty"`
}

// SchemaVersion is the version of the JSON document WriteJSON writes (its
// "schema" field); it changes only when a field changes meaning or goes away.
const SchemaVersion = 1

// Document is the JSON document of `coroner cores --json`
// (docs/schema/cores.json).
type Document struct {
	Schema    int         `json:"schema"` // SchemaVersion
	Generated time.Time   `json:"generated"`
	Cores     []JSONEntry `json:"cores"`
	Warnings  []string    `json:"warnings"`
}

// WriteJSON prints entries (and warnings) as one JSON document:
// {"schema": 1, "generated": ..., "cores": [...], "warnings": [...]}.
func WriteJSON(w io.Writer, entries []*Entry, warnings []error) error {
	doc := Document{Schema: SchemaVersion, Generated: time.Now().UTC(), Cores: []JSONEntry{}, Warnings: []string{}}
	for _, e := range entries {
		doc.Cores = append(doc.Cores, JSONEntry{e, e.SignalName()})
	}
	for _, w := range warnings {
		doc.Warnings = append(doc.Warnings, w.Error())
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}
