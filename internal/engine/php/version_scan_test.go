package php

import (
	"bytes"
	"strings"
	"testing"
)

// TestScanVersion finds the version after the marker wherever the chunks
// cut the section: before, across and after a chunk boundary, at the very
// end, and not at all.
func TestScanVersion(t *testing.T) {
	marker := []byte("X-Powered-By: PHP/")
	const chunk = 256 << 10
	for _, at := range []int{0, 100, chunk - 30, chunk - 5, chunk, chunk + 7, 3*chunk - 10} {
		data := bytes.Repeat([]byte{0}, at)
		data = append(data, marker...)
		data = append(data, "8.5.7-1+b2\x00"...)
		data = append(data, bytes.Repeat([]byte{'x'}, 1000)...)
		if got := scanVersion(bytes.NewReader(data), marker); got != "8.5.7-1+b2" {
			t.Errorf("marker at %d: %q", at, got)
		}
	}
	end := append(bytes.Repeat([]byte{0}, chunk-10), append(marker, "8.2.36"...)...)
	if got := scanVersion(bytes.NewReader(end), marker); got != "8.2.36" {
		t.Errorf("at the end: %q", got)
	}
	if got := scanVersion(strings.NewReader(strings.Repeat("PHP/ ", 100000)), marker); got != "" {
		t.Errorf("no marker: %q", got)
	}
}
