//go:build !noservice

package main

import "github.com/coroner-dev/coroner/internal/service/watch"

// trimForStore cuts the report of an isolated analysis (analyze
// --isolated, run by the watcher) to what the store keeps.
var trimForStore = watch.TrimForStore

// forwardToService does nothing in the service build: it runs every
// command itself.
func forwardToService([]string) {}
