package php

import (
	"fmt"
	"path/filepath"
	"sync"
	"time"
)

// maxCached bounds the binaries whose symbols and derived layout are kept
// in memory (a long-running `coroner watch` sees a few PHP builds).
const maxCached = 32

// engineInfo is what coroner knows about one PHP engine binary: its
// exported globals and, once derived, the layout its code shows.
type engineInfo struct {
	path string
	sym  engineSymbols
	// d is the derivation, nil until asked for (or when it failed: err).
	d    *derivation
	dErr error
}

// jitInfo is the JIT bookkeeping of an opcache.so.
type jitInfo struct {
	jit *jitSymbols
}

var cache = struct {
	sync.Mutex
	engines map[string]*engineInfo
	jits    map[string]*jitInfo
	order   []string
}{engines: map[string]*engineInfo{}, jits: map[string]*jitInfo{}}

// remember stores an entry and forgets the oldest beyond maxCached.
func remember(key string, put func()) {
	put()
	cache.order = append(cache.order, key)
	for len(cache.order) > maxCached {
		old := cache.order[0]
		cache.order = cache.order[1:]
		delete(cache.engines, old)
		delete(cache.jits, old)
	}
}

// resetCache forgets every binary (tests that patch a binary in place).
func resetCache() {
	cache.Lock()
	defer cache.Unlock()
	cache.engines = map[string]*engineInfo{}
	cache.jits = map[string]*jitInfo{}
	cache.order = nil
}

// engineAt returns what is known of the engine binary at path, reading
// its symbols on first use and deriving its layout when derive is set and
// it was not derived yet; took is the time spent deriving now (0 when it
// came from the cache). It returns nil without error when the object is not
// a PHP engine.
func engineAt(path string, derive bool) (info *engineInfo, took time.Duration, err error) {
	o, err := openObject(path)
	if err != nil {
		return nil, 0, err
	}
	defer o.close()
	key := fileKey(o)
	cache.Lock()
	defer cache.Unlock()
	info = cache.engines[key]
	if info == nil {
		info = loadDisk(o)
	}
	if info == nil {
		if err := o.loadSymbols(); err != nil {
			return nil, 0, err
		}
		sym, ok := readEngineSymbols(o)
		if !ok {
			return nil, 0, nil
		}
		info = &engineInfo{path: path, sym: sym}
	}
	if cache.engines[key] == nil {
		remember(key, func() { cache.engines[key] = info })
	}
	if derive && info.d == nil && info.dErr == nil {
		info.d, info.dErr = safeDerive(o, info.sym)
		if info.d != nil {
			took = info.d.took
			storeDisk(o, info)
		}
	}
	return info, took, nil
}

// safeDerive runs the derivation, turning a panic (a bug met on an
// unforeseen binary) into an error: a layout that cannot be derived must
// cost the derivation, not the analysis.
func safeDerive(o *object, sym engineSymbols) (d *derivation, err error) {
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("derive the layout from %s: internal error: %v", o.path, r)
		}
	}()
	return deriveLayout(o, sym), nil
}

// jitAt returns the JIT bookkeeping of an opcache.so (8.0-8.4), or nil.
func jitAt(path string) *jitSymbols {
	if filepath.Base(path) != "opcache.so" {
		return nil
	}
	o, err := openObject(path)
	if err != nil {
		return nil
	}
	defer o.close()
	key := fileKey(o)
	cache.Lock()
	defer cache.Unlock()
	if j, ok := cache.jits[key]; ok {
		return j.jit
	}
	if j, ok := loadJITDisk(o); ok {
		remember(key, func() { cache.jits[key] = &jitInfo{jit: j} })
		return j
	}
	x := &deriver{o: o, d: &derivation{fields: map[string]derived{}, conflicts: map[string]string{}}, anchors: map[string]*anchor{}, dataSymbols: map[uint64]string{}}
	j := func() (j *jitSymbols) {
		defer func() {
			if recover() != nil {
				j = nil
			}
		}()
		return jitFromCode(x)
	}()
	remember(key, func() { cache.jits[key] = &jitInfo{jit: j} })
	storeJITDisk(o, j)
	return j
}
