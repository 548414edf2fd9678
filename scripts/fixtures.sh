#!/usr/bin/env bash
# Remakes the checked-in lab cores (internal/engine/analyze/testdata/cores), as root.
#
# It runs the crash lab from a copy of lab/ at a neutral path (/srv/coroner/lab, output
# /srv/coroner-lab) in a clean environment, so that no path or variable of this machine
# ends up in the cores or in the binaries the lab compiles; keeps only the pages of the
# cores and of the files they map that coroner reads (internal/labtest/trimcore, which
# verifies that the trimmed files give the original reports); and removes both
# directories. Run it when no other lab runs (labs change kernel.core_pattern), then
# rewrite the golden reports and review the diff:
#
#   sudo scripts/fixtures.sh
#   go test ./internal/engine/analyze ./cmd/coroner -run Golden -update
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "fixtures: run as root (the lab and trimcore need it)" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
src=/srv/coroner
out=/srv/coroner-lab
for d in "$src" "$out"; do
  [ ! -e "$d" ] || { echo "fixtures: $d exists; remove it first" >&2; exit 1; }
done
trap 'rm -rf "$src" "$out"' EXIT
mkdir -p "$src"
cp -r "$root/lab" "$root/go.mod" "$root/go.sum" "$src/"
go=$(command -v go || echo /usr/local/go/bin/go)
(cd / && env -i PATH="$(dirname "$go"):/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" HOME=/root LANG=C.UTF-8 \
  "$src/lab/run.sh" --out "$out" --scenario ffi-null-code --scenario shortcode-recursion)
cd "$root"
"$go" run ./internal/labtest/trimcore -lab "$out" -out internal/engine/analyze/testdata/cores \
  c-pcre-null=c/pcre-null c-thread-crash=c/thread-crash cpp-namespace=c/cpp-namespace go-panic=c/go-panic \
  php-ffi-null-code=scenarios/ffi-null-code php-shortcode-recursion=scenarios/shortcode-recursion
