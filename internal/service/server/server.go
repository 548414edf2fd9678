// Package server is the web dashboard and the Prometheus endpoint of
// `coroner watch`: server-rendered HTML (html/template, embedded CSS, no
// external resources) over a store.Store.
package server

import (
	"context"
	"crypto/subtle"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/units"

	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/service/store"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Options configure a Server.
type Options struct {
	Store store.Store
	// Token, when set, is required as "Authorization: Bearer TOKEN" (or the
	// coroner_token cookie set by visiting /?token=TOKEN).
	Token string
	// ShowSecrets shows request parameters and INI values that look like
	// secrets; by default they are redacted.
	ShowSecrets bool
	// Metrics writes extra metrics (the watcher's) in the Prometheus format.
	Metrics func(w io.Writer)
	// Health reports whether the database is up and, one line each, what
	// is not right (nothing: healthy), for /healthz and
	// coroner_database_up. Default: ping the store.
	Health func(ctx context.Context) (dbUp bool, problems []string)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MetricsHost limits the crash and worker death series of /metrics to
	// one host (a watcher exports its own host only, so that watchers
	// sharing one database do not count each other's crashes); "" exports
	// every host (coroner serve).
	MetricsHost string
	// Version is coroner's version, for coroner_build_info.
	Version string
	// Hosts are the host names the dashboard answers to besides IP
	// literals and "localhost" (--allowed-host). A request naming another
	// host in its Host header is refused: a page of another site that made
	// its name resolve to this machine (DNS rebinding) cannot read it.
	Hosts []string
}

// Server serves the dashboard.
type Server struct {
	opts Options
	tmpl map[string]*template.Template
	mux  *http.ServeMux
}

// CheckListen refuses a non-loopback listen address without a token.
func CheckListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("listen address %q: %w", addr, err)
	}
	if token != "" {
		return nil
	}
	if host == "localhost" {
		return nil
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("refusing to serve the dashboard on %q without a token: bind 127.0.0.1 or set --token", addr)
	}
	return nil
}

// New builds the server.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("server: no store")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Health == nil {
		st := opts.Store
		opts.Health = func(ctx context.Context) (bool, []string) {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := st.Ping(ctx); err != nil {
				return false, []string{fmt.Sprintf("database: unavailable (%s): %v", reasonOf(err), err)}
			}
			return true, nil
		}
	}
	s := &Server{opts: opts, tmpl: map[string]*template.Template{}, mux: http.NewServeMux()}
	funcs := template.FuncMap{
		"ago":   func(t time.Time) string { return ago(opts.Now(), t) },
		"stamp": func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"short": func(fp string) string {
			if len(fp) > 12 {
				return fp[:12]
			}
			return fp
		},
		"bytes": units.Bytes,
		"ms":    func(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " ms" },
		"add":   func(a, b int) int { return a + b },
		"deref": func(p *int) int { return *p },
	}
	for _, page := range []string{"groups", "group", "crash"} {
		t, err := template.New(page).Funcs(funcs).ParseFS(assets, "templates/layout.html", "templates/"+page+".html")
		if err != nil {
			return nil, fmt.Errorf("server: parse template %s: %w", page, err)
		}
		s.tmpl[page] = t
	}
	static, _ := fs.Sub(assets, "static")
	s.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	s.mux.HandleFunc("GET /{$}", s.groups)
	s.mux.HandleFunc("GET /group/{fp}", s.group)
	s.mux.HandleFunc("GET /crash/{id}", s.crash)
	s.mux.HandleFunc("GET /api/v1/groups", s.apiGroups)
	s.mux.HandleFunc("GET /api/v1/groups/{fp}", s.apiGroup)
	s.mux.HandleFunc("POST /api/v1/groups/{fp}/state", s.apiSetState)
	s.mux.HandleFunc("POST /group/{fp}/state", s.pageSetState)
	s.mux.HandleFunc("GET /api/v1/crashes", s.apiCrashes)
	s.mux.HandleFunc("GET /api/v1/crashes/{id}", s.apiCrash)
	s.mux.HandleFunc("GET /metrics", s.metrics)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	return s, nil
}

// ServeHTTP implements http.Handler, checking the Host header and the
// token first.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.hostAllowed(r.Host) {
		http.Error(w, "misdirected request: this dashboard answers to IP addresses, localhost and --allowed-host names", http.StatusMisdirectedRequest)
		return
	}
	if s.opts.Token != "" && !s.authorised(w, r) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="coroner"`)
		http.Error(w, "unauthorised: a bearer token is required", http.StatusUnauthorized)
		return
	}
	w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self'; img-src 'self' data:")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

// hostAllowed reports whether a Host header names this dashboard: an IP
// literal (a rebinding attack needs a name), localhost, or a configured
// name.
func (s *Server) hostAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(strings.Trim(host, "[]")), ".")
	if host == "" {
		return false // HTTP/1.1 requires a Host
	}
	if net.ParseIP(host) != nil || host == "localhost" {
		return true
	}
	for _, h := range s.opts.Hosts {
		if strings.EqualFold(strings.TrimSuffix(h, "."), host) {
			return true
		}
	}
	return false
}

func (s *Server) authorised(w http.ResponseWriter, r *http.Request) bool {
	eq := func(v string) bool { return subtle.ConstantTimeCompare([]byte(v), []byte(s.opts.Token)) == 1 }
	if a := r.Header.Get("Authorization"); strings.HasPrefix(a, "Bearer ") && eq(strings.TrimPrefix(a, "Bearer ")) {
		return true
	}
	if c, err := r.Cookie("coroner_token"); err == nil && eq(c.Value) {
		return true
	}
	if v := r.URL.Query().Get("token"); v != "" && eq(v) {
		http.SetCookie(w, &http.Cookie{Name: "coroner_token", Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
		return true
	}
	return false
}

// ListenAndServe serves on addr until ctx is done.
func (s *Server) ListenAndServe(ctx context.Context, addr string) error {
	if err := CheckListen(addr, s.opts.Token); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx is done.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	hs := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve dashboard: %w", err)
	}
	return nil
}

// render executes a page; html/template escapes markup, sanitize.Copy the
// control characters of every string the page shows (which came from
// cores and logs).
func (s *Server) render(w http.ResponseWriter, page string, data any) {
	data = sanitize.Copy(data)
	var b strings.Builder
	if err := s.tmpl[page].ExecuteTemplate(&b, "layout", data); err != nil {
		http.Error(w, "render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	io.WriteString(w, b.String())
}

// reasonOf names why the database failed, "error" when it is not
// unavailable but wrong.
func reasonOf(err error) string {
	if r := store.Reason(err); r != "" {
		return r
	}
	return "error"
}

// healthz answers 200 "ok" when the database answers and nothing waits
// for it, else 503 "degraded" and one line per problem.
func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	_, problems := s.opts.Health(r.Context())
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if len(problems) == 0 {
		io.WriteString(w, "ok\n")
		return
	}
	w.WriteHeader(http.StatusServiceUnavailable)
	for i, p := range problems {
		problems[i] = sanitize.Text(p)
	}
	io.WriteString(w, "degraded\n"+strings.Join(problems, "\n")+"\n")
}

func fail(w http.ResponseWriter, err error) {
	if errors.Is(err, store.ErrNotFound) {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if store.Unavailable(err) {
		http.Error(w, fmt.Sprintf("database unavailable (%s), see /healthz: %v", store.Reason(err), err), http.StatusServiceUnavailable)
		return
	}
	http.Error(w, err.Error(), http.StatusInternalServerError)
}

type groupsPage struct {
	Title    string
	Groups   []groupRow
	Timeline *timeline
	Total    int
	Recent   []store.Crash
	Incident []store.Incident
	// Filter is the value of each filter parameter (filterParams), for
	// the form; Filtered says whether one is set; API is the JSON of the
	// same selection (auto-refresh polls it).
	Filter   map[string]string
	Filtered bool
	API      string
	// Last is the last crash of the selection (RFC 3339), for the poll.
	Last string
	// Refresh is the poll interval in milliseconds (?refresh=SECONDS,
	// default 30 s, at least 2 s).
	Refresh int
	// States are the states the filter can select; Ignored counts the
	// ignored groups the default selection hides.
	States  []string
	Ignored int
}

type groupRow struct {
	store.Group
	Colour string
	// Spark is the group's crashes per day (nil: none in sparkDays days).
	Spark *sparkline
}

// groups is the groups page: the groups and latest crashes a filter
// selects (the same query as /api/v1/groups), the chart of the last 48
// hours and the latest log incidents.
func (s *Server) groups(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	gs, _, f, err := s.findGroups(r, r.URL.Query().Get("state") == "")
	var bad *badRequest
	if errors.As(err, &bad) {
		http.Error(w, "bad filter: "+err.Error(), http.StatusBadRequest)
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	now := s.opts.Now()
	hours, err := s.opts.Store.Hourly(ctx, now.Add(-47*time.Hour).Truncate(time.Hour))
	if err != nil {
		fail(w, err)
		return
	}
	recent, err := s.opts.Store.FindCrashes(ctx, f, 15)
	if err != nil {
		fail(w, err)
		return
	}
	incs, err := s.opts.Store.Incidents(ctx, 15)
	if err != nil {
		fail(w, err)
		return
	}
	if !s.opts.ShowSecrets {
		recent, incs = redact.Value(recent), redact.Value(incs)
	}
	days, err := s.opts.Store.Daily(ctx, now.UTC().Truncate(24*time.Hour).AddDate(0, 0, -(sparkDays-1)))
	if err != nil {
		fail(w, err)
		return
	}
	sparks := sparklines(days, now)
	p := groupsPage{Title: "Crash groups", Recent: recent, Incident: incs, Filter: map[string]string{}, API: "/api/v1/groups", Refresh: 30000,
		States: store.States}
	if r.URL.Query().Get("state") == "" {
		// The default selection hides the ignored groups: counted here.
		kept := gs[:0:0]
		for _, g := range gs {
			if g.State == store.StateIgnored {
				p.Ignored++
				continue
			}
			kept = append(kept, g)
		}
		gs = kept
	}
	if v, err := strconv.Atoi(r.URL.Query().Get("refresh")); err == nil && v >= 2 && v <= 3600 {
		p.Refresh = v * 1000
	}
	q := url.Values{}
	for _, k := range filterParams {
		if v := r.URL.Query().Get(k); v != "" {
			p.Filter[k] = v
			q.Set(k, v)
			p.Filtered = true
		}
	}
	if len(q) > 0 {
		p.API += "?" + q.Encode()
	}
	colours := map[string]string{}
	var shown []store.HourCount
	for i, g := range gs {
		c := palette[i%len(palette)]
		colours[g.Fingerprint] = c
		p.Groups = append(p.Groups, groupRow{Group: g, Colour: c, Spark: sparks[g.Fingerprint]})
		p.Total += g.Count
		if g.LastSeen.After(parseRFC3339(p.Last)) {
			p.Last = g.LastSeen.UTC().Format(time.RFC3339)
		}
	}
	for _, h := range hours {
		if _, ok := colours[h.Fingerprint]; ok {
			shown = append(shown, h)
		}
	}
	p.Timeline = buildTimeline(shown, colours, now, 48)
	s.render(w, "groups", p)
}

func parseRFC3339(v string) time.Time {
	t, _ := time.Parse(time.RFC3339, v)
	return t
}

type groupPage struct {
	Title    string
	Group    *store.Group
	Crashes  []store.Crash
	Timeline *timeline
	// Actions are the state buttons.
	Actions []stateAction
}

func (s *Server) group(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	fp := r.PathValue("fp")
	g, err := s.opts.Store.Group(ctx, fp)
	if err != nil {
		fail(w, err)
		return
	}
	if !s.opts.ShowSecrets {
		g = redact.Value(g)
	}
	cs, err := s.opts.Store.Crashes(ctx, fp, 200)
	if err != nil {
		fail(w, err)
		return
	}
	if !s.opts.ShowSecrets {
		cs = redact.Value(cs)
	}
	now := s.opts.Now()
	hours, err := s.opts.Store.Hourly(ctx, now.Add(-47*time.Hour).Truncate(time.Hour))
	if err != nil {
		fail(w, err)
		return
	}
	var mine []store.HourCount
	for _, h := range hours {
		if h.Fingerprint == fp {
			mine = append(mine, h)
		}
	}
	title := g.Title
	if title == "" {
		title = "Unrecognised crash " + fp
	}
	s.render(w, "group", groupPage{Title: title, Group: g, Crashes: cs,
		Timeline: buildTimeline(mine, map[string]string{fp: palette[0]}, now, 48), Actions: stateActions(g.State)})
}

// stateAction is a state button of the group page.
type stateAction struct{ State, Label string }

// stateActions are the state changes offered to a group in state st.
func stateActions(st string) []stateAction {
	var out []stateAction
	if st != store.StateResolved {
		out = append(out, stateAction{store.StateResolved, "Resolve"})
	}
	if st != store.StateIgnored {
		out = append(out, stateAction{store.StateIgnored, "Ignore"})
	}
	if st != store.StateNew {
		out = append(out, stateAction{store.StateNew, "Reopen"})
	}
	return out
}

// metrics writes the crash and worker death counts from the database
// (of MetricsHost only, when set) and the watcher's metrics. Without a
// database the counts are left out (a comment says why) and the rest is
// still served: that is when the spool metrics matter.
func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	up, _ := s.opts.Health(ctx)
	var rows []store.MetricRow
	var deaths []store.DeathRow
	var allGroups []store.Group
	var err error
	if up {
		rows, err = s.opts.Store.CrashCounts(ctx, s.opts.MetricsHost)
		if err == nil {
			deaths, err = s.opts.Store.DeathCounts(ctx, s.opts.MetricsHost)
		}
		if err == nil {
			allGroups, err = s.opts.Store.Groups(ctx)
		}
		if err != nil && !store.Unavailable(err) {
			fail(w, err)
			return
		}
		up = err == nil
	}
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	var b strings.Builder
	head := func(name, typ, help string) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, typ)
	}
	head("coroner_build_info", "gauge", "The coroner version serving these metrics (always 1).")
	fmt.Fprintf(&b, "coroner_build_info{version=\"%s\",goversion=\"%s\"} 1\n", promLabel(orDev(s.opts.Version)), promLabel(runtime.Version()))
	v := 0
	if up {
		v = 1
	}
	head("coroner_database_up", "gauge", "Whether the database answers and takes writes.")
	fmt.Fprintf(&b, "coroner_database_up %d\n", v)
	unavailable := func(name string) {
		if err != nil {
			fmt.Fprintf(&b, "# %s unavailable: database %s\n", name, store.Reason(err))
		}
	}

	head("coroner_crashes_total", "counter", "Analysed crashes (cores) in the database, by host, crash group (fingerprint), diagnosis rule, signal and pool.")
	unavailable("coroner_crashes_total")
	type group struct{ title, rule string }
	groups := map[string]group{}
	last := map[string]time.Time{}
	for _, m := range rows {
		fmt.Fprintf(&b, "coroner_crashes_total{host=\"%s\",fingerprint=\"%s\",rule=\"%s\",signal=\"%s\",pool=\"%s\"} %d\n",
			promLabel(m.Host), promLabel(m.Fingerprint), promLabel(m.Rule), promLabel(m.Signal), promLabel(m.Pool), m.N)
		if g, ok := groups[m.Fingerprint]; !ok || g.rule == "" && m.Rule != "" {
			groups[m.Fingerprint] = group{title: m.Title, rule: m.Rule}
		}
		if m.Last.After(last[m.Host]) {
			last[m.Host] = m.Last
		}
	}
	head("coroner_group_info", "gauge", "One series per crash group (always 1): its fingerprint, title and diagnosis rule, to join with coroner_crashes_total on fingerprint.")
	unavailable("coroner_group_info")
	for _, fp := range sortedKeys(groups) {
		g := groups[fp]
		fmt.Fprintf(&b, "coroner_group_info{fingerprint=\"%s\",title=\"%s\",rule=\"%s\"} 1\n", promLabel(fp), promLabel(g.title), promLabel(g.rule))
	}
	head("coroner_group_state", "gauge", "One series per crash group (always 1): its state, new, regressed (a resolved group that crashed again), resolved or ignored. The groups are the database's, whichever host crashed.")
	unavailable("coroner_group_state")
	for _, g := range allGroups {
		fmt.Fprintf(&b, "coroner_group_state{fingerprint=\"%s\",state=\"%s\"} 1\n", promLabel(g.Fingerprint), promLabel(g.State))
	}
	head("coroner_group_regressions_total", "counter", "Times a resolved crash group crashed again (and became regressed), by fingerprint.")
	unavailable("coroner_group_regressions_total")
	for _, g := range allGroups {
		fmt.Fprintf(&b, "coroner_group_regressions_total{fingerprint=\"%s\"} %d\n", promLabel(g.Fingerprint), g.Regressions)
	}
	head("coroner_last_crash_timestamp_seconds", "gauge", "Unix time of the last analysed crash of each host.")
	unavailable("coroner_last_crash_timestamp_seconds")
	for _, h := range sortedKeys(last) {
		fmt.Fprintf(&b, "coroner_last_crash_timestamp_seconds{host=\"%s\"} %d\n", promLabel(h), last[h].Unix())
	}

	head("coroner_worker_deaths_total", "counter", "Worker deaths the logs recorded (with or without a core), by host, pool, signal and the log that recorded them.")
	unavailable("coroner_worker_deaths_total")
	lastDeath := map[string]time.Time{}
	for _, d := range deaths {
		fmt.Fprintf(&b, "coroner_worker_deaths_total{host=\"%s\",pool=\"%s\",signal=\"%s\",source=\"%s\"} %d\n",
			promLabel(d.Host), promLabel(d.Pool), promLabel(d.Signal), promLabel(d.Source), d.N)
		if d.Last.After(lastDeath[d.Host]) {
			lastDeath[d.Host] = d.Last
		}
	}
	head("coroner_last_worker_death_timestamp_seconds", "gauge", "Unix time of the last worker death the logs of each host recorded.")
	unavailable("coroner_last_worker_death_timestamp_seconds")
	for _, h := range sortedKeys(lastDeath) {
		fmt.Fprintf(&b, "coroner_last_worker_death_timestamp_seconds{host=\"%s\"} %d\n", promLabel(h), lastDeath[h].Unix())
	}
	io.WriteString(w, b.String())
	if s.opts.Metrics != nil {
		s.opts.Metrics(w)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func orDev(v string) string {
	if v == "" {
		return "dev"
	}
	return v
}

// promLabel escapes a label value for the text format, which knows only
// the escapes \\, \" and \n.
func promLabel(v string) string {
	return labelEscaper.Replace(strings.ToValidUTF8(v, "\uFFFD"))
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)

func ago(now, t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "just now"
	case d < time.Minute:
		return strconv.Itoa(int(d.Seconds())) + "s ago"
	case d < time.Hour:
		return strconv.Itoa(int(d.Minutes())) + "m ago"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d.Hours())) + "h ago"
	default:
		return strconv.Itoa(int(d.Hours()/24)) + "d ago"
	}
}
