package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"time"

	"github.com/coroner-dev/coroner/internal/service/store"
)

// Alert is the JSON body POSTed to the webhook for a new crash group.
type Alert struct {
	Event       string    `json:"event"` // "new-group"
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

func (w *Watcher) enqueueAlert(c *store.Crash) {
	if w.cfg.Webhook == "" && w.cfg.OnNewGroup == "" {
		return
	}
	a := Alert{Event: "new-group", Host: c.Host, Fingerprint: c.Fingerprint, Rule: c.Rule, Title: c.Title,
		Signal: c.SignalName, PID: c.PID, URI: c.URI, Core: c.CorePath, CrashID: c.ID, Time: c.Time}
	select {
	case w.alerts <- a:
	default:
		w.Metrics.alertsFailed.Add(1)
		w.log.Printf("watch: alert queue full, dropped alert for group %s", c.Fingerprint)
	}
}

func (w *Watcher) alerter(ctx context.Context) {
	client := &http.Client{Timeout: 10 * time.Second}
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
			if w.cfg.OnNewGroup != "" {
				if err := runHook(ctx, w.cfg.OnNewGroup, a); err != nil {
					w.Metrics.alertsFailed.Add(1)
					w.log.Printf("watch: --on-new-group: %v", err)
				}
			}
		}
	}
}

func postWebhook(ctx context.Context, client *http.Client, url string, a Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode alert: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("post %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("post %s: %s", url, resp.Status)
	}
	return nil
}

func runHook(ctx context.Context, command string, a Alert) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	body, _ := json.Marshal(a)
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(),
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
