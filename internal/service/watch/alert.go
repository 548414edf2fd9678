package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"syscall"
	"time"

	"github.com/coroner-dev/coroner/internal/service/store"
	"github.com/coroner-dev/coroner/internal/service/versions"
)

// AlertSchemaVersion is the version of Alert's JSON form (its "schema"
// field, docs/schema/alert.json); it changes only when a field changes
// meaning or goes away.
const AlertSchemaVersion = versions.Alert

// The events of an Alert (the same words as the log's EventNewGroup and
// EventRegressed).
const (
	// AlertEventNewGroup: a crash group seen for the first time.
	AlertEventNewGroup = "new-group"
	// AlertEventRegressed: a crash of a group that was resolved.
	AlertEventRegressed = "regressed"
)

// Alert is the JSON body POSTed to the webhook (and given to the
// --on-new-group and --on-regression commands on their standard input)
// for a new crash group or a regression.
type Alert struct {
	Schema      int       `json:"schema"` // AlertSchemaVersion
	Event       string    `json:"event"`  // AlertEventNewGroup or AlertEventRegressed
	Host        string    `json:"host"`
	Fingerprint string    `json:"fingerprint"`
	Rule        string    `json:"rule,omitempty"`
	Title       string    `json:"title,omitempty"`
	Signal      string    `json:"signal,omitempty"`
	PID         int       `json:"pid"`
	URI         string    `json:"uri,omitempty"`
	Core        string    `json:"core,omitempty"`
	CrashID     int64     `json:"crash_id"`
	Time        time.Time `json:"time"`
}

func (w *Watcher) enqueueAlert(c *store.Crash, event string) {
	if w.cfg.Webhook == "" && w.cfg.OnNewGroup == "" && w.cfg.OnRegression == "" {
		return
	}
	a := Alert{Schema: AlertSchemaVersion, Event: event, Host: c.Host, Fingerprint: c.Fingerprint, Rule: c.Rule, Title: c.Title,
		Signal: c.SignalName, PID: c.PID, URI: c.URI, Core: c.CorePath, CrashID: c.ID, Time: c.Time}
	select {
	case w.alerts <- a:
	default:
		w.Metrics.alertsFailed.Add(1)
		w.log.Printf("watch: alert queue full, dropped alert for group %s", c.Fingerprint)
	}
}

// Bounds of one webhook POST.
const (
	webhookTimeout = 10 * time.Second
	// webhookMaxResponse bounds what is read of the receiver's answer.
	webhookMaxResponse = 64 << 10
)

// ValidateWebhook checks a --webhook URL at start: http or https, a host,
// and not an address of this machine's link (169.254.0.0/16, fe80::/10:
// cloud metadata services live there) nor an unspecified or multicast one.
func ValidateWebhook(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("--webhook %q: %w", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("--webhook %q: only http:// and https:// URLs are accepted", raw)
	}
	if u.Hostname() == "" {
		return nil, fmt.Errorf("--webhook %q: the URL has no host", raw)
	}
	if ip := net.ParseIP(u.Hostname()); ip != nil {
		if err := checkWebhookIP(ip); err != nil {
			return nil, fmt.Errorf("--webhook %q: %w", raw, err)
		}
	}
	return u, nil
}

// metadataIPv6 is the IPv6 address of a cloud metadata service outside
// fe80::/10 (AWS).
var metadataIPv6 = net.ParseIP("fd00:ec2::254")

func checkWebhookIP(ip net.IP) error {
	switch {
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.Equal(metadataIPv6):
		return fmt.Errorf("%s is a link-local address (cloud metadata services live there): refused", ip)
	case ip.IsUnspecified(), ip.IsMulticast():
		return fmt.Errorf("%s is not a unicast address: refused", ip)
	}
	return nil
}

// webhookClient posts alerts: it never follows a redirect (a 307 would
// re-POST the alert elsewhere), checks every address it connects to (a
// name may resolve to a link-local address), and is bounded in time.
func webhookClient() *http.Client {
	dialer := &net.Dialer{Timeout: webhookTimeout, Control: func(_, address string, _ syscall.RawConn) error {
		host, _, err := net.SplitHostPort(address)
		if err != nil {
			return err
		}
		if ip := net.ParseIP(host); ip != nil {
			return checkWebhookIP(ip)
		}
		return nil
	}}
	return &http.Client{
		Timeout: webhookTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{
			Proxy:                  http.ProxyFromEnvironment,
			DialContext:            dialer.DialContext,
			TLSHandshakeTimeout:    webhookTimeout,
			ResponseHeaderTimeout:  webhookTimeout,
			MaxResponseHeaderBytes: 64 << 10,
		},
	}
}

func (w *Watcher) alerter(ctx context.Context) {
	client := webhookClient()
	for {
		select {
		case <-ctx.Done():
			return
		case a := <-w.alerts:
			if w.cfg.Webhook != "" {
				if err := postWebhook(ctx, client, w.cfg.Webhook, a); err != nil {
					w.Metrics.alertsFailed.Add(1)
					w.log.Printf("watch: webhook: %v", err)
				}
			}
			hook, flag := w.cfg.OnNewGroup, "--on-new-group"
			if a.Event == EventRegressed {
				hook, flag = w.cfg.OnRegression, "--on-regression"
			}
			if hook != "" {
				if err := runHook(ctx, hook, w.cfg.HookUser, a); err != nil {
					w.Metrics.alertsFailed.Add(1)
					w.log.Printf("watch: %s: %v", flag, err)
				}
			}
		}
	}
}

func postWebhook(ctx context.Context, client *http.Client, target string, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", target, err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, webhookMaxResponse))
	resp.Body.Close()
	if resp.StatusCode/100 == 3 {
		return fmt.Errorf("post %s: %s (redirects are not followed: give the final URL)", target, resp.Status)
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %s: %s", target, resp.Status)
	}
	return nil
}

// hookUser is who a hook runs as.
type hookUser struct {
	cred *syscall.Credential // nil: as the watcher
	home string
	name string
}

// hookCredential resolves the user hooks run as: nil credential when the
// watcher is not root (it cannot change user) or the user is root.
func hookCredential(name string) (hookUser, error) {
	if os.Geteuid() != 0 || name == "" || name == "root" {
		return hookUser{}, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return hookUser{}, fmt.Errorf("hook user %q: %w", name, err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return hookUser{}, fmt.Errorf("hook user %q: uid %q gid %q are not numbers", name, u.Uid, u.Gid)
	}
	if uid == 0 {
		return hookUser{}, nil
	}
	return hookUser{cred: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, home: u.HomeDir, name: u.Username}, nil
}

// runHook runs command with sh -c, the alert as JSON on stdin and in
// CORONER_* variables, as userName (see Config.HookUser), for 30s at most.
func runHook(ctx context.Context, command, userName string, a Alert) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hu, err := hookCredential(userName)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(a)
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = os.Environ()
	if hu.cred != nil {
		// Root's environment names root's files; the hook gets its own.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: hu.cred}
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + hu.home, "USER=" + hu.name, "LOGNAME=" + hu.name, "LANG=C.UTF-8"}
	}
	cmd.Env = append(cmd.Env,
		"CORONER_EVENT="+a.Event, "CORONER_HOST="+a.Host, "CORONER_FINGERPRINT="+a.Fingerprint,
		"CORONER_RULE="+a.Rule, "CORONER_TITLE="+a.Title, "CORONER_SIGNAL="+a.Signal,
		"CORONER_PID="+strconv.Itoa(a.PID), "CORONER_URI="+a.URI, "CORONER_CORE="+a.Core,
		"CORONER_CRASH_ID="+strconv.FormatInt(a.CrashID, 10))
	cmd.Stdin = bytes.NewReader(body)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", command, err, bytes.TrimSpace(out))
	}
	return nil
}
