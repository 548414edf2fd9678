package fastcgi

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestParamsRoundTrip(t *testing.T) {
	in := []Param{{"A", ""}, {"B", strings.Repeat("x", 127)}, {"C", strings.Repeat("y", 128)}, {strings.Repeat("N", 200), "v"}}
	b, err := EncodeParams(in)
	if err != nil {
		t.Fatal(err)
	}
	// 127 fits in one length byte, 128 needs four with the high bit set
	if want := []byte{1, 127, 'B'}; !bytes.Contains(b, want) {
		t.Errorf("1-byte length of a 127-byte value missing")
	}
	if want := []byte{1, 0x80, 0, 0, 128, 'C'}; !bytes.Contains(b, want) {
		t.Errorf("4-byte length of a 128-byte value missing")
	}
	out, err := DecodeParams(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d params, want %d", len(out), len(in))
	}
	for i := range in {
		if in[i] != out[i] {
			t.Errorf("param %d: %q != %q", i, out[i].Name, in[i].Name)
		}
	}
}

func TestEncodeRequestTooLong(t *testing.T) {
	_, err := EncodeRequest(1, []Param{{"X", strings.Repeat("x", 70000)}}, nil)
	if err == nil {
		t.Fatal("a pair larger than one record was accepted")
	}
}

func TestReadResponseEOF(t *testing.T) {
	var b []byte
	b = appendRecord(b, TypeStdout, 1, []byte("Status: 500\r\n\r\npartial"))
	resp, err := ReadResponse(bytes.NewReader(b), 1, 0)
	if !errors.Is(err, ErrWorkerDied) {
		t.Fatalf("err = %v, want ErrWorkerDied", err)
	}
	if string(resp.Stdout) != "Status: 500\r\n\r\npartial" || resp.Ended {
		t.Errorf("partial response %+v", resp)
	}
	b = appendRecord(b, TypeStderr, 2, []byte("other request")) // skipped
	b = appendRecord(b, TypeEndRequest, 1, []byte{0, 0, 0, 7, 0, 0, 0, 0})
	resp, err = ReadResponse(bytes.NewReader(b), 1, 4)
	if err != nil || !resp.Ended || resp.AppStatus != 7 || string(resp.Stdout) != "Stat" || !resp.StdoutTruncated || len(resp.Stderr) != 0 {
		t.Fatalf("resp %+v err %v", resp, err)
	}
	if h := ParseHTTP([]byte("Status: 500\r\n\r\npartial")); h.Status != 500 || string(h.Body) != "partial" {
		t.Errorf("ParseHTTP: %+v", h)
	}
}

// FuzzReadResponse feeds arbitrary bytes as a server's answer: the parser
// must never panic and must keep its output within the bound.
func FuzzReadResponse(f *testing.F) {
	var ok []byte
	ok = appendRecord(ok, TypeStdout, 1, []byte("Content-Type: text/html\r\nStatus: 404 Not Found\r\n\r\nbody"))
	ok = appendRecord(ok, TypeStderr, 1, []byte("PHP Warning"))
	ok = appendRecord(ok, TypeEndRequest, 1, []byte{0, 0, 0, 0, 0, 0, 0, 0})
	f.Add(ok)
	f.Add(ok[:13])
	f.Add([]byte{1, 6, 0, 1, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{2, 6, 0, 1, 0, 0, 0, 0})
	f.Add(appendRecord(nil, TypeEndRequest, 1, []byte{0, 0, 0, 0, 2, 0, 0, 0}))
	f.Fuzz(func(t *testing.T, data []byte) {
		resp, err := ReadResponse(bytes.NewReader(data), 1, 64)
		if resp == nil {
			t.Fatal("nil response")
		}
		if len(resp.Stdout) > 64 || len(resp.Stderr) > 64 {
			t.Fatalf("output beyond the bound: %d/%d", len(resp.Stdout), len(resp.Stderr))
		}
		if err == nil && !resp.Ended {
			t.Fatal("no error without FCGI_END_REQUEST")
		}
		ParseHTTP(resp.Stdout)
		ParseHTTP(data)
	})
}

// FuzzDecodeParams checks that decoding arbitrary bytes never panics and
// that what decodes re-encodes to the same bytes when lengths are canonical.
func FuzzDecodeParams(f *testing.F) {
	b, _ := EncodeParams([]Param{{"REQUEST_METHOD", "GET"}, {"HTTP_X", strings.Repeat("v", 300)}})
	f.Add(b)
	f.Add([]byte{0x80, 0, 0})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := DecodeParams(data)
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Name == "" {
				return // EncodeParams refuses empty names
			}
		}
		if _, err := EncodeParams(ps); err != nil {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
