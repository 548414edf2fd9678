package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/versions"
)

// APIVersion is the version of the JSON API under /api/v1/: fields are
// only added within a version.
const APIVersion = versions.API

// maxAPICrashes bounds the crashes of one API answer (?limit=).
const maxAPICrashes = 1000

// APIGroup is a crash group as the API shows it.
type APIGroup struct {
	Fingerprint string `json:"fingerprint"`
	// Title and Rule are the best diagnosis ("" when no rule matched).
	Title string `json:"title"`
	Rule  string `json:"rule"`
	// Signal is the signal name of the group's first crash.
	Signal string `json:"signal"`
	// Count, FirstSeen and LastSeen are over the crashes the filter selects.
	Count     int       `json:"count"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Site is the crash site (first frames).
	Site      string           `json:"site,omitempty"`
	Diagnosis *crash.Diagnosis `json:"diagnosis,omitempty"`
	// URIs and Hosts (single group only), most frequent first.
	URIs  []APICount `json:"uris,omitempty"`
	Hosts []APICount `json:"hosts,omitempty"`
	// Page is the dashboard page of the group.
	Page string `json:"page"`
	// State is "new", "resolved", "ignored" or "regressed" (a resolved
	// group that crashed again); StateAt and StateBy say when and who set
	// it ("coroner" for a regression), ResolvedAt when the group was last
	// resolved; Regressions counts the crashes that reopened it.
	State       string     `json:"state"`
	StateAt     *time.Time `json:"state_at,omitempty"`
	StateBy     string     `json:"state_by,omitempty"`
	ResolvedAt  *time.Time `json:"resolved_at,omitempty"`
	Regressions int        `json:"regressions"`
	// LogOnly is true when no crash of the group has a core: it is known
	// from the logs alone (grouped by logged crash site and request).
	LogOnly bool `json:"log_only,omitempty"`
}

// APICount is a value and how often it occurs.
type APICount struct {
	Value string `json:"value"`
	N     int    `json:"n"`
}

// APICrash is one crash as the API shows it.
type APICrash struct {
	ID          int64     `json:"id"`
	Host        string    `json:"host"`
	Time        time.Time `json:"time"`
	PID         int       `json:"pid"`
	Signal      string    `json:"signal"`
	Pool        string    `json:"pool,omitempty"`
	Method      string    `json:"method,omitempty"`
	URI         string    `json:"uri,omitempty"`
	Fingerprint string    `json:"fingerprint"`
	Rule        string    `json:"rule,omitempty"`
	Title       string    `json:"title,omitempty"`
	Core        string    `json:"core,omitempty"`
	CoreSize    int64     `json:"core_size,omitempty"`
	AnalysisMS  float64   `json:"analysis_ms"`
	// LogOnly is true for a crash known from the logs alone (no core).
	LogOnly bool   `json:"log_only,omitempty"`
	Page    string `json:"page"`
	// Report is the full analysis (single crash only; redacted unless
	// --show-secrets).
	Report *crash.Report `json:"report,omitempty"`
}

// APIFilter is the filter of a request, as the API echoes it.
type APIFilter struct {
	Group  string     `json:"group,omitempty"`
	Host   string     `json:"host,omitempty"`
	Pool   string     `json:"pool,omitempty"`
	Rule   string     `json:"rule,omitempty"`
	Signal string     `json:"signal,omitempty"`
	URI    string     `json:"uri,omitempty"`
	Q      string     `json:"q,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
	Until  *time.Time `json:"until,omitempty"`
	// States are the group states selected.
	States []string `json:"states"`
}

// The answers of the API, one type per kind (docs/schema/api-*.json
// describe them). Every answer carries APIVersion.

// GroupsAnswer answers GET /api/v1/groups: the groups the filter selects
// and the number of their crashes it selects.
type GroupsAnswer struct {
	APIVersion int        `json:"api_version"`
	Crashes    int        `json:"crashes"`
	Filter     APIFilter  `json:"filter"`
	Groups     []APIGroup `json:"groups"`
}

// GroupAnswer answers GET /api/v1/groups/{fp}: the group (with its URIs
// and hosts) and its crashes that the filter selects, newest first.
type GroupAnswer struct {
	APIVersion int        `json:"api_version"`
	Crashes    []APICrash `json:"crashes"`
	Filter     APIFilter  `json:"filter"`
	Group      APIGroup   `json:"group"`
}

// CrashesAnswer answers GET /api/v1/crashes: the crashes the filter
// selects, newest first, without their reports.
type CrashesAnswer struct {
	APIVersion int        `json:"api_version"`
	Crashes    []APICrash `json:"crashes"`
	Filter     APIFilter  `json:"filter"`
}

// CrashAnswer answers GET /api/v1/crashes/{id}: the crash with its report.
type CrashAnswer struct {
	APIVersion int      `json:"api_version"`
	Crash      APICrash `json:"crash"`
}

// StateAnswer answers POST /api/v1/groups/{fp}/state: the group in its
// new state.
type StateAnswer struct {
	APIVersion int      `json:"api_version"`
	Group      APIGroup `json:"group"`
}

// ErrorAnswer is the answer of a request that failed (400, 403, 404,
// 415, 500, 503): what went wrong.
type ErrorAnswer struct {
	APIVersion int    `json:"api_version"`
	Error      string `json:"error"`
}

// filterParams are the query parameters of a filter, in the order the
// pages show them.
var filterParams = []string{"q", "host", "pool", "uri", "rule", "signal", "since", "until", "state"}

// defaultStates are the group states shown when the filter names none:
// every state but ignored.
var defaultStates = []string{store.StateNew, store.StateRegressed, store.StateResolved}

// parseStates reads the state parameter: "" (every state but ignored),
// "all", or states separated by commas.
func parseStates(v string) ([]string, error) {
	switch v {
	case "":
		return defaultStates, nil
	case "all":
		return nil, nil
	}
	var out []string
	for _, st := range strings.Split(v, ",") {
		st = strings.TrimSpace(st)
		if !store.ValidState(st) {
			return nil, fmt.Errorf("%q is not a group state (new, regressed, resolved, ignored, all)", st)
		}
		out = append(out, st)
	}
	return out, nil
}

// parseFilter reads a filter from query parameters: group, host, pool,
// rule, signal (exact), uri (contained), q (text in title, rule,
// fingerprint or URI), since and until (RFC 3339, a date, or a duration
// before now: "24h", "7d").
func parseFilter(q url.Values, now time.Time) (store.Filter, APIFilter, error) {
	f := store.Filter{Fingerprint: q.Get("group"), Host: q.Get("host"), Pool: q.Get("pool"), Rule: q.Get("rule"),
		Signal: strings.ToUpper(q.Get("signal")), URI: q.Get("uri"), Text: q.Get("q")}
	if f.Signal != "" && !strings.HasPrefix(f.Signal, "SIG") {
		f.Signal = "SIG" + f.Signal
	}
	var err error
	if f.States, err = parseStates(q.Get("state")); err != nil {
		return f, APIFilter{}, fmt.Errorf("state: %w", err)
	}
	if f.Since, err = parseWhen(q.Get("since"), now); err != nil {
		return f, APIFilter{}, fmt.Errorf("since: %w", err)
	}
	if f.Until, err = parseWhen(q.Get("until"), now); err != nil {
		return f, APIFilter{}, fmt.Errorf("until: %w", err)
	}
	echo := APIFilter{Group: f.Fingerprint, Host: f.Host, Pool: f.Pool, Rule: f.Rule, Signal: f.Signal, URI: f.URI, Q: f.Text, States: f.States}
	if echo.States == nil {
		echo.States = store.States
	}
	if !f.Since.IsZero() {
		echo.Since = &f.Since
	}
	if !f.Until.IsZero() {
		echo.Until = &f.Until
	}
	return f, echo, nil
}

// parseWhen parses a time: RFC 3339, a date (UTC), or a duration before
// now ("90m", "24h", "7d").
func parseWhen(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, nil
	}
	if d, ok := strings.CutSuffix(v, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n >= 0 && n < 100000 {
			return now.Add(-time.Duration(n) * 24 * time.Hour).UTC(), nil
		}
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d).UTC(), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time (2026-12-06T10:00:00Z, 2026-12-06, 24h, 7d)", v)
}

func apiGroupOf(g *store.Group) APIGroup {
	out := APIGroup{Fingerprint: g.Fingerprint, Title: g.Title, Rule: g.Rule, Signal: g.SignalName, Count: g.Count,
		FirstSeen: g.FirstSeen, LastSeen: g.LastSeen, Site: g.Frame, Diagnosis: g.Diagnosis,
		Page: "/group/" + url.PathEscape(g.Fingerprint), State: g.State, StateBy: g.StateBy, Regressions: g.Regressions, LogOnly: g.LogOnly}
	if !g.StateAt.IsZero() {
		out.StateAt = &g.StateAt
	}
	if !g.ResolvedAt.IsZero() {
		out.ResolvedAt = &g.ResolvedAt
	}
	for _, c := range g.URIs {
		out.URIs = append(out.URIs, APICount{c.Value, c.N})
	}
	for _, c := range g.Hosts {
		out.Hosts = append(out.Hosts, APICount{c.Value, c.N})
	}
	return out
}

func apiCrashOf(c *store.Crash) APICrash {
	return APICrash{ID: c.ID, Host: c.Host, Time: c.Time, PID: c.PID, Signal: c.SignalName, Pool: c.Pool, Method: c.Method,
		URI: c.URI, Fingerprint: c.Fingerprint, Rule: c.Rule, Title: c.Title, Core: c.CorePath, CoreSize: c.CoreSize,
		AnalysisMS: c.AnalysisMS, LogOnly: c.LogOnly, Page: "/crash/" + strconv.FormatInt(c.ID, 10), Report: c.Report}
}

// writeJSON writes v as the answer.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", " ")
	enc.Encode(v)
}

// apiFail answers an error as JSON, with the status fail would give.
func apiFail(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, store.ErrNotFound):
		status = http.StatusNotFound
	case store.Unavailable(err):
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, ErrorAnswer{APIVersion: APIVersion, Error: err.Error()})
}

// findGroups runs the filter of a request: the groups it selects
// (redacted unless ShowSecrets), of every state when allStates is set (the
// groups page counts the ignored ones it hides). The groups page and
// /api/v1/groups use it.
func (s *Server) findGroups(r *http.Request, allStates bool) ([]store.Group, APIFilter, store.Filter, error) {
	f, echo, err := parseFilter(r.URL.Query(), s.opts.Now())
	if err != nil {
		return nil, echo, f, &badRequest{err}
	}
	gf := f
	if allStates {
		gf.States = nil
	}
	gs, err := s.opts.Store.FindGroups(r.Context(), gf)
	if err != nil {
		return nil, echo, f, err
	}
	if !s.opts.ShowSecrets {
		gs = redact.Value(gs)
	}
	return gs, echo, f, nil
}

// badRequest is an error in the request's parameters.
type badRequest struct{ err error }

func (b *badRequest) Error() string { return b.err.Error() }

// apiGroups answers GET /api/v1/groups?FILTER.
func (s *Server) apiGroups(w http.ResponseWriter, r *http.Request) {
	gs, echo, _, err := s.findGroups(r, false)
	if s.apiError(w, err) {
		return
	}
	out := make([]APIGroup, 0, len(gs))
	total := 0
	for i := range gs {
		out = append(out, apiGroupOf(&gs[i]))
		total += gs[i].Count
	}
	writeJSON(w, http.StatusOK, GroupsAnswer{APIVersion: APIVersion, Filter: echo, Crashes: total, Groups: out})
}

// apiGroup answers GET /api/v1/groups/{fp}?FILTER: the group and its
// crashes that the filter selects.
func (s *Server) apiGroup(w http.ResponseWriter, r *http.Request) {
	fp := r.PathValue("fp")
	g, err := s.opts.Store.Group(r.Context(), fp)
	if s.apiError(w, err) {
		return
	}
	q := r.URL.Query()
	q.Set("group", fp)
	if q.Get("state") == "" {
		q.Set("state", "all") // the group's crashes, whatever its state
	}
	r.URL.RawQuery = q.Encode()
	s.apiCrashList(w, r, g)
}

// apiCrashes answers GET /api/v1/crashes?FILTER&limit=N.
func (s *Server) apiCrashes(w http.ResponseWriter, r *http.Request) { s.apiCrashList(w, r, nil) }

func (s *Server) apiCrashList(w http.ResponseWriter, r *http.Request, g *store.Group) {
	f, echo, err := parseFilter(r.URL.Query(), s.opts.Now())
	if err != nil {
		s.apiError(w, &badRequest{err})
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		if limit, err = strconv.Atoi(v); err != nil || limit < 1 || limit > maxAPICrashes {
			s.apiError(w, &badRequest{fmt.Errorf("limit %q: want 1 to %d", v, maxAPICrashes)})
			return
		}
	}
	cs, err := s.opts.Store.FindCrashes(r.Context(), f, limit)
	if s.apiError(w, err) {
		return
	}
	if !s.opts.ShowSecrets {
		cs = redact.Value(cs)
	}
	out := make([]APICrash, 0, len(cs))
	for i := range cs {
		out = append(out, apiCrashOf(&cs[i]))
	}
	if g == nil {
		writeJSON(w, http.StatusOK, CrashesAnswer{APIVersion: APIVersion, Filter: echo, Crashes: out})
		return
	}
	if !s.opts.ShowSecrets {
		g = redact.Value(g)
	}
	writeJSON(w, http.StatusOK, GroupAnswer{APIVersion: APIVersion, Filter: echo, Crashes: out, Group: apiGroupOf(g)})
}

// apiCrash answers GET /api/v1/crashes/{id}: the crash with its report
// (?download=1: as an attachment, coroner-crash-ID.json).
func (s *Server) apiCrash(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		s.apiError(w, &badRequest{fmt.Errorf("crash id %q: not a number", r.PathValue("id"))})
		return
	}
	c, err := s.opts.Store.Crash(r.Context(), id)
	if s.apiError(w, err) {
		return
	}
	if !s.opts.ShowSecrets {
		c = redact.Value(c)
	}
	if r.URL.Query().Get("download") != "" {
		// The crash page's "Download JSON": the same answer, saved as a file.
		w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="coroner-crash-%d.json"`, c.ID))
	}
	writeJSON(w, http.StatusOK, CrashAnswer{APIVersion: APIVersion, Crash: apiCrashOf(c)})
}

// apiError answers err (when not nil) and reports whether it did.
func (s *Server) apiError(w http.ResponseWriter, err error) bool {
	if err == nil {
		return false
	}
	var bad *badRequest
	if errors.As(err, &bad) {
		writeJSON(w, http.StatusBadRequest, ErrorAnswer{APIVersion: APIVersion, Error: err.Error()})
		return true
	}
	apiFail(w, err)
	return true
}
