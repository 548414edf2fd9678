package logs

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkReadInput reads each file of a generated log set (see
// bench/logs/run.sh); set CORONER_LOGBENCH to its logs directory.
func BenchmarkReadInput(b *testing.B) {
	dir := os.Getenv("CORONER_LOGBENCH")
	if dir == "" {
		b.Skip("CORONER_LOGBENCH not set (see bench/logs/run.sh)")
	}
	for _, name := range []string{"access.log", "error.log", "kern.log", "php8.2-fpm.log"} {
		p := filepath.Join(dir, name)
		fi, err := os.Stat(p)
		if err != nil {
			b.Skip(err)
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(fi.Size())
			for i := 0; i < b.N; i++ {
				if _, _, err := ReadInput(Input{Path: p}, time.UTC, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
