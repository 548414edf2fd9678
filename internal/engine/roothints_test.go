package engine

import (
	"slices"
	"testing"

	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// TestRootHints takes systemd-coredump's COREDUMP_ROOT (a chrooted
// process's root as this host names it) as a root to try, and nothing
// that is not a directory of this host.
func TestRootHints(t *testing.T) {
	dir := t.TempDir()
	for root, want := range map[string][]string{dir: {dir}, "/": nil, "": nil, dir + "/absent": nil, "relative/dir": nil} {
		ent := &coredumps.Entry{Meta: map[string]string{"journal.COREDUMP_ROOT": root}}
		if got := rootHints(ent); !slices.Equal(got, want) {
			t.Errorf("COREDUMP_ROOT=%q: hints %v, want %v", root, got, want)
		}
	}
	if rootHints(nil) != nil {
		t.Error("hints without a store entry")
	}
}
