package coredumps

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkDiscover1000 discovers a systemd-coredump store of 1,000
// zstd-compressed real cores with xattrs (each entry's notes are read from
// a decompressed prefix, its executable's build-id checked).
func BenchmarkDiscover1000(b *testing.B) {
	rc := getRealCore(b)
	dir := b.TempDir()
	zst := filepath.Join(b.TempDir(), "core.zst")
	compressWith(b, "zstd", rc.Core, zst)
	data, err := os.ReadFile(zst)
	if err != nil {
		b.Fatal(err)
	}
	base := time.Now().Add(-time.Hour)
	for i := 0; i < 1000; i++ {
		ts := base.Add(time.Duration(i) * time.Second).UnixMicro()
		p := filepath.Join(dir, fmt.Sprintf("core.crash.0.%s.%d.%d.zst", testBootID, 10000+i, ts))
		if err := os.WriteFile(p, data, 0o640); err != nil {
			b.Fatal(err)
		}
		setXattrs(b, p, map[string]string{"pid": strconv.Itoa(10000 + i), "uid": "0", "signal": "11",
			"timestamp": strconv.FormatInt(ts, 10), "comm": "crash", "exe": rc.Exe})
	}
	for _, quick := range []bool{false, true} {
		b.Run(fmt.Sprintf("quick=%v", quick), func(b *testing.B) {
			opts := DiscoverOptions{Sources: []string{SourceSystemd}, SystemdDir: dir, NoJournal: true, Quick: quick}
			for b.Loop() {
				entries, warns := Discover(opts)
				if len(entries) != 1000 || len(warns) != 0 {
					b.Fatalf("%d entries, warnings %v", len(entries), warns)
				}
				if !quick && entries[0].Analysable != Yes {
					b.Fatalf("analysable %s: %s", entries[0].Analysable, entries[0].Why)
				}
			}
		})
	}
}
