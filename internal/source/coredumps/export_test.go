package coredumps

import "testing"

// Exported for the external tests (cores_test), which may import packages
// that themselves import cores.

// TestStores is a set of stores built from one real core.
type TestStores = testStores

// BuildTestStores builds every store format from a real core.
func BuildTestStores(t testing.TB) *TestStores { return buildStores(t) }

// Options returns discovery options limited to the test stores.
func (s *testStores) Options() DiscoverOptions { return s.options() }

// RawCore returns the path of the raw core the stores were built from.
func (s *testStores) RawCore() string { return s.rc.Core }

// TruncatedCore returns the path of the truncated raw core.
func (s *testStores) TruncatedCore() string { return s.truncRaw }

// RealCore returns the core of the real crashed test program, its
// executable and pid.
func RealCore(t testing.TB) (core, exe string, pid int) {
	rc := getRealCore(t)
	return rc.Core, rc.Exe, rc.PID
}
