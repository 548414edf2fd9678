package logs

import (
	"sync"

	"github.com/coroner-dev/coroner/internal/engine/symbols"
)

// ObjectSymbolizer implements Symbolizer with the symbols package
// (.symtab/.dynsym, separate debug files), caching opened objects.
type ObjectSymbolizer struct {
	mu   sync.Mutex
	objs map[string]*symbols.Object
}

// NewObjectSymbolizer returns an empty ObjectSymbolizer.
func NewObjectSymbolizer() *ObjectSymbolizer {
	return &ObjectSymbolizer{objs: map[string]*symbols.Object{}}
}

// Lookup implements Symbolizer.
func (s *ObjectSymbolizer) Lookup(path string, addr uint64) (string, uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objs[path]
	if !ok {
		var err error
		o, err = symbols.Open(path)
		if err != nil {
			o = nil
		}
		s.objs[path] = o
	}
	if o == nil {
		return "", 0, false
	}
	sym, ok := o.Lookup(addr)
	if !ok {
		return "", 0, false
	}
	return sym.Name, addr - sym.Value, true
}

// Close closes the opened objects.
func (s *ObjectSymbolizer) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, o := range s.objs {
		if o != nil {
			o.Close()
		}
		delete(s.objs, p)
	}
	return nil
}
