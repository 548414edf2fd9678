package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/coroner-dev/coroner/internal/engine/analyze"
	"github.com/coroner-dev/coroner/internal/engine/debuginfod"
	"github.com/coroner-dev/coroner/internal/engine/diskcache"
	"github.com/coroner-dev/coroner/internal/units"
)

// symbolFlags say where names come from: debug directories, debuginfod
// servers (asked only when given), and the disk cache.
type symbolFlags struct {
	debugDirs  []string
	debuginfod string
	timeout    time.Duration
	cacheDir   string
	cacheSize  string
}

func (s *symbolFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringArrayVar(&s.debugDirs, "debug-dir", nil, "also look for separate debug files in DIR (build-id layout DIR/.build-id/xx/rest.debug, or .gnu_debuglink names); repeatable")
	f.StringVar(&s.debuginfod, "debuginfod", os.Getenv("DEBUGINFOD_URLS"),
		"debuginfod servers to ask for the debug files of modules on the stacks that have none here (URLs separated by spaces or commas; default $DEBUGINFOD_URLS; \"off\": never)")
	f.DurationVar(&s.timeout, "debuginfod-timeout", debuginfod.DefaultTimeout, "bound on each debuginfod request")
	f.StringVar(&s.cacheDir, "cache-dir", diskcache.DefaultDir(), "cache of what depends only on binaries (symbol indexes, PHP function tables, debug information at frame addresses, debuginfod downloads), by build-id; \"off\": none")
	f.StringVar(&s.cacheSize, "cache-size", "1G", "bound on the cache's size")
}

// apply puts the flags into analysis options.
func (s *symbolFlags) apply(opts *analyze.Options) error {
	opts.DebugDirs = s.debugDirs
	if s.debuginfod != "off" {
		opts.Debuginfod = debuginfod.ParseURLs(s.debuginfod)
	}
	opts.DebuginfodTimeout = s.timeout
	if s.cacheDir != "off" {
		opts.CacheDir = s.cacheDir
	}
	// PHP's derived structure layouts are cached by the php package in
	// $CORONER_CACHE_DIR/php-layouts: unless that is set, they go where
	// the rest of the cache goes (nowhere with --cache-dir off).
	if os.Getenv("CORONER_CACHE_DIR") == "" {
		dir := opts.CacheDir
		if dir == "" {
			dir = "off"
		}
		if err := os.Setenv("CORONER_CACHE_DIR", dir); err != nil {
			return fmt.Errorf("--cache-dir: %w", err)
		}
	}
	n, err := units.ParseBytes(s.cacheSize)
	if err != nil {
		return fmt.Errorf("--cache-size: %w", err)
	}
	opts.CacheMaxBytes = n
	return nil
}
