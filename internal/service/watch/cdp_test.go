package watch_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// cdp drives headless Chromium over the DevTools protocol on a pipe
// (--remote-debugging-pipe: commands on fd 3, answers and events on fd 4,
// JSON messages ended by a NUL byte): what a test needs to click a button
// and read what happened, without a WebSocket client or a second program.
type cdp struct {
	t       *testing.T
	cmd     *exec.Cmd
	w       *os.File
	mu      sync.Mutex
	next    int
	waiting map[int]chan cdpMessage
	events  chan cdpMessage
	session string
}

type cdpMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct{ Message string }
	SessionID string `json:"sessionId,omitempty"`
}

// startCDP starts Chromium with a page attached (flattened session).
func startCDP(t *testing.T, bin string) *cdp {
	t.Helper()
	inR, inW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--no-first-run", "--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(), "--remote-debugging-pipe", "about:blank")
	cmd.ExtraFiles = []*os.File{inR, outW} // fd 3: what Chromium reads; fd 4: what it writes
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start chromium: %v", err)
	}
	inR.Close()
	outW.Close()
	c := &cdp{t: t, cmd: cmd, w: inW, waiting: map[int]chan cdpMessage{}, events: make(chan cdpMessage, 1000)}
	t.Cleanup(func() {
		inW.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		cancel()
		if t.Failed() {
			t.Logf("chromium stderr:\n%s", stderr.String())
		}
	})
	go c.read(outR)
	var target struct{ TargetID string }
	c.call("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var att struct{ SessionID string }
	c.call("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &att)
	c.session = att.SessionID
	c.do("Page.enable", nil, nil)
	c.do("Runtime.enable", nil, nil)
	return c
}

func (c *cdp) read(r *os.File) {
	br := bufio.NewReaderSize(r, 1<<20)
	for {
		b, err := br.ReadBytes(0)
		if err != nil {
			close(c.events)
			return
		}
		var m cdpMessage
		if json.Unmarshal(b[:len(b)-1], &m) != nil {
			continue
		}
		if m.ID != 0 {
			c.mu.Lock()
			ch := c.waiting[m.ID]
			delete(c.waiting, m.ID)
			c.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		select {
		case c.events <- m:
		default: // nobody waits for this many events
		}
	}
}

// call sends a command (to the browser when session is "") and decodes
// its result into out.
func (c *cdp) call(session, method string, params any, out any) {
	c.t.Helper()
	c.mu.Lock()
	c.next++
	id := c.next
	ch := make(chan cdpMessage, 1)
	c.waiting[id] = ch
	c.mu.Unlock()
	msg := map[string]any{"id": id, "method": method}
	if params != nil {
		msg["params"] = params
	}
	if session != "" {
		msg["sessionId"] = session
	}
	b, _ := json.Marshal(msg)
	if _, err := c.w.Write(append(b, 0)); err != nil {
		c.t.Fatalf("cdp %s: %v", method, err)
	}
	select {
	case m := <-ch:
		if m.Error != nil {
			c.t.Fatalf("cdp %s: %s", method, m.Error.Message)
		}
		if out != nil {
			if err := json.Unmarshal(m.Result, out); err != nil {
				c.t.Fatalf("cdp %s: result %s: %v", method, m.Result, err)
			}
		}
	case <-time.After(time.Minute): // a hang guard, not a performance assertion
		c.t.Fatalf("cdp %s: no answer", method)
	}
}

// do sends a command to the page.
func (c *cdp) do(method string, params any, out any) {
	c.t.Helper()
	c.call(c.session, method, params, out)
}

// wait waits for an event (of the page when page is true) that ok accepts.
func (c *cdp) wait(method string, ok func(params json.RawMessage) bool) json.RawMessage {
	c.t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case m, open := <-c.events:
			if !open {
				c.t.Fatalf("chromium went away waiting for %s", method)
			}
			if m.Method == method && (ok == nil || ok(m.Params)) {
				return m.Params
			}
		case <-deadline:
			c.t.Fatalf("no %s event", method)
		}
	}
}

// navigate loads url and waits for its load event.
func (c *cdp) navigate(url string) {
	c.t.Helper()
	for len(c.events) > 0 {
		<-c.events
	}
	c.do("Page.navigate", map[string]any{"url": url}, nil)
	c.wait("Page.loadEventFired", nil)
}

// eval evaluates a JavaScript expression in the page as if the user acted
// (user gesture), awaiting a promise, and decodes its value into out.
func (c *cdp) eval(expr string, out any) {
	c.t.Helper()
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	c.do("Runtime.evaluate", map[string]any{"expression": expr, "awaitPromise": true, "returnByValue": true, "userGesture": true}, &res)
	if e := res.ExceptionDetails; e != nil {
		c.t.Fatalf("evaluate %s: %s %s", expr, e.Text, e.Exception.Description)
	}
	if out != nil && len(res.Result.Value) > 0 {
		if err := json.Unmarshal(res.Result.Value, out); err != nil {
			c.t.Fatalf("evaluate %s: %s: %v", expr, res.Result.Value, err)
		}
	}
}

// text is the text content of the element a CSS selector names ("" when
// none does).
func (c *cdp) text(selector string) string {
	c.t.Helper()
	var s string
	c.eval(fmt.Sprintf(`(function(){var e=document.querySelector(%q);return e?e.textContent:""})()`, selector), &s)
	return s
}
