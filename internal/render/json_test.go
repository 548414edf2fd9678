package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/coroner-dev/coroner/crash"
)

// TestJSONSplicedEqualsEncoder: writing long frame lists one frame at a
// time gives exactly what json.Encoder writes for the whole report.
func TestJSONSplicedEqualsEncoder(t *testing.T) {
	for _, n := range []int{0, 3, spliceMin, 3000} {
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
