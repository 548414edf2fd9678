package main

import (
	"testing"
	"time"
)

// TestParseWhen checks the journalctl and RFC 3339 forms --since and
// --until accept, against a fixed now.
func TestParseWhen(t *testing.T) {
	loc := time.FixedZone("CET", 3600)
	now := time.Date(2026, 12, 6, 11, 30, 0, 0, loc)
	at := func(d, h, m, s int) time.Time { return time.Date(2026, 12, d, h, m, s, 0, loc) }
	for in, want := range map[string]time.Time{
		"":                          {},
		"now":                       now,
		"today":                     at(6, 0, 0, 0),
		"yesterday":                 at(5, 0, 0, 0),
		"Tomorrow":                  at(7, 0, 0, 0),
		"2026-12-01":                at(1, 0, 0, 0),
		"2026-12-01 08:15":          at(1, 8, 15, 0),
		"2026-12-01 08:15:30":       at(1, 8, 15, 30),
		"2026-12-01T08:15:30+01:00": at(1, 8, 15, 30),
		"2026-12-01T07:15:30Z":      at(1, 8, 15, 30),
		"09:00":                     at(6, 9, 0, 0),
		"-1h":                       at(6, 10, 30, 0),
		"1h":                        at(6, 10, 30, 0),
		"1d":                        at(5, 11, 30, 0),
		"2 days ago":                at(4, 11, 30, 0),
		"1h 30min ago":              at(6, 10, 0, 0),
		"1h30m":                     at(6, 10, 0, 0),
		"+15min":                    at(6, 11, 45, 0),
		"1w":                        time.Date(2026, 11, 29, 11, 30, 0, 0, loc),
		"@1765017000":               time.Unix(1765017000, 0),
	} {
		got, err := parseWhenAt(in, loc, now)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		if !got.Equal(want) {
			t.Errorf("%q: got %v, want %v", in, got, want)
		}
	}
	for _, bad := range []string{"soon", "1 fortnight", "-", "2026-13-01", "1e9d", "h"} {
		if _, err := parseWhenAt(bad, loc, now); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
}
