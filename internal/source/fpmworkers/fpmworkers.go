// Package fpmworkers lists the running PHP-FPM workers of this host: which
// pool each serves, whether it is busy, for how long its current request
// has run and which URI it serves. It asks each pool's status page
// (pm.status_path, full view, over the pool's FastCGI socket with coroner's
// own client) when the pool enables it, and falls back to /proc otherwise
// (process titles, state, CPU time, and the system call a worker waits in:
// an idle worker waits in accept()).
package fpmworkers

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/audit"
	"github.com/coroner-dev/coroner/internal/replay/fastcgi"
	"github.com/coroner-dev/coroner/internal/source/liveproc"
)

// Pool is one running FPM pool.
type Pool struct {
	Name string
	// Master is the pid of the FPM master; Config its configuration file.
	Master int
	Config string
	// Listen, StatusPath and StatusListen are the pool's socket,
	// pm.status_path and pm.status_listen ("" when unset or unknown).
	Listen, StatusPath, StatusListen string
	// SlowlogTimeout and TerminateTimeout are request_slowlog_timeout and
	// request_terminate_timeout (0 when unset).
	SlowlogTimeout, TerminateTimeout time.Duration
	// Status says how the workers were found: "fpm-status", or why the
	// status page was not used.
	Status string
	// Workers are the pool's workers.
	Workers []crash.Worker
}

// Options tune List.
type Options struct {
	// Timeout bounds one status request (default 2 s: when every worker is
	// busy, the request waits in FPM's queue, and /proc is used instead).
	Timeout time.Duration
}

// List returns the running pools with their workers. Warnings say what
// could not be read.
func List(ctx context.Context, opts Options) ([]*Pool, []string) {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	procs := scanProc()
	var warns []string
	pools := map[string]*Pool{} // master/pool
	var order []*Pool
	configs := map[int]string{}
	for _, p := range procs {
		if p.master {
			configs[p.pid] = p.config
		}
	}
	for _, p := range procs {
		if p.master {
			continue
		}
		key := strconv.Itoa(p.ppid) + "/" + p.pool
		pl := pools[key]
		if pl == nil {
			pl = &Pool{Name: p.pool, Master: p.ppid, Config: configs[p.ppid]}
			pools[key] = pl
			order = append(order, pl)
		}
		pl.Workers = append(pl.Workers, p.worker())
	}
	configured := map[string]*audit.Report{}
	for _, pl := range order {
		if pl.Config == "" {
			pl.Status = "no configuration file in the master's title"
			continue
		}
		rep, ok := configured[pl.Config]
		if !ok {
			r, err := audit.Run(audit.Options{FPMConfig: pl.Config})
			if err != nil {
				warns = append(warns, fmt.Sprintf("read %s: %v", pl.Config, err))
			}
			configured[pl.Config], rep = r, r
		}
		pl.configure(rep)
	}
	for _, pl := range order {
		pl.readStatus(ctx, opts.Timeout)
		sort.Slice(pl.Workers, func(i, j int) bool { return pl.Workers[i].PID < pl.Workers[j].PID })
	}
	return order, warns
}

func (pl *Pool) configure(rep *audit.Report) {
	if rep == nil {
		return
	}
	for _, in := range rep.Installations {
		for _, p := range in.Pools {
			if p.Name != pl.Name {
				continue
			}
			pl.Listen = p.Listen.Value
			pl.StatusPath = p.StatusPath.Value
			pl.StatusListen = p.StatusListen.Value
			pl.SlowlogTimeout, _ = ParseDuration(p.SlowlogTimeout.Value)
			pl.TerminateTimeout, _ = ParseDuration(p.TerminateTimeout.Value)
			return
		}
	}
}

// ParseDuration parses an FPM time value ("5s", "2m", "1h", "1d", or a
// number of seconds).
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	unit := time.Second
	switch s[len(s)-1] {
	case 's':
		s = s[:len(s)-1]
	case 'm':
		unit, s = time.Minute, s[:len(s)-1]
	case 'h':
		unit, s = time.Hour, s[:len(s)-1]
	case 'd':
		unit, s = 24*time.Hour, s[:len(s)-1]
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<31 {
		return 0, fmt.Errorf("FPM time value %q: want a number of seconds with an optional s, m, h or d", s)
	}
	return time.Duration(n) * unit, nil
}

// readStatus asks the pool's status page for the full view of its workers.
func (pl *Pool) readStatus(ctx context.Context, timeout time.Duration) {
	if pl.StatusPath == "" {
		if pl.Status == "" {
			pl.Status = "pm.status_path is not set"
		}
		return
	}
	listen := pl.Listen
	if pl.StatusListen != "" {
		listen = pl.StatusListen
	}
	if listen == "" {
		pl.Status = "the pool's listen socket is unknown"
		return
	}
	network, address, err := audit.ListenSocket(listen)
	if err != nil {
		pl.Status = err.Error()
		return
	}
	st, err := FetchStatus(ctx, network, address, pl.StatusPath, timeout)
	if err != nil {
		pl.Status = err.Error()
		return
	}
	byPID := map[int]crash.Worker{}
	for _, w := range st {
		byPID[w.PID] = w
	}
	for i, w := range pl.Workers {
		if s, ok := byPID[w.PID]; ok {
			s.CPUSeconds = w.CPUSeconds
			s.Pool = pl.Name
			if strings.HasPrefix(s.URI, pl.StatusPath+"?") || s.URI == pl.StatusPath {
				s.State = "Idle" // serving coroner's own status request
			}
			pl.Workers[i] = s
		}
	}
	pl.Status = "fpm-status"
}

// statusProcess is one process of FPM's full status in JSON.
type statusProcess struct {
	PID             int     `json:"pid"`
	State           string  `json:"state"`
	Requests        int     `json:"requests"`
	RequestDuration float64 `json:"request duration"` // microseconds
	RequestMethod   string  `json:"request method"`
	RequestURI      string  `json:"request uri"`
	Script          string  `json:"script"`
}

// maxStatus bounds the status page read (a pool of thousands of workers
// has a few MB of full status).
const maxStatus = 16 << 20

// FetchStatus requests STATUSPATH?json&full from an FPM socket and returns
// the workers it lists.
func FetchStatus(ctx context.Context, network, address, statusPath string, timeout time.Duration) ([]crash.Worker, error) {
	c := &fastcgi.Client{Network: network, Address: address, Timeout: timeout, MaxOutput: maxStatus}
	params := []fastcgi.Param{
		{Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"},
		{Name: "REQUEST_METHOD", Value: "GET"},
		{Name: "SCRIPT_NAME", Value: statusPath},
		{Name: "SCRIPT_FILENAME", Value: statusPath},
		{Name: "REQUEST_URI", Value: statusPath + "?json&full"},
		{Name: "QUERY_STRING", Value: "json&full"},
		{Name: "SERVER_SOFTWARE", Value: "coroner"},
		{Name: "REMOTE_ADDR", Value: "127.0.0.1"},
	}
	resp, err := c.Do(ctx, params, nil)
	if err != nil {
		return nil, fmt.Errorf("status page %s on %s:%s: %w", statusPath, network, address, err)
	}
	h := fastcgi.ParseHTTP(resp.Stdout)
	if h.Status != 200 {
		return nil, fmt.Errorf("status page %s on %s:%s answered %s", statusPath, network, address, h.StatusLine)
	}
	return ParseStatus(h.Body)
}

// ParseStatus parses FPM's full status in JSON.
func ParseStatus(b []byte) ([]crash.Worker, error) {
	var doc struct {
		Pool      string          `json:"pool"`
		Processes []statusProcess `json:"processes"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("FPM status: %w", err)
	}
	out := make([]crash.Worker, 0, len(doc.Processes))
	for _, p := range doc.Processes {
		w := crash.Worker{
			Pool: doc.Pool, PID: p.PID, State: p.State, RequestMS: p.RequestDuration / 1000,
			Method: p.RequestMethod, URI: p.RequestURI, Script: p.Script, Requests: p.Requests, Source: "fpm-status",
		}
		for _, f := range []*string{&w.Script, &w.Method, &w.URI} {
			if *f == "-" {
				*f = ""
			}
		}
		out = append(out, w)
	}
	return out, nil
}

// Busy reports whether FPM (or /proc) says the worker serves a request.
func Busy(w crash.Worker) bool {
	switch strings.ToLower(w.State) {
	case "idle", "":
		return false
	}
	return true
}

// proc is a php-fpm process found through /proc.
type proc struct {
	pid, ppid int
	master    bool
	config    string
	pool      string
	stat      liveproc.Stat
	syscall   int // -1 running, -2 unknown
}

func (p proc) worker() crash.Worker {
	w := crash.Worker{Pool: p.pool, PID: p.pid, RequestMS: -1, Source: "proc",
		CPUSeconds: float64(p.stat.UserTicks+p.stat.SystemTicks) / liveproc.TicksPerSecond}
	switch {
	case p.syscall == sysAccept || p.syscall == sysAccept4:
		w.State = "idle"
	default:
		w.State = "busy"
	}
	return w
}

// Linux x86-64 system call numbers of accept and accept4: an idle FPM
// worker waits in one of them.
const (
	sysAccept  = 43
	sysAccept4 = 288
)

// scanProc finds php-fpm masters and workers by their process titles.
func scanProc() []proc {
	ents, _ := os.ReadDir("/proc")
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		dir := filepath.Join("/proc", e.Name())
		cmd, err := os.ReadFile(dir + "/cmdline")
		if err != nil {
			continue
		}
		title := strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))
		p := proc{pid: pid, syscall: -2}
		switch {
		case strings.HasPrefix(title, "php-fpm: master process"):
			p.master = true
			if i := strings.IndexByte(title, '('); i >= 0 {
				p.config = strings.TrimSuffix(strings.TrimSpace(title[i+1:]), ")")
			}
			if p.config != "" && !filepath.IsAbs(p.config) {
				if cwd, err := os.Readlink(dir + "/cwd"); err == nil {
					p.config = filepath.Join(cwd, p.config)
				}
			}
		case strings.HasPrefix(title, "php-fpm: pool "):
			p.pool = strings.TrimSpace(strings.TrimPrefix(title, "php-fpm: pool "))
		default:
			continue
		}
		if b, err := os.ReadFile(dir + "/stat"); err == nil {
			p.stat, _ = liveproc.ParseStat(b)
			p.ppid = ppidOf(b)
		}
		if b, err := os.ReadFile(dir + "/syscall"); err == nil {
			p.syscall = parseSyscall(b)
		}
		out = append(out, p)
	}
	return out
}

// ppidOf reads the parent pid (field 4) of /proc/PID/stat.
func ppidOf(b []byte) int {
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// parseSyscall reads the system call number of /proc/PID/syscall: -1 for
// "running", -2 when unknown.
func parseSyscall(b []byte) int {
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -2
	}
	if f[0] == "running" {
		return -1
	}
	n, err := strconv.Atoi(f[0])
	if err != nil {
		return -2
	}
	return n
}
