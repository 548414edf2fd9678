package analyze

import (
	"testing"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/labtest"
)

// TestLabJITBuffer checks that the OPcache JIT buffer the PHP stage
// locates through zend_jit_status (opcache.so on the host's PHP 8.2, the
// PHP binary itself on 8.5) is what analyze labels [php-jit]: one region,
// holding the buffer's bounds.
func TestLabJITBuffer(t *testing.T) {
	labs := []*labtest.Lab{labtest.Get(t)}
	if _, ok := labtest.Releases["experimental"]; ok {
		labs = append(labs, labtest.Release(t, "experimental"))
	}
	for _, lab := range labs {
		sc := lab.Scenarios["ffi-null-code"]
		if sc == nil {
			t.Fatalf("PHP %s: no ffi-null-code scenario", lab.PHPVersion)
		}
		t.Run(lab.PHPVersion, func(t *testing.T) {
			rep, err := Core(sc.Core, Options{Sysroot: lab.Sysroot})
			if err != nil {
				t.Fatal(err)
			}
			if rep.PHP == nil || rep.PHP.JIT == nil || rep.PHP.JIT.BufferEnd <= rep.PHP.JIT.BufferStart {
				t.Fatalf("JIT buffer not located: %+v", rep.PHP)
			}
			start, end := rep.PHP.JIT.BufferStart, rep.PHP.JIT.BufferEnd
			var jit []crash.Module
			for _, m := range rep.Modules {
				if m.Kind == crash.ModulePHPJIT {
					jit = append(jit, m)
				}
			}
			if len(jit) != 1 || jit[0].Start > start || jit[0].End < end {
				t.Errorf("[php-jit] modules %+v, buffer [%#x, %#x)", jit, uint64(start), uint64(end))
			}
		})
	}
}
