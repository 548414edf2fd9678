#!/usr/bin/env bash
# Runs every fuzz target of the module for the given time each (default 20s).
set -euo pipefail
t=${1:-20s}
cd "$(dirname "$0")/.."
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for f in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/func //'); do
    echo "== $pkg $f"
    # Minimising each new input may take up to -fuzzminimizetime (60s by
    # default): with the default, targets spent their whole time minimising.
    go test -run XXX -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 2s "$pkg"
  done
done
