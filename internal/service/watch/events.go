package watch

import (
	"context"
	"log"
	"log/slog"
	"strings"

	"github.com/coroner-dev/coroner/internal/service/store"
)

// Event names: the "event" attribute of the watcher's structured log
// lines, one line per occurrence.
const (
	EventCrashRecorded  = "crash-recorded"   // a core analysed and recorded (or spooled)
	EventCoreSkipped    = "core-skipped"     // a core analysed and not recorded (not a PHP process)
	EventNewGroup       = "new-group"        // a crash group seen for the first time
	EventRegressed      = "regressed"        // a crash of a resolved group: the group is regressed
	EventAnalysisFailed = "analysis-failed"  // a core whose analysis failed
	EventQuarantined    = "core-quarantined" // a core not analysed any more
	EventCoreDeleted    = "core-deleted"     // retention deleted a core
	EventWorkerDeath    = "worker-death"     // the logs recorded a dead worker
)

// textLogger is the default event logger: logfmt (key=value) through the
// operational logger, so that both kinds of lines share its prefix.
func textLogger(l *log.Logger) *slog.Logger {
	return slog.New(slog.NewTextHandler(printer{l}, &slog.HandlerOptions{
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && (a.Key == slog.TimeKey || a.Key == slog.LevelKey && a.Value.Any() == slog.LevelInfo) {
				return slog.Attr{} // the logger stamps the time; INFO is the rule
			}
			return a
		},
	}))
}

type printer struct{ l *log.Logger }

func (p printer) Write(b []byte) (int, error) {
	p.l.Print(strings.TrimSuffix(string(b), "\n"))
	return len(b), nil
}

// event logs one structured event.
func (w *Watcher) event(level slog.Level, msg, name string, attrs ...slog.Attr) {
	w.ev.LogAttrs(context.Background(), level, msg, append([]slog.Attr{slog.String("event", name), slog.String("host", w.cfg.Host)}, attrs...)...)
}

// crashAttrs are the attributes of a recorded crash.
func crashAttrs(c *store.Crash) []slog.Attr {
	a := []slog.Attr{slog.Int("pid", c.PID), slog.String("signal", c.SignalName), slog.String("fingerprint", c.Fingerprint)}
	if c.Rule != "" {
		a = append(a, slog.String("rule", c.Rule), slog.String("title", c.Title))
	}
	if c.Pool != "" {
		a = append(a, slog.String("pool", c.Pool))
	}
	if c.URI != "" {
		a = append(a, slog.String("uri", c.URI))
	}
	if c.CorePath != "" {
		a = append(a, slog.String("core", c.CorePath))
	}
	if c.ID != 0 {
		a = append(a, slog.Int64("crash_id", c.ID))
	} else {
		a = append(a, slog.Bool("spooled", true))
	}
	return a
}
