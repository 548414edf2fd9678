package main

// The exit statuses of every command (README "Exit statuses", the man
// pages' EXIT STATUS): 0, 1 and 2 mean the same for all commands, and a
// findings status from 3 up has one meaning wherever it appears.
const (
	exitOK    = 0 // done; the findings, if any, are in the output
	exitError = 1 // the command could not do its work (unreadable input, I/O, ...)
	exitUsage = 2 // the command line is wrong (the usage line is printed)

	exitNotReproduced = 3 // replay: the request killed a worker again
	exitCoreBlocked   = 4 // audit: a layer keeps the next crash from leaving a core
	exitNotPHP        = 5 // php: the process is not PHP
	exitNoTarget      = 6 // snapshot: no process matches the selection
)

// exitStatus documents one exit status for the man pages and the help.
type exitStatus struct {
	code    int
	meaning string
}

// exitStatuses is the table every command shares.
var exitStatuses = []exitStatus{
	{exitOK, "success (findings, if any, are in the output)"},
	{exitError, "error: the command could not do its work (the reason is on standard error)"},
	{exitUsage, "usage error: unknown command or flag, wrong arguments, conflicting flags (the usage line is printed)"},
	{exitNotReproduced, "replay: the replayed request did not kill a worker (not reproduced)"},
	{exitCoreBlocked, "audit: a layer blocks core dumps (the next crash leaves no core)"},
	{exitNotPHP, "php: the core is not of a PHP process"},
	{exitNoTarget, "snapshot: no process matches the selection"},
	{130, "interrupted (128 + the signal number: 130 for SIGINT, 143 for SIGTERM)"},
}
