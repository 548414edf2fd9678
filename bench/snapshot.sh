#!/usr/bin/env bash
# The pause coroner snapshot imposes on busy PHP-FPM workers: starts the hang
# lab with N workers sleeping in a request (lab/run.sh --hang --scenario sleep
# --repeat N), snapshots all of them R times with frozen memory (the default)
# and with --live-memory, and prints per run the pause per worker (median,
# max), the part until the registers were read, coroner's CPU time during
# the pause, the memory copied, and the total time for the pool. Then stops
# the lab. Run as root.
#
# usage: bench/snapshot.sh [--workers N] [--runs R] [--coroner BIN]
set -euo pipefail

n=20 runs=3 coroner=""
while [ $# -gt 0 ]; do
  case "$1" in
    --workers) n=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    --coroner) coroner=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$coroner" ]; then
  (cd "$root" && CGO_ENABLED=0 go build -o bin/coroner ./cmd/coroner)
  coroner=$root/bin/coroner
fi
lab=$(mktemp -d -t coroner-bench-snapshot-XXXXXX)
trap '"$root/lab/run.sh" --stop "$lab" > /dev/null 2>&1; rm -rf "$lab"' EXIT
"$root/lab/run.sh" --hang --out "$lab" --scenario sleep --repeat "$n" > "$lab.log" 2>&1 || { tail -20 "$lab.log"; exit 1; }
rm -f "$lab.log"
echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); $n workers sleeping in a request"
for mode in frozen live; do
  flag=""
  [ $mode = live ] && flag=--live-memory
  for r in $(seq "$runs"); do
    t0=$(date +%s%N)
    "$coroner" snapshot --busy-over 2s --json $flag > "$lab/out.json" 2> "$lab/err.txt" || { cat "$lab/err.txt"; exit 1; }
    t1=$(date +%s%N)
    python3 - "$lab/out.json" "$mode" "$(( (t1 - t0) / 1000000 ))" <<'PY'
import json, statistics, sys
reps = json.load(open(sys.argv[1]))
live = [r["live"] for r in reps]
p = sorted(l["pause_ms"] for l in live)
g = sorted(l["registers_ms"] for l in live)
c = sorted(l["pause_cpu_ms"] for l in live)
mib = statistics.median(l["copied_bytes"] for l in live) / 1048576
print(f"{sys.argv[2]:6} {len(reps)} workers: pause median {statistics.median(p):.1f} ms, max {p[-1]:.1f} ms; "
      f"registers median {statistics.median(g):.1f} ms; coroner CPU median {statistics.median(c):.1f} ms, max {c[-1]:.1f} ms; "
      f"copied {mib:.1f} MiB each; total {int(sys.argv[3]) / 1000:.2f} s")
PY
  done
done
