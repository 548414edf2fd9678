package coredumps

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestStreamReaderAt(t *testing.T) {
	data := make([]byte, peekHead+3*peekWindow+100)
	for i := range data {
		data[i] = byte(i * 7 / 3)
	}
	s := &streamReaderAt{r: bytes.NewReader(data)}
	check := func(off int64, n int, wantErr error) {
		t.Helper()
		b := make([]byte, n)
		m, err := s.ReadAt(b, off)
		if wantErr != nil {
			if !errors.Is(err, wantErr) {
				t.Errorf("ReadAt(%d, %d): error %v, want %v", off, n, err, wantErr)
			}
			return
		}
		if err != nil && !(errors.Is(err, io.EOF) && int64(m) == int64(len(data))-off) {
			t.Errorf("ReadAt(%d, %d): %v", off, n, err)
		}
		if !bytes.Equal(b[:m], data[off:off+int64(m)]) {
			t.Errorf("ReadAt(%d, %d): wrong bytes", off, n)
		}
	}
	check(0, 64, nil)
	check(100000, 4096, nil)
	check(10, 64, nil)                      // the head is kept
	check(peekHead+peekWindow, 64, nil)     // forward, skipping
	check(peekHead+peekWindow+64, 512, nil) // inside the window
	check(peekHead+2*peekWindow+10, 64, nil)
	check(peekHead+3*peekWindow, 200, nil) // starts in the window, ends after it
	b := make([]byte, 8)
	if _, err := s.ReadAt(b, peekHead+peekWindow); err == nil {
		t.Error("reading a passed offset did not fail")
	}
	far := &streamReaderAt{r: bytes.NewReader(data)}
	if _, err := far.ReadAt(b, peekBudget); !errors.Is(err, errPeekLimit) {
		t.Errorf("beyond the budget: %v", err)
	}
}
