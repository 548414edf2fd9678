//go:build !noservice

package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine/debuginfod"
	"github.com/coroner-dev/coroner/internal/engine/debuginfod/httpget"
	"github.com/coroner-dev/coroner/internal/service/watch"
)

// trimForStore cuts the report of an isolated analysis (analyze
// --isolated, run by the watcher) to what the store keeps.
var trimForStore = watch.TrimForStore

// forwardToService does nothing in the service build: it runs every
// command itself.
func forwardToService([]string) {}

func init() {
	debuginfod.DefaultTransport = httpget.Transport{}
	addCommand(debuginfodGetCommand, func() {
		rootCmd.AddCommand(&cobra.Command{
			Use:    debuginfodGetCommand + " URL",
			Short:  "Make one debuginfod request for coroner (internal)",
			Hidden: true,
			Args:   cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				return debuginfodGet(cmd, args[0], os.Stdout)
			},
		})
	})
}

// debuginfodGet makes the request of debuginfodGetCommand and writes its
// answer to w.
func debuginfodGet(cmd *cobra.Command, url string, w io.Writer) error {
	status, length, body, err := httpget.Transport{}.Get(cmd.Context(), url)
	if err != nil {
		return err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "%d %d\n", status, length)
	if body != nil {
		defer body.Close()
		if _, err := io.Copy(bw, body); err != nil {
			return fmt.Errorf("download: %w", err)
		}
	}
	return bw.Flush()
}
