package symbols

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
)

// dedupeReference is dedupe as a plain sort and scan: by address, the
// sized name first, then the greater name.
func dedupeReference(syms []Symbol) []Symbol {
	syms = append([]Symbol(nil), syms...)
	sort.SliceStable(syms, func(i, j int) bool {
		a, b := syms[i], syms[j]
		if a.Value != b.Value {
			return a.Value < b.Value
		}
		if (a.Size > 0) != (b.Size > 0) {
			return a.Size > 0
		}
		return a.Name > b.Name
	})
	var out []Symbol
	for _, s := range syms {
		if n := len(out); n > 0 && out[n-1].Value == s.Value {
			continue
		}
		out = append(out, s)
	}
	return out
}

// TestDedupeLikeReference compares dedupe with the reference on tables
// with many aliases: both the packed sort and, for addresses too large to
// pack, the general one.
func TestDedupeLikeReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, high := range []uint64{0, 1 << 62} {
		for _, n := range []int{0, 1, 2, 50, 3000} {
			syms := make([]Symbol, n)
			for i := range syms {
				syms[i] = Symbol{Name: fmt.Sprintf("f%d", r.IntN(40)), Value: high + uint64(r.IntN(n/3+1))*16, Size: uint64(r.IntN(3)) * 8, Source: fmt.Sprint(i)}
			}
			got, want := dedupe(append([]Symbol(nil), syms...)), dedupeReference(syms)
			if len(got) != len(want) {
				t.Fatalf("high %#x n %d: %d symbols, want %d", high, n, len(got), len(want))
			}
			for i := range got {
				// Equal names and sizedness are interchangeable: compare
				// what decides.
				g, w := got[i], want[i]
				if g.Value != w.Value || g.Name != w.Name || (g.Size > 0) != (w.Size > 0) {
					t.Fatalf("high %#x n %d: [%d] = %+v, want %+v", high, n, i, g, w)
				}
			}
		}
	}
}

// TestRadixSortLikeSlicesSort sorts random keys (some with shared high
// bytes, some sharing every byte but one) both ways.
func TestRadixSortLikeSlicesSort(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 255, 256, 1000, 20000} {
		for _, mask := range []uint64{^uint64(0), 0xffff_ffff, 0xff00, 0} {
			keys := make([]uint64, n)
			for i := range keys {
				keys[i] = 0x7f00_0000_0000_0000 | r.Uint64()&mask
			}
			want := append([]uint64(nil), keys...)
			slices.Sort(want)
			radixSort(keys)
			if !slices.Equal(keys, want) {
				t.Fatalf("n %d mask %#x: radixSort differs from slices.Sort", n, mask)
			}
		}
	}
}
