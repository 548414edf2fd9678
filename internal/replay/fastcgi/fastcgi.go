// Package fastcgi is a small FastCGI client (the responder role of the
// FastCGI 1.0 specification): it sends one request (FCGI_BEGIN_REQUEST,
// FCGI_PARAMS, FCGI_STDIN) over a fresh connection and reads FCGI_STDOUT,
// FCGI_STDERR and FCGI_END_REQUEST, with bounded reads and a deadline.
//
// Its purpose is to tell apart a request that completed from one whose
// worker died while serving it: a connection closed or reset before
// FCGI_END_REQUEST arrived is reported as ErrWorkerDied.
package fastcgi

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Record types of the FastCGI protocol.
const (
	TypeBeginRequest    = 1
	TypeAbortRequest    = 2
	TypeEndRequest      = 3
	TypeParams          = 4
	TypeStdin           = 5
	TypeStdout          = 6
	TypeStderr          = 7
	TypeData            = 8
	TypeGetValues       = 9
	TypeGetValuesResult = 10
	TypeUnknownType     = 11
)

// Protocol statuses of FCGI_END_REQUEST.
const (
	StatusRequestComplete = 0
	StatusCantMpxConn     = 1
	StatusOverloaded      = 2
	StatusUnknownRole     = 3
)

const (
	version1      = 1
	roleResponder = 1
	headerLen     = 8
	maxContent    = 65535
	// DefaultMaxOutput bounds what is kept of FCGI_STDOUT and of FCGI_STDERR.
	DefaultMaxOutput = 1 << 20
)

// ErrWorkerDied is returned (wrapped) when the connection ends before
// FCGI_END_REQUEST: end of file or a connection reset. Behind php-fpm this
// means the worker serving the request died.
var ErrWorkerDied = errors.New("connection closed before FCGI_END_REQUEST (the worker died)")

// ErrTimeout is returned (wrapped) when the response did not end before the
// deadline.
var ErrTimeout = errors.New("timed out waiting for the response")

// Param is one FastCGI parameter (a CGI variable). Order is kept as given.
type Param struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Header is a FastCGI record header.
type Header struct {
	Version       uint8
	Type          uint8
	RequestID     uint16
	ContentLength uint16
	PaddingLength uint8
}

// Response is what the application sent back.
type Response struct {
	// Stdout and Stderr are the FCGI_STDOUT and FCGI_STDERR streams, each cut
	// at the client's MaxOutput (StdoutTruncated / StderrTruncated then).
	Stdout, Stderr                   []byte
	StdoutTruncated, StderrTruncated bool
	// Ended is true when FCGI_END_REQUEST arrived; AppStatus and
	// ProtocolStatus are its fields.
	Ended          bool
	AppStatus      uint32
	ProtocolStatus uint8
	// Records counts the records read.
	Records int
}

// HTTP is the CGI response carried by FCGI_STDOUT: the status and headers
// the script produced, and the body.
type HTTP struct {
	// Status is the HTTP status code (200 when the script sent no Status header).
	Status int
	// StatusLine is "200 OK", "404 Not Found"...
	StatusLine string
	// Headers are the response header lines, in order ("Content-Type: text/html").
	Headers []string
	// Body is what follows the blank line.
	Body []byte
	// Complete is false when no blank line ended the headers.
	Complete bool
}

// Client sends requests to one FastCGI server.
type Client struct {
	// Network is "unix" or "tcp"; Address the socket path or host:port.
	Network, Address string
	// Timeout bounds one whole request (dial, send, receive); 0 means 10 s.
	Timeout time.Duration
	// MaxOutput bounds what is kept of stdout and of stderr; 0 means DefaultMaxOutput.
	MaxOutput int
}

// Do sends one request with the given parameters and body and reads the
// response. When the connection ends before FCGI_END_REQUEST, the error
// wraps ErrWorkerDied and the partial response is returned with it; when the
// deadline passes, the error wraps ErrTimeout.
func (c *Client) Do(ctx context.Context, params []Param, stdin []byte) (*Response, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.Network, c.Address)
	if err != nil {
		return nil, fmt.Errorf("connect to %s:%s: %w", c.Network, c.Address, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	req, err := EncodeRequest(1, params, stdin)
	if err != nil {
		return nil, err
	}
	if _, err := conn.Write(req); err != nil {
		// The server may have answered and closed already (or died): read what is there.
		resp, rerr := ReadResponse(conn, 1, c.maxOutput())
		if rerr == nil {
			return resp, nil
		}
		return resp, classify(fmt.Errorf("send request: %w", err), err)
	}
	resp, err := ReadResponse(conn, 1, c.maxOutput())
	if err != nil {
		return resp, classify(err, err)
	}
	return resp, nil
}

func (c *Client) maxOutput() int {
	if c.MaxOutput > 0 {
		return c.MaxOutput
	}
	return DefaultMaxOutput
}

// classify wraps err with ErrTimeout or ErrWorkerDied according to cause.
func classify(err, cause error) error {
	var ne net.Error
	switch {
	case errors.Is(err, ErrWorkerDied), errors.Is(err, ErrTimeout):
		return err
	case errors.As(cause, &ne) && ne.Timeout(), errors.Is(cause, context.DeadlineExceeded):
		return fmt.Errorf("%w: %v", ErrTimeout, err)
	case errors.Is(cause, syscall.ECONNRESET), errors.Is(cause, syscall.EPIPE), errors.Is(cause, io.EOF),
		errors.Is(cause, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %v", ErrWorkerDied, err)
	}
	return err
}

// EncodeRequest builds the records of one responder request: BEGIN_REQUEST
// (keep-conn off), PARAMS (whole pairs packed into records of at most 65535
// bytes, as php-fpm parses each record on its own, then an empty record),
// STDIN (split into records of at most 65535 bytes, then an empty one).
func EncodeRequest(id uint16, params []Param, stdin []byte) ([]byte, error) {
	var b, rec []byte
	b = appendRecord(b, TypeBeginRequest, id, []byte{0, roleResponder, 0, 0, 0, 0, 0, 0})
	for _, p := range params {
		pair, err := EncodeParams([]Param{p})
		if err != nil {
			return nil, err
		}
		if len(pair) > maxContent {
			return nil, fmt.Errorf("encode FastCGI param %.40s: %d bytes do not fit in one record (%d)", p.Name, len(pair), maxContent)
		}
		if len(rec)+len(pair) > maxContent {
			b = appendRecord(b, TypeParams, id, rec)
			rec = rec[:0]
		}
		rec = append(rec, pair...)
	}
	if len(rec) > 0 {
		b = appendRecord(b, TypeParams, id, rec)
	}
	b = appendRecord(b, TypeParams, id, nil)
	b = appendStream(b, TypeStdin, id, stdin)
	return b, nil
}

func appendStream(b []byte, typ uint8, id uint16, data []byte) []byte {
	for len(data) > 0 {
		n := min(len(data), maxContent)
		b = appendRecord(b, typ, id, data[:n])
		data = data[n:]
	}
	return appendRecord(b, typ, id, nil)
}

func appendRecord(b []byte, typ uint8, id uint16, content []byte) []byte {
	pad := (8 - len(content)%8) % 8
	b = append(b, version1, typ, byte(id>>8), byte(id), byte(len(content)>>8), byte(len(content)), byte(pad), 0)
	b = append(b, content...)
	return append(b, make([]byte, pad)...)
}

// EncodeParams encodes name-value pairs: each length in one byte when below
// 128, else in four bytes with the high bit set.
func EncodeParams(params []Param) ([]byte, error) {
	var b []byte
	for _, p := range params {
		if p.Name == "" {
			return nil, errors.New("encode FastCGI params: empty name")
		}
		if len(p.Name) > 1<<31-1 || len(p.Value) > 1<<31-1 {
			return nil, fmt.Errorf("encode FastCGI param %.40s: too long", p.Name)
		}
		b = appendLen(b, len(p.Name))
		b = appendLen(b, len(p.Value))
		b = append(b, p.Name...)
		b = append(b, p.Value...)
	}
	return b, nil
}

func appendLen(b []byte, n int) []byte {
	if n < 128 {
		return append(b, byte(n))
	}
	return binary.BigEndian.AppendUint32(b, uint32(n)|1<<31)
}

// DecodeParams decodes name-value pairs (the inverse of EncodeParams). It
// stops with an error at a length that runs past the data.
func DecodeParams(b []byte) ([]Param, error) {
	var out []Param
	for len(b) > 0 {
		nl, n, err := readLen(b)
		if err != nil {
			return out, err
		}
		b = b[n:]
		vl, n, err := readLen(b)
		if err != nil {
			return out, err
		}
		b = b[n:]
		if uint64(nl)+uint64(vl) > uint64(len(b)) {
			return out, fmt.Errorf("decode FastCGI params: pair of %d+%d bytes, %d left", nl, vl, len(b))
		}
		out = append(out, Param{Name: string(b[:nl]), Value: string(b[nl : nl+vl])})
		b = b[nl+vl:]
	}
	return out, nil
}

func readLen(b []byte) (int, int, error) {
	if len(b) == 0 {
		return 0, 0, errors.New("decode FastCGI params: truncated length")
	}
	if b[0] < 128 {
		return int(b[0]), 1, nil
	}
	if len(b) < 4 {
		return 0, 0, errors.New("decode FastCGI params: truncated 4-byte length")
	}
	return int(binary.BigEndian.Uint32(b) &^ (1 << 31)), 4, nil
}

// ReadResponse reads records from r until FCGI_END_REQUEST of request id,
// keeping at most maxOutput bytes of stdout and of stderr (the rest is read
// and dropped). Records of other request ids and unknown types are skipped.
// When r ends (or fails) first, it returns the partial response and an error
// wrapping ErrWorkerDied (end of file, connection reset) or the read error.
func ReadResponse(r io.Reader, id uint16, maxOutput int) (*Response, error) {
	if maxOutput <= 0 {
		maxOutput = DefaultMaxOutput
	}
	resp := &Response{}
	var hdr [headerLen]byte
	buf := make([]byte, maxContent+255)
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return resp, endError(fmt.Sprintf("read record header after %d records", resp.Records), err)
		}
		h := Header{Version: hdr[0], Type: hdr[1], RequestID: binary.BigEndian.Uint16(hdr[2:]),
			ContentLength: binary.BigEndian.Uint16(hdr[4:]), PaddingLength: hdr[6]}
		if h.Version != version1 {
			return resp, fmt.Errorf("record %d: FastCGI version %d, want 1 (not a FastCGI server?)", resp.Records, h.Version)
		}
		body := buf[:int(h.ContentLength)+int(h.PaddingLength)]
		if _, err := io.ReadFull(r, body); err != nil {
			return resp, endError(fmt.Sprintf("read record %d (type %d, %d bytes)", resp.Records, h.Type, len(body)), err)
		}
		resp.Records++
		content := body[:h.ContentLength]
		if h.RequestID != id {
			continue
		}
		switch h.Type {
		case TypeStdout:
			resp.Stdout, resp.StdoutTruncated = appendBounded(resp.Stdout, content, maxOutput, resp.StdoutTruncated)
		case TypeStderr:
			resp.Stderr, resp.StderrTruncated = appendBounded(resp.Stderr, content, maxOutput, resp.StderrTruncated)
		case TypeEndRequest:
			if len(content) < 8 {
				return resp, fmt.Errorf("record %d: FCGI_END_REQUEST body of %d bytes, want 8", resp.Records-1, len(content))
			}
			resp.Ended = true
			resp.AppStatus = binary.BigEndian.Uint32(content)
			resp.ProtocolStatus = content[4]
			if resp.ProtocolStatus != StatusRequestComplete {
				return resp, fmt.Errorf("request rejected: FCGI_END_REQUEST protocol status %d (%s)", resp.ProtocolStatus, protocolStatus(resp.ProtocolStatus))
			}
			return resp, nil
		}
	}
}

func appendBounded(dst, src []byte, max int, truncated bool) ([]byte, bool) {
	room := max - len(dst)
	if room <= 0 {
		return dst, truncated || len(src) > 0
	}
	if len(src) > room {
		return append(dst, src[:room]...), true
	}
	return append(dst, src...), truncated
}

// endError wraps a read error at the end of the stream as ErrWorkerDied.
func endError(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("%s: %w (%v)", what, ErrWorkerDied, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func protocolStatus(s uint8) string {
	switch s {
	case StatusCantMpxConn:
		return "cannot multiplex"
	case StatusOverloaded:
		return "overloaded"
	case StatusUnknownRole:
		return "unknown role"
	}
	return "unknown"
}

// maxHeaderLines bounds the CGI header lines ParseHTTP keeps.
const maxHeaderLines = 200

// ParseHTTP splits a CGI response (FCGI_STDOUT) into status, headers and
// body. A "Status: 404 Not Found" header gives the status; without one it is
// 200 OK (302 when a Location header is present, as PHP's SAPI does).
func ParseHTTP(stdout []byte) *HTTP {
	h := &HTTP{Status: 200, StatusLine: "200 OK"}
	rest := stdout
	sawStatus, sawLocation := false, false
	for len(rest) > 0 {
		i := strings.IndexByte(string(rest[:min(len(rest), 1<<16)]), '\n')
		if i < 0 {
			break // header line without an end: headers incomplete
		}
		line := strings.TrimRight(string(rest[:i]), "\r")
		rest = rest[i+1:]
		if line == "" {
			h.Complete = true
			break
		}
		if len(h.Headers) < maxHeaderLines {
			h.Headers = append(h.Headers, line)
		}
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		value = strings.TrimSpace(value)
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "status":
			code, _, _ := strings.Cut(value, " ")
			if n, err := strconv.Atoi(code); err == nil && n >= 100 && n <= 999 {
				h.Status, h.StatusLine, sawStatus = n, value, true
				if !strings.Contains(value, " ") {
					h.StatusLine = code
				}
			}
		case "location":
			sawLocation = true
		}
	}
	if !sawStatus && sawLocation {
		h.Status, h.StatusLine = 302, "302 Found"
	}
	if h.Complete {
		h.Body = rest
	}
	return h
}
