package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// TestStampedLogger: each line of the services' text log starts with its
// time in RFC 3339 with the zone, which time.Parse reads back.
func TestStampedLogger(t *testing.T) {
	var b bytes.Buffer
	l := stampedLogger(&b)
	zone := time.FixedZone("CET", 3600)
	l.Writer().(*zoneStamp).now = func() time.Time { return time.Date(2026, 12, 6, 15, 4, 5, 0, zone) }
	l.Printf("event=analysed pid=%d", 4512)
	l.Print("second")
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != 2 || lines[0] != "2026-12-06T15:04:05+01:00 event=analysed pid=4512" {
		t.Fatalf("log lines %q", lines)
	}
	for _, line := range lines {
		stamp, _, _ := strings.Cut(line, " ")
		if _, err := time.Parse(time.RFC3339, stamp); err != nil {
			t.Errorf("%q: %v", line, err)
		}
	}
}
