package php

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the CPU time (user + system) this process used so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDerive measures deriving the layout of each release's php-fpm
// (lab/php-dev-headers.sh) without the cache, as the first analysis of a
// core of that build does: reading the relocations and the anchors' code,
// evaluating them and applying the rules. Opening the binary and reading
// its symbols, which finding the globals needs anyway, is not counted.
func BenchmarkDerive(b *testing.B) {
	root := phpDevRoot()
	bins, _ := filepath.Glob(filepath.Join(root, "*", "usr/sbin/php-fpm*"))
	if len(bins) == 0 {
		b.Skipf("no PHP release unpacked under %s (run lab/php-dev-headers.sh SUITE)", root)
	}
	for _, bin := range bins {
		b.Run(filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(bin))))+"/"+filepath.Base(bin), func(b *testing.B) {
			o, err := openObject(bin)
			if err != nil {
				b.Fatal(err)
			}
			defer o.close()
			sym, _ := readEngineSymbols(o)
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				o.links = nil
				d := deriveLayout(o, sym)
				if len(d.fields) < 40 {
					b.Fatalf("%d fields derived", len(d.fields))
				}
			}
			// CPU time is the figure to read on a busy machine, where the
			// wall time per op also counts the waits for a core.
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(b.N), "cpu-ms/op")
		})
	}
}
