#!/bin/bash
# make dist-test: install a coroner .deb (make dist) into a throwaway clean Debian 13 (trixie)
# chroot and use it as an administrator would: dpkg -i, coroner version / --version / audit,
# man coroner, the bash completion, the unit's binary, the conffile; then remove and purge it
# and check that nothing of it is left. As root.
# It also checks the copyright file (DEP-5: coroner's own stanza, one per Go module the binary
# records) in the .deb and in both tarballs, and runs the arm64 binary of the tarball next to
# the .deb under qemu-aarch64-static (installed from Debian when missing): coroner version, and
# the analysis of checked-in cores, whose JSON must equal the amd64 binary's.
#
# The clean chroot (minbase + man-db + bash-completion, built once with mmdebstrap from the
# host's Debian mirror) is cached in $CORONER_DIST_CHROOTS (default /var/cache/coroner/dist/chroots)
# and never modified: each run installs into an overlay on it that is thrown away.
# usage: scripts/dist-test.sh coroner_VERSION_amd64.deb
set -euo pipefail
# (no early-closing reader such as head or grep -q after a pipe: SIGPIPE would fail it)
[ $# -eq 1 ] && [ -f "$1" ] || { echo "usage: scripts/dist-test.sh coroner_VERSION_amd64.deb" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "dist-test: needs root (chroot, mount)" >&2; exit 1; }
deb=$(readlink -f "$1")
version=$(dpkg-deb -f "$deb" Version)
repo=$(cd "$(dirname "$0")/.." && pwd)
go=${GO:-go}
log() { printf '[dist-test %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

cache=${CORONER_DIST_CHROOTS:-/var/cache/coroner/dist/chroots}/trixie
if [ ! -f "$cache/.coroner-dist-chroot" ]; then
  command -v mmdebstrap >/dev/null ||
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq mmdebstrap >/dev/null
  mirror=$(apt-get indextargets --format '$(REPO_URI)' 'Created-By: Packages' | awk '!/-security/ { print; exit }')
  mirror=${mirror:-http://deb.debian.org/debian/}
  log "building a clean trixie chroot from $mirror into $cache"
  rm -rf "$cache.tmp"
  mkdir -p "$(dirname "$cache")"
  t0=$(date +%s)
  mmdebstrap --mode=root --format=directory --variant=minbase --include=man-db,bash-completion \
    trixie "$cache.tmp" "deb $mirror trixie main" >&2
  echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in $(($(date +%s) - t0))s" > "$cache.tmp/.coroner-dist-chroot"
  rm -rf "$cache"
  mv "$cache.tmp" "$cache"
fi

work=$(mktemp -d)
root=$work/root
mkdir -p "$work/upper" "$work/work" "$root"
mounted=()
cleanup() {
  local i
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount "${mounted[$i]}" || true; done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
mount -t overlay overlay -o "lowerdir=$cache,upperdir=$work/upper,workdir=$work/work" "$root"
mounted+=("$root")
mount -t proc proc "$root/proc"
mounted+=("$root/proc")
in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 TERM=dumb "$@"; }

cp "$deb" "$root/tmp/coroner.deb"
t0=$(date +%s%N)
in_root dpkg -i /tmp/coroner.deb >&2 || fail "dpkg -i"
t1=$(date +%s%N)
log "dpkg -i: $(((t1 - t0) / 1000000)) ms, installed size $(in_root dpkg-query -W -f='${Installed-Size}' coroner) KiB"

[ -z "$(in_root dpkg-query -W -f='${Depends}${Pre-Depends}' coroner)" ] || fail "the package has dependencies"
out=$(in_root coroner version) || fail "coroner version"
log "coroner version: $out"
case "$out" in "coroner $version go1."*" linux/amd64") ;; *) fail "coroner version says: $out" ;; esac
[ "$(in_root coroner --version)" = "$out" ] || fail "coroner --version differs from coroner version"

set +e
audit=$(in_root coroner audit 2>&1)
rc=$?
set -e
case $rc in 0 | 4) ;; *) fail "coroner audit exited with $rc: $audit" ;; esac # 4: a layer blocks core dumps
printf '%s\n' "$audit" | sed -n 1,5p >&2
log "coroner audit: exit status $rc"

man=$(in_root man -P cat coroner 2>&1) || fail "man coroner: $man"
grep -q 'Post-mortems for crashed PHP-FPM workers' <<< "$man" || fail "man coroner lacks the description"
grep -q 'EXIT STATUS' <<< "$man" || fail "man coroner lacks EXIT STATUS"
in_root man -P cat coroner-logs | grep -- '--since' >/dev/null || fail "man coroner-logs lacks --since"
log "man coroner, man coroner-logs: ok ($(in_root sh -c 'ls /usr/share/man/man1/coroner*.1.gz | wc -l') pages)"

in_root bash -c '. /usr/share/bash-completion/bash_completion; _completion_loader coroner; complete -p coroner' |
  grep __start_coroner >/dev/null || fail "bash completion not loaded"
comp=$(in_root coroner __complete an 2>/dev/null | awk -F'\t' 'NR == 1 { print $1 }')
[ "$comp" = analyze ] || fail "completion of 'coroner an' gave $comp"
log "bash completion: ok"

# The copyright file: machine-readable, coroner's own stanza says no license file exists, and
# every module the binary records has its stanza with a license text.
# check_copyright FILE BINARY WHAT
check_copyright() {
  local c=$1 b=$2 what=$3 m missing=""
  [ -s "$c" ] || fail "$what: no copyright file"
  [ "$(sed -n 1p "$c")" = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/" ] ||
    fail "$what: the copyright file is not DEP-5"
  grep -qx 'License: none' "$c" || fail "$what: coroner's own stanza lacks License: none"
  for m in $("$go" version -m "$b" | awk '$1 == "dep" { print $2 }') go; do
    awk -v f="Files: $m/*" '$0 == f { s = 1; next } s && /^License: [A-Za-z]/ { ok = 1; exit } s && /^$/ { exit } END { exit !ok }' "$c" ||
      missing="$missing $m"
  done
  [ -z "$missing" ] || fail "$what: the copyright file has no licensed stanza for:$missing"
  log "$what: copyright file ok ($(grep -c '^Files:' "$c") stanzas, $(grep -c '^License: ' "$c") licenses)"
}
check_copyright "$root/usr/share/doc/coroner/copyright" "$root/usr/lib/coroner/coroner-service" "the .deb"

# watch and serve run in /usr/lib/coroner/coroner-service: their help, man pages and completions
# come through coroner.
in_root coroner watch --help | grep -- '--db ' >/dev/null || fail "coroner watch --help does not list --db"
in_root man -P cat coroner-watch | grep -- '--keep-cores' >/dev/null || fail "man coroner-watch lacks --keep-cores"
comp=$(in_root coroner __complete serve --db-w 2>/dev/null | awk -F'\t' 'NR == 1 { print $1 }')
[ "$comp" = --db-wait ] || fail "completion of 'coroner serve --db-w' gave $comp"
set +e
serve=$(in_root coroner serve --db sqlite:/nonexistent/coroner.db 2>&1)
rc=$?
set -e
[ $rc = 1 ] && grep -q 'no database at /nonexistent/coroner.db' <<< "$serve" || fail "coroner serve on a missing database: $rc $serve"
log "coroner watch/serve through /usr/lib/coroner/coroner-service: help, man page, completion, errors ok"

exe=$(sed -n 's/^ExecStart=\([^ ]*\).*/\1/p' "$root/usr/lib/systemd/system/coroner-watch.service")
[ "$exe" = /usr/bin/coroner ] && [ -x "$root$exe" ] || fail "the unit runs $exe"
in_root dpkg-query -W -f='${Conffiles}\n' coroner | grep /etc/default/coroner-watch >/dev/null || fail "no conffile"

echo 'CORONER_WATCH_OPTS="--workers 2"' >> "$root/etc/default/coroner-watch"
in_root dpkg -r coroner >&2 || fail "dpkg -r"
[ ! -e "$root/usr/bin/coroner" ] && [ ! -e "$root/usr/lib/coroner" ] || fail "/usr/bin/coroner or /usr/lib/coroner left after dpkg -r"
grep -q 'workers 2' "$root/etc/default/coroner-watch" || fail "dpkg -r lost the edited conffile"
in_root dpkg -P coroner >&2 || fail "dpkg -P"
[ ! -e "$root/etc/default/coroner-watch" ] || fail "conffile left after purge"
left=$(cd "$work/upper" && find . -path ./tmp -prune -o -path ./var/lib/dpkg -prune -o -path ./var/log -prune \
  -o -path ./var/cache -prune -o -path ./etc/ld.so.cache -prune -o -iname '*coroner*' -print)
[ -z "$left" ] || fail "left after purge: $left"
log "dpkg -r keeps the edited conffile, dpkg -P removes everything: ok"

# The tarballs next to the .deb: their copyright files, and the arm64 binary run under qemu.
dir=$(dirname "$deb")
for arch in amd64 arm64; do
  tgz="$dir/coroner_${version}_linux_$arch.tar.gz"
  [ -f "$tgz" ] || fail "no $tgz"
  mkdir -p "$work/tar-$arch"
  tar -C "$work/tar-$arch" -xzf "$tgz"
  [ -x "$work/tar-$arch/coroner_${version}_linux_$arch/coroner" ] || fail "the $arch tarball has no coroner"
  check_copyright "$work/tar-$arch/coroner_${version}_linux_$arch/copyright" \
    "$work/tar-$arch/coroner_${version}_linux_$arch/coroner-service" "the $arch tarball"
done
amd64=$work/tar-amd64/coroner_${version}_linux_amd64/coroner
arm64=$work/tar-arm64/coroner_${version}_linux_arm64/coroner
command -v qemu-aarch64-static >/dev/null ||
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq qemu-user-static >/dev/null
out=$(qemu-aarch64-static "$arm64" version) || fail "qemu-aarch64-static coroner version"
case "$out" in "coroner $version go1."*" linux/arm64") ;; *) fail "the arm64 coroner version says: $out" ;; esac
log "arm64 under qemu: $out"
cores=$repo/internal/engine/analyze/testdata/cores
mkdir -p "$work/sysroot"
tar -C "$work/sysroot" -xaf "$cores/sysroot.tar.zst"
for c in php-ffi-null-code c-pcre-null; do
  for arch in amd64 arm64; do
    run=("$amd64")
    [ $arch = amd64 ] || run=(qemu-aarch64-static "$arm64")
    t0=$(date +%s%N)
    (cd "$cores/$c" && "${run[@]}" analyze --json --cache-dir off --sysroot "$work/sysroot" --no-host-debug core.zst) |
      sed '/^  "timings": \[$/,/^  \]$/d' > "$work/$c.$arch.json" || fail "$arch: analyze $c"
    t1=$(date +%s%N)
    log "$arch: analyze --json $c: $(((t1 - t0) / 1000000)) ms"
  done
  cmp -s "$work/$c.amd64.json" "$work/$c.arm64.json" ||
    fail "the arm64 binary's report of $c differs from the amd64 one's: $(diff "$work/$c.amd64.json" "$work/$c.arm64.json" | sed -n 1,20p)"
  log "$c: the arm64 and amd64 reports are the same ($(wc -c < "$work/$c.amd64.json") bytes of JSON, timings left out)"
done
log "PASS: $(basename "$deb")"
