package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/render"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/source/logs"
)

// crashPage is the crash page: the report's render.View (the one the text
// report prints), the log lines that go with the crash, the commands to
// reproduce it and the Markdown bug report.
type crashPage struct {
	Title string
	Crash *store.Crash
	// Report is the (redacted) report, for what only the page shows (the
	// signal's sender, the container); View is the report laid out.
	Report *crash.Report
	View   *render.View
	// Native is the crashed thread's stack; Others the other threads'.
	Native *render.StackView
	Others []render.StackView
	// Incident is what the logs recorded of the worker's death (nil: no
	// incident of the same host and pid near the crash time); Logs are its
	// log lines.
	Incident *store.Incident
	Logs     []logs.Link
	// Markdown is the bug report (render.Markdown), for the copy button
	// (nil without a report); MarkdownURL serves it alone, JSONURL
	// downloads the crash as JSON.
	Markdown             *verbatim
	MarkdownURL, JSONURL string
}

// verbatim is text its renderer already made safe (render.Markdown
// escapes what it shows), kept as it is by the page's sanitize.Copy, which
// leaves unexported fields alone: its newlines stay newlines.
type verbatim struct{ text string }

// String returns the text.
func (v *verbatim) String() string { return v.text }

// maxStackLines bounds the lines of a stack on the crash page.
const maxStackLines = 200

// crash serves /crash/{id} (the page) and /crash/{id}.md (the Markdown bug
// report the page's button copies).
func (s *Server) crash(w http.ResponseWriter, r *http.Request) {
	idText, md := strings.CutSuffix(r.PathValue("id"), ".md")
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		http.Error(w, "bad crash id", http.StatusBadRequest)
		return
	}
	c, err := s.opts.Store.Crash(r.Context(), id)
	if err != nil {
		fail(w, err)
		return
	}
	if c.LogOnly && c.Site == "" {
		// A log-only crash has no report: its site (symbolized from the
		// kernel's line) is kept as its group's.
		if g, err := s.opts.Store.Group(r.Context(), c.Fingerprint); err == nil {
			c.Site = g.Frame
		}
	}
	if !s.opts.ShowSecrets {
		// Rows written by a watcher with --show-secrets, or before
		// redaction was everywhere, are redacted when shown.
		c = redact.Value(c)
		if c.Report != nil && c.Report.PHP != nil {
			// INI values and request parameters by their names too
			// (mysqli.default_pw, HTTP_COOKIE), as everywhere they are shown.
			redactByName(c.Report.PHP.INI)
			if q := c.Report.PHP.Request; q != nil {
				redactByName(q.Params)
			}
		}
	}
	if md {
		if c.Report == nil {
			http.Error(w, "no report: this crash is known from the logs only", http.StatusNotFound)
			return
		}
		var b bytes.Buffer
		if err := render.Markdown(&b, c.Report); err != nil {
			http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
		w.Write(b.Bytes())
		return
	}
	p := crashPage{Title: fmt.Sprintf("Crash #%d: %s pid %d", c.ID, c.SignalName, c.PID), Crash: c, Report: c.Report,
		MarkdownURL: fmt.Sprintf("/crash/%d.md", c.ID), JSONURL: fmt.Sprintf("/api/v1/crashes/%d?download=1", c.ID)}
	if rep := c.Report; rep != nil {
		// The replay commands name the core where the watcher keeps it.
		p.View = render.NewView(rep, render.ViewOptions{MaxLines: maxStackLines, CorePath: c.CorePath})
		for i := range p.View.Threads {
			if t := &p.View.Threads[i]; t.Crashed && p.Native == nil {
				p.Native = t
			} else {
				p.Others = append(p.Others, *t)
			}
		}
		var b bytes.Buffer
		if err := render.Markdown(&b, rep); err == nil {
			p.Markdown = &verbatim{b.String()}
		}
	}
	p.Incident, p.Logs = s.incidentOf(r, c)
	s.render(w, "crash", p)
}

// redactByName redacts the values whose names look secret.
func redactByName(m map[string]string) {
	for k, v := range m {
		m[k] = redact.String(k, v)
	}
}

// incidentOf finds what the logs recorded of the crash: the incident of
// the same host and pid within the store's window of the crash time (as the
// watcher links them when it diagnoses), with its log lines. A crash
// without one, or a database that fails to say, shows no log lines.
func (s *Server) incidentOf(r *http.Request, c *store.Crash) (*store.Incident, []logs.Link) {
	if c.PID == 0 || c.Host == "" {
		return nil, nil
	}
	in, err := s.opts.Store.FindIncident(r.Context(), c.Host, c.PID, c.Time)
	if err != nil {
		return nil, nil // none (ErrNotFound), or the page does without
	}
	var li logs.Incident
	if json.Unmarshal([]byte(in.JSON), &li) != nil {
		return in, nil
	}
	if !s.opts.ShowSecrets {
		in, li.Links = redact.Value(in), redact.Value(li.Links)
	}
	return in, sanitize.Copy(li.Links)
}
