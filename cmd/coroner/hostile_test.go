package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/coroner-dev/coroner/internal/hostile"
	"github.com/coroner-dev/coroner/internal/labtest"
	"github.com/coroner-dev/coroner/internal/render"
)

// Limits every command must keep on the hostile corpus.
const (
	// hostileCPU bounds the CPU time (user + system) of one run; the wall
	// clock is bounded by hostileWall as a hang guard (this machine is
	// shared: a run may wait for the CPU longer than it uses it).
	hostileCPU  = 10 * time.Second
	hostileWall = 60 * time.Second
	hostileRSS  = 512 << 20
)

// buildBinary builds coroner (CGO_ENABLED=0, as shipped) for tests that
// run it as a process: its own RSS and time are measured.
func buildBinary(t *testing.T) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build coroner: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "coroner")
	cmd := exec.Command(goBin, "build", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// run is one command run on the corpus.
type run struct {
	name     string
	kind     string // "text", "json" or "markdown"
	stdout   string // a file: outputs may be hundreds of megabytes
	stderr   []byte
	exit     int
	wall     time.Duration
	cpu      time.Duration
	rss      int64
	measured bool // rss comes from /usr/bin/time
	killed   bool
}

// timeBin is GNU time, which measures the peak RSS of the process it
// starts: the rusage of a child of the test itself would count the test's
// own RSS (Linux keeps the larger of the forked and the executed image).
var timeBin, _ = exec.LookPath("time")

func runCoroner(t *testing.T, bin string, kind string, args ...string) *run {
	ctx, cancel := context.WithTimeout(context.Background(), hostileWall)
	defer cancel()
	out, err := os.CreateTemp(t.TempDir(), "stdout-")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	rssFile := out.Name() + ".rss"
	argv := append([]string{bin}, args...)
	if timeBin != "" {
		argv = append([]string{timeBin, "-q", "-f", "%M", "-o", rssFile}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "NO_COLOR=1", "TZ=UTC")
	var errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = out, &errb
	start := time.Now()
	err = cmd.Run()
	r := &run{name: strings.Join(args, " "), kind: kind, stdout: out.Name(), stderr: errb.Bytes(),
		wall: time.Since(start), killed: ctx.Err() != nil}
	if st := cmd.ProcessState; st != nil {
		r.cpu = st.UserTime() + st.SystemTime() // children included: GNU time waited for coroner
		if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
			r.rss = ru.Maxrss << 10
		}
		r.exit = st.ExitCode()
	}
	if b, err := os.ReadFile(rssFile); err == nil {
		var kb int64
		if _, err := fmt.Sscan(string(b), &kb); err == nil {
			r.rss, r.measured = kb<<10, true
		}
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		r.exit = -1
		r.stderr = append(r.stderr, []byte(err.Error())...)
	}
	return r
}

// rawControl returns the first character of b that a terminal would act
// on (a control character other than newline and tab, DEL, a C1 control,
// a text-reordering character, a byte that is not UTF-8), or "".
func rawControl(b []byte) string {
	for i := 0; i < len(b); {
		c := b[i]
		if c == '\n' || c == '\t' || c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		if c < 0x80 {
			return fmt.Sprintf("%q at byte %d", c, i)
		}
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 || r >= 0x80 && r <= 0x9f || r >= 0x200b && r <= 0x200f || r >= 0x2028 && r <= 0x202e || r >= 0x2066 && r <= 0x2069 {
			return fmt.Sprintf("%q at byte %d", string(b[i:i+size]), i)
		}
		i += size
	}
	return ""
}

// phpCase makes a php-fpm core from the lab whose request carries the
// payloads: the URI gets an OSC sequence and a password, the query string
// an escape, a newline and markup, and the PHP argument a colour and a bell.
func phpCase(t *testing.T, dir string) (hostile.Case, bool) {
	if os.Getenv("CORONER_NO_LAB") != "" {
		t.Log("CORONER_NO_LAB: no php-fpm core with hostile request strings")
		return hostile.Case{}, false
	}
	lab := labtest.Get(t)
	sc := lab.Scenarios["ffi-null-code"]
	if sc == nil || sc.Core == "" || sc.URL != "/search.php?q=teacher" {
		t.Log("the lab has no ffi-null-code core with the expected request")
		return hostile.Case{}, false
	}
	p := filepath.Join(dir, "php-request")
	n, err := hostile.PatchStrings(p, sc.Core, [][2]string{
		{"/search.php?q=teacher", "/\x1b]0;?pwd=" + hostile.Secret + "\n"},
		{"q=teacher", "q=\x1b[2J\n<b"},
		{"teacher", "\x1b[31m\x07\n"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatalf("no request string found in %s", sc.Core)
	}
	return hostile.Case{Name: "php-request", Path: p, Kind: "core", Attack: "a real php-fpm core whose REQUEST_URI, QUERY_STRING and PHP argument carry escapes, markup and a password"}, true
}

// TestHostileCorpus runs every command that reads cores or logs on the
// hostile corpus (internal/hostile, made at test time) with its default
// limits, and checks each run: no panic, no hang (CPU time under 10 s, and
// a 60 s wall-clock guard), peak RSS under 512 MB, no raw control
// character in text output, no markup from the corpus outside code in
// Markdown, valid JSON, and never the corpus's password.
func TestHostileCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the hostile corpus takes a few minutes")
	}
	bin := buildBinary(t)
	dir := t.TempDir()
	corpus, err := hostile.Generate(dir)
	if err != nil {
		t.Fatal(err)
	}
	cases := corpus.Cores()
	if _, many, err := hostile.DeepCores(t.TempDir()); err == nil {
		cases = append(cases, many)
	} else {
		t.Logf("no deep core: %v", err)
	}
	if c, ok := phpCase(t, t.TempDir()); ok {
		cases = append(cases, c)
	}
	cases = append(cases, hostile.Case{Name: "fifo", Path: corpus.FIFO, Kind: "core", Attack: "a named pipe given as the core"})

	var runs []*run
	do := func(kind string, args ...string) {
		r := runCoroner(t, bin, kind, args...)
		for _, p := range check(r) {
			t.Errorf("coroner %s: %s", shorten(r.name, dir), p)
		}
		os.Remove(r.stdout)
		runs = append(runs, r)
	}
	for _, c := range cases {
		do("text", "analyze", c.Path)
		do("json", "analyze", "--json", c.Path)
		do("text", "php", c.Path)
		do("markdown", "report", c.Path)
		do("text", "replay", "--dry-run", "--socket", "unix:/nonexistent/php-fpm.sock", c.Path)
	}
	var logFiles []string
	for _, l := range corpus.Logs() {
		logFiles = append(logFiles, l.Path)
	}
	logArgs := append([]string{"logs", "--no-discover", "--evidence"}, logFiles...)
	do("text", logArgs...)
	do("json", append([]string{"logs", "--no-discover", "--json"}, logFiles...)...)
	doctor := append([]string{"doctor", "--no-audit", "--cores", dir}, logFiles...)
	do("text", doctor...)
	do("markdown", append([]string{"doctor", "--markdown", "--no-audit", "--cores", dir}, logFiles...)...)
	do("json", append([]string{"doctor", "--json", "--no-audit", "--cores", dir}, logFiles...)...)
	do("text", "cores", dir)
	do("json", "cores", "--json", dir)

	var worstWall, worstCPU *run
	var worstRSS *run
	for _, r := range runs {
		if worstWall == nil || r.wall > worstWall.wall {
			worstWall = r
		}
		if worstCPU == nil || r.cpu > worstCPU.cpu {
			worstCPU = r
		}
		if worstRSS == nil || r.rss > worstRSS.rss {
			worstRSS = r
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].rss > runs[j].rss })
	for _, r := range runs[:min(8, len(runs))] {
		t.Logf("%6.1f MB %6.2fs wall %6.2fs cpu exit %d  coroner %s", float64(r.rss)/(1<<20), r.wall.Seconds(), r.cpu.Seconds(), r.exit, shorten(r.name, dir))
	}
	t.Logf("corpus: %d cores and %d logs, %d bytes (%d on disk); %d runs", len(cases), len(corpus.Logs()), corpus.Bytes, corpus.Disk, len(runs))
	if timeBin == "" {
		t.Logf("GNU time (/usr/bin/time) is not installed: the RSS above includes what the test process had when it started coroner")
	}
	t.Logf("worst wall time %.2fs (coroner %s), worst CPU time %.2fs (coroner %s), worst RSS %.1f MB (coroner %s)",
		worstWall.wall.Seconds(), shorten(worstWall.name, dir), worstCPU.cpu.Seconds(), shorten(worstCPU.name, dir),
		float64(worstRSS.rss)/(1<<20), shorten(worstRSS.name, dir))
}

func shorten(s, dir string) string { return strings.ReplaceAll(s, dir+"/", "") }

// check returns what is wrong with one run.
func check(r *run) []string {
	var out []string
	switch {
	case r.killed:
		out = append(out, fmt.Sprintf("still running after %v: a hang", hostileWall))
	case r.exit < 0:
		out = append(out, "did not end normally: "+string(r.stderr))
	case bytes.Contains(r.stderr, []byte("panic:")) || bytes.Contains(r.stderr, []byte("fatal error:")) || bytes.Contains(r.stderr, []byte("goroutine ")):
		out = append(out, "crashed: "+firstLines(r.stderr, 3))
	}
	if r.cpu > hostileCPU {
		out = append(out, fmt.Sprintf("used %v of CPU (bound %v)", r.cpu.Round(time.Millisecond), hostileCPU))
	}
	if r.rss > hostileRSS {
		out = append(out, fmt.Sprintf("peak RSS %d MB (bound %d MB)", r.rss>>20, hostileRSS>>20))
	}
	if c := rawControl(r.stderr); c != "" {
		out = append(out, "raw control character on stderr: "+c)
	}
	if bytes.Contains(r.stderr, []byte(hostile.Secret)) {
		out = append(out, "the corpus's password is on stderr")
	}
	f, err := os.Open(r.stdout)
	if err != nil {
		return append(out, err.Error())
	}
	defer f.Close()
	// Scan stdout in chunks (a JSON report can be 300 MB), carrying the
	// last bytes of each to the next for UTF-8 sequences and the password.
	buf := make([]byte, 4<<20)
	var carry []byte
	for {
		n, err := io.ReadFull(f, buf)
		data := append(carry, buf[:n]...)
		final := err != nil
		cut := len(data)
		if !final && cut > 32 {
			cut -= 32
		}
		if c := rawControl(data[:cut]); c != "" {
			out = append(out, "raw control character on stdout: "+c)
			break
		}
		if bytes.Contains(data, []byte(hostile.Secret)) {
			out = append(out, "the corpus's password is on stdout")
			break
		}
		carry = append([]byte(nil), data[cut:]...)
		if final {
			break
		}
	}
	switch r.kind {
	case "json":
		if r.exit == 0 {
			f.Seek(0, 0)
			dec := json.NewDecoder(f)
			for {
				if _, err := dec.Token(); err != nil {
					if !errors.Is(err, io.EOF) {
						out = append(out, "invalid JSON: "+err.Error())
					}
					break
				}
			}
		}
	case "markdown":
		b, _ := os.ReadFile(r.stdout)
		md := render.OutsideCode(string(b))
		for _, tag := range []string{"<script", "<img", "<b>"} {
			if strings.Contains(md, tag) {
				out = append(out, "Markdown outside code holds "+tag)
			}
		}
	}
	return out
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(string(b), "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], " | ")
}
