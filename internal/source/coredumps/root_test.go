package coredumps

import (
	"strings"
	"testing"

	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/roots"
)

// TestCoreOfAnotherRoot lists the core of a php-fpm that ran in a Debian
// trixie chroot: its executable is not on this host, so it is not
// analysable as it is, unless its root is found (here systemd-coredump's
// COREDUMP_ROOT names it); never "upgraded since the crash".
func TestCoreOfAnotherRoot(t *testing.T) {
	l := labtest.Release(t, "trixie")
	s := l.Scenarios["abort"]
	if s == nil || l.Sysroot == "" {
		t.Fatalf("the trixie lab has no abort core in a chroot: %+v", l)
	}
	defer func(f func() []roots.Root) { discoverRoots = f }(discoverRoots)
	discoverRoots = func() []roots.Root { return nil }

	e := &Entry{Source: "directory", Path: s.Core}
	inspect(e, false, &buildIDCache{})
	if e.BuildID == "" || e.Analysable != No || strings.Contains(e.Why, "upgraded since") || !strings.Contains(e.Why, "--sysroot") {
		t.Errorf("core of another root, not found: build-id %q analysable %s (%s)", e.BuildID, e.Analysable, e.Why)
	}
	e = &Entry{Source: "systemd-coredump", Path: s.Core, Meta: map[string]string{"journal.COREDUMP_ROOT": l.Sysroot}}
	inspect(e, false, &buildIDCache{})
	if e.Analysable != Yes || !strings.Contains(e.Why, "ran in the root at "+l.Sysroot) || e.Meta["root"] != l.Sysroot {
		t.Errorf("core of another root named by COREDUMP_ROOT: analysable %s (%s), meta %v", e.Analysable, e.Why, e.Meta)
	}
}
