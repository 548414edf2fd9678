#!/usr/bin/env bash
# Prepares what the multi-release tests need, once per machine, in parallel:
# a chroot per Debian release whose PHP the lab crashes (lab/chroot.sh), and
# the thread-safe (ZTS) PHP built from Debian's source (lab/zts/build.sh).
# Each is cached under /var/cache/coroner and reused (seconds when nothing
# changed). A failure is reported with the tail of its log and makes the
# script fail: the tests would fail on it anyway, with less to go on.
#
# usage: scripts/releases.sh [SUITE|zts]...   (default: every release and zts)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
  echo "releases: not root: the release chroots and the ZTS build are not prepared (the lab tests skip without root)" >&2
  exit 0
fi
if [ -n "${CORONER_NO_LAB:-}" ]; then
  exit 0
fi
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bullseye trixie experimental zts)
logs=/var/cache/coroner/lab/build-logs
mkdir -p "$logs"
declare -A pids
start=$(date +%s)
for t in "${targets[@]}"; do
  case "$t" in
    zts)
      if [ -x lab/zts/build.sh ]; then
        lab/zts/build.sh > "$logs/zts.log" 2>&1 &
        pids[$t]=$!
      fi
      ;;
    *)
      lab/chroot.sh "$t" > "$logs/chroot-$t.log" 2>&1 &
      pids[$t]=$!
      ;;
  esac
done
failed=()
for t in "${!pids[@]}"; do
  if ! wait "${pids[$t]}"; then
    failed+=("$t")
  fi
done
for t in "${failed[@]}"; do
  log="$logs/chroot-$t.log"
  [ "$t" != zts ] || log="$logs/zts.log"
  echo "releases: $t could not be prepared; the end of $log:" >&2
  tail -n 30 "$log" >&2
done
echo "releases: ${targets[*]} ready in $(( $(date +%s) - start )) s" >&2
[ ${#failed[@]} -eq 0 ]
