package liveproc

// SetHoldStop makes Attach call f while the process is stopped (tests of
// coroner being killed during a snapshot).
func SetHoldStop(f func()) { holdStop = f }
