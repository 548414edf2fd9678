// Package render renders a crash.Report for people (text, Markdown) and for
// programs (JSON). Renderers only format: every fact comes from the report.
package render

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"

	"github.com/coroner-dev/coroner/crash"
)

// spliceMin is the number of frames from which a frame list is written
// element by element instead of as part of the one marshalled document.
const spliceMin = 256

// JSON writes the report as indented JSON (schema crash.SchemaVersion).
//
// The output is what json.Encoder with SetIndent("", "  ") writes, but the
// long frame lists (a 40,000-frame recursion makes 30 MB of JSON) are
// written one frame at a time: the rest of the report is marshalled with a
// placeholder frame in each such list, and each placeholder list is
// replaced by the frames as it is written out.
func JSON(w io.Writer, r *crash.Report) error {
	shallow := *r
	type splice struct {
		marker string
		n      int
		elem   func(i int) any
		// fast appends element i the way encoding/json writes it, or
		// reports that it cannot
		fast func(b []byte, i int, ind string) ([]byte, bool)
	}
	var splices []splice
	// The placeholders are found again by their text: a random part keeps
	// a string of the report (a function name read from a core) from
	// passing for one.
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	nonce := hex.EncodeToString(rnd[:])
	if len(r.Threads) > 0 {
		shallow.Threads = append([]crash.Thread(nil), r.Threads...)
		for i := range shallow.Threads {
			fr := r.Threads[i].Frames
			if len(fr) < spliceMin {
				continue
			}
			m := fmt.Sprintf("coroner-json-splice-%s-%d", nonce, len(splices))
			shallow.Threads[i].Frames = []crash.Frame{{Function: m}}
			splices = append(splices, splice{m, len(fr), func(k int) any { return &fr[k] },
				func(b []byte, k int, ind string) ([]byte, bool) { return appendFrame(b, &fr[k], ind) }})
		}
	}
	if r.PHP != nil && len(r.PHP.Frames) >= spliceMin {
		php := *r.PHP
		fr := r.PHP.Frames
		m := fmt.Sprintf("coroner-json-splice-%s-%d", nonce, len(splices))
		php.Frames = []crash.PHPFrame{{Function: m}}
		shallow.PHP = &php
		splices = append(splices, splice{m, len(fr), func(k int) any { return &fr[k] },
			func(b []byte, k int, ind string) ([]byte, bool) { return appendPHPFrame(b, &fr[k], ind) }})
	}
	var doc bytes.Buffer
	enc := json.NewEncoder(&doc)
	enc.SetIndent("", "  ")
	if err := enc.Encode(&shallow); err != nil {
		return err
	}
	b := doc.Bytes()
	// Write the lists in the order they appear in the document.
	sort.Slice(splices, func(i, j int) bool {
		return bytes.Index(b, []byte(splices[i].marker)) < bytes.Index(b, []byte(splices[j].marker))
	})
	bw := bufio.NewWriterSize(w, 256<<10)
	var elem bytes.Buffer
	for _, s := range splices {
		at := bytes.Index(b, []byte(`"`+s.marker+`"`))
		if at < 0 {
			return fmt.Errorf("render JSON: lost frame list %s", s.marker)
		}
		// The placeholder list: from the '[' before the marker (no list
		// comes before the function field of a frame) to the first ']'
		// after it (none comes after in a zero frame).
		open := bytes.LastIndexByte(b[:at], '[')
		closeAt := bytes.IndexByte(b[at:], ']')
		if open < 0 || closeAt < 0 {
			return fmt.Errorf("render JSON: frame list %s not found", s.marker)
		}
		closeAt += at
		prefix := b[bytes.LastIndexByte(b[:closeAt], '\n')+1 : closeAt]
		if _, err := bw.Write(b[:open+1]); err != nil {
			return err
		}
		ind := string(prefix) + "  "
		ee := json.NewEncoder(&elem)
		ee.SetIndent(ind, "  ")
		var fast []byte
		for k := 0; k < s.n; k++ {
			sep := ",\n"
			if k == 0 {
				sep = "\n"
			}
			bw.WriteString(sep)
			bw.WriteString(ind)
			var ok bool
			if fast, ok = s.fast(fast[:0], k, ind); ok {
				bw.Write(fast)
				continue
			}
			elem.Reset()
			if err := ee.Encode(s.elem(k)); err != nil {
				return err
			}
			bw.Write(bytes.TrimSuffix(elem.Bytes(), []byte("\n")))
		}
		bw.WriteString("\n")
		bw.Write(prefix)
		b = b[closeAt:] // from the ']'
	}
	if _, err := bw.Write(b); err != nil {
		return err
	}
	return bw.Flush()
}
