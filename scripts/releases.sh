#!/usr/bin/env bash
# Prepares what the multi-release tests need, once per machine, in parallel:
# a chroot per Debian release whose PHP the lab crashes (lab/chroot.sh), the
# thread-safe (ZTS) PHP built from Debian's source (lab/zts/build.sh), a ZTS
# libphp with the embed SAPI (lab/zts-embed/build.sh) and the headers and
# binaries of each release for the layout tests (lab/php-dev-headers.sh).
# Each is cached under /var/cache/coroner and reused (seconds when nothing
# changed). A failure is reported with the tail of its log and makes the
# script fail: the tests would fail on it anyway, with less to go on.
#
# usage: scripts/releases.sh [SUITE|zts|zts-embed|php-dev]...   (default: all)
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
[ ${#targets[@]} -gt 0 ] || targets=(bullseye trixie experimental zts zts-embed php-dev)
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
    zts-embed) # a ZTS libphp with the embed SAPI: two PHP threads in one process (labtest.ZTSThreads)
      lab/zts-embed/build.sh > "$logs/zts-embed.log" 2>&1 &
      pids[$t]=$!
      ;;
    php-dev) # headers and binaries of each release for the layout tests (internal/engine/php)
      (for s in $(lab/php-dev-headers.sh --list | awk '{print $1}'); do lab/php-dev-headers.sh "$s" || exit 1; done) > "$logs/php-dev.log" 2>&1 &
      pids[$t]=$!
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
  case "$t" in zts | zts-embed | php-dev) log="$logs/$t.log" ;; esac
  echo "releases: $t could not be prepared; the end of $log:" >&2
  tail -n 30 "$log" >&2
done
echo "releases: ${targets[*]} ready in $(( $(date +%s) - start )) s" >&2
[ ${#failed[@]} -eq 0 ]
