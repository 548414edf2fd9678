//go:build !linux

package warmstart

// prepare does nothing outside Linux.
func prepare() {}

// growHeap does nothing outside Linux.
func growHeap() {}
