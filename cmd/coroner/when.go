package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// whenForms are examples of the forms of --since and --until.
const whenForms = "RFC 3339, 2026-12-06 10:00, yesterday, -1h, \"2 days ago\""

// The help of --since and --until, the same for every command.
const (
	sinceUsage = "only what happened at or after this time: " + whenForms
	untilUsage = "only what happened before this time (the forms of --since)"
)

// bootTimeUsage is the help of --boot-time (logs, doctor).
const bootTimeUsage = "boot time of the host the kernel lines come from, to date their seconds-since-boot stamps (the forms of --since); default inferred from the logs (lines with both stamps, pids shared with PHP-FPM lines), else this host's"

// tzUsage is the help of --tz, the same for every command.
const tzUsage = "time zone (IANA name such as Europe/Paris, or UTC) of the times shown, of --since/--until without a zone, and of log times written without one; default local"

// timeFlags are --since, --until and --tz: the time window a command
// selects by, and the zone it shows times in.
type timeFlags struct {
	since, until, tz string
}

// register adds --since and --until, and --tz when withTZ.
func (t *timeFlags) register(cmd *cobra.Command, withTZ bool) {
	f := cmd.Flags()
	f.StringVar(&t.since, "since", "", sinceUsage)
	f.StringVar(&t.until, "until", "", untilUsage)
	if withTZ {
		f.StringVar(&t.tz, "tz", "", tzUsage)
	}
}

// location is the zone of --tz (time.Local without it).
func (t *timeFlags) location() (*time.Location, error) {
	if t.tz == "" {
		return time.Local, nil
	}
	l, err := time.LoadLocation(t.tz)
	if err != nil {
		return nil, usageErrorf("--tz: unknown time zone %q (an IANA name such as Europe/Paris, or UTC)", t.tz)
	}
	return l, nil
}

// window reads --since and --until in loc (zero times when not given),
// and rejects a --since that is not before --until.
func (t *timeFlags) window(loc *time.Location) (since, until time.Time, err error) {
	if since, err = parseWhen(t.since, loc); err != nil {
		return since, until, fmt.Errorf("--since: %w", err)
	}
	if until, err = parseWhen(t.until, loc); err != nil {
		return since, until, fmt.Errorf("--until: %w", err)
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return since, until, usageErrorf("--since %s is not before --until %s: the window is empty",
			since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	return since, until, nil
}

// parseWhen reads the value of --since and --until, the same way for every
// command: the forms of journalctl (systemd.time(7)) and RFC 3339.
//
//	2026-12-06T10:00:00+01:00, 2026-12-06 10:00[:05], 2026-12-06, 10:00[:05] (today)
//	now, today, yesterday, tomorrow (midnight), @1765000000 (Unix seconds)
//	-1h, 1h ago, 2 days ago, 1h30min (a span alone also means ago), +15min (ahead)
//
// Times without a zone are in loc.
func parseWhen(s string, loc *time.Location) (time.Time, error) {
	return parseWhenAt(s, loc, time.Now())
}

func parseWhenAt(s string, loc *time.Location, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	now = now.In(loc)
	midnight := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, loc)
	switch strings.ToLower(s) {
	case "":
		return time.Time{}, nil
	case "now":
		return now, nil
	case "today":
		return midnight, nil
	case "yesterday":
		return midnight.AddDate(0, 0, -1), nil
	case "tomorrow":
		return midnight.AddDate(0, 0, 1), nil
	}
	if n, ok := strings.CutPrefix(s, "@"); ok {
		if sec, err := strconv.ParseInt(n, 10, 64); err == nil {
			return time.Unix(sec, 0).In(loc), nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05", "2006-01-02T15:04:05",
		"2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	for _, layout := range []string{"15:04:05", "15:04"} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return midnight.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second), nil
		}
	}
	sign, span := -1, s
	switch {
	case strings.HasPrefix(span, "-"):
		span = span[1:]
	case strings.HasPrefix(span, "+"):
		sign, span = 1, span[1:]
	default:
		span = strings.TrimSuffix(span, " ago")
	}
	if d, err := parseSpan(span); err == nil {
		return now.Add(time.Duration(sign) * d), nil
	}
	return time.Time{}, usageErrorf("cannot read time %q (use RFC 3339, 2026-12-06 10:00, yesterday, -1h, 2 days ago)", s)
}

// spanUnits are the units of systemd.time(7) time spans.
var spanUnits = map[string]time.Duration{
	"us": time.Microsecond, "usec": time.Microsecond,
	"ms": time.Millisecond, "msec": time.Millisecond,
	"s": time.Second, "sec": time.Second, "second": time.Second, "seconds": time.Second,
	"m": time.Minute, "min": time.Minute, "minute": time.Minute, "minutes": time.Minute,
	"h": time.Hour, "hr": time.Hour, "hour": time.Hour, "hours": time.Hour,
	"d": 24 * time.Hour, "day": 24 * time.Hour, "days": 24 * time.Hour,
	"w": 7 * 24 * time.Hour, "week": 7 * 24 * time.Hour, "weeks": 7 * 24 * time.Hour,
	"M": 2629800 * time.Second, "month": 2629800 * time.Second, "months": 2629800 * time.Second,
	"y": 31557600 * time.Second, "year": 31557600 * time.Second, "years": 31557600 * time.Second,
}

// parseSpan reads a time span such as 1h30min, 2 days, 90s, 1.5h.
func parseSpan(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("empty time span")
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0, fmt.Errorf("time span %q: a number expected", s)
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil || n > 1e6 {
			return 0, fmt.Errorf("time span: bad number %q", s[:i])
		}
		s = strings.TrimLeft(s[i:], " ")
		j := 0
		for j < len(s) && (s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z') {
			j++
		}
		unit, ok := spanUnits[s[:j]]
		if !ok {
			return 0, fmt.Errorf("time span: unknown unit %q", s[:j])
		}
		total += time.Duration(n * float64(unit))
		s = strings.TrimLeft(s[j:], " ")
	}
	return total, nil
}
