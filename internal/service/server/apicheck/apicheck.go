// Package apicheck validates the answers of a running dashboard's JSON
// API (/api/v1/) against docs/schema/api-*.json, for tests: the server's
// on its test stores, watch's on the crashes a real watcher recorded from
// the lab. It asks every endpoint about everything the store holds, under
// several filters, provokes each kind of error answer, and then checks
// that each schema rejects mutated copies of the real answers.
package apicheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/schemacheck"
)

// Schemas are the schema files of the API's answers (docs/schema/NAME.json).
var Schemas = []string{"api-groups", "api-group", "api-crashes", "api-crash", "api-group-state", "api-error"}

// Checker asks one dashboard and validates its answers.
type Checker struct {
	set  *schemacheck.Set
	base string
	// Header is added to every request (Authorization with a token).
	Header http.Header
	// answers are the real answers validated, by schema.
	answers map[string][][]byte
	// seen counts what the validated answers showed (Seen).
	seen map[string]int
}

// New loads the schema files of schemaDir (the repository's docs/schema,
// relative to the test's package) to check the dashboard at base
// ("http://127.0.0.1:PORT").
func New(schemaDir, base string) (*Checker, error) {
	set, err := schemacheck.Load(schemaDir)
	if err != nil {
		return nil, err
	}
	have := map[string]bool{}
	for _, n := range set.Names() {
		have[n] = true
	}
	for _, n := range Schemas {
		if !have[n] {
			return nil, fmt.Errorf("no schema file %s.json in %s", n, schemaDir)
		}
	}
	return &Checker{set: set, base: strings.TrimSuffix(base, "/"), Header: http.Header{},
		answers: map[string][][]byte{}, seen: map[string]int{}}, nil
}

// do sends a request and validates the answer: its status must be
// status, its body a document of schema.
func (c *Checker) do(t testing.TB, method, path, contentType, body string, hdr http.Header, status int, schema string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if resp.StatusCode != status {
		t.Errorf("%s %s: %s, want %d\n%s", method, path, resp.Status, status, b)
		return nil
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if err := c.set.Validate(schema, b); err != nil {
		t.Errorf("%s %s: %v", method, path, err)
		return nil
	}
	c.answers[schema] = append(c.answers[schema], b)
	c.note(schema, b)
	return b
}

// Get validates the answer of GET path.
func (c *Checker) Get(t testing.TB, path string, status int, schema string) []byte {
	t.Helper()
	return c.do(t, "GET", path, "", "", nil, status, schema)
}

// SetState changes the state of group fp through the API (as "by") and
// validates the answer.
func (c *Checker) SetState(t testing.TB, fp, state, by string) {
	t.Helper()
	b, _ := json.Marshal(map[string]string{"state": state, "by": by})
	c.do(t, "POST", "/api/v1/groups/"+url.PathEscape(fp)+"/state", "application/json", string(b), nil, http.StatusOK, "api-group-state")
}

// note counts what an answer shows: log-only crashes and groups, group
// states, crashes with their reports.
func (c *Checker) note(schema string, b []byte) {
	var a struct {
		Group   *answerGroup   `json:"group"`
		Groups  []answerGroup  `json:"groups"`
		Crash   *answerCrash   `json:"crash"`
		Crashes []answerCrash  `json:"crashes"`
		Filter  map[string]any `json:"filter"`
	}
	if json.Unmarshal(b, &a) != nil {
		return
	}
	c.seen["answer "+schema]++
	gs := a.Groups
	if a.Group != nil {
		gs = append(gs, *a.Group)
	}
	for _, g := range gs {
		c.seen["group "+g.State]++
		if g.LogOnly {
			c.seen["log-only group"]++
		}
		if g.Regressions > 0 {
			c.seen["group with regressions"]++
		}
	}
	cs := a.Crashes
	if a.Crash != nil {
		cs = append(cs, *a.Crash)
	}
	for _, cr := range cs {
		if cr.LogOnly {
			c.seen["log-only crash"]++
		}
		if cr.Report != nil {
			c.seen["crash with report"]++
			if cr.LogOnly {
				c.seen["log-only crash with report"]++
			}
		}
	}
	if a.Filter["since"] != nil && a.Filter["until"] != nil {
		c.seen["filter with since and until"]++
	}
}

type answerGroup struct {
	Fingerprint string `json:"fingerprint"`
	State       string `json:"state"`
	LogOnly     bool   `json:"log_only"`
	Regressions int    `json:"regressions"`
}

type answerCrash struct {
	ID      int64           `json:"id"`
	LogOnly bool            `json:"log_only"`
	Report  json.RawMessage `json:"report"`
}

// Seen says how many validated answers showed what: "group resolved",
// "group regressed", "log-only crash", "crash with report", "answer
// api-error"...
func (c *Checker) Seen(what string) int { return c.seen[what] }

// Counts are the answers validated, by schema, in the order of Schemas.
func (c *Checker) Counts() string {
	var out []string
	for _, n := range Schemas {
		out = append(out, fmt.Sprintf("%s %d", n, len(c.answers[n])))
	}
	return strings.Join(out, ", ")
}

// Walk asks every GET endpoint about everything the dashboard holds: the
// groups under several filters, each group (every state), the crashes,
// each crash with its report; then provokes each kind of error answer.
// It changes nothing. It returns the number of groups and crashes seen.
func (c *Checker) Walk(t testing.TB) (groups, crashes int) {
	t.Helper()
	for _, q := range []string{"", "?state=all", "?state=resolved,regressed", "?state=all&since=3650d&until=2100-01-01",
		"?state=all&signal=segv", "?q=no-such-crash-anywhere"} {
		c.Get(t, "/api/v1/groups"+q, http.StatusOK, "api-groups")
	}
	var all struct {
		Groups []answerGroup `json:"groups"`
	}
	if err := json.Unmarshal(c.Get(t, "/api/v1/groups?state=all", http.StatusOK, "api-groups"), &all); err != nil {
		t.Fatalf("groups: %v", err)
	}
	for _, g := range all.Groups {
		p := "/api/v1/groups/" + url.PathEscape(g.Fingerprint)
		c.Get(t, p, http.StatusOK, "api-group")
		c.Get(t, p+"?limit=1&since=3650d", http.StatusOK, "api-group")
	}
	for _, q := range []string{"", "?limit=1", "?state=all&since=3650d&until=2100-01-01"} {
		c.Get(t, "/api/v1/crashes"+q, http.StatusOK, "api-crashes")
	}
	var list struct {
		Crashes []answerCrash `json:"crashes"`
	}
	if err := json.Unmarshal(c.Get(t, "/api/v1/crashes?state=all&limit=1000", http.StatusOK, "api-crashes"), &list); err != nil {
		t.Fatalf("crashes: %v", err)
	}
	for i, cr := range list.Crashes {
		p := fmt.Sprintf("/api/v1/crashes/%d", cr.ID)
		if i == 0 {
			p += "?download=1"
		}
		c.Get(t, p, http.StatusOK, "api-crash")
	}
	// Error answers.
	for _, e := range []struct {
		path   string
		status int
	}{
		{"/api/v1/groups?since=soon", http.StatusBadRequest},
		{"/api/v1/groups?state=bogus", http.StatusBadRequest},
		{"/api/v1/groups/no-such-group", http.StatusNotFound},
		{"/api/v1/crashes?limit=0", http.StatusBadRequest},
		{"/api/v1/crashes/x", http.StatusBadRequest},
		{"/api/v1/crashes/999999999", http.StatusNotFound},
	} {
		c.Get(t, e.path, e.status, "api-error")
	}
	state := "/api/v1/groups/no-such-group/state"
	c.do(t, "POST", state, "text/plain", `{"state":"resolved"}`, nil, http.StatusUnsupportedMediaType, "api-error")
	c.do(t, "POST", state, "application/json", `{"state":"regressed"}`, nil, http.StatusBadRequest, "api-error")
	c.do(t, "POST", state, "application/json", `{"state":`, nil, http.StatusBadRequest, "api-error")
	c.do(t, "POST", state, "application/json", `{"state":"resolved"}`, http.Header{"Origin": {"http://evil.example"}}, http.StatusForbidden, "api-error")
	c.do(t, "POST", state, "application/json", `{"state":"resolved"}`, nil, http.StatusNotFound, "api-error")
	return len(all.Groups), len(list.Crashes)
}

// CheckMutations checks that each schema rejects mutated copies of the
// real answers validated so far: a wrong api_version, api_version
// missing, an unknown field, a time without a zone, a group state outside
// the vocabulary, a report that breaks report.json, an error that is not
// a string; each where the answers have a place for it. Every schema
// must have answers.
func (c *Checker) CheckMutations(t testing.TB) {
	t.Helper()
	type mutation struct {
		what string
		edit func(v any) bool // false: the answer has no place for it
	}
	muts := []mutation{
		{"api_version + 1", func(v any) bool {
			v.(map[string]any)["api_version"] = json.Number("2")
			return true
		}},
		{"api_version missing", func(v any) bool {
			delete(v.(map[string]any), "api_version")
			return true
		}},
		{"unknown field", func(v any) bool {
			v.(map[string]any)["no_such_field"] = true
			return true
		}},
		{"time without a zone", func(v any) bool {
			return schemacheck.ReplaceFirst(v, func(k string, x any) (any, bool) {
				if s, ok := x.(string); ok {
					if _, err := time.Parse(time.RFC3339Nano, s); err == nil {
						return "2026-12-06 14:00:00", true
					}
				}
				return nil, false
			})
		}},
		{"group state outside the vocabulary", func(v any) bool {
			return schemacheck.ReplaceFirst(v, func(k string, x any) (any, bool) {
				if _, ok := x.(string); ok && k == "state" {
					return "reopened", true
				}
				return nil, false
			})
		}},
		{"count as a string", func(v any) bool {
			return schemacheck.ReplaceFirst(v, func(k string, x any) (any, bool) {
				if _, ok := x.(json.Number); ok && (k == "count" || k == "id") {
					return "3", true
				}
				return nil, false
			})
		}},
		{"report with an unknown field", func(v any) bool {
			return schemacheck.ReplaceFirst(v, func(k string, x any) (any, bool) {
				if m, ok := x.(map[string]any); ok && k == "report" {
					m["no_such_field"] = true
					return m, true
				}
				return nil, false
			})
		}},
		{"report of another schema version", func(v any) bool {
			return schemacheck.ReplaceFirst(v, func(k string, x any) (any, bool) {
				if m, ok := x.(map[string]any); ok && k == "report" {
					m["schema"] = json.Number("999")
					return m, true
				}
				return nil, false
			})
		}},
		{"error as a number", func(v any) bool {
			m := v.(map[string]any)
			if _, ok := m["error"]; !ok {
				return false
			}
			m["error"] = json.Number("404")
			return true
		}},
	}
	for _, name := range Schemas {
		docs := c.answers[name]
		if len(docs) == 0 {
			t.Errorf("no real %s answer was validated", name)
			continue
		}
		var made []string
		for _, m := range muts {
			for _, d := range docs {
				v, err := schemacheck.Decode(d)
				if err != nil {
					t.Fatal(err)
				}
				if !m.edit(v) {
					continue
				}
				made = append(made, m.what)
				if err := c.set.ValidateValue(name, v); err == nil {
					var b bytes.Buffer
					json.NewEncoder(&b).Encode(v)
					t.Errorf("%s: an answer with %s is accepted: %.300s", name, m.what, b.String())
				}
				break
			}
		}
		sort.Strings(made)
		t.Logf("%s: rejects %s", name, strings.Join(made, ", "))
	}
}
