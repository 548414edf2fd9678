package server

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/crash"
	"github.com/coroner-dev/coroner/internal/service/store"
)

// apiServer serves a real SQLite store holding crashes of two groups on
// two hosts, and returns its URL and the crashes.
func apiServer(t *testing.T, opts Options) (string, []*store.Crash) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "api.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var cs []*store.Crash
	for i, c := range []struct {
		host, pool, uri, fp, rule, title string
		ago                              time.Duration
	}{
		{"web1", "www", "/checkout?id=1", "aa11", "opcache-jit", "JIT crash", 72 * time.Hour},
		{"web1", "www", "/checkout?id=2", "aa11", "opcache-jit", "JIT crash", 2 * time.Hour},
		{"web2", "api", "/v1/users", "aa11", "opcache-jit", "JIT crash", time.Hour},
		{"web2", "api", "/v1/render", "bb22", "stack-overflow", "Stack overflow", 30 * time.Minute},
	} {
		rep := &crash.Report{Schema: crash.SchemaVersion, Process: crash.Process{PID: 100 + i}, Signal: crash.Signal{Number: 11, Name: "SIGSEGV"},
			PHP:         &crash.PHP{Request: &crash.Request{Method: "GET", URI: c.uri, Params: map[string]string{"HTTP_COOKIE": "sid=hunter2"}}},
			Fingerprint: c.fp}
		cr := &store.Crash{Host: c.host, Time: now.Add(-c.ago), PID: 100 + i, Signal: 11, SignalName: "SIGSEGV", Pool: c.pool,
			Method: "GET", URI: c.uri, Fingerprint: c.fp, Rule: c.rule, Title: c.title, Report: rep}
		if _, err := st.RecordCrash(ctx, cr); err != nil {
			t.Fatal(err)
		}
		cs = append(cs, cr)
	}
	opts.Store = st
	opts.Now = func() time.Time { return now }
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return ts.URL, cs
}

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	code, body := fetch(t, mustRequest(t, url))
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s: %d, not JSON: %v\n%s", url, code, err, body)
	}
	return code
}

type groupsAnswer struct {
	APIVersion int        `json:"api_version"`
	Crashes    int        `json:"crashes"`
	Groups     []APIGroup `json:"groups"`
	Error      string     `json:"error"`
}

func TestAPIGroups(t *testing.T) {
	base, _ := apiServer(t, Options{})
	for _, c := range []struct {
		query string
		want  string // fingerprint:count ...
	}{
		{"", "bb22:1 aa11:3"},
		{"?host=web1", "aa11:2"},
		{"?pool=api", "bb22:1 aa11:1"},
		{"?uri=checkout", "aa11:2"},
		{"?rule=stack-overflow", "bb22:1"},
		{"?signal=segv", "bb22:1 aa11:3"},
		{"?signal=SIGBUS", ""},
		{"?q=jit", "aa11:3"},
		{"?since=24h", "bb22:1 aa11:2"},
		{"?since=2026-12-06T11:00:00Z", "bb22:1 aa11:1"},
		{"?until=2d", "aa11:1"},
		{"?since=7d&host=web2&q=render", "bb22:1"},
	} {
		var a groupsAnswer
		if code := getJSON(t, base+"/api/v1/groups"+c.query, &a); code != 200 || a.APIVersion != APIVersion {
			t.Fatalf("%s: %d %+v", c.query, code, a)
		}
		var got []string
		total := 0
		for _, g := range a.Groups {
			got = append(got, g.Fingerprint+":"+strconv.Itoa(g.Count))
			total += g.Count
			if g.Page != "/group/"+g.Fingerprint || g.Title == "" {
				t.Errorf("%s: group %+v", c.query, g)
			}
		}
		if strings.Join(got, " ") != c.want || a.Crashes != total {
			t.Errorf("groups%s = %v (%d crashes), want %s", c.query, got, a.Crashes, c.want)
		}
	}
	var a groupsAnswer
	if code := getJSON(t, base+"/api/v1/groups?since=yesterday", &a); code != 400 || !strings.Contains(a.Error, "since") {
		t.Errorf("bad since: %d %+v", code, a)
	}
	var g struct {
		Group   APIGroup   `json:"group"`
		Crashes []APICrash `json:"crashes"`
	}
	if code := getJSON(t, base+"/api/v1/groups/aa11?host=web1", &g); code != 200 || g.Group.Fingerprint != "aa11" || len(g.Group.Hosts) != 2 ||
		len(g.Crashes) != 2 || g.Crashes[0].URI != "/checkout?id=2" || g.Crashes[0].Report != nil {
		t.Errorf("group aa11 on web1: %d %+v", code, g)
	}
	if code := getJSON(t, base+"/api/v1/groups/nope", &a); code != 404 || a.Error == "" {
		t.Errorf("missing group: %d %+v", code, a)
	}
}

func TestAPICrashes(t *testing.T) {
	base, cs := apiServer(t, Options{Token: "s3cret"})
	var list struct {
		Crashes []APICrash `json:"crashes"`
		Error   string     `json:"error"`
	}
	if code, _ := fetch(t, mustRequest(t, base+"/api/v1/crashes")); code != 401 {
		t.Errorf("no token: %d", code)
	}
	get := func(path string, v any) int {
		req := mustRequest(t, base+path)
		req.Header.Set("Authorization", "Bearer s3cret")
		code, body := fetch(t, req)
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		return code
	}
	if code := get("/api/v1/crashes?limit=2", &list); code != 200 || len(list.Crashes) != 2 || list.Crashes[0].ID != cs[3].ID {
		t.Errorf("crashes: %d %+v", code, list)
	}
	if code := get("/api/v1/crashes?limit=0", &list); code != 400 {
		t.Errorf("limit 0: %d", code)
	}
	var one struct {
		Crash APICrash `json:"crash"`
	}
	if code := get("/api/v1/crashes/"+strconv.FormatInt(cs[0].ID, 10), &one); code != 200 || one.Crash.Report == nil ||
		one.Crash.Report.PHP.Request.URI != "/checkout?id=1" || one.Crash.Page != "/crash/"+strconv.FormatInt(cs[0].ID, 10) {
		t.Errorf("crash: %d %+v", code, one)
	}
	if strings.Contains(one.Crash.Report.PHP.Request.Params["HTTP_COOKIE"], "hunter2") {
		t.Error("the API shows a cookie without --show-secrets")
	}
	if code := get("/api/v1/crashes/99999", &list); code != 404 || list.Error == "" {
		t.Errorf("missing crash: %d %+v", code, list)
	}
	if code := get("/api/v1/crashes/x", &list); code != 400 {
		t.Errorf("bad id: %d", code)
	}
}

// TestGroupsPageFilter: the groups page takes the API's filter from its
// URL (shareable), shows only what it selects, and points its
// auto-refresh at the same selection's JSON.
func TestGroupsPageFilter(t *testing.T) {
	base, _ := apiServer(t, Options{})
	code, page := fetch(t, mustRequest(t, base+"/?host=web2&pool=api&since=7d"))
	if code != 200 {
		t.Fatalf("%d %s", code, page)
	}
	for _, want := range []string{`value="web2"`, `value="api"`, `value="7d"`, "2 groups, 2 crashes selected by the filter",
		`data-api="/api/v1/groups?host=web2&amp;pool=api&amp;since=7d"`, "Stack overflow", "JIT crash", "/v1/render"} {
		if !strings.Contains(page, want) {
			t.Errorf("filtered page lacks %s", want)
		}
	}
	if strings.Contains(page, "/checkout") {
		t.Error("filtered page shows a crash of web1")
	}
	if code, page := fetch(t, mustRequest(t, base+"/?q=nothing-matches")); code != 200 || !strings.Contains(page, "No crash matches the filter") {
		t.Errorf("empty selection: %d", code)
	}
	if code, _ := fetch(t, mustRequest(t, base+"/?since=soon")); code != 400 {
		t.Errorf("bad filter: %d", code)
	}
}
