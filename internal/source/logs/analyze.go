package logs

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coroner-dev/coroner/internal/source/coredumps"
)

// Options control Analyze.
type Options struct {
	Inputs []Input
	// Since and Until restrict events to [Since, Until) when non-zero.
	Since, Until time.Time
	// Location is the zone of timestamps written without one (nginx,
	// PHP-FPM, syslog, Apache); default time.Local.
	Location *time.Location
	// BootTime converts kernel uptime stamps to wall time; when zero it is
	// inferred (kern.log lines carrying both stamps, pid matches with FPM
	// lines) or taken from this host (/proc/stat btime).
	BootTime time.Time
	// Cores are the cores to link crashes with (coredumps.Discover finds
	// them): by pid, and by dump time.
	Cores []*coredumps.Entry
	// Symbolizer names functions of kernel fault lines; nil disables it.
	Symbolizer Symbolizer
	// LibDirs are searched for libraries named by kernel lines
	// (default DefaultLibDirs).
	LibDirs []string
	// Stdin is read for the input "-".
	Stdin io.Reader
	// Workers is the number of files read concurrently (default GOMAXPROCS).
	Workers int
	// AllProcesses counts the crashes of every process in the summary; by
	// default only PHP processes are counted and the others are listed
	// apart (Summary.Others).
	AllProcesses bool
	// ModPHP is what the host's Apache configuration says of mod_php; nil
	// when it was not read. An Apache child (or an apache2/httpd process
	// of a kernel line) is a PHP process when its core maps PHP's library
	// or it crashed in one; failing those, when ModPHP says Apache loads
	// mod_php. Apache serving PHP through PHP-FPM (proxy_fcgi), or serving
	// no PHP, has children whose deaths are not PHP's.
	ModPHP *ModPHP
}

// ModPHP is whether the host's Apache runs PHP inside its children
// (mod_php), as its configuration says.
type ModPHP struct {
	Loaded bool
	// Why names the configuration and its LoadModule line (or the lack
	// of one).
	Why string
}

// InputStat says what was read from one input.
type InputStat struct {
	Input
	Detected Format `json:"detected"`
	Bytes    int64  `json:"bytes"`
	Lines    int64  `json:"lines"`
	Events   int    `json:"events"`
	Error    string `json:"error,omitempty"`
	// Container is set for a container runtime's log (Docker json-file,
	// Kubernetes CRI), read as the lines the container wrote.
	Container bool `json:"container,omitempty"`
}

// Result is the outcome of Analyze.
type Result struct {
	Inputs    []InputStat        `json:"inputs"`
	Since     time.Time          `json:"since,omitzero"`
	Until     time.Time          `json:"until,omitzero"`
	BootTime  time.Time          `json:"boot_time,omitzero"`
	BootFrom  string             `json:"boot_time_source,omitempty"`
	Summary   Summary            `json:"summary"`
	Incidents []*Incident        `json:"incidents"`
	Cores     []*coredumps.Entry `json:"cores,omitempty"`
	// CoreLinks says which cores were linked to incidents and why the
	// others were not.
	CoreLinks CoreLinks `json:"core_links"`
	Warnings  []string  `json:"warnings"`
	// Events are all parsed events, time-ordered (not in JSON by default:
	// the CLI adds them with --events).
	Events []Event `json:"events,omitempty"`
}

// fileResult is what reading one input produced.
type fileResult struct {
	stat   InputStat
	events []Event
	tally  *tally
}

// ReadInput reads one input and returns its events (in file order). Events
// that correlation does not need (child exits with code 0, stderr lines of
// workers that did not die soon after, FastCGI stderr relays) are counted
// in the InputStat but not returned, and each kind is kept up to a bound,
// so that memory does not grow with the input.
func ReadInput(in Input, loc *time.Location, stdin io.Reader) ([]Event, InputStat, error) {
	evs, st, _, err := readInput(in, loc, stdin)
	return evs, st, err
}

func readInput(in Input, loc *time.Location, stdin io.Reader) ([]Event, InputStat, *tally, error) {
	st := InputStat{Input: in}
	var rc io.ReadCloser
	var err error
	ref := time.Now()
	var cmd *exec.Cmd
	switch {
	case strings.HasPrefix(in.Path, "cmd:"):
		args := strings.Fields(strings.TrimPrefix(in.Path, "cmd:"))
		if len(args) == 0 {
			return nil, st, nil, fmt.Errorf("empty command input")
		}
		cmd = exec.Command(args[0], args[1:]...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			return nil, st, nil, fmt.Errorf("run %s: %w", args[0], err)
		}
		if err := cmd.Start(); err != nil {
			return nil, st, nil, fmt.Errorf("run %s: %w", args[0], err)
		}
		rc = out
	default:
		rc, err = openLog(in.Path, stdin)
		if err != nil {
			return nil, st, nil, err
		}
		if in.Path != "-" {
			if fi, err := os.Stat(in.Path); err == nil {
				ref = fi.ModTime()
			}
		}
	}
	defer func() {
		rc.Close()
		if cmd != nil {
			_ = cmd.Wait()
		}
	}()
	br := bufio.NewReaderSize(rc, 64<<10)
	format := in.Format
	if head, _ := br.Peek(4096); sniffWrap(head) != wrapNone {
		// A container's log (Docker, Kubernetes): the lines it wrote,
		// of any of its programs (nginx and PHP-FPM may share it).
		br = bufio.NewReaderSize(newUnwrapper(br, sniffWrap(head)), 64<<10)
		st.Container = true
		if format == "" || format == FormatAuto {
			format = FormatMixed
			if inner, _ := br.Peek(64 << 10); onlyFormat(inner) != "" {
				format = onlyFormat(inner)
			}
		}
	}
	if format == "" || format == FormatAuto {
		head, _ := br.Peek(64 << 10)
		format = sniff(head)
		if format == FormatMixed {
			if f := formatFromName(in.Path); f != "" {
				format = f
			}
		}
	}
	st.Detected = format
	if loc == nil {
		loc = time.Local
	}
	p := newLineParser(loc, ref)
	sk := newSink()
	sc := newLineScanner(0)
	fp := newForensicParser()
	var fn func(line []byte, n int64)
	if format == FormatSlowlog {
		fn = func(line []byte, n int64) {
			p.slow.line(line, in.Path, n)
			if len(p.slow.done) > 0 {
				for _, e := range p.slow.done {
					sk.add(e)
				}
				p.slow.done = p.slow.done[:0]
			}
		}
	} else if format == FormatApacheForensic {
		fn = func(line []byte, n int64) { fp.line(line, in.Path, n) }
	} else {
		fn = func(line []byte, n int64) {
			if ev, ok := p.parse(line); ok {
				ev.File, ev.Line = in.Path, n
				sk.add(ev)
			}
		}
	}
	err = sc.scan(br, keywords(format), fn)
	if format == FormatSlowlog {
		p.slow.flush()
		for _, e := range p.slow.done {
			sk.add(e)
		}
	}
	for _, e := range fp.unfinished() {
		sk.add(e)
	}
	sk.tally.Dropped += fp.Dropped
	st.Bytes, st.Lines = sc.Bytes, sc.Lines
	for _, n := range sk.tally.Kinds {
		st.Events += n
	}
	if err != nil {
		return sk.events, st, sk.tally, fmt.Errorf("read %s: %w", in.Path, err)
	}
	return sk.events, st, sk.tally, nil
}

// Analyze reads the inputs and builds the incidents and the summary.
func Analyze(ctx context.Context, opts Options) (*Result, error) {
	if opts.Location == nil {
		opts.Location = time.Local
	}
	if opts.LibDirs == nil {
		opts.LibDirs = DefaultLibDirs
	}
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	res := &Result{Since: opts.Since, Until: opts.Until, Warnings: []string{}}
	results := make([]fileResult, len(opts.Inputs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, workers)
	for i, in := range opts.Inputs {
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			evs, st, t, err := readInput(in, opts.Location, opts.Stdin)
			if err != nil {
				st.Error = err.Error()
			}
			results[i] = fileResult{st, evs, t}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var events []Event
	all := newTally()
	for _, r := range results {
		res.Inputs = append(res.Inputs, r.stat)
		if r.stat.Error != "" {
			res.Warnings = append(res.Warnings, r.stat.Error)
		}
		if r.tally != nil {
			all.merge(r.tally)
		}
		events = append(events, r.events...)
	}
	if all.Dropped > 0 {
		res.Warnings = append(res.Warnings, fmt.Sprintf("%d events beyond the retention bounds were counted but not correlated", all.Dropped))
	}
	res.BootTime, res.BootFrom = resolveUptimes(events, opts.BootTime)
	if res.BootFrom == "host" {
		res.Warnings = append(res.Warnings, "kernel lines carry only uptime stamps; converted with this host's boot time (assumes they come from its current boot)")
	}
	// Filter and sort.
	kept := events[:0]
	for _, e := range events {
		if !opts.Since.IsZero() && !e.Time.IsZero() && e.Time.Before(opts.Since) {
			continue
		}
		if !opts.Until.IsZero() && !e.Time.IsZero() && !e.Time.Before(opts.Until) {
			continue
		}
		kept = append(kept, e)
	}
	events = kept
	sort.SliceStable(events, func(i, j int) bool { return events[i].Time.Before(events[j].Time) })
	for i := range events {
		if events[i].Fault != nil {
			SymbolizeFault(events[i].Fault, events[i].Time, opts.Symbolizer, opts.LibDirs)
		}
	}
	res.Cores = opts.Cores
	res.Incidents, res.CoreLinks = correlate(events, res.Cores, opts.ModPHP)
	if res.Incidents == nil {
		res.Incidents = []*Incident{}
	}
	res.Summary = summarize(events, res.Incidents, all, opts.AllProcesses)
	res.Events = events
	return res, nil
}

// resolveUptimes gives a wall time to kernel events that only have an
// uptime stamp. The boot time is, in order: the one given; the median of
// (time - uptime) over lines with both stamps; the median over pid matches
// between such kernel lines and FPM/coredump records; this host's boot time.
func resolveUptimes(events []Event, given time.Time) (time.Time, string) {
	need := false
	for i := range events {
		if events[i].TimeApprox && events[i].Time.IsZero() {
			need = true
			break
		}
	}
	if !need {
		return time.Time{}, ""
	}
	boot, from := given, "given"
	if boot.IsZero() {
		var ests []float64
		for i := range events {
			e := &events[i]
			if e.Uptime > 0 && !e.Time.IsZero() && !e.TimeApprox && e.Source == SrcKernel {
				ests = append(ests, float64(e.Time.UnixNano())/1e9-e.Uptime)
			}
		}
		from = "kernel lines with both stamps"
		if len(ests) == 0 {
			deaths := map[int][]time.Time{}
			for i := range events {
				e := &events[i]
				if (e.Kind == KindChildSignal || e.Kind == KindCoredump) && !e.Time.IsZero() {
					deaths[e.PID] = append(deaths[e.PID], e.Time)
				}
			}
			for i := range events {
				e := &events[i]
				if e.TimeApprox && e.Time.IsZero() && len(deaths[e.PID]) == 1 {
					ests = append(ests, float64(deaths[e.PID][0].UnixNano())/1e9-e.Uptime)
				}
			}
			from = fmt.Sprintf("pid matches between kernel and PHP-FPM lines (%d)", len(ests))
		}
		if len(ests) > 0 {
			sort.Float64s(ests)
			m := ests[len(ests)/2]
			boot = time.Unix(0, int64(m*1e9))
		} else if bt, ok := hostBootTime(); ok {
			boot, from = bt, "host"
		} else {
			return time.Time{}, ""
		}
	}
	for i := range events {
		e := &events[i]
		if e.TimeApprox && e.Time.IsZero() {
			e.Time = boot.Add(time.Duration(e.Uptime * 1e9))
			e.TimeApprox = from != "given" && from != "kernel lines with both stamps"
		}
	}
	return boot, from
}

// hostBootTime reads btime from /proc/stat.
func hostBootTime() (time.Time, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return time.Time{}, false
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err == nil {
				return time.Unix(n, 0), true
			}
		}
	}
	return time.Time{}, false
}
