package replay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coroner-dev/coroner/internal/regular"
	"github.com/coroner-dev/coroner/internal/replay/fastcgi"
)

// Outcomes of one attempt.
const (
	OutcomeCompleted = "completed"     // FCGI_END_REQUEST arrived
	OutcomeDied      = "worker died"   // the connection ended before FCGI_END_REQUEST
	OutcomeTimeout   = "timeout"       // no end before the deadline
	OutcomeError     = "error"         // could not connect, or a protocol error
	maxCount         = 100             // bound on --count
	maxLogRead       = 4 << 20         // bound on the FPM log bytes read per attempt
	deathLogWait     = 5 * time.Second // how long to wait for the master's line after a death
)

// Outcomes lists the outcomes of an attempt (Attempt.Outcome).
func Outcomes() []string {
	return []string{OutcomeCompleted, OutcomeDied, OutcomeTimeout, OutcomeError}
}

// SchemaVersion is the version of the JSON documents of `coroner replay
// --json` (Result) and `coroner replay --dry-run --json` (Plan), their
// "schema" field; it changes only when a field changes meaning or goes
// away.
const SchemaVersion = 1

// Plan is the JSON document of `coroner replay --dry-run --json`: what
// would be sent, and where (docs/schema/replay-plan.json).
type Plan struct {
	Schema int `json:"schema"` // SchemaVersion
	// Socket is where the request would go: "unix:/path" or
	// "tcp:HOST:PORT", "" when --socket was not given and the pool's
	// socket was not found (a dry run needs none).
	Socket  string   `json:"socket"`
	Request *Request `json:"request"`
}

// Options control a replay.
type Options struct {
	// Socket is "unix:/path" or "tcp:host:port" (a bare path means unix).
	Socket string
	// AllowRemote permits a TCP address that is not loopback.
	AllowRemote bool
	// Count is the number of attempts (1 when 0; at most 100).
	Count int
	// Timeout bounds each attempt (10 s when 0).
	Timeout time.Duration
	// FPMLog is the php-fpm master's error log, read for the lines written
	// during the replay ("" for none).
	FPMLog string
}

// Attempt is the outcome of one send.
type Attempt struct {
	N       int    `json:"n"`
	Outcome string `json:"outcome"`
	// Status is the HTTP status line of a completed request ("200 OK").
	Status string `json:"status,omitempty"`
	// Error says what happened for deaths, timeouts and errors.
	Error string `json:"error,omitempty"`
	// Seconds is how long the attempt took.
	Seconds float64 `json:"seconds"`
	// Stdout / Stderr are how many bytes the application sent back.
	Stdout int `json:"stdout_bytes"`
	Stderr int `json:"stderr_bytes"`
	// StderrText is the start of FCGI_STDERR (PHP messages).
	StderrText string `json:"stderr,omitempty"`
	// Deaths are the FPM log lines about children that died during this
	// attempt (with FPMLog).
	Deaths []Death `json:"deaths,omitempty"`
}

// Death is a "child N exited on signal S" line of the FPM log.
type Death struct {
	PID        int    `json:"pid"`
	Signal     int    `json:"signal"`
	SignalName string `json:"signal_name,omitempty"`
	CoreDumped bool   `json:"core_dumped"`
	Line       string `json:"line"`
}

// Result is the whole replay.
type Result struct {
	// Schema is SchemaVersion (docs/schema/replay.json).
	Schema   int       `json:"schema"`
	Socket   string    `json:"socket"`
	Request  *Request  `json:"request"`
	Attempts []Attempt `json:"attempts"`
	// Died counts the attempts whose worker died; Reproduced is Died > 0.
	Died       int  `json:"died"`
	Reproduced bool `json:"reproduced"`
	// FPMLog holds all the FPM log lines written during the replay.
	FPMLog []string `json:"fpm_log,omitempty"`
	// Confirmed counts deaths the FPM log confirmed (with FPMLog).
	Confirmed int `json:"confirmed"`
	// Warnings are non-fatal problems (the FPM log could not be read...).
	Warnings []string `json:"warnings,omitempty"`
}

// Summary is the one-line verdict: "reproduced 3/3", "did not reproduce
// (0/3)", or "could not replay: ..." when no attempt reached a worker.
func (r *Result) Summary() string {
	if r.Reproduced {
		return fmt.Sprintf("reproduced %d/%d", r.Died, len(r.Attempts))
	}
	if err := r.Err(); err != nil {
		return "could not replay: " + err.Error()
	}
	return fmt.Sprintf("did not reproduce (0/%d)", len(r.Attempts))
}

// Err is the error that kept the replay from reaching a worker (nothing
// listens on the socket, it does not speak FastCGI), nil when an attempt
// was served or killed its worker: a replay that could not be made says
// nothing about whether the crash reproduces.
func (r *Result) Err() error {
	if r.Died > 0 {
		return nil
	}
	for _, a := range r.Attempts {
		if a.Outcome != OutcomeError {
			return nil
		}
	}
	if len(r.Attempts) == 0 {
		return errors.New("no attempt was made")
	}
	return errors.New(r.Attempts[0].Error)
}

// ParseSocket turns "unix:/path", "/path", "tcp:host:port" or "host:port"
// into a network and an address, refusing TCP addresses that are not
// loopback unless allowRemote.
func ParseSocket(s string, allowRemote bool) (network, address string, err error) {
	switch {
	case strings.HasPrefix(s, "unix:"):
		network, address = "unix", strings.TrimPrefix(s, "unix:")
	case strings.HasPrefix(s, "/"):
		network, address = "unix", s
	case strings.HasPrefix(s, "tcp:"):
		network, address = "tcp", strings.TrimPrefix(s, "tcp:")
	case s == "":
		return "", "", errors.New("no socket: give --socket unix:/path/php-fpm.sock or tcp:127.0.0.1:9000")
	default:
		network, address = "tcp", s
	}
	if address == "" {
		return "", "", fmt.Errorf("socket %q: empty address", s)
	}
	if network == "unix" {
		return network, address, nil
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return "", "", fmt.Errorf("socket %q: %w", s, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return "", "", fmt.Errorf("socket %q: bad port %q", s, port)
	}
	if allowRemote {
		return network, address, nil
	}
	if host == "localhost" {
		return network, address, nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return "", "", fmt.Errorf("socket %q is not a loopback address: replaying a crashing request kills workers, so only a loopback address or a unix socket is used unless --allow-remote is given", s)
	}
	return network, address, nil
}

// Run sends req opts.Count times, one after the other, and reports each
// attempt. It returns an error only when nothing could be attempted (bad
// socket, bad options); connection failures are attempts with OutcomeError.
func Run(ctx context.Context, req *Request, opts Options) (*Result, error) {
	network, address, err := ParseSocket(opts.Socket, opts.AllowRemote)
	if err != nil {
		return nil, err
	}
	count := opts.Count
	if count <= 0 {
		count = 1
	}
	if count > maxCount {
		return nil, fmt.Errorf("--count %d: at most %d attempts", count, maxCount)
	}
	if _, err := fastcgi.EncodeRequest(1, req.Params, req.Body); err != nil {
		return nil, err
	}
	res := &Result{Schema: SchemaVersion, Socket: network + ":" + address, Request: req}
	var log *logFollower
	if opts.FPMLog != "" {
		log, err = followLog(opts.FPMLog)
		if err != nil {
			return nil, err
		}
	}
	c := &fastcgi.Client{Network: network, Address: address, Timeout: opts.Timeout}
	for i := 1; i <= count; i++ {
		if err := ctx.Err(); err != nil {
			res.Warnings = append(res.Warnings, fmt.Sprintf("stopped before attempt %d: %v", i, err))
			break
		}
		a := attempt(ctx, c, req, i)
		if log != nil {
			lines, err := log.collect(ctx, a.Outcome == OutcomeDied)
			if err != nil {
				res.Warnings = append(res.Warnings, fmt.Sprintf("FPM log %s: %v", opts.FPMLog, err))
			}
			res.FPMLog = append(res.FPMLog, lines...)
			for _, l := range lines {
				if d, ok := ParseDeath(l); ok {
					a.Deaths = append(a.Deaths, d)
				}
			}
			if a.Outcome == OutcomeDied && len(a.Deaths) > 0 {
				res.Confirmed++
			}
		}
		if a.Outcome == OutcomeDied {
			res.Died++
		}
		res.Attempts = append(res.Attempts, a)
		if a.Outcome == OutcomeError && i == 1 {
			break // nothing listens there, or it does not speak FastCGI: more attempts say nothing new
		}
	}
	res.Reproduced = res.Died > 0
	for _, a := range res.Attempts {
		if strings.Contains(a.StderrText, "Primary script unknown") {
			res.Warnings = append(res.Warnings, fmt.Sprintf("php-fpm does not find %s (Primary script unknown): is the site at another path here? (--docroot)", req.Param("SCRIPT_FILENAME")))
			break
		}
	}
	return res, nil
}

func attempt(ctx context.Context, c *fastcgi.Client, req *Request, n int) Attempt {
	start := time.Now()
	resp, err := c.Do(ctx, req.Params, req.Body)
	a := Attempt{N: n, Seconds: time.Since(start).Seconds()}
	if resp != nil {
		a.Stdout, a.Stderr = len(resp.Stdout), len(resp.Stderr)
		a.StderrText = firstBytes(string(resp.Stderr), 500)
	}
	switch {
	case err == nil:
		a.Outcome = OutcomeCompleted
		a.Status = fastcgi.ParseHTTP(resp.Stdout).StatusLine
	case errors.Is(err, fastcgi.ErrWorkerDied):
		a.Outcome, a.Error = OutcomeDied, err.Error()
	case errors.Is(err, fastcgi.ErrTimeout):
		a.Outcome, a.Error = OutcomeTimeout, err.Error()
	default:
		a.Outcome, a.Error = OutcomeError, err.Error()
	}
	return a
}

func firstBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

var deathRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`child (\d+) exited on signal (\d+)(?: \(([A-Z0-9]+)( - core dumped)?\))?`)
})

// ParseDeath recognises the FPM master's line about a child killed by a
// signal: "WARNING: [pool www] child 14502 exited on signal 11 (SIGSEGV -
// core dumped) after 0.94 seconds from start".
func ParseDeath(line string) (Death, bool) {
	m := deathRE().FindStringSubmatch(line)
	if m == nil {
		return Death{}, false
	}
	pid, err1 := strconv.Atoi(m[1])
	sig, err2 := strconv.Atoi(m[2])
	if err1 != nil || err2 != nil {
		return Death{}, false
	}
	return Death{PID: pid, Signal: sig, SignalName: m[3], CoreDumped: m[4] != "", Line: line}, true
}

// logFollower reads what is appended to a log file.
type logFollower struct {
	path string
	off  int64
	ino  uint64
}

func followLog(path string) (*logFollower, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("FPM log: %w", err)
	}
	return &logFollower{path: path, off: st.Size(), ino: inode(st)}, nil
}

// collect returns the complete lines appended since the last call. With
// wantDeath, it waits (up to deathLogWait) for a death line: the master
// writes it only once the child is reaped, after its core is written.
func (f *logFollower) collect(ctx context.Context, wantDeath bool) ([]string, error) {
	deadline := time.Now().Add(deathLogWait)
	var lines []string
	for {
		more, err := f.read()
		lines = append(lines, more...)
		if err != nil || !wantDeath {
			return lines, err
		}
		for _, l := range lines {
			if _, ok := ParseDeath(l); ok {
				return lines, nil
			}
		}
		if time.Now().After(deadline) {
			return lines, nil
		}
		select {
		case <-ctx.Done():
			return lines, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (f *logFollower) read() ([]string, error) {
	st, err := os.Stat(f.path)
	if err != nil {
		return nil, err
	}
	if inode(st) != f.ino || st.Size() < f.off { // rotated or truncated: read the new file from the start
		f.off, f.ino = 0, inode(st)
	}
	if st.Size() == f.off {
		return nil, nil
	}
	fh, err := regular.Open(f.path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	n := min(st.Size()-f.off, maxLogRead)
	buf := make([]byte, n)
	got, err := fh.ReadAt(buf, f.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	buf = buf[:got]
	end := strings.LastIndexByte(string(buf), '\n')
	if end < 0 {
		if int64(got) == maxLogRead { // one enormous line: skip it
			f.off += int64(got)
		}
		return nil, nil
	}
	f.off += int64(end + 1)
	return strings.Split(string(buf[:end]), "\n"), nil
}
