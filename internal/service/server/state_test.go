package server

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func post(t *testing.T, target, ctype, body string, header map[string]string) (int, string, *http.Response) {
	t.Helper()
	req, err := http.NewRequest("POST", target, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, b.String(), resp
}

// TestGroupStates changes states through the API and the group page's
// form, refuses cross-site and malformed changes, and checks the lists,
// the state filter and /metrics.
func TestGroupStates(t *testing.T) {
	base, _ := apiServer(t, Options{Token: "s3cret"})
	auth := map[string]string{"Authorization": "Bearer s3cret"}
	api := base + "/api/v1/groups/aa11/state"

	// The API: JSON only, the token, same-origin when a browser says where from.
	if code, _, _ := post(t, api, "application/json", `{"state":"resolved"}`, nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	for _, c := range []struct {
		name, ctype, body string
		header            map[string]string
		want              int
	}{
		{"form body", "application/x-www-form-urlencoded", "state=resolved", nil, http.StatusUnsupportedMediaType},
		{"text body", "text/plain", `{"state":"resolved"}`, nil, http.StatusUnsupportedMediaType},
		{"cross-site", "application/json", `{"state":"resolved"}`, map[string]string{"Sec-Fetch-Site": "cross-site"}, http.StatusForbidden},
		{"other origin", "application/json", `{"state":"resolved"}`, map[string]string{"Origin": "http://evil.test"}, http.StatusForbidden},
		{"null origin", "application/json", `{"state":"resolved"}`, map[string]string{"Origin": "null"}, http.StatusForbidden},
		{"same site, not same origin", "application/json", `{"state":"resolved"}`, map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "null"}, http.StatusForbidden},
		{"no-referrer page of another origin", "application/json", `{"state":"resolved"}`, map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "null"}, http.StatusForbidden},
		{"regressed by hand", "application/json", `{"state":"regressed"}`, nil, http.StatusBadRequest},
		{"no such state", "application/json", `{"state":"done"}`, nil, http.StatusBadRequest},
		{"not JSON", "application/json", `state=resolved`, nil, http.StatusBadRequest},
	} {
		h := map[string]string{"Authorization": "Bearer s3cret"}
		for k, v := range c.header {
			h[k] = v
		}
		if code, body, _ := post(t, api, c.ctype, c.body, h); code != c.want {
			t.Errorf("%s: %d, want %d: %s", c.name, code, c.want, body)
		}
	}
	if code, _, _ := post(t, base+"/api/v1/groups/nope/state", "application/json", `{"state":"resolved"}`, auth); code != http.StatusNotFound {
		t.Errorf("missing group: %d", code)
	}
	u, _ := url.Parse(base)
	code, body, _ := post(t, api, "application/json", `{"state":"resolved","by":"alice"}`,
		map[string]string{"Authorization": "Bearer s3cret", "Origin": base, "Sec-Fetch-Site": "same-origin"})
	var ans struct {
		Group APIGroup `json:"group"`
	}
	if err := json.Unmarshal([]byte(body), &ans); code != 200 || err != nil || ans.Group.State != "resolved" || ans.Group.StateBy != "alice" || ans.Group.ResolvedAt == nil {
		t.Fatalf("resolve: %d %v %s", code, err, body)
	}

	// The page's form: same-origin, back to the group page.
	page := base + "/group/bb22/state"
	if code, _, _ := post(t, page, "application/x-www-form-urlencoded", "state=ignored",
		map[string]string{"Authorization": "Bearer s3cret", "Origin": "http://evil.test"}); code != http.StatusForbidden {
		t.Errorf("cross-site form: %d", code)
	}
	code, _, resp := post(t, page, "application/x-www-form-urlencoded", "state=ignored",
		map[string]string{"Authorization": "Bearer s3cret", "Origin": "http://" + u.Host, "Sec-Fetch-Site": "same-origin"})
	if code != http.StatusSeeOther || resp.Header.Get("Location") != "/group/bb22" {
		t.Fatalf("form: %d %q", code, resp.Header.Get("Location"))
	}

	// Lists: ignored groups hidden by default, shown by the filter.
	get := func(path string) string {
		t.Helper()
		req := mustRequest(t, base+path)
		req.Header.Set("Authorization", "Bearer s3cret")
		code, body := fetch(t, req)
		if code != 200 {
			t.Fatalf("%s: %d %s", path, code, body)
		}
		return body
	}
	var ga groupsAnswer
	if err := json.Unmarshal([]byte(get("/api/v1/groups")), &ga); err != nil || len(ga.Groups) != 1 || ga.Groups[0].State != "resolved" {
		t.Errorf("default groups: %+v %v", ga, err)
	}
	ga = groupsAnswer{}
	if err := json.Unmarshal([]byte(get("/api/v1/groups?state=ignored")), &ga); err != nil || len(ga.Groups) != 1 || ga.Groups[0].Fingerprint != "bb22" {
		t.Errorf("ignored groups: %+v %v", ga, err)
	}
	ga = groupsAnswer{}
	if err := json.Unmarshal([]byte(get("/api/v1/groups?state=all")), &ga); err != nil || len(ga.Groups) != 2 {
		t.Errorf("all groups: %+v %v", ga, err)
	}
	if code, _ := fetch(t, withAuth(t, base+"/api/v1/groups?state=bogus")); code != http.StatusBadRequest {
		t.Errorf("bad state filter: %d", code)
	}
	// An ignored group's own page and crashes are still there.
	if b := get("/api/v1/groups/bb22"); !strings.Contains(b, `"state": "ignored"`) || !strings.Contains(b, `"fingerprint": "bb22"`) {
		t.Errorf("ignored group API: %s", b)
	}
	home := get("/")
	if strings.Contains(home, "/group/bb22") || !strings.Contains(home, `id="ignored-note"`) || !strings.Contains(home, `<svg class="spark"`) ||
		!strings.Contains(home, `<span class="state resolved"`) {
		t.Errorf("groups page: ignored shown, or no note, sparkline or state:\n%s", home)
	}
	if b := get("/?state=ignored"); !strings.Contains(b, "/group/bb22") || strings.Contains(b, "/group/aa11") {
		t.Error("groups page with state=ignored")
	}
	if b := get("/group/aa11"); !strings.Contains(b, `id="group-state">resolved`) || !strings.Contains(b, `id="state-ignored"`) || strings.Contains(b, `id="state-resolved"`) {
		t.Errorf("group page state and buttons:\n%s", b)
	}
	m := get("/metrics")
	for _, want := range []string{`coroner_group_state{fingerprint="aa11",state="resolved"} 1`, `coroner_group_state{fingerprint="bb22",state="ignored"} 1`,
		`coroner_group_regressions_total{fingerprint="aa11"} 0`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func withAuth(t *testing.T, u string) *http.Request {
	req := mustRequest(t, u)
	req.Header.Set("Authorization", "Bearer s3cret")
	return req
}
