package x86sym

import (
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// TestRelativePrefix: the R_X86_64_RELATIVE entries ReadLinks skips at the
// start of .rela.dyn (DT_RELACOUNT) are all RELATIVE, every other entry is
// past them, and the skip happens (php-fpm's .rela.dyn is ~99% of them).
func TestRelativePrefix(t *testing.T) {
	root := os.Getenv("CORONER_PHP_DEV") // as package php's tests (lab/php-dev-headers.sh)
	if root == "" {
		root = "/var/cache/coroner/php-dev"
	}
	bins, _ := filepath.Glob(filepath.Join(root, "*", "usr/sbin/php-fpm*"))
	bins = append(bins, "/usr/sbin/php-fpm8.2", "/lib/x86_64-linux-gnu/libc.so.6")
	skipped := 0
	for _, bin := range bins {
		f, err := elf.Open(bin)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		sec := f.Section(".rela.dyn")
		if sec == nil {
			f.Close()
			continue
		}
		data, err := sec.Data()
		if err != nil {
			t.Fatal(err)
		}
		skip := relativePrefix(f, sec)
		for i := uint64(0); i+relaEntrySize <= uint64(len(data)); i += relaEntrySize {
			if typ := uint32(binary.LittleEndian.Uint64(data[i+8:])); i < skip && typ != rX8664Relative {
				t.Errorf("%s: entry %d (type %d) is in the %d bytes skipped", bin, i/relaEntrySize, typ, skip)
				break
			}
		}
		if skip > 0 {
			skipped++
		}
		t.Logf("%s: %d of %d bytes of .rela.dyn skipped", bin, skip, len(data))
		f.Close()
	}
	if skipped == 0 {
		t.Skip("no object with DT_RELACOUNT here")
	}
}
