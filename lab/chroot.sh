#!/usr/bin/env bash
# A minimal Debian chroot per release with php-fpm (+ the opcache package where
# it is separate), php-cli and gdb, for the crash lab's --release SUITE.
#
# usage: lab/chroot.sh [--root DIR] [--tool mmdebstrap|debootstrap] SUITE
#        lab/chroot.sh [--root DIR] --check SUITE   (exit 0 when built and up to date)
#        lab/chroot.sh --list                       (the suites and their packages)
#
# SUITE: bullseye (PHP 7.4), bookworm (8.2, as the host), trixie (8.4), sid (8.4),
# experimental (sid + php8.5* pinned to experimental; OPcache is built into 8.5).
#
# The chroot is built once per machine in ROOT/SUITE (ROOT: --root, else
# $CORONER_LAB_CHROOTS, else /var/cache/coroner/lab/chroots) and reused: it is
# rebuilt only when its specification (FORMAT below, suite, packages, mirrors,
# pins, Valid-Until; kept in SUITE/.coroner-chroot) changes. Prints the chroot
# directory on stdout.
# Builders take an exclusive flock on ROOT/SUITE.lock; lab/run.sh holds a shared
# one while it uses the chroot, so a chroot is never rebuilt under a running lab.
# A new chroot is built next to the old one and renamed into place, never over
# a directory that has something mounted inside.
#
# mmdebstrap (installed when missing) is tried first, debootstrap is the
# fallback. Both use the mirrors of the host's apt sources. The chroot gets a
# /usr/sbin/policy-rc.d that exits 101 (packages never start services). Nothing
# is mounted inside it afterwards: lab/run.sh mounts /proc and /dev only while
# it runs. Run as root.
set -euo pipefail

ROOT=${CORONER_LAB_CHROOTS:-/var/cache/coroner/lab/chroots}
# Bump when the way a chroot is built changes in a way that matters to its content.
FORMAT=1
SUITES=(bullseye bookworm trixie sid experimental)

log() { printf '[chroot %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# suite_spec SUITE: sets dist (the suite debootstrapped), php (X.Y), pkgs, extra
# (more suites in sources), pin (packages pinned to the extra suite), novalid
# (yes: Release files past their Valid-Until are accepted), security (yes: add
# SUITE-security and SUITE-updates).
suite_spec() {
  extra="" pin="" novalid=no security=no
  case "$1" in
    bullseye) dist=bullseye php=7.4 security=yes ;;
    bookworm) dist=bookworm php=8.2 security=yes ;;
    trixie) dist=trixie php=8.4 security=yes ;;
    sid) dist=sid php=8.4 novalid=yes ;;
    experimental) dist=sid php=8.5 extra=experimental pin="php$php*" novalid=yes ;;
    *) return 1 ;;
  esac
  pkgs=("php$php-fpm" "php$php-cli" gdb)
  # OPcache is a package of its own up to 8.4, built into php8.5 (no php8.5-opcache)
  case "$php" in 7.* | 8.[0-4]) pkgs+=("php$php-opcache") ;; esac
}

# host_mirrors: sets mirror and security_mirror from the host's apt sources
# (deb822 .sources or one-line .list), falling back to deb.debian.org.
host_mirrors() {
  mirror="" security_mirror=""
  local f uris suites w i
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # deb822 stanzas: pair each URIs: with the Suites: of the same stanza
    while IFS='|' read -r uris suites; do
      case " $suites " in
        *-security*) [ -n "$security_mirror" ] || security_mirror=${uris%% *} ;;
        *) [ -n "$mirror" ] || mirror=${uris%% *} ;;
      esac
    done < <(awk '
      /^[ \t]*$/ { if (u != "" && t ~ /(^| )deb( |$)/) print u "|" s; u = s = t = ""; next }
      tolower($1) == "types:" { $1 = ""; t = $0 }
      tolower($1) == "uris:" { $1 = ""; sub(/^ +/, ""); u = $0 }
      tolower($1) == "suites:" { $1 = ""; sub(/^ +/, ""); s = $0 }
      END { if (u != "" && t ~ /(^| )deb( |$)/) print u "|" s }' "$f")
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    while read -ra w; do # deb [opts] URI SUITE COMPONENTS...
      [ "${w[0]:-}" = deb ] || continue
      i=1
      case "${w[1]:-}" in
        "["*) while [ $i -lt ${#w[@]} ] && [ "${w[$i]%]}" = "${w[$i]}" ]; do i=$((i + 1)); done; i=$((i + 1)) ;;
      esac
      case "${w[$((i + 1))]:-}" in
        *-security*) [ -n "$security_mirror" ] || security_mirror=${w[$i]:-} ;;
        *) [ -n "$mirror" ] || mirror=${w[$i]:-} ;;
      esac
    done < "$f"
  done
  mirror=${mirror:-http://deb.debian.org/debian}
  security_mirror=${security_mirror:-http://deb.debian.org/debian-security}
  mirror=${mirror%/} security_mirror=${security_mirror%/}
}

# spec_text SUITE: everything the content of the chroot depends on (the stamp).
spec_text() {
  printf 'format %s\nsuite %s\ndist %s\nphp %s\npackages %s\nmirror %s\n' "$FORMAT" "$1" "$dist" "$php" "${pkgs[*]}" "$mirror"
  [ "$security" = no ] || printf 'security %s\n' "$security_mirror"
  [ -z "$extra" ] || printf 'extra %s\npin %s\n' "$extra" "$pin"
  printf 'check-valid-until %s\n' "$([ "$novalid" = yes ] && echo false || echo true)"
}

sources_lines() { # one-line apt sources for the chroot
  echo "deb $mirror $dist main"
  if [ "$security" = yes ]; then
    echo "deb $mirror $dist-updates main"
    echo "deb $security_mirror $dist-security main"
  fi
  [ -z "$extra" ] || echo "deb $mirror $extra main"
}

# mounts_under DIR: prints the mount points at or below DIR (none: nothing printed).
mounts_under() {
  awk -v d="$1" '{ p = $5; gsub(/\\040/, " ", p); if (p == d || index(p, d "/") == 1) print p }' /proc/self/mountinfo
}

# remove_tree DIR: rm -rf, refusing when anything is mounted inside.
remove_tree() {
  local d=$1 m
  [ -e "$d" ] || return 0
  m=$(mounts_under "$d")
  [ -z "$m" ] || die "not removing $d: mounted inside it: $m"
  rm -rf --one-file-system "$d"
}

list=no check=no tool=""
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$2; shift 2 ;;
    --tool) tool=$2; shift 2 ;;
    --check) check=yes; shift ;;
    --list) list=yes; shift ;;
    -h | --help) sed -n '2,26p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) break ;;
  esac
done
if [ "$list" = yes ]; then
  for s in "${SUITES[@]}"; do suite_spec "$s"; printf '%-13s PHP %s: %s\n' "$s" "$php" "${pkgs[*]}"; done
  exit 0
fi
[ $# -eq 1 ] || die "usage: lab/chroot.sh [--root DIR] [--tool mmdebstrap|debootstrap] [--check] SUITE (see --help)"
suite=$1
suite_spec "$suite" || die "unknown suite $suite (one of: ${SUITES[*]})"
host_mirrors
spec=$(spec_text "$suite")
dir="$ROOT/$suite"

fresh() { [ -f "$dir/.coroner-chroot" ] && [ "$(sed '/^built /,$d' "$dir/.coroner-chroot")" = "$spec" ]; }
if [ "$check" = yes ]; then fresh; exit; fi

[ "$(id -u)" = 0 ] || die "building a chroot needs root"
mkdir -p "$ROOT"
exec {lock_fd}>>"$ROOT/$suite.lock"
# the fast path shares the lock with running labs; building needs it exclusive
if ! flock -s -n "$lock_fd"; then
  log "waiting for another builder to release $ROOT/$suite.lock"
  flock -s -w 3600 "$lock_fd" || die "could not lock $ROOT/$suite.lock within an hour"
fi
if ! fresh; then
  flock -u "$lock_fd"
  if ! flock -n "$lock_fd"; then
    log "waiting for another builder or a running lab to release $ROOT/$suite.lock"
    flock -w 3600 "$lock_fd" || die "could not lock $ROOT/$suite.lock within an hour"
  fi
fi
if fresh; then
  log "$suite: cached in $dir ($(sed -n 's/^built //p' "$dir/.coroner-chroot"))"
  echo "$dir"
  exit 0
fi

t0=$(date +%s.%N)
tmp="$ROOT/.$suite.new.$$"
mounted=()
pinfile="" aptconf="" sourcesfile=""
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  rm -f "$pinfile" "$aptconf" "$sourcesfile"
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    umount "${mounted[$i]}" 2>/dev/null || umount -l "${mounted[$i]}" 2>/dev/null || true
  done
  if [ $rc -ne 0 ] && [ -e "$tmp" ]; then remove_tree "$tmp" || true; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
# leftovers of builds that were killed (we hold the exclusive lock: nobody else builds this suite)
for old in "$ROOT/.$suite.new."* "$ROOT/.$suite.old."*; do
  [ -e "$old" ] || continue
  if [ -z "$(mounts_under "$old")" ]; then remove_tree "$old"; else log "left $old: something is mounted inside it"; fi
done

apt_host_install() { # PKG...: installs host packages that are missing
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  log "installing ${missing[*]} on the host"
  apt-get -o DPkg::Lock::Timeout=600 update -qq || true
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pinfile=$(mktemp)
aptconf=$(mktemp)
sourcesfile=$(mktemp)
[ -z "$pin" ] || printf 'Package: %s\nPin: release a=%s\nPin-Priority: 990\n' "$pin" "$extra" > "$pinfile"
{
  echo 'DPkg::Lock::Timeout "600";'
  echo 'Acquire::Retries "3";'
  echo 'APT::Install-Recommends "false";'
  [ "$novalid" = no ] || echo 'Acquire::Check-Valid-Until "false";'
} > "$aptconf"
sources_lines > "$sourcesfile"

# configure_tree DIR: what both tools leave the same way
configure_tree() {
  local d=$1
  printf '#!/bin/sh\n# written by coroner lab/chroot.sh: packages never start services here\nexit 101\n' > "$d/usr/sbin/policy-rc.d"
  chmod 755 "$d/usr/sbin/policy-rc.d"
  cp "$aptconf" "$d/etc/apt/apt.conf.d/90coroner-lab"
  cp "$sourcesfile" "$d/etc/apt/sources.list"
  rm -f "$d/etc/apt/sources.list.d/"*.list "$d/etc/apt/sources.list.d/"*.sources 2>/dev/null || true
  if [ -n "$pin" ]; then mkdir -p "$d/etc/apt/preferences.d" && cp "$pinfile" "$d/etc/apt/preferences.d/coroner-lab"; fi
}

build_mmdebstrap() {
  local include hooks=() opts=()
  include=$(IFS=,; echo "${pkgs[*]}")
  while IFS= read -r l; do opts+=(--aptopt="$l"); done < "$aptconf"
  if [ -n "$pin" ]; then
    hooks+=(--setup-hook="mkdir -p \"\$1/etc/apt/preferences.d\" && cp '$pinfile' \"\$1/etc/apt/preferences.d/coroner-lab\"")
  fi
  local src=()
  while IFS= read -r l; do src+=("$l"); done < "$sourcesfile"
  mmdebstrap --mode=root --format=directory --variant=minbase --include="$include" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    "${opts[@]}" "${hooks[@]}" "$dist" "$tmp" "${src[@]}"
}

build_debootstrap() {
  debootstrap --variant=minbase "$dist" "$tmp" "$mirror"
  configure_tree "$tmp"
  cp /etc/resolv.conf "$tmp/etc/resolv.conf" 2>/dev/null || true
  mount -t proc proc "$tmp/proc"; mounted+=("$tmp/proc")
  mount --bind /dev "$tmp/dev"; mounted+=("$tmp/dev")
  chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 update -qq
  chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  chroot "$tmp" apt-get clean
  umount "$tmp/dev" "$tmp/proc"
  mounted=()
}

log "$suite: building PHP $php (${pkgs[*]}) from $mirror into $dir"
used=""
if [ -z "$tool" ] || [ "$tool" = mmdebstrap ]; then
  apt_host_install mmdebstrap || log "could not install mmdebstrap"
  if command -v mmdebstrap >/dev/null; then
    if build_mmdebstrap >&2; then
      used=mmdebstrap
      configure_tree "$tmp"
    else
      [ -z "$tool" ] || die "mmdebstrap failed"
      log "mmdebstrap failed: falling back to debootstrap"
      remove_tree "$tmp"
    fi
  fi
fi
if [ -z "$used" ]; then
  apt_host_install debootstrap
  build_debootstrap >&2
  used=debootstrap
fi
# shellcheck disable=SC2016 # dpkg-query formats
for p in "${pkgs[@]}"; do
  chroot "$tmp" dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
    die "$p is not installed in the new chroot"
done
# shellcheck disable=SC2016
version=$(chroot "$tmp" dpkg-query -W -f='${Version}' "php$php-fpm")
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.0f", b-a}')
{ echo "$spec"; echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) by $used in ${secs}s, php$php-fpm $version"; } > "$tmp/.coroner-chroot"

# swap into place: the old tree (if any) is removed only when nothing is mounted inside it
if [ -e "$dir" ]; then
  [ -z "$(mounts_under "$dir")" ] || die "cannot replace $dir: mounted inside it: $(mounts_under "$dir")"
  mv "$dir" "$ROOT/.$suite.old.$$"
fi
mv "$tmp" "$dir"
remove_tree "$ROOT/.$suite.old.$$"
log "$suite: built php$php-fpm $version with $used in ${secs}s ($(du -sh "$dir" | cut -f1))"
echo "$dir"
