package main

// coroner is built twice (make build, the packages):
//
//   - coroner, with -tags noservice: every command that reads a core, logs
//     or the host's configuration and exits. It links no database driver and
//     no web server, which would add about 12 ms to the start of every run
//     (their package initialisation and a larger executable to fault in: a
//     fifth of a whole analysis of a php-fpm core).
//   - coroner-service, without tags: every command, watch and serve
//     included. `coroner watch` and `coroner serve` (their help, man page
//     and completions included) execute it in the same process
//     (service_forward.go), found next to coroner or in
//     /usr/lib/coroner; systemd's unit runs `coroner watch` unchanged.
//     It also links net/http, for the opt-in debuginfod client: coroner
//     runs `coroner-service __debuginfod-get URL` for each download
//     (debuginfod_transport.go), which costs a process start per file
//     fetched (each is then cached) instead of ~6% of every analysis.
//
// A plain `go build` or `go install` of this package gives one executable
// with every command (the service build).

// The one-line descriptions of the service's commands: `coroner --help`
// lists them in both builds.
const (
	watchShort = "Run as a service: analyse new cores, group crashes, serve a dashboard and /metrics"
	serveShort = "Serve the crash dashboard and /metrics of a coroner database (without watching)"
)

// debuginfodGetCommand is the hidden command of coroner-service that makes
// one debuginfod request for coroner (the lean build). It writes the
// status and announced length on a line ("200 12345"; length -1 when
// none), then, for a status of 200, the body; when there is no answer it
// writes why on its standard error and exits 1.
const debuginfodGetCommand = "__debuginfod-get"
