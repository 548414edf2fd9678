package logs

import (
	"bytes"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// naiveHits is the reference: every line (split on \n) containing a
// keyword, truncated to max bytes as the scanner does for over-long lines.
func naiveHits(data []byte, kws [][]byte, max int) []string {
	var out []string
	lines := bytes.Split(data, []byte{'\n'})
	if len(lines) > 0 && len(lines[len(lines)-1]) == 0 {
		lines = lines[:len(lines)-1]
	}
	for i, l := range lines {
		if len(l) >= max {
			continue // over-long lines: compared separately
		}
		if containsAny(l, kws) {
			out = append(out, fmt.Sprintf("%d:%s", i+1, l))
		}
	}
	return out
}

func scanHits(data []byte, kws [][]byte, size int) ([]string, *lineScanner) {
	var out []string
	s := newLineScanner(size)
	s.scan(bytes.NewReader(data), kws, func(l []byte, n int64) {
		if len(l) < size {
			out = append(out, fmt.Sprintf("%d:%s", n, l))
		}
	})
	return out, s
}

func TestScannerMatchesNaive(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	words := []string{"upstream", "exited", "segfault at", "ok", "GET /", "\"", " 50", "x", "", "timed out"}
	for iter := 0; iter < 300; iter++ {
		var b strings.Builder
		n := r.Intn(60)
		for i := 0; i < n; i++ {
			k := r.Intn(8)
			for j := 0; j < k; j++ {
				b.WriteString(words[r.Intn(len(words))])
				if r.Intn(3) == 0 {
					b.WriteString(strings.Repeat("z", r.Intn(90)))
				}
			}
			if r.Intn(10) != 0 || i < n-1 {
				b.WriteByte('\n')
			}
		}
		data := []byte(b.String())
		size := 64 + r.Intn(200)
		for _, kws := range [][][]byte{kwNginx, kwFPM, kwMixed} {
			want := naiveHits(data, kws, size)
			got, s := scanHits(data, kws, size)
			if strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("iter %d size %d: scanner\n%q\nnaive\n%q", iter, size, got, want)
			}
			if s.Bytes != int64(len(data)) {
				t.Fatalf("bytes %d, want %d", s.Bytes, len(data))
			}
		}
	}
}

func TestScannerAllLines(t *testing.T) {
	data := []byte("a\nb\n\nc")
	var got []string
	newLineScanner(0).scan(bytes.NewReader(data), nil, func(l []byte, n int64) { got = append(got, fmt.Sprintf("%d:%s", n, l)) })
	if strings.Join(got, ",") != "1:a,2:b,3:,4:c" {
		t.Errorf("got %v", got)
	}
}

func FuzzScanner(f *testing.F) {
	f.Add([]byte("a upstream\nb\nc exited\n"), uint8(70))
	f.Add([]byte(strings.Repeat("upstream", 40)+"\nx upstream"), uint8(64))
	f.Fuzz(func(t *testing.T, data []byte, sz uint8) {
		size := 64 + int(sz)
		want := naiveHits(data, kwMixed, size)
		got, _ := scanHits(data, kwMixed, size)
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("size %d: scanner %q naive %q", size, got, want)
		}
	})
}

func TestSortRotated(t *testing.T) {
	got := SortRotated([]string{"/l/error.log", "/l/access.log.1", "/l/error.log.1", "/l/error.log.10.gz", "/l/error.log.2.gz", "/l/access.log", "/l/kern.log-20261120.gz", "/l/kern.log"})
	want := "/l/error.log.10.gz /l/error.log.2.gz /l/error.log.1 /l/error.log /l/access.log.1 /l/access.log /l/kern.log-20261120.gz /l/kern.log"
	if strings.Join(got, " ") != want {
		t.Errorf("got  %s\nwant %s", strings.Join(got, " "), want)
	}
}
