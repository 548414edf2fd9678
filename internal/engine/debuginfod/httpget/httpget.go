// Package httpget is the HTTP client of package debuginfod: a Transport
// made of net/http. It is a package of its own so that only the builds
// that link it pay for net/http (its packages' initialisation and size
// cost a one-shot analysis ~6% of its time): coroner-service links it,
// the lean coroner executable asks coroner-service to fetch for it.
package httpget

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
)

// Transport is a debuginfod.Transport over net/http.
type Transport struct {
	// Client makes the requests (a zero http.Client when nil).
	Client *http.Client
}

// Get implements debuginfod.Transport.
func (t Transport) Get(ctx context.Context, url string) (int, int64, io.ReadCloser, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, nil, err
	}
	req.Header.Set("User-Agent", "coroner")
	hc := t.Client
	if hc == nil {
		hc = &http.Client{}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, nil, unwrapURLError(err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return resp.StatusCode, resp.ContentLength, nil, nil
	}
	return resp.StatusCode, resp.ContentLength, resp.Body, nil
}

// unwrapURLError drops the "Get URL:" prefix net/http adds (the caller
// names the server).
func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) && strings.HasPrefix(err.Error(), "Get ") {
		if inner := ue.Unwrap(); inner != nil {
			return inner
		}
	}
	return err
}
