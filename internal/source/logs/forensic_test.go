package logs

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// forensicSample is a forensic log and the error log of the same Apache
// (the lab's, paths changed): pid 21593 finished one request, then died in
// the next; every other child died in its only request.
const forensicSample = `+21593:6b1556f0:0|GET /status.php HTTP/1.1|Host:127.0.0.1%3a18081|User-Agent:curl/7.88.1|Accept:*/*
-21593:6b1556f0:0
+21592:6b1556f1:0|GET /search/teacher HTTP/1.1|Host:127.0.0.1%3a18081|Accept:*/*|User-Agent:coroner-lab/1.0
+21593:6b1556f4:1|GET /index.php/teachers/profile-sarah/ HTTP/1.1|Host:127.0.0.1%3a18081|Accept:*/*|User-Agent:coroner-lab/1.0
+22570:6b155704:0|POST /checkout.php HTTP/1.1|Host:127.0.0.1%3a18081|Accept:*/*|Cookie:wordpress_logged_in=lab-secret-cookie|Authorization:Bearer lab-secret-token|User-Agent:coroner-lab/1.0|Content-Length:30
+30000:6b155710:0|GET /still-running HTTP/1.1|Host:example.org
`

const forensicErrorLog = `[Sun Dec 06 12:37:06.004066 2026] [core:notice] [pid 21583:tid 21583] AH00051: child pid 21592 exit signal Segmentation fault (11), possible coredump in /var/cache/apache2/cores
[Sun Dec 06 12:37:10.026672 2026] [core:notice] [pid 21583:tid 21583] AH00051: child pid 21593 exit signal Segmentation fault (11), possible coredump in /var/cache/apache2/cores
[Sun Dec 06 12:37:26.139879 2026] [core:notice] [pid 21583:tid 21583] AH00052: child pid 22570 exit signal Segmentation fault (11)
`

func TestForensicParser(t *testing.T) {
	p := newForensicParser()
	for i, l := range strings.Split(forensicSample, "\n") {
		p.line([]byte(l), "f", int64(i+1))
	}
	got := p.unfinished()
	if len(got) != 4 {
		t.Fatalf("%d unfinished requests, want 4: %+v", len(got), got)
	}
	e := got[1]
	if e.PID != 21593 || e.Method != "GET" || e.URI != "/index.php/teachers/profile-sarah/" || e.Host != "127.0.0.1:18081" ||
		!e.Time.Equal(time.Unix(0x6b1556f4, 0)) || e.Line != 4 || e.Kind != KindUnfinishedRequest {
		t.Errorf("second open request %+v", e)
	}
	if strings.Contains(got[2].Text, "secret") || got[2].Method != "POST" {
		t.Errorf("the POST keeps %q: want the request line and Host only", got[2].Text)
	}
	// a UNIQUE_ID names no pid and no time
	ev, id, ok := parseForensicStart([]byte("+aM5x8n8AAQEAAFJ4KQoAAAAA|GET /x HTTP/1.1|Host:h"))
	if !ok || id != "aM5x8n8AAQEAAFJ4KQoAAAAA" || ev.PID != 0 || !ev.Time.IsZero() || ev.URI != "/x" {
		t.Errorf("UNIQUE_ID line: %+v %q %v", ev, id, ok)
	}
}

// TestForensicBounded: a log of requests that never end keeps at most
// maxForensicPending of them, the newest.
func TestForensicBounded(t *testing.T) {
	p := newForensicParser()
	n := 3*maxForensicPending + 7
	for i := range n {
		p.line([]byte("+"+strconv.Itoa(i+1)+":6b1556f0:0|GET /"+strconv.Itoa(i)+" HTTP/1.1|Host:h"), "f", int64(i))
		if len(p.order) > 2*maxForensicPending+1 {
			t.Fatalf("order holds %d ids", len(p.order))
		}
	}
	got := p.unfinished()
	if len(got) != maxForensicPending || p.Dropped != n-maxForensicPending || got[len(got)-1].URI != "/"+strconv.Itoa(n-1) {
		t.Errorf("%d kept, %d dropped, last %+v", len(got), p.Dropped, got[len(got)-1])
	}
}

// TestForensicLinksDeaths: each death of the error log gets the request its
// child never finished, from the forensic log alone (no core), and the
// request still running at the end of the log links to nothing.
func TestForensicLinksDeaths(t *testing.T) {
	dir := t.TempDir()
	errLog, fLog := filepath.Join(dir, "error.log"), filepath.Join(dir, "forensic_log")
	if err := os.WriteFile(errLog, []byte(forensicErrorLog), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fLog, []byte(forensicSample), 0o600); err != nil {
		t.Fatal(err)
	}
	loc := time.UTC
	res, err := Analyze(context.Background(), Options{Location: loc, AllProcesses: true,
		Inputs: []Input{{Path: errLog, Format: FormatAuto}, {Path: fLog, Format: FormatAuto}}})
	if err != nil {
		t.Fatal(err)
	}
	if res.Inputs[1].Detected != FormatApacheForensic {
		t.Errorf("forensic log detected as %s", res.Inputs[1].Detected)
	}
	want := map[int]string{21592: "GET /search/teacher", 21593: "GET /index.php/teachers/profile-sarah/", 22570: "POST /checkout.php"}
	if len(res.Incidents) != len(want) {
		t.Fatalf("%d incidents, want %d", len(res.Incidents), len(want))
	}
	for _, inc := range res.Incidents {
		if got := inc.Method + " " + inc.URI; got != want[inc.PID] || inc.Host != "127.0.0.1:18081" {
			t.Errorf("pid %d: request %q host %q, want %q", inc.PID, got, inc.Host, want[inc.PID])
		}
		last := inc.Links[len(inc.Links)-1]
		if last.Kind != KindUnfinishedRequest || last.Confidence != ConfHigh {
			t.Errorf("pid %d: links %+v", inc.PID, inc.Links)
		}
	}
}

func FuzzForensic(f *testing.F) {
	f.Add([]byte(forensicSample))
	f.Add([]byte("+1:2:3|GET / HTTP/1.0|Host:%zz%4\n-1:2:3\n+x|A B\n-\n+|\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := newForensicParser()
		for i, l := range strings.Split(string(b), "\n") {
			p.line([]byte(l), "f", int64(i))
		}
		for _, e := range p.unfinished() {
			if len(e.Text) > maxTextLen || len(e.URI) > 2048 || len(e.Host) > 256 {
				t.Fatalf("unbounded event %+v", e)
			}
		}
		if len(p.pending) > maxForensicPending {
			t.Fatal("unbounded pending")
		}
		_ = lineFormat(b)
	})
}
