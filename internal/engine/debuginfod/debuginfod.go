// Package debuginfod fetches separate debug files by build-id from
// debuginfod servers (elfutils' protocol: GET URL/buildid/BUILDID/debuginfo)
// and keeps them in coroner's disk cache, so that each is downloaded once.
// It is used only when asked for (--debuginfod, DEBUGINFOD_URLS): nothing
// here is contacted otherwise.
package debuginfod

import (
	"context"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/coroner-dev/coroner/internal/engine/diskcache"
	"github.com/coroner-dev/coroner/internal/engine/symbols"
)

// Defaults.
const (
	// DefaultTimeout bounds one request to one server.
	DefaultTimeout = 10 * time.Second
	// MaxSize bounds a debug file.
	MaxSize = 4 << 30
	// missTTL is how long a build-id the servers did not have is not asked
	// for again (elfutils' client waits 10 minutes too).
	missTTL = 10 * time.Minute
)

// Client fetches debug files.
type Client struct {
	// URLs are the servers, asked in order.
	URLs []string
	// Cache keeps fetched files (kind "debuginfod"); nil keeps nothing
	// (every Fetch downloads into a temporary file the caller removes).
	Cache *diskcache.Cache
	// Timeout bounds each request (DefaultTimeout when 0).
	Timeout time.Duration
	// Transport makes the requests (DefaultTransport when nil).
	Transport Transport
}

// A Transport makes the GET requests of the protocol. This package does
// not make them itself, so that a build of coroner that links no HTTP
// client can still fetch (package httpget is the HTTP client; the lean
// coroner executable asks coroner-service to use it).
type Transport interface {
	// Get starts the GET of url. It returns the status code of the
	// answer, the length the server announced (-1 when none) and, for a
	// status of 200, its body, which the caller closes. An error means
	// that there was no answer; it does not repeat the URL.
	Get(ctx context.Context, url string) (status int, length int64, body io.ReadCloser, err error)
}

// DefaultTransport is the Transport of clients that name none. It is nil
// (every fetch fails saying so) until the program sets it.
var DefaultTransport Transport

// ParseURLs splits a DEBUGINFOD_URLS-style list (URLs separated by spaces
// or commas) and drops empty ones.
func ParseURLs(s string) []string {
	var out []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' || r == '\n' }) {
		out = append(out, strings.TrimRight(f, "/"))
	}
	return out
}

// ErrNotFound is returned when no server has the build-id.
var ErrNotFound = errors.New("no debuginfod server has it")

// Fetch returns the path of the debug file of the object whose build-id is
// buildID (hex), from the cache or the first server that has it. The file
// is checked to be an ELF file with that build-id.
func (c *Client) Fetch(ctx context.Context, buildID string) (string, error) {
	return c.fetch(ctx, buildID, kindDebug)
}

// FetchExecutable returns the path of the object itself (executable or
// shared library) whose build-id is buildID: what a core from another
// root needs when no file of this host has that build-id (its code and
// unwind tables, not only its symbols).
func (c *Client) FetchExecutable(ctx context.Context, buildID string) (string, error) {
	return c.fetch(ctx, buildID, kindExecutable)
}

// A kind is what is asked of a server: its URL part and the suffixes of
// its cache entries.
type kind struct{ url, file, miss string }

var (
	kindDebug      = kind{url: "debuginfo", file: ".debug", miss: ".miss"}
	kindExecutable = kind{url: "executable", file: ".exe", miss: ".exe.miss"}
)

func (c *Client) fetch(ctx context.Context, buildID string, k kind) (string, error) {
	if _, err := hex.DecodeString(buildID); err != nil || len(buildID) < 8 || len(buildID) > 128 {
		return "", fmt.Errorf("bad build-id %q", buildID)
	}
	key := strings.ToLower(buildID)
	if p := c.Cache.Path("debuginfod", key+k.file); p != "" {
		if _, err := os.Stat(p); err == nil {
			c.Cache.Touch(p)
			return p, nil
		}
		if fi, err := os.Stat(c.Cache.Path("debuginfod", key+k.miss)); err == nil && time.Since(fi.ModTime()) < missTTL {
			return "", fmt.Errorf("%w (asked less than %s ago)", ErrNotFound, missTTL)
		}
	}
	var errs []string
	notFound := 0
	for _, u := range c.URLs {
		p, err := c.fetchFrom(ctx, u, key, k)
		if err == nil {
			return p, nil
		}
		if errors.Is(err, ErrNotFound) {
			notFound++
		}
		errs = append(errs, err.Error())
	}
	if notFound > 0 && notFound == len(c.URLs) {
		_ = c.Cache.Put("debuginfod", key+k.miss, nil)
		return "", ErrNotFound
	}
	if len(errs) == 0 {
		return "", errors.New("no debuginfod server configured")
	}
	return "", fmt.Errorf("%s", strings.Join(errs, "; "))
}

// fetchFrom downloads the file of kind k of key from one server.
func (c *Client) fetchFrom(ctx context.Context, server, key string, k kind) (string, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	url := server + "/buildid/" + key + "/" + k.url
	tr := c.Transport
	if tr == nil {
		tr = DefaultTransport
	}
	if tr == nil {
		return "", fmt.Errorf("debuginfod %s: this build of coroner has no HTTP client", server)
	}
	status, length, body, err := tr.Get(ctx, url)
	if err != nil {
		if ctx.Err() != nil {
			return "", fmt.Errorf("debuginfod %s: no answer within %s", server, timeout)
		}
		return "", fmt.Errorf("debuginfod %s unreachable: %w", server, err)
	}
	if body != nil {
		defer body.Close()
	}
	switch {
	case status == 404:
		return "", fmt.Errorf("debuginfod %s: %w", server, ErrNotFound)
	case status != 200 || body == nil:
		return "", fmt.Errorf("debuginfod %s: it answered with status %d", server, status)
	case length > MaxSize:
		return "", fmt.Errorf("debuginfod %s: a %d-byte file is more than the %d allowed", server, length, MaxSize)
	}
	f, commit, abort, err := c.create(key, k)
	if err != nil {
		return "", err
	}
	n, err := io.Copy(f, io.LimitReader(body, MaxSize+1))
	if err == nil && n > MaxSize {
		err = fmt.Errorf("more than %d bytes", int64(MaxSize))
	}
	if err != nil {
		abort()
		if ctx.Err() != nil {
			return "", fmt.Errorf("debuginfod %s: download not finished within %s", server, timeout)
		}
		return "", fmt.Errorf("debuginfod %s: download: %w", server, err)
	}
	if id, err := fileBuildID(f); err != nil || id != key {
		abort()
		if err != nil {
			return "", fmt.Errorf("debuginfod %s: the file it sent is not ELF: %w", server, err)
		}
		return "", fmt.Errorf("debuginfod %s: the file it sent has build-id %s", server, id)
	}
	return commit()
}

// download is where a download goes.
type download interface {
	io.Writer
	io.ReaderAt
}

// create opens where a download goes: a cache entry, or a temporary file.
func (c *Client) create(key string, k kind) (f download, commit func() (string, error), abort func(), err error) {
	if c.Cache != nil {
		e, err := c.Cache.Create("debuginfod", key+k.file)
		if err != nil {
			return nil, nil, nil, err
		}
		path := c.Cache.Path("debuginfod", key+k.file)
		return e, func() (string, error) { return path, e.Commit() }, e.Abort, nil
	}
	t, err := os.CreateTemp("", "coroner-debuginfod-*"+k.file)
	if err != nil {
		return nil, nil, nil, err
	}
	return t, func() (string, error) { return t.Name(), t.Close() }, func() { t.Close(); os.Remove(t.Name()) }, nil
}

func fileBuildID(f io.ReaderAt) (string, error) {
	ef, err := elf.NewFile(f)
	if err != nil {
		return "", err
	}
	return symbols.ReadBuildID(ef), nil
}
