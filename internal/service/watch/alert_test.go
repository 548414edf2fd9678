package watch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coroner-dev/coroner/internal/service/store"
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

// TestHookUser: as root, --on-new-group runs as the hook user (nobody by
// default) with no supplementary groups and that user's environment, not
// root's; "root" keeps root.
func TestHookUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("not root: hooks run as the watcher's own user")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	// The hook fails on purpose: its output is then in the error.
	script := `echo "uid=$(id -u) groups=$(id -G) home=$HOME fp=$CORONER_FINGERPRINT sudo=${SUDO_USER-none}"; exit 3`
	t.Setenv("SUDO_USER", "admin") // root's environment does not reach the hook
	w, err := New(Config{Store: openTestStore(t), OnNewGroup: script})
	if err != nil {
		t.Fatal(err)
	}
	err = runHook(context.Background(), script, w.cfg.HookUser, Alert{Fingerprint: "ab12"})
	want := "uid=" + nobody.Uid + " groups=" + nobody.Gid + " home=" + nobody.HomeDir + " fp=ab12 sudo=none"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("hook as %q: %v, want output %q", w.cfg.HookUser, err, want)
	}
	err = runHook(context.Background(), script, "root", Alert{Fingerprint: "ab12"})
	if err == nil || !strings.Contains(err.Error(), "uid=0 ") || !strings.Contains(err.Error(), "sudo=admin") {
		t.Errorf("hook as root: %v", err)
	}
	if _, err := New(Config{Store: openTestStore(t), OnNewGroup: "true", HookUser: "no-such-user-here"}); err == nil {
		t.Error("an unknown hook user is accepted")
	}
}

func openTestStore(t *testing.T) store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite:"+filepath.Join(t.TempDir(), "w.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
