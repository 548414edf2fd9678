package render

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// TestJSONLongFramesEqualEncoder: long frame lists, written frame by
// frame (field by field where they can be), give exactly what json.Encoder
// writes for the whole report, inlined frames and PHP frames included.
func TestJSONLongFramesEqualEncoder(t *testing.T) {
	for _, n := range []int{0, 3, 256, 3000} {
		r := &crash.Report{Schema: crash.SchemaVersion, Warnings: []string{"a <warning> & more"}}
		for ti := 0; ti < 3; ti++ {
			th := crash.Thread{TID: 100 + ti, Crashed: ti == 1, Cycles: []crash.Cycle{{Start: 1, End: 5, Length: 2, Repeats: 2}}}
			for i := 0; i < n/(ti+1); i++ {
				k := i
				f := crash.Frame{Index: i, PC: crash.Addr(0x1000 + i), Module: "m", Function: fmt.Sprintf("f%d", i%7), Trust: crash.TrustCFI}
				if i%5 == 0 {
					f.PHPFrame = &k
					f.Inlined = []crash.VirtualFrame{{Function: "inl<int>", File: "a.h", Line: 3}}
				}
				th.Frames = append(th.Frames, f)
			}
			r.Threads = append(r.Threads, th)
		}
		r.PHP = &crash.PHP{Version: "8.2.1", INI: map[string]string{"x": "y"}}
		for i := 0; i < n; i++ {
			r.PHP.Frames = append(r.PHP.Frames, crash.PHPFrame{Function: "g", Args: []string{"\"s\"", "1"}, Line: i})
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if err := enc.Encode(r); err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := JSON(&got, r); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want.Bytes()) {
			t.Errorf("%d frames: output differs:\n%s", n, lineDiff(want.String(), got.String()))
		}
	}
}

// TestFastFramesEqualEncoder: frames written field by field are byte for
// byte what encoding/json writes, whatever their strings hold.
func TestFastFramesEqualEncoder(t *testing.T) {
	if !frameFast || !phpFrameFast {
		t.Fatal("crash.Frame or crash.PHPFrame changed: update jsonframes.go (frames go through encoding/json meanwhile)")
	}
	strs := []string{"", "plain", "<script>&amp;", "quote\" back\\slash", "ctl\x00\x01\b\f\n\r\t\x1f", "utf8 é ü 漢",
		"bad \xff\xfe utf8", "sep \u2028 \u2029", "std::vector<int, std::allocator<int> >::begin()"}
	k := 7
	for i, s := range strs {
		f := crash.Frame{Index: i, PC: 0xdeadbeef, SP: 0x7ffe, Module: s, ModuleOffset: crash.Addr(i), Function: s,
			FunctionOffset: 0x10, File: s, Line: i * 1000, Trust: crash.Trust(s)}
		if i%2 == 0 {
			f.FunctionSource = s + "x"
			f.PHPFrame = &k
		}
		p := crash.PHPFrame{Function: s, Class: s, CallType: "->", File: s, Line: -i, Kind: crash.PHPFrameKind(s), ExecuteData: 0x1234}
		switch i % 3 {
		case 0:
			p.Args = []string{s, s + "1"}
		case 1:
			p.Args = []string{}
		}
		for _, ind := range []string{"", "      "} {
			for _, v := range []any{&f, &p} {
				var want bytes.Buffer
				enc := json.NewEncoder(&want)
				enc.SetIndent(ind, "  ")
				if err := enc.Encode(v); err != nil {
					t.Fatal(err)
				}
				var got []byte
				var ok bool
				switch x := v.(type) {
				case *crash.Frame:
					got, ok = appendFrame(nil, x, ind)
				case *crash.PHPFrame:
					got, ok = appendPHPFrame(nil, x, ind)
				}
				if w := bytes.TrimSuffix(want.Bytes(), []byte("\n")); !ok || !bytes.Equal(got, w) {
					t.Errorf("%q (%T, indent %q):\n got %s\nwant %s", s, v, ind, got, w)
				}
			}
		}
	}
}

// FuzzJSONString: strings are quoted as encoding/json quotes them.
func FuzzJSONString(f *testing.F) {
	f.Add("a<b>&\"\\\u2028\xff\x00")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: %s, encoding/json %s", s, got, want)
		}
	})
}
