package analyze

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/symbols"
	"github.com/coroner-dev/coroner/internal/engine/unwind"
	"github.com/coroner-dev/coroner/internal/source/elfcore"
)

// maxVDSO bounds the vDSO image read from a core (the kernel's is 2 pages;
// AT_SYSINFO_EHDR comes from the core, so its mapping's size is checked).
const maxVDSO = 64 << 10

// loadVDSO reads the vDSO, the shared object the kernel maps into every
// process and no file on disk holds, from the core's own memory (the
// kernel and gdb dump it): its symbols and unwind tables name and unwind
// the frames in it (__vdso_clock_gettime) as gdb does, whatever host the
// core is analysed on. Without it those frames are "[vdso]+0x...".
func (a *analysis) loadVDSO() {
	ehdr := a.core.Auxv()[elfcore.AT_SYSINFO_EHDR]
	if ehdr == 0 {
		return
	}
	var start, end uint64
	for _, m := range a.core.Mappings() {
		if m.Start <= ehdr && ehdr < m.End {
			start, end = m.Start, m.End
			break
		}
	}
	if start != ehdr || end-start > maxVDSO {
		return
	}
	img := make([]byte, end-start)
	if n, err := a.core.ReadDumped(img, start); err != nil || n != len(img) || string(img[:4]) != "\x7fELF" {
		return
	}
	obj, err := openImage(img)
	if err != nil {
		a.warn("vDSO: %v (its frames are named by address only)", err)
		return
	}
	mod := &module{path: crash.LabelVDSO, start: start, end: end, obj: obj}
	mod.info = crash.Module{Path: crash.LabelVDSO, Start: crash.Addr(start), End: crash.Addr(end), Kind: crash.ModuleVDSO, BuildID: obj.BuildID}
	mod.bias = start
	if loads := obj.Loads(); len(loads) > 0 {
		mod.bias = start - loads[0].Vaddr&^(pageSize-1)
	}
	mod.info.Bias = crash.Addr(mod.bias)
	mod.info.Symbols = obj.SymbolSource()
	mod.unwind = &unwind.Module{Name: crash.LabelVDSO, Bias: mod.bias, Load: func() []*unwind.Table { return cfiTables(obj) }}
	a.modules = append(a.modules, mod)
	a.vdso = mod
}

// openImage opens an ELF image held in memory. The symbols package reads
// objects from files, so the image is written to a temporary file that is
// removed at once (the open object keeps its descriptor).
func openImage(img []byte) (*symbols.Object, error) {
	f, err := os.CreateTemp("", "coroner-vdso-*.so")
	if err != nil {
		return nil, fmt.Errorf("write the image: %w", err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(img); err != nil {
		f.Close()
		return nil, fmt.Errorf("write the image: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write the image: %w", err)
	}
	obj, err := symbols.OpenWithOptions(f.Name(), symbols.Options{NoHostDebug: true})
	if err != nil {
		return nil, fmt.Errorf("read the image %s: %w", filepath.Base(f.Name()), err)
	}
	return obj, nil
}
