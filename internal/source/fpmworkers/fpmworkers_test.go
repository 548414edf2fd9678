package fpmworkers

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/labtest"
)

// statusSample is FPM 8.2's full status in JSON (trimmed to two processes).
const statusSample = `{"pool":"www","process manager":"static","start time":1796551200,"start since":52,"accepted conn":14,"listen queue":0,"max listen queue":0,"listen queue len":0,"idle processes":3,"active processes":11,"total processes":14,"max active processes":12,"max children reached":0,"slow requests":10,"processes":[{"pid":4221,"state":"Running","start time":1796551200,"start since":52,"requests":1,"request duration":43012345,"request method":"GET","request uri":"/hang.php?mode=sleep&key=sleep","content length":0,"user":"-","script":"/srv/www/hang.php","last request cpu":0.00,"last request memory":0},{"pid":4242,"state":"Idle","start time":1796551200,"start since":52,"requests":0,"request duration":1234,"request method":"-","request uri":"-","content length":0,"user":"-","script":"-","last request cpu":0.00,"last request memory":0}]}`

func TestParseStatus(t *testing.T) {
	ws, err := ParseStatus([]byte(statusSample))
	if err != nil || len(ws) != 2 {
		t.Fatalf("%+v, %v", ws, err)
	}
	w := ws[0]
	if w.Pool != "www" || w.PID != 4221 || !Busy(w) || w.RequestMS != 43012.345 || w.Method != "GET" || w.URI != "/hang.php?mode=sleep&key=sleep" || w.Script != "/srv/www/hang.php" || w.Source != "fpm-status" {
		t.Errorf("busy worker %+v", w)
	}
	if idle := ws[1]; Busy(idle) || idle.Method != "" || idle.URI != "" || idle.Script != "" {
		t.Errorf("idle worker %+v", idle)
	}
	if _, err := ParseStatus([]byte("<html>")); err == nil {
		t.Error("HTML accepted as status")
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{"": 0, "0": 0, "5": 5 * time.Second, "5s": 5 * time.Second, "2m": 2 * time.Minute, "1h": time.Hour, "1d": 24 * time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"x", "-5s", "5w", "99999999999999"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("ParseDuration(%q) accepted", bad)
		}
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte(statusSample))
	f.Add([]byte(`{"processes":[{"pid":-1,"request duration":-5}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseStatus(b)
		_, _ = ParseDuration(string(b))
		_ = parseSyscall(b)
		_ = ppidOf(b)
	})
}

// TestLabPool lists the hang lab's pool: the status page is read, every
// hanging worker is busy on its request for more than 2 s, and /proc alone
// (what coroner uses without a status page) tells the same busy and idle
// workers apart.
func TestLabPool(t *testing.T) {
	l := labtest.Hang(t, "--scenario", "sleep", "--scenario", "curl")
	pools, warns := List(context.Background(), Options{Timeout: 10 * time.Second})
	var pool *Pool
	for _, p := range pools {
		if p.Config == l.FPMConfig {
			pool = p
		}
	}
	if pool == nil {
		t.Fatalf("the lab's pool is not listed: %+v (warnings %q)", pools, warns)
	}
	if pool.Status != "fpm-status" || pool.Listen != l.FPMSocket || len(pool.Workers) != l.Workers {
		t.Fatalf("pool %+v", pool)
	}
	hanging := map[int]string{}
	for _, h := range l.Hangs {
		hanging[h.PID] = h.URL
	}
	procView := map[int]proc{}
	for _, p := range scanProc() {
		procView[p.pid] = p
	}
	for _, w := range pool.Workers {
		url, hangs := hanging[w.PID]
		if hangs != Busy(w) {
			t.Errorf("worker %d: FPM says %s (%s), hanging %v", w.PID, w.State, w.URI, hangs)
		}
		if hangs && (w.URI != url || w.RequestMS < 2000) {
			t.Errorf("worker %d: %s for %.0f ms, want %s for more than 2 s", w.PID, w.URI, w.RequestMS, url)
		}
		if !hangs && strings.HasPrefix(w.URI, pool.StatusPath) {
			continue // it served coroner's status request a moment ago: maybe not back in accept() yet
		}
		pw := procView[w.PID].worker()
		if Busy(pw) != hangs {
			t.Errorf("worker %d: /proc says %s (system call %d), FPM says %s", w.PID, pw.State, procView[w.PID].syscall, w.State)
		}
	}
}
