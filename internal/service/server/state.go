package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/coroner-dev/coroner/internal/redact"
	"github.com/coroner-dev/coroner/internal/sanitize"
	"github.com/coroner-dev/coroner/internal/service/store"
)

// maxStateBody bounds the body of a state change.
const maxStateBody = 4 << 10

// maxStateBy bounds the name of who changed a state.
const maxStateBy = 64

// stateRequest is the body of POST /api/v1/groups/{fp}/state.
type stateRequest struct {
	// State is "new" (reopen), "resolved" or "ignored".
	State string `json:"state"`
	// By names who changes the state (default "api").
	By string `json:"by,omitempty"`
}

// crossSite reports why a state-changing request comes from another site
// ("" when it does not). A browser says where a request comes from in
// Sec-Fetch-Site, which must then be same-origin; an older one only in
// Origin, which must then be this dashboard (the Host header, itself
// checked by ServeHTTP). Origin "null" (the dashboard's no-referrer
// policy makes Chromium send it for the pages' own forms; also sandboxed
// frames) is accepted only with Sec-Fetch-Site: same-origin. A request
// with neither header does not come from a browser's page.
func crossSite(r *http.Request) string {
	site := r.Header.Get("Sec-Fetch-Site")
	switch site {
	case "same-origin":
		return ""
	case "":
	default:
		return "Sec-Fetch-Site: " + site
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return ""
	}
	u, err := url.Parse(origin)
	if err != nil || origin == "null" || !strings.EqualFold(u.Host, r.Host) {
		return "Origin " + origin + " is not this dashboard (" + r.Host + ")"
	}
	return ""
}

// setState changes the state of group fp; it answers an error itself
// (and returns nil).
func (s *Server) setState(w http.ResponseWriter, r *http.Request, state, by string, answer func(error)) *store.Group {
	if why := crossSite(r); why != "" {
		answer(&forbidden{fmt.Errorf("cross-site request refused: %s", why)})
		return nil
	}
	if state != store.StateNew && state != store.StateResolved && state != store.StateIgnored {
		answer(&badRequest{fmt.Errorf("state %q: want new, resolved or ignored", state)})
		return nil
	}
	by = sanitize.Text(strings.TrimSpace(by))
	if len(by) > maxStateBy {
		by = by[:maxStateBy]
	}
	g, err := s.opts.Store.SetGroupState(r.Context(), r.PathValue("fp"), state, by, s.opts.Now())
	if err != nil {
		answer(err)
		return nil
	}
	return g
}

// forbidden is a request refused for where it comes from.
type forbidden struct{ err error }

func (f *forbidden) Error() string { return f.err.Error() }

// apiSetState answers POST /api/v1/groups/{fp}/state with a JSON body
// {"state": "resolved", "by": "alice"}: the group in its new state.
func (s *Server) apiSetState(w http.ResponseWriter, r *http.Request) {
	answer := func(err error) {
		var fb *forbidden
		if errors.As(err, &fb) {
			writeJSON(w, http.StatusForbidden, ErrorAnswer{APIVersion: APIVersion, Error: err.Error()})
			return
		}
		s.apiError(w, err)
	}
	// A page of another site can POST a form or text without asking;
	// application/json it cannot (CORS preflight, which is not answered).
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeJSON(w, http.StatusUnsupportedMediaType, ErrorAnswer{APIVersion: APIVersion, Error: "Content-Type must be application/json"})
		return
	}
	var req stateRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxStateBody+1))
	if err == nil && len(body) > maxStateBody {
		err = fmt.Errorf("body larger than %d bytes", maxStateBody)
	}
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	if err != nil {
		answer(&badRequest{fmt.Errorf("state change: %w", err)})
		return
	}
	if req.By == "" {
		req.By = "api"
	}
	g := s.setState(w, r, req.State, req.By, answer)
	if g == nil {
		return
	}
	if !s.opts.ShowSecrets {
		g = redact.Value(g)
	}
	writeJSON(w, http.StatusOK, StateAnswer{APIVersion: APIVersion, Group: apiGroupOf(g)})
}

// pageSetState answers the state buttons of the group page (a form POST
// of state=...): back to the group page.
func (s *Server) pageSetState(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxStateBody)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	g := s.setState(w, r, r.PostForm.Get("state"), "dashboard", func(err error) {
		var fb *forbidden
		var bad *badRequest
		switch {
		case errors.As(err, &fb):
			http.Error(w, err.Error(), http.StatusForbidden)
		case errors.As(err, &bad):
			http.Error(w, err.Error(), http.StatusBadRequest)
		default:
			fail(w, err)
		}
	})
	if g == nil {
		return
	}
	http.Redirect(w, r, "/group/"+url.PathEscape(g.Fingerprint), http.StatusSeeOther)
}
