package render

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestJSONLikeEncoder: the streamed JSON is byte for byte what
// encoding/json's indenting Encoder writes, for reports with every kind of
// field set or empty.
func TestJSONLikeEncoder(t *testing.T) {
	full := hostileReport()
	at := 3
	full.Threads[0].Frames[0].PHPFrame = &at
	full.Threads[0].Registers.Set(crash.RegRIP, 0x1234)
	full.Threads[0].Cycles = []crash.Cycle{{Start: 1, End: 9, Length: 2, Repeats: 4}}
	full.Diagnosis = []crash.Diagnosis{{Rule: "r", Title: "t", Fix: []crash.Fix{{Kind: crash.FixINI, Setting: "pcre.jit", Value: "0"}}}}
	full.Timings = []crash.Duration{{Stage: "core", MS: 1.5}}
	for name, r := range map[string]*crash.Report{"empty": {}, "full": full} {
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
		if err := JSON(&got, r); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%s: streamed JSON differs from encoding/json's:\n%s\nwant:\n%s", name, got.String(), want.String())
		}
	}
}

type zeroable struct{ set bool }

func (z zeroable) IsZero() bool                 { return !z.set }
func (z zeroable) MarshalJSON() ([]byte, error) { return []byte(`{"set":true}`), nil }

type ptrZeroable struct{ N int }

func (z *ptrZeroable) IsZero() bool { return z.N < 0 }

// omitted has the field options encoding/json knows, set and unset.
type omitted struct {
	A zeroable    `json:"a,omitzero"`
	B ptrZeroable `json:"b,omitzero"`
	C int         `json:"c,omitzero"`
	D []int       `json:"d,omitempty"`
	E *int        `json:"e,omitempty"`
	F string      `json:"-"`
	G map[string]int
	H [2]string `json:"h"`
	i int
}

func TestJSONFieldOptions(t *testing.T) {
	n := 0
	for _, v := range []omitted{{}, {A: zeroable{true}, B: ptrZeroable{-1}, C: 1, D: []int{1}, E: &n, F: "x", G: map[string]int{"k": 1}, H: [2]string{"<", ">"}, i: 1}} {
		var want, got bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(&v); err != nil {
			t.Fatal(err)
		}
		if err := streamJSON(&got, &v); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("streamed:\n%s\nencoding/json:\n%s", got.String(), want.String())
		}
	}
}
