package store

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// SQLite primary result codes that mean "not now" rather than "never".
const (
	sqliteBusy   = 5
	sqliteLocked = 6
	sqliteNoMem  = 7
	sqliteIOErr  = 10
	sqliteFull   = 13
)

// Unavailable reports whether err means that the database cannot be
// reached or cannot take the operation now but may later, so that the
// caller should keep the data and retry: PostgreSQL starting up or shutting
// down (SQLSTATE 57P01, 57P02, 57P03), connection failures (class 08),
// insufficient resources (class 53: disk full, out of memory, too many
// connections), a read-only standby (25006), serialization failures and
// deadlocks (40001, 40P01), network errors, closed connections and
// timeouts; SQLite busy or locked, I/O errors and a full disk. Errors that
// waiting does not cure (authentication, a missing database, malformed
// SQL, a bad DSN) are not, nor is a cancelled context.
func Unavailable(err error) bool {
	return err != nil && Reason(err) != ""
}

// Reason names why the database is unavailable in a few words, for logs
// and health checks: the SQLSTATE ("57P03"), the SQLite code
// ("SQLITE_BUSY"), "connection refused", "timeout", "disk full"... It is ""
// when err does not make the database unavailable (see Unavailable).
func Reason(err error) string {
	if err == nil || errors.Is(err, context.Canceled) {
		return ""
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		code := pgErr.Code
		switch {
		case code == "57P01", code == "57P02", code == "57P03", code == "25006", code == "40001", code == "40P01",
			strings.HasPrefix(code, "08"), strings.HasPrefix(code, "53"):
			return code
		}
		return ""
	}
	var sqErr *sqlite.Error
	if errors.As(err, &sqErr) {
		switch sqErr.Code() & 0xff {
		case sqliteBusy:
			return "SQLITE_BUSY"
		case sqliteLocked:
			return "SQLITE_LOCKED"
		case sqliteNoMem:
			return "SQLITE_NOMEM"
		case sqliteIOErr:
			return "SQLITE_IOERR"
		case sqliteFull:
			return "SQLITE_FULL"
		}
		return ""
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ECONNREFUSED:
			return "connection refused"
		case syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE:
			return "connection reset"
		case syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.EHOSTDOWN, syscall.ENETDOWN:
			return "unreachable"
		case syscall.ETIMEDOUT:
			return "timeout"
		case syscall.ENOSPC, syscall.EDQUOT:
			return "disk full"
		case syscall.EIO:
			return "I/O error"
		}
	}
	var dnsErr *net.DNSError
	switch {
	case errors.As(err, &dnsErr):
		return "name resolution"
	case errors.Is(err, context.DeadlineExceeded), pgconn.Timeout(err):
		return "timeout"
	case errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone), errors.Is(err, pgconn.ErrConnClosed),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), pgconn.SafeToRetry(err):
		return "connection lost"
	}
	var netErr net.Error
	if errors.As(err, &netErr) {
		if netErr.Timeout() {
			return "timeout"
		}
		return "network error"
	}
	return ""
}

// WaitOptions configure OpenWait.
type WaitOptions struct {
	// Wait bounds the time spent retrying (0: one attempt).
	Wait time.Duration
	// Logf receives one line per failed attempt (nil: silent).
	Logf func(format string, args ...any)
}

// OpenWait opens the database like Open, retrying with exponential
// backoff (0.5 s doubling up to 15 s, with jitter) for as long as the
// error says the database is unavailable (see Unavailable) and o.Wait
// allows: a database that is starting, restarting or locked is waited for;
// any other error is returned at once.
func OpenWait(ctx context.Context, dsn string, o WaitOptions) (Store, error) {
	start := time.Now()
	b := Backoff{Min: 500 * time.Millisecond, Max: 15 * time.Second}
	lastReason := ""
	for {
		s, err := Open(ctx, dsn)
		if err == nil {
			if lastReason != "" && o.Logf != nil {
				o.Logf("database ready after %s", time.Since(start).Round(100*time.Millisecond))
			}
			return s, nil
		}
		reason := Reason(err)
		if reason == "" || ctx.Err() != nil {
			return nil, err
		}
		left := o.Wait - time.Since(start)
		if left <= 0 {
			if o.Wait <= 0 {
				return nil, fmt.Errorf("database not ready (%s): %w", reason, err)
			}
			return nil, fmt.Errorf("database not ready after %s (%s): %w", o.Wait, reason, err)
		}
		d := min(b.Next(), left)
		if o.Logf != nil {
			if reason != lastReason {
				o.Logf("database not ready (%s), retrying in %s: %v", reason, roundDelay(d), err)
			} else {
				o.Logf("database not ready (%s), retrying in %s", reason, roundDelay(d))
			}
		}
		lastReason = reason
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("database not ready (%s): %w", reason, ctx.Err())
		case <-time.After(d):
		}
	}
}

func roundDelay(d time.Duration) time.Duration {
	if d >= 10*time.Second {
		return d.Round(time.Second)
	}
	return d.Round(100 * time.Millisecond)
}

// Backoff computes exponentially growing retry delays with jitter, so that
// the watchers of a fleet do not reconnect to a restarted database in
// lockstep.
type Backoff struct {
	// Min is the first delay, Max the largest one.
	Min, Max time.Duration
	next     time.Duration
}

// Next returns the next delay: Min, then doubling up to Max, each within
// -20%..+0% of its nominal value.
func (b *Backoff) Next() time.Duration {
	if b.next == 0 {
		b.next = b.Min
	}
	d := b.next
	b.next = min(2*b.next, b.Max)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// Reset makes the next delay Min again.
func (b *Backoff) Reset() { b.next = 0 }
