#!/usr/bin/env bash
# Times coroner against gdb and eu-stack on the same cores, in one run, and
# prints medians with their spread, peak memory and ratios.
#
# usage: bench/analyze.sh [--runs N] [--json] [--coroner BIN] CORE...
#        bench/analyze.sh [--runs N] [--json] --lab DIR   (every core of a lab run; --sysroot from its manifest)
#
# For each core it runs, N times each (default 7, at least 5), in turn:
#   coroner analyze [--json] --cache-dir off CORE        cold: nothing cached (the page cache is warm;
#                                                         CORONER_CACHE_DIR=off: no cached PHP layout either)
#   coroner analyze [--json] --cache-dir DIR CORE        warm: DIR filled by one earlier run (symbol tables,
#                                                         PHP function tables and layout, debug information at the frames)
#   gdb -nx -batch -ex bt EXE CORE                        (with set sysroot for a lab of another release)
#   eu-stack -n 256 --core CORE -e EXE                    (eu-stack is quadratic on deep stacks: capped at 256 frames)
# and reports for each the median wall time and [min-max] (a wide spread means a noisy machine), the median
# CPU time (user+system) of coroner cold and warm and of gdb, coroner's peak RSS cold and warm, and the ratios
# of the median wall times.
set -euo pipefail

runs=7
coroner=""
json=""
cores=()
sysroot=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=$2; shift 2 ;;
    --coroner) coroner=$2; shift 2 ;;
    --json) json="--json"; shift ;;
    --lab)
      while IFS= read -r c; do cores+=("$c"); done < <(grep -o '"core": *"[^"]*"' "$2/manifest.json" | sed 's/.*"core": *"//; s/"$//' | sort -u)
      sysroot=$(grep -o '"sysroot": *"[^"]*"' "$2/manifest.json" | head -1 | sed 's/.*"sysroot": *"//; s/"$//' || true)
      shift 2 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) cores+=("$1"); shift ;;
  esac
done
[ ${#cores[@]} -gt 0 ] || { echo "no cores given (see --help)" >&2; exit 2; }
[ "$runs" -ge 5 ] || { echo "--runs must be at least 5" >&2; exit 2; }
here=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$coroner" ]; then
  coroner="$here/bin/coroner"
  (cd "$here" && CGO_ENABLED=0 go build -trimpath -tags noservice -ldflags "-s -w" -o bin/coroner ./cmd/coroner)
fi
command -v gdb >/dev/null || { echo "gdb is not installed" >&2; exit 2; }
command -v eu-stack >/dev/null || { echo "eu-stack is not installed (apt-get install elfutils)" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sysopt=()
gdbsys=()
if [ -n "$sysroot" ]; then
  sysopt=(--sysroot "$sysroot")
  gdbsys=(-iex "set sysroot $sysroot")
fi

# run_once NAME CMD...: runs CMD once and appends "wall user system" (seconds) to $tmp/NAME.times. The
# times come from bash's own `time` (millisecond resolution) around a subshell that bounds the command's
# CPU time (ulimit -t 600) and runs it: nothing else is started in the timed part (GNU time and timeout
# added ~9 ms to every run, a fifth of a fast analysis).
run_once() {
  local name=$1; shift
  local TIMEFORMAT='%3R %3U %3S'
  { time (ulimit -t 600; "$@" >/dev/null 2>&1) ; } 2>> "$tmp/$name.times" || true
}

# peak_rss CMD...: the largest peak RSS (KiB) of three runs under GNU time.
peak_rss() {
  local rss=0 m
  for _ in 1 2 3; do
    /usr/bin/time -f "%M" -o "$tmp/t" timeout 600 "$@" >/dev/null 2>&1 || true
    m=$(tail -n 1 "$tmp/t")
    [ "$m" -gt "$rss" ] 2>/dev/null && rss=$m
  done
  echo "$rss"
}

# summary NAME RSS: "median min max rss median_cpu" of the runs of NAME (cpu: user+system).
summary() {
  local cpu
  cpu=$(awk '{printf "%.3f\n", $2+$3}' "$tmp/$1.times" | sort -n | awk -v n="$runs" 'NR==int((n+1)/2)')
  sort -n -k1 "$tmp/$1.times" | awk -v n="$runs" -v cpu="$cpu" -v rss="$2" '{t[NR]=$1} END {print t[int((n+1)/2)], t[1], t[n], rss, cpu}'
}

printf '%-30s %6s %7s | %-22s %-22s %-22s %-22s | %-17s | %7s %7s | %8s %8s %8s\n' \
  core MB frames "coroner cold s" "coroner warm s" "gdb s" "eu-stack s" "cpu s cold/warm/gdb" "cold MB" "warm MB" gdb/cold gdb/warm eu/warm
for core in "${cores[@]}"; do
  [ -f "$core" ] || { echo "skip $core: not a file" >&2; continue; }
  "$coroner" analyze --json --cache-dir off "${sysopt[@]}" "$core" > "$tmp/report.json"
  exe=$(grep -o '"executable": *"[^"]*"' "$tmp/report.json" | head -1 | sed 's/.*: *"//; s/"$//')
  [ -n "$sysroot" ] && exe="$sysroot$exe"
  frames=$(grep -c '"trust":' "$tmp/report.json" || true)
  cache="$tmp/cache"
  rm -rf "$cache"
  # PHP's derived structure layout has a cache of its own ($CORONER_CACHE_DIR): off when cold, in the
  # benchmark's cache directory when warm.
  CORONER_CACHE_DIR="$cache" "$coroner" analyze $json --cache-dir "$cache" "${sysopt[@]}" "$core" > /dev/null
  cold=(env CORONER_CACHE_DIR=off "$coroner" analyze $json --cache-dir off "${sysopt[@]}" "$core")
  warm=(env CORONER_CACHE_DIR="$cache" "$coroner" analyze $json --cache-dir "$cache" "${sysopt[@]}" "$core")
  gdbc=(gdb -nx -batch "${gdbsys[@]}" -ex bt "$exe" "$core")
  euc=(eu-stack -n 256 --core "$core" -e "$exe")
  rm -f "$tmp"/{cold,warm,gdb,eustack}.times
  # In turn, run after run: a machine whose speed drifts slows all four alike.
  for _ in $(seq "$runs"); do
    run_once cold "${cold[@]}"
    run_once warm "${warm[@]}"
    run_once gdb "${gdbc[@]}"
    run_once eustack "${euc[@]}"
  done
  read -r c_t c_lo c_hi c_m c_c < <(summary cold "$(peak_rss "${cold[@]}")")
  read -r w_t w_lo w_hi w_m w_c < <(summary warm "$(peak_rss "${warm[@]}")")
  read -r g_t g_lo g_hi _ g_c < <(summary gdb 0)
  read -r e_t e_lo e_hi _ _ < <(summary eustack 0)
  size=$(( $(stat -c %s "$core") / 1048576 ))
  name=$(basename "$(dirname "$core")")
  awk -v c="$name" -v s="$size" -v f="$frames" \
    -v ct="$c_t" -v cl="$c_lo" -v ch="$c_hi" -v wt="$w_t" -v wl="$w_lo" -v wh="$w_hi" \
    -v gt="$g_t" -v gl="$g_lo" -v gh="$g_hi" -v et="$e_t" -v el="$e_lo" -v eh="$e_hi" -v cm="$c_m" -v wm="$w_m" -v cc_="$c_c" -v wc="$w_c" -v gc="$g_c" 'BEGIN {
    cc = (ct > 0 ? ct : 0.0001); ww = (wt > 0 ? wt : 0.0001)
    printf "%-30s %6d %7d | %6.3f [%6.3f-%6.3f] %6.3f [%6.3f-%6.3f] %6.3f [%6.3f-%6.3f] %6.3f [%6.3f-%6.3f] | %5.3f %5.3f %5.3f | %7.1f %7.1f | %7.1fx %7.1fx %7.2fx\n",
      substr(c, 1, 30), s, f, ct, cl, ch, wt, wl, wh, gt, gl, gh, et, el, eh, cc_, wc, gc, cm/1024, wm/1024, gt/cc, gt/ww, et/ww }'
done
echo "(wall seconds: median [min-max] of $runs runs each; cpu = median user+system seconds; MB = coroner's peak RSS; frames = frames coroner recovered in all threads;"
echo " gdb -batch -ex bt; eu-stack -n 256; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))"
