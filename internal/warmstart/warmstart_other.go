//go:build !linux

package warmstart

// prepare does nothing outside Linux.
func prepare() {}
