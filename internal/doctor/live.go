package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/engine/snapshot"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/source/fpmworkers"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// LiveSources are the Sources that can also look at running workers
// (Host's can; fixtures need not). Run looks at busy workers only when
// its Sources implement it.
type LiveSources interface {
	// Workers lists the running FPM pools and their workers.
	Workers(ctx context.Context) ([]*fpmworkers.Pool, []string)
	// Snapshot takes and analyses a snapshot of one worker (without
	// diagnosis).
	Snapshot(t snapshot.Target) (*crash.Report, error)
}

// defaultBusyOver is how long a request must have run for doctor to look
// at its worker when the pool sets no request_slowlog_timeout.
const defaultBusyOver = 10 * time.Second

// BusyWorker is a worker that was serving one request for too long when
// doctor ran: its snapshot, and the log lines about its request.
type BusyWorker struct {
	Worker crash.Worker `json:"worker"`
	// Master is the pid of the worker's FPM master.
	Master int `json:"master"`
	// Threshold says why it was picked ("request_slowlog_timeout 5s").
	Threshold string `json:"threshold"`
	// Report is its snapshot (with the hang diagnosis); Error why there
	// is none.
	Report *crash.Report `json:"report,omitempty"`
	Error  string        `json:"error,omitempty"`
	// Events are the log lines about its current request: FPM's
	// "executing too slow" (slowlog) and "execution timed out" lines for
	// its pid, nginx's "upstream timed out" (the 504 its client got) for
	// its URI since the request started.
	Events []logs.Event `json:"events,omitempty"`
}

func (h *host) Workers(ctx context.Context) ([]*fpmworkers.Pool, []string) {
	return fpmworkers.List(ctx, fpmworkers.Options{})
}

func (h *host) Snapshot(t snapshot.Target) (*crash.Report, error) {
	return snapshot.Take(t, snapshot.Options{})
}

// lookAtBusyWorkers snapshots the workers busy beyond their pool's
// request_slowlog_timeout (else Options.BusyOver, else 10 s), diagnoses
// them, and links the log lines about their requests.
func (r *run) lookAtBusyWorkers(ctx context.Context) {
	ls, ok := r.src.(LiveSources)
	if !ok || r.opts.NoLive || r.opts.Root != "" {
		return
	}
	pools, warns := ls.Workers(ctx)
	for _, w := range warns {
		r.warn("workers: %s", w)
	}
	for _, pl := range pools {
		over, why := r.opts.BusyOver, "--busy-over "+r.opts.BusyOver.String()
		if over <= 0 {
			over, why = pl.SlowlogTimeout, "request_slowlog_timeout "+pl.SlowlogTimeout.String()
		}
		if over <= 0 {
			over, why = defaultBusyOver, "busy for more than "+defaultBusyOver.String()
		}
		targets, swarns := snapshot.Select(ctx, snapshot.Selection{Pool: pl.Name, BusyOver: over}, []*fpmworkers.Pool{pl})
		if len(swarns) > 0 {
			r.res.Missing = append(r.res.Missing, swarns...)
		}
		for _, t := range targets {
			if ctx.Err() != nil {
				return
			}
			bw := &BusyWorker{Worker: *t.Worker, Master: pl.Master, Threshold: why}
			rep, err := ls.Snapshot(t)
			if err != nil {
				bw.Error = err.Error()
			} else {
				if err := r.src.Diagnose(rep, r.base); err != nil {
					r.warn("diagnose the snapshot of %d: %v", t.PID, err)
				}
				bw.Report = rep
			}
			bw.Events = r.requestEvents(bw.Worker, rep)
			r.res.Busy = append(r.res.Busy, bw)
		}
	}
}

// requestEvents are the log events about a busy worker's current request:
// FPM's lines naming its pid, and the front end's timeouts of its URI, both
// since the request started.
func (r *run) requestEvents(w crash.Worker, rep *crash.Report) []logs.Event {
	if r.res.Logs == nil {
		return nil
	}
	start := r.res.Time.Add(-time.Duration(w.RequestMS * float64(time.Millisecond)))
	if w.RequestMS < 0 {
		start = r.res.Time.Add(-time.Hour) // unknown: the last hour
	}
	start = start.Add(-2 * time.Second) // log timestamps have a resolution of a second
	uri := w.URI
	if uri == "" && rep != nil && rep.PHP != nil && rep.PHP.Request != nil {
		uri = rep.PHP.Request.URI
	}
	var out []logs.Event
	for _, ev := range r.res.Logs.Events {
		if ev.Time.Before(start) {
			continue
		}
		switch ev.Kind {
		case logs.KindSlowRequest, logs.KindExecTimeout:
			if ev.PID == w.PID {
				out = append(out, ev)
			}
		case logs.KindUpstreamTimeout:
			if uri != "" && sameURI(ev.URI, uri) {
				out = append(out, ev)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out
}

// sameURI compares a front end's request URI with FPM's (FPM may show the
// script's path where the front end shows the pretty URL's query).
func sameURI(a, b string) bool {
	if a == b {
		return true
	}
	pa, _, _ := strings.Cut(a, "?")
	pb, _, _ := strings.Cut(b, "?")
	return pa == pb && (!strings.Contains(a, "?") || !strings.Contains(b, "?"))
}

// busy writes the busy workers section.
func (p *writer) busy(r *Result) {
	if len(r.Busy) == 0 {
		return
	}
	p.heading(fmt.Sprintf("Busy right now: %d worker(s) serving one request for too long", len(r.Busy)))
	for _, b := range r.Busy {
		w := b.Worker
		p.line("")
		p.line("pid %d: %s (%s)", w.PID, render.WorkerText(&w), b.Threshold)
		if b.Error != "" {
			p.item("no snapshot: %s", b.Error)
		}
		if rep := b.Report; rep != nil {
			if len(rep.Diagnosis) > 0 {
				d := rep.Diagnosis[0]
				p.item("%s [%s, %s confidence]", d.Title, d.Rule, d.Confidence)
				p.item("%s", d.Explanation)
				for _, f := range d.Fix {
					p.item("fix: %s", render.FixText(f, p.md))
				}
			}
			if l := rep.Live; l != nil {
				p.item("snapshot: paused %.1f ms; %s", l.PauseMS, render.LiveDoing(l))
			}
			var lines []string
			if rep.PHP != nil {
				lines = append(lines, phpFrames(rep.PHP, 6)...)
			}
			lines = append(lines, topFrames(rep, 6)...)
			p.code(lines)
		}
		for _, ev := range b.Events {
			p.item("log %s: %s", p.at(ev.Time, "15:04:05 MST"), ev.Text)
		}
	}
}
