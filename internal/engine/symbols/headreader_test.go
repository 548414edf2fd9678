package symbols

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// countingReader counts the reads that reach the file.
type countingReader struct {
	r     *bytes.Reader
	reads int
}

func (c *countingReader) ReadAt(p []byte, off int64) (int, error) {
	c.reads++
	return c.r.ReadAt(p, off)
}

// TestHeadReaderLikeFile reads every range near the first page through
// headReader and directly: the same bytes and errors, and only the ranges
// past the first page reach the file.
func TestHeadReaderLikeFile(t *testing.T) {
	for _, size := range []int{0, 10, headSize - 1, headSize, 3 * headSize} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(i*31 + 7)
		}
		file := &countingReader{r: bytes.NewReader(data)}
		h := newHeadReader(file)
		if newHeadReader(h) != h {
			t.Fatal("a headReader of a headReader reads again")
		}
		for _, off := range []int64{-1, 0, 1, 63, headSize - 8, headSize - 1, headSize, headSize + 5, int64(size)} {
			for _, n := range []int{1, 8, 64, 100} {
				got, want := make([]byte, n), make([]byte, n)
				before := file.reads
				gn, gerr := h.ReadAt(got, off)
				wn, werr := bytes.NewReader(data).ReadAt(want, off)
				if gn != wn || !bytes.Equal(got[:gn], want[:wn]) || (gerr == nil) != (werr == nil) || (werr == io.EOF && !errors.Is(gerr, io.EOF)) {
					t.Fatalf("size %d: ReadAt(%d bytes at %d) = %d, %v; want %d, %v", size, n, off, gn, gerr, wn, werr)
				}
				inHead := off >= 0 && off+int64(n) <= int64(min(size, headSize))
				if inHead && file.reads != before {
					t.Errorf("size %d: %d bytes at %d within the first page reached the file", size, n, off)
				}
			}
		}
	}
}
