package watch

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Quarantined is a core whose analysis made the analysis process die
// (out of memory, killed) MaxFailures times: it is not analysed again
// while it is unchanged.
type Quarantined struct {
	Path  string    `json:"path"`
	Size  int64     `json:"size"`
	MTime time.Time `json:"mtime"`
	// Failures counts the analyses that died; Reason is the last one's.
	Failures int       `json:"failures"`
	Reason   string    `json:"reason"`
	Time     time.Time `json:"time"`
	// Quarantined is set once Failures reached the bound.
	Quarantined bool `json:"quarantined"`
}

// quarantine remembers the cores whose analysis failed, on disk when it
// has a file (written atomically after each change).
type quarantine struct {
	file string
	max  int
	mu   sync.Mutex
	m    map[string]*Quarantined
}

func openQuarantine(file string, max int) (*quarantine, error) {
	q := &quarantine{file: file, max: max, m: map[string]*Quarantined{}}
	if file == "" {
		return q, nil
	}
	b, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return q, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read quarantine: %w", err)
	}
	var list []*Quarantined
	if err := json.Unmarshal(b, &list); err != nil {
		// A damaged file must not stop the service: start afresh.
		return q, nil
	}
	for _, e := range list {
		q.m[e.Path] = e
	}
	return q, nil
}

// same reports whether e is about the file as it is now (a new core at
// the same path starts afresh).
func (e *Quarantined) same(size int64, mtime time.Time) bool {
	return e.Size == size && e.MTime.Equal(mtime)
}

// held reports whether the core is quarantined.
func (q *quarantine) held(path string, size int64, mtime time.Time) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.m[path]
	return e != nil && e.Quarantined && e.same(size, mtime)
}

// fail counts a failed analysis of the core and returns its record; the
// core is quarantined once it failed max times.
func (q *quarantine) fail(path string, size int64, mtime time.Time, reason string) Quarantined {
	q.mu.Lock()
	defer q.mu.Unlock()
	e := q.m[path]
	if e == nil || !e.same(size, mtime) {
		e = &Quarantined{Path: path, Size: size, MTime: mtime}
		q.m[path] = e
	}
	e.Failures++
	e.Reason, e.Time = reason, time.Now().UTC()
	e.Quarantined = e.Failures >= q.max
	q.saveLocked()
	return *e
}

// forget drops what is known about a core (analysed after all, or gone).
func (q *quarantine) forget(path string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if _, ok := q.m[path]; ok {
		delete(q.m, path)
		q.saveLocked()
	}
}

// List returns the quarantined cores, by path.
func (q *quarantine) list() []Quarantined {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Quarantined
	for _, e := range q.m {
		if e.Quarantined {
			out = append(out, *e)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

func (q *quarantine) saveLocked() {
	if q.file == "" {
		return
	}
	list := make([]*Quarantined, 0, len(q.m))
	for _, e := range q.m {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(q.file), ".quarantine-*")
	if err != nil {
		return
	}
	_, werr := tmp.Write(append(b, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if werr != nil || serr != nil || cerr != nil || os.Rename(tmp.Name(), q.file) != nil {
		os.Remove(tmp.Name())
	}
}
