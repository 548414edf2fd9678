package replay

import (
	"fmt"
	"io"
	"strings"

	"github.com/coroner-dev/coroner/internal/sanitize"
)

// maxShown bounds how much of a parameter value is printed.
const maxShown = 200

// WritePlan prints what will be sent: the socket ("" when none was found),
// every parameter, the body size, withheld secrets and notes.
func WritePlan(w io.Writer, socket string, req *Request) {
	req = sanitize.Copy(req)
	socket = sanitize.Text(socket)
	if socket == "" {
		socket = "(none: give --socket to replay)"
	}
	fmt.Fprintf(w, "socket: %s\n", socket)
	fmt.Fprintf(w, "FastCGI parameters (%d):\n", len(req.Params))
	for _, p := range req.Params {
		v := p.Value
		if len(v) > maxShown {
			v = fmt.Sprintf("%s... (%d bytes)", v[:maxShown], len(v))
		}
		fmt.Fprintf(w, "  %s=%s\n", p.Name, v)
	}
	fmt.Fprintf(w, "body: %d bytes\n", len(req.Body))
	if len(req.Withheld) > 0 {
		fmt.Fprintf(w, "withheld (credentials, never sent): %s\n", strings.Join(req.Withheld, ", "))
	}
	if len(req.Skipped) > 0 {
		fmt.Fprintf(w, "not sent (not request variables): %s\n", strings.Join(req.Skipped, ", "))
	}
	for _, n := range req.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

// WriteText prints the attempts, the FPM log lines and the verdict.
func WriteText(w io.Writer, r *Result) {
	orig := r
	r = sanitize.Copy(r)
	fmt.Fprintf(w, "replaying %s %s (%s) to %s\n", r.Request.Param("REQUEST_METHOD"), r.Request.Param("REQUEST_URI"),
		r.Request.Param("SCRIPT_FILENAME"), r.Socket)
	for _, n := range r.Request.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	for i, a := range r.Attempts {
		fmt.Fprintf(w, "attempt %d: %-11s %6.2fs", a.N, a.Outcome, a.Seconds)
		switch a.Outcome {
		case OutcomeCompleted:
			fmt.Fprintf(w, "  %s, %d bytes", a.Status, a.Stdout)
		default:
			fmt.Fprintf(w, "  %s", a.Error)
		}
		fmt.Fprintln(w)
		for _, d := range a.Deaths {
			fmt.Fprintf(w, "    FPM: child %d exited on signal %d %s\n", d.PID, d.Signal, d.SignalName)
		}
		if text := orig.Attempts[i].StderrText; text != "" {
			// The PHP messages as lines, each escaped (package sanitize).
			fmt.Fprintf(w, "    stderr: %s\n", strings.ReplaceAll(sanitize.Lines(strings.TrimSpace(text)), "\n", "\n            "))
		}
	}
	if len(r.FPMLog) > 0 {
		fmt.Fprintln(w, "FPM log during the replay:")
		for _, l := range r.FPMLog {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	for _, warn := range r.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
	fmt.Fprintln(w, r.Summary())
	if r.Died > 0 && len(r.FPMLog) > 0 || r.Confirmed > 0 {
		fmt.Fprintf(w, "deaths confirmed by the FPM log: %d/%d\n", r.Confirmed, r.Died)
	}
}
