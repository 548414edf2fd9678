package php

import (
	"fmt"
	"os"
	"testing"
)

// TestMain keeps the derivation's disk cache of this package's tests in a
// directory of their own, removed afterwards.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "coroner-php-cache-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("CORONER_CACHE_DIR", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
