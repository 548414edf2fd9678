//go:build noservice

package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"

	"github.com/coroner-dev/coroner/internal/engine/debuginfod"
)

func init() { debuginfod.DefaultTransport = serviceTransport{} }

// serviceTransport makes coroner's debuginfod requests through
// coroner-service (`coroner-service __debuginfod-get URL`): this build
// links no HTTP client (service.go says why).
type serviceTransport struct{}

// Get implements debuginfod.Transport.
func (serviceTransport) Get(ctx context.Context, url string) (int, int64, io.ReadCloser, error) {
	path, err := findService()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("debuginfod downloads run in %s, which is not installed: install it from the same release, or build it with make build", serviceExecutable)
	}
	cmd := exec.CommandContext(ctx, path, debuginfodGetCommand, url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, nil, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, nil, fmt.Errorf("run %s: %w", path, err)
	}
	r := bufio.NewReaderSize(out, 64<<10)
	var status int
	var length int64
	line, lerr := r.ReadString('\n')
	if _, err := fmt.Sscanf(line, "%d %d\n", &status, &length); lerr != nil || err != nil {
		_ = cmd.Wait()
		if msg := strings.TrimPrefix(strings.TrimSpace(stderr.String()), "coroner: "); msg != "" {
			return 0, 0, nil, errors.New(msg)
		}
		return 0, 0, nil, fmt.Errorf("%s %s gave no answer", path, debuginfodGetCommand)
	}
	p := &serviceAnswer{Reader: r, cmd: cmd, stderr: &stderr}
	if status != 200 {
		p.Close()
		return status, length, nil, nil
	}
	return status, length, p, nil
}

// serviceAnswer is the body coroner-service is writing.
type serviceAnswer struct {
	io.Reader
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	eof    bool
}

// Read reads the body; at its end it reports coroner-service's failure
// (a download cut short) as an error, not as the end of a whole file.
func (a *serviceAnswer) Read(p []byte) (int, error) {
	n, err := a.Reader.Read(p)
	if err == io.EOF && !a.eof {
		a.eof = true
		if werr := a.cmd.Wait(); werr != nil {
			msg := strings.TrimPrefix(strings.TrimSpace(a.stderr.String()), "coroner: ")
			if msg == "" {
				msg = werr.Error()
			}
			return n, errors.New(msg)
		}
	}
	return n, err
}

// Close stops coroner-service if the body was not read to its end.
func (a *serviceAnswer) Close() error {
	if !a.eof {
		a.eof = true
		_ = a.cmd.Process.Kill()
		_ = a.cmd.Wait()
	}
	return nil
}
