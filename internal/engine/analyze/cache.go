package analyze

import (
	"encoding/binary"
	"errors"

	"github.com/coroner-dev/coroner/internal/engine/symbols"
)

// loadCacheRecords gives the modules that hold frames what earlier runs
// learnt about them (their symbol tables, the debug information at frame
// addresses), from the disk cache.
func (a *analysis) loadCacheRecords() {
	if a.cache == nil {
		return
	}
	for _, m := range a.modulesWithFrames() {
		if b, ok := a.cache.Get("symbols", m.obj.CacheKey()); ok {
			_ = m.obj.UseCacheRecord(b) // a damaged record is rewritten at the end
		}
	}
}

// saveCacheRecords stores what this run learnt about the modules.
func (a *analysis) saveCacheRecords() {
	if a.cache == nil {
		return
	}
	for _, m := range a.modulesWithFrames() {
		if rec, changed := m.obj.CacheRecord(); changed {
			if err := a.cache.Put("symbols", m.obj.CacheKey(), rec); err != nil {
				a.warn("disk cache: %v", err)
				return
			}
		}
	}
}

// The names of PHP's internal functions (read from its function tables)
// depend only on the binary: they are cached under the object's key.

const phpNamesFormat = "coroner-php-names-1\n"

func encodePHPNames(syms []symbols.Symbol) []byte {
	b := []byte(phpNamesFormat)
	b = binary.AppendUvarint(b, uint64(len(syms)))
	for _, s := range syms {
		b = binary.AppendUvarint(b, s.Value)
		b = binary.AppendUvarint(b, s.Size)
		b = binary.AppendUvarint(b, uint64(len(s.Name)))
		b = append(b, s.Name...)
	}
	return b
}

var errPHPNames = errors.New("damaged PHP names cache entry")

func decodePHPNames(b []byte) ([]symbols.Symbol, error) {
	if len(b) < len(phpNamesFormat) || string(b[:len(phpNamesFormat)]) != phpNamesFormat {
		return nil, errPHPNames
	}
	b = b[len(phpNamesFormat):]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	n, ok := next()
	if !ok || n > uint64(len(b))/3 {
		return nil, errPHPNames
	}
	out := make([]symbols.Symbol, 0, n)
	for i := uint64(0); i < n; i++ {
		v, ok1 := next()
		size, ok2 := next()
		l, ok3 := next()
		if !ok1 || !ok2 || !ok3 || l > uint64(len(b)) {
			return nil, errPHPNames
		}
		out = append(out, symbols.Symbol{Name: string(b[:l]), Value: v, Size: size, Source: "zend-function-entry"})
		b = b[l:]
	}
	if len(b) != 0 {
		return nil, errPHPNames
	}
	return out, nil
}
