package symbols

import (
	"reflect"
	"testing"

	"golang.org/x/arch/x86/x86asm"
)

// TestCacheRecordRoundTrip: an object given the record of another run
// answers Symbols, Locations, CallTarget and TailCallChain the same
// without reading its symbol table or decompressing a debug section.
func TestCacheRecordRoundTrip(t *testing.T) {
	bin := buildProgram(t, "tailcall.c", "-O2", "-g")
	first, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	top, _ := first.FunctionEntry("top")
	middle, _ := first.FunctionEntry("middle")
	var addrs []uint64
	for _, s := range first.Symbols() {
		addrs = append(addrs, s.Value, s.Value+1, s.Value+s.Size/2)
	}
	addrs = append(addrs, 0x1) // nothing there
	locs := first.Locations(addrs)
	leaf := first.Scopes(symbolStart(t, first, "leaf"))[0].Entry
	ret := afterInsn(t, first, top, x86asm.CALL)
	e1, n1, ok1 := first.CallTarget(ret)
	chain := first.TailCallChain(middle, leaf)
	if len(chain) != 1 || !ok1 {
		t.Fatalf("chain %v, call target %v", chain, ok1)
	}
	rec, dirty := first.CacheRecord()
	if !dirty {
		t.Fatal("a first run's record is not new")
	}

	second, err := Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if second.CacheKey() != first.CacheKey() {
		t.Fatal("cache keys differ")
	}
	if err := second.UseCacheRecord(rec); err != nil {
		t.Fatal(err)
	}
	if got := second.Symbols(); !reflect.DeepEqual(got, first.Symbols()) {
		t.Errorf("symbols differ: %d vs %d", len(got), len(first.Symbols()))
	}
	if got := second.Locations(addrs); !reflect.DeepEqual(got, locs) {
		t.Errorf("locations differ")
	}
	if e, n, ok := second.CallTarget(ret); e != e1 || n != n1 || ok != ok1 {
		t.Errorf("call target %#x %q %v, first run %#x %q %v", e, n, ok, e1, n1, ok1)
	}
	if got := second.TailCallChain(middle, leaf); !reflect.DeepEqual(got, chain) {
		t.Errorf("chain %v, first run %v", got, chain)
	}
	if second.info != nil || second.lineSrc != nil {
		t.Error("the second run decoded debug sections")
	}
	if _, dirty := second.CacheRecord(); dirty {
		t.Error("nothing new, yet the record is new")
	}
	// A new address makes it new again.
	second.Locations([]uint64{addrs[0] + 2})
	if _, dirty := second.CacheRecord(); !dirty {
		t.Error("a new address did not make the record new")
	}
	if err := second.UseCacheRecord(rec); err == nil {
		t.Error("a record was taken after lookups began")
	}
}

// FuzzCacheRecord: a damaged record is an error, never a panic or a large
// allocation.
func FuzzCacheRecord(f *testing.F) {
	c := newCacheRecord()
	c.syms = []Symbol{{Name: "leaf", Value: 0x1170, Size: 0x10, Source: "symtab"}}
	c.source = "symtab"
	c.locs[0x1170] = &Location{File: "t.c", Line: 10, Scopes: []Scope{{Name: "leaf", Entry: 0x1170}}}
	c.locs[0x1] = nil
	c.calls[0x1198] = cachedCall{entry: 0x1180, name: "middle", ok: true}
	c.tails[0x1180] = []callSite{{ret: 0x1184, tail: true, entry: 0x1170, name: "leaf", target: true}}
	f.Add(encodeCacheRecord(c))
	f.Add([]byte(cacheFormat + "\n\x01\x05hello\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeCacheRecord(b); err == nil {
			encodeCacheRecord(r)
		}
	})
}
