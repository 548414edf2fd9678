#!/usr/bin/env bash
# Times coroner against gdb and eu-stack on the same cores, in one run, and
# prints medians, peak memory and ratios.
#
# usage: bench/analyze.sh [--runs N] [--coroner BIN] CORE...
#        bench/analyze.sh [--runs N] --lab DIR        (every core of a lab run)
#
# For each core it runs, N times each:
#   coroner analyze CORE                             (everything: all threads, all frames, fault, PHP,
#                                                     diagnosis; text with repeats folded)
#   gdb -batch -ex bt -ex 'info registers' -ex 'x/6i $pc' EXE CORE
#   eu-stack -n 256 --core CORE -e EXE               (eu-stack is quadratic on deep stacks: capped at 256 frames)
# and reports the median wall time (microsecond clock) and coroner's largest RSS.
set -euo pipefail

runs=5
coroner=""
cores=()
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --coroner) coroner=$2; shift 2 ;;
    --lab)
      while IFS= read -r c; do cores+=("$c"); done < <(grep -o '"core": *"[^"]*"' "$2/manifest.json" | sed 's/.*"core": *"//; s/"$//' | sort -u)
      shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) cores+=("$1"); shift ;;
  esac
done
[ ${#cores[@]} -gt 0 ] || { echo "no cores given (see --help)" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$coroner" ]; then
  coroner="$here/bin/coroner"
  (cd "$here" && CGO_ENABLED=0 go build -o bin/coroner ./cmd/coroner)
fi
command -v gdb >/dev/null || { echo "gdb is not installed" >&2; exit 2; }
command -v eu-stack >/dev/null || { echo "eu-stack is not installed (apt-get install elfutils)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# measure NAME CMD...: runs CMD $runs times; prints "median_seconds max_rss_kb"
measure() {
  local name=$1; shift
  : > "$tmp/$name.times"
  for _ in $(seq "$runs"); do
    local t0=$EPOCHREALTIME
    /usr/bin/time -f "%M" -o "$tmp/t" timeout 600 "$@" >/dev/null 2>&1 || true
    local t1=$EPOCHREALTIME
    echo "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.4f", b-a}') $(tail -n 1 "$tmp/t")" >> "$tmp/$name.times"
  done
  sort -n -k1 "$tmp/$name.times" | awk -v n="$runs" '{t[NR]=$1; if ($2>m) m=$2} END {print t[int((n+1)/2)], m}'
}

printf '%-34s %8s %8s %10s %9s %9s %8s %8s %8s\n' core "size_MB" "frames" coroner_s gdb_s eustack_s rss_MB gdb/cor eu/cor
for core in "${cores[@]}"; do
  [ -f "$core" ] || { echo "skip $core: not a file" >&2; continue; }
  "$coroner" analyze --json "$core" > "$tmp/report.json"
  exe=$(grep -o '"executable": *"[^"]*"' "$tmp/report.json" | head -1 | sed 's/.*: *"//; s/"$//')
  frames=$(grep -c '"trust":' "$tmp/report.json" || true)
  read -r c_t c_m < <(measure coroner "$coroner" analyze "$core")
  read -r g_t _ < <(measure gdb gdb -nx -batch -ex bt -ex 'info registers' -ex 'x/6i $pc' "$exe" "$core")
  read -r e_t _ < <(measure eustack eu-stack -n 256 --core "$core" -e "$exe")
  size=$(( $(stat -c %s "$core") / 1048576 ))
  awk -v c="$(basename "$(dirname "$core")")" -v s="$size" -v f="$frames" -v ct="$c_t" -v gt="$g_t" -v et="$e_t" -v m="$c_m" 'BEGIN {
    cc = (ct > 0 ? ct : 0.0001)
    printf "%-34s %8d %8d %10.4f %9.4f %9.4f %8.1f %7.1fx %7.2fx\n", substr(c, length(c) > 34 ? length(c)-33 : 1), s, f, ct, gt, et, m/1024, gt/cc, et/cc }'
done
echo "(median of $runs runs each; rss = coroner's peak RSS; frames = frames coroner recovered in all threads)"
