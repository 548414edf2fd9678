package coredumps_test

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// analysis returns the JSON of `coroner analyze` on path without the
// fields that name the file or measure time.
func analysis(t *testing.T, path string) []byte {
	t.Helper()
	rep, err := analyze.Core(path, analyze.Options{})
	if err != nil {
		t.Fatalf("analyze %s: %v", path, err)
	}
	norm := *rep
	norm.Process.CorePath = ""
	norm.Timings = nil
	b, err := json.Marshal(&norm)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAnalyzeEveryStoreLikeRawCore: analysing a core through each store
// format (zstd/lz4/xz systemd entries with xattrs, gzip and zstd .crash
// reports, the Apport core directory, an ABRT directory, a gzip'd core)
// gives the same report as analysing the raw core.
func TestAnalyzeEveryStoreLikeRawCore(t *testing.T) {
	s := coredumps.BuildTestStores(t)
	want := analysis(t, s.RawCore())
	var rep crash.Report
	if err := json.Unmarshal(want, &rep); err != nil || rep.Signal.Number != 11 || len(rep.Threads) == 0 {
		t.Fatalf("raw core analysis is not a SIGSEGV with threads: %v %+v", err, rep.Signal)
	}
	wantTrunc := analysis(t, s.TruncatedCore())
	entries, _ := coredumps.Discover(s.Options())
	n := 0
	for _, e := range entries {
		id := e.Path
		if e.Source == coredumps.SourceABRT {
			id = e.Report
		}
		got, plain, cleanup, err := coredumps.Resolve(id, coredumps.ResolveOptions{Discover: s.Options()})
		if err != nil {
			t.Errorf("resolve %s: %v", id, err)
			continue
		}
		want := want
		if got.Truncated == coredumps.Yes {
			want = wantTrunc
		}
		if got := analysis(t, plain); !bytes.Equal(got, want) {
			t.Errorf("%s (%s/%s): analysis differs from the raw core's:\n%s\nwant\n%s", id, e.Source, e.Compression, got, want)
		}
		cleanup()
		n++
	}
	if n != 11 {
		t.Errorf("compared %d entries, want 11", n)
	}
}

// TestAnalyzeJournalCoreLikeRawCore: a core kept in the journal (a real
// journal file written by systemd-journal-remote), found by discovery and
// extracted by Resolve, gives the same report as the raw core.
func TestAnalyzeJournalCoreLikeRawCore(t *testing.T) {
	core, exe, pid := coredumps.RealCore(t)
	ts := time.Date(2026, 12, 2, 8, 30, 0, 0, time.UTC)
	journal := labtest.CoredumpJournal(t, t.TempDir(), "system",
		labtest.CoredumpRecord{PID: pid, Signal: 11, Exe: exe, Comm: "crash", Time: ts, Core: core})
	want := analysis(t, core)
	opts := coredumps.DiscoverOptions{Sources: []string{coredumps.SourceSystemd}, SystemdDir: t.TempDir(), Journal: journal}
	entries, _ := coredumps.Discover(opts)
	if len(entries) != 1 || entries[0].Journal == "" {
		t.Fatalf("entries %+v", entries)
	}
	_, plain, cleanup, err := coredumps.Resolve(entries[0].Name(), coredumps.ResolveOptions{Discover: opts})
	if err != nil {
		t.Fatal(err)
	}
	defer cleanup()
	if got := analysis(t, plain); !bytes.Equal(got, want) {
		t.Errorf("analysis of the core from the journal differs from the raw core's:\n%s\nwant\n%s", got, want)
	}
}
