# coroner: the two set-up commands of the README are `make demo` and `make test`.
export PATH := /usr/local/go/bin:$(PATH)
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
BIN      := bin/coroner
LAB_OUT  ?= lab-out

.PHONY: all build dist dist-test deps releases demo test unit race golden lint fuzz bench clean

all: build

# bin/coroner (-tags noservice: no database driver, no web server, a faster start) and
# bin/coroner-service, which `coroner watch` and `coroner serve` run (cmd/coroner/service.go).
build:
	CGO_ENABLED=0 $(GO) build -trimpath -tags noservice -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) ./cmd/coroner
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN)-service ./cmd/coroner

# Release artefacts in dist-out/: static binaries for linux/amd64 and linux/arm64 in .tar.gz
# (with man pages, completions, the unit) and .deb packages, and SHA256SUMS; reproducible
# from a clean checkout (scripts/dist.sh).
dist:
	GO=$(GO) scripts/dist.sh --out dist-out

# Install the .deb of dist-out into a throwaway clean Debian 13 chroot, use it, remove it (root).
dist-test: dist
	scripts/dist-test.sh dist-out/coroner_*_amd64.deb

# Packages the tests and the lab need (Debian/Ubuntu, as root).
deps:
	scripts/deps.sh

# The release chroots and the ZTS PHP the multi-release tests crash (cached, built once per machine).
releases: deps
	scripts/releases.sh

# Build coroner, crash real php-fpm workers behind nginx (the lab), and diagnose what died.
demo: deps build
	lab/run.sh --out $(LAB_OUT)
	scripts/demo.sh $(BIN) $(LAB_OUT)

# Unit tests, integration tests on the lab's real cores (run once, shared by all packages;
# skipped with CORONER_NO_LAB=1 or when not root), then the race detector on the packages
# that run goroutines.
test: deps releases
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) test -count=1 -timeout 30m ./...
	$(MAKE) --no-print-directory race

# Unit tests only (no lab, no root needed).
unit:
	CORONER_NO_LAB=1 CGO_ENABLED=0 $(GO) test -count=1 ./...

# The packages that run goroutines (background analysis and line decoding, the CLI's
# preloading, watch, the dashboard, the store, core discovery, log following, decompression)
# under the race detector, on the checked-in cores (no lab). -race needs cgo and gcc.
RACE_PKGS := ./cmd/coroner ./internal/engine/analyze ./internal/engine/symbols ./internal/service/... \
	./internal/source/coredumps ./internal/source/logs ./internal/source/compressed
race:
	@if command -v gcc > /dev/null; then \
		echo "CORONER_NO_LAB=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m $(RACE_PKGS)"; \
		CORONER_NO_LAB=1 CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 30m $(RACE_PKGS); \
	else echo "race: gcc is not installed (go test -race needs cgo): skipped"; fi

# Rewrite the golden reports and script outputs of the checked-in cores; review the diff.
golden:
	CORONER_NO_LAB=1 CGO_ENABLED=0 $(GO) test -count=1 -run Golden ./internal/engine/analyze ./cmd/coroner -update

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	CGO_ENABLED=0 $(GO) vet ./...
	CGO_ENABLED=0 $(GO) vet -tags noservice ./cmd/coroner
	CGO_ENABLED=0 $(GO) tool staticcheck ./...
	CGO_ENABLED=0 $(GO) tool staticcheck -tags noservice ./cmd/coroner

# Run every fuzz target for FUZZTIME each.
FUZZTIME ?= 20s
fuzz:
	scripts/fuzz.sh $(FUZZTIME)

# coroner vs gdb vs eu-stack on the lab's cores.
bench: build
	test -f $(LAB_OUT)/manifest.json || lab/run.sh --out $(LAB_OUT)
	bench/analyze.sh --lab $(LAB_OUT)

clean:
	rm -rf bin dist-out
