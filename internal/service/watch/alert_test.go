package watch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestValidateWebhook(t *testing.T) {
	for _, bad := range []string{"file:///etc/passwd", "gopher://127.0.0.1:70/", "not a url", "ftp://x/", "http:///path",
		"http://169.254.169.254/latest/meta-data/", "http://[fe80::1]/", "http://0.0.0.0:80/", "http://[fd00:ec2::254]/", "http://224.0.0.1/"} {
		if _, err := ValidateWebhook(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"http://127.0.0.1:9000/hook", "https://hooks.example.org/x?y=1", "http://10.1.2.3/", "http://[::1]:80/"} {
		if _, err := ValidateWebhook(good); err != nil {
			t.Errorf("%q refused: %v", good, err)
		}
	}
	if _, err := New(Config{Store: nil}); err == nil {
		t.Fatal("no store accepted")
	}
}

// TestWebhookRedirect: a 307 from the receiver is not followed (it would
// re-POST the alert to another address); the error says why.
func TestWebhookRedirect(t *testing.T) {
	var elsewhere atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/stolen", http.StatusTemporaryRedirect)
	}))
	defer hook.Close()
	err := postWebhook(context.Background(), webhookClient(), hook.URL, Alert{Event: "new-group"})
	if err == nil || !strings.Contains(err.Error(), "redirects are not followed") {
		t.Fatalf("%v", err)
	}
	if elsewhere.Load() != 0 {
		t.Fatal("the alert was re-posted to the redirect target")
	}
}

// TestWebhookBounds: a receiver that answers with an endless body does
// not hold the alerter; a name or address that leads to a link-local
// address is refused when connecting.
func TestWebhookBounds(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := []byte(strings.Repeat("x", 64<<10))
		for i := 0; i < 1<<14; i++ { // 1 GiB unless the client hangs up
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer hook.Close()
	done := make(chan error, 1)
	go func() { done <- postWebhook(context.Background(), webhookClient(), hook.URL, Alert{}) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the webhook read the whole endless answer")
	}
	err := postWebhook(context.Background(), webhookClient(), "http://169.254.169.254:1/", Alert{})
	if err == nil || !strings.Contains(err.Error(), "link-local") {
		t.Fatalf("%v", err)
	}
}
