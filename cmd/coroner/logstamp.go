package main

import (
	"io"
	"log"
	"time"
)

// stampedLogger is the text logger of the services (watch, serve): each
// line starts with the time in RFC 3339 with its zone (log.LstdFlags has
// no zone), like every other time coroner prints.
func stampedLogger(w io.Writer) *log.Logger {
	return log.New(&zoneStamp{w: w, now: time.Now}, "", 0)
}

// zoneStamp writes each message (log.Logger writes one a call) after its
// time.
type zoneStamp struct {
	w   io.Writer
	now func() time.Time
}

// Write writes the time, a space and p.
func (z *zoneStamp) Write(p []byte) (int, error) {
	b := make([]byte, 0, len(p)+32)
	b = z.now().AppendFormat(b, "2006-01-02T15:04:05Z07:00 ")
	b = append(b, p...)
	if _, err := z.w.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}
