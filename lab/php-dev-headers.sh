#!/bin/bash
# php-dev-headers.sh SUITE: the PHP development headers and binaries of a Debian release, for the
# layout tests of internal/engine/php (offsetof() compiled against the headers, compared with the
# layout derived from the binaries' code).
#
#   lab/php-dev-headers.sh bullseye|bookworm|trixie|sid|experimental   (PHP 7.4, 8.2, 8.4, 8.4, 8.5)
#   lab/php-dev-headers.sh --list
#
# Downloads php<ver>-dev, php<ver>-fpm, php<ver>-cli, libapache2-mod-php<ver> (and php<ver>-opcache,
# which holds the JIT before 8.5) of that release with a private apt configuration (its own sources,
# lists and cache; the host's apt state is not touched), and unpacks them with dpkg -x under
# $CORONER_PHP_DEV/SUITE (default /var/cache/coroner/php-dev/SUITE): headers in usr/include/php/,
# binaries in usr/sbin, usr/bin, usr/lib/apache2/modules, usr/lib/php. Idempotent: a complete
# directory is left as it is (remove it to fetch again). The archive is the one of the host's apt
# sources (MIRROR=URL overrides it). Needs apt-get and dpkg; no root needed.
set -euo pipefail

die() { echo "php-dev-headers: $*" >&2; exit 1; }

suites="bullseye:7.4 bookworm:8.2 trixie:8.4 sid:8.4 experimental:8.5"
if [ "${1:-}" = --list ]; then
  for s in $suites; do echo "${s%%:*} ${s#*:}"; done
  exit 0
fi
[ $# -eq 1 ] || die "usage: $0 SUITE (one of: $(for s in $suites; do printf '%s ' "${s%%:*}"; done))"
suite=$1 php=""
for s in $suites; do [ "${s%%:*}" = "$suite" ] && php=${s#*:}; done
[ -n "$php" ] || die "unknown suite $suite"
command -v apt-get >/dev/null && command -v dpkg >/dev/null || die "apt-get and dpkg are needed"

root=${CORONER_PHP_DEV:-/var/cache/coroner/php-dev}
dest=$root/$suite
pkgs=("php$php-dev" "php$php-fpm" "php$php-cli" "libapache2-mod-php$php")
case "$php" in 8.5) ;; *) pkgs+=("php$php-opcache") ;; esac
stamp="$dest/.complete"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "${pkgs[*]}" ]; then
  echo "php-dev-headers: $dest is complete"
  exit 0
fi

# The archive: MIRROR, else the first Debian archive URI of the host's apt sources.
mirror=${MIRROR:-}
if [ -z "$mirror" ]; then
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk '/^URIs:/ { for (i = 2; i <= NF; i++) if ($i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { mirror=$uri; break; }
  done
fi
if [ -z "$mirror" ]; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^(https?|file):/ && $i !~ /security/) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { mirror=$uri; break; }
  done
fi
[ -n "$mirror" ] || die "no Debian archive in the host's apt sources: set MIRROR=URL"
mirror=${mirror%/}

apt_dir="$dest/.apt"
mkdir -p "$apt_dir/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/debs"
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
opt=""
[ -f "$keyring" ] && opt="[signed-by=$keyring] "
dist=$suite target=""
case "$suite" in experimental) dist=sid target=experimental ;; esac
{
  echo "deb ${opt}$mirror $dist main"
  [ -z "$target" ] || echo "deb ${opt}$mirror $target main"
} >"$apt_dir/sources.list"
apt=(apt-get -q -o "Dir::Etc::SourceList=$apt_dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o "Dir::State::status=/dev/null"
  -o Acquire::Check-Valid-Until=false -o APT::Get::List-Cleanup=false)
"${apt[@]}" update >"$apt_dir/update.log" 2>&1 || die "apt-get update failed (see $apt_dir/update.log)"
want=()
for p in "${pkgs[@]}"; do want+=("$p${target:+/$target}"); done
(cd "$apt_dir/debs" && "${apt[@]}" download "${want[@]}") >"$apt_dir/download.log" 2>&1 ||
  die "apt-get download ${want[*]} failed (see $apt_dir/download.log)"
for deb in "$apt_dir"/debs/*.deb; do
  dpkg -x "$deb" "$dest"
done
ls "$dest"/usr/include/php/*/main/php_config.h >/dev/null 2>&1 || die "no headers unpacked under $dest/usr/include/php"
echo "${pkgs[*]}" >"$stamp"
echo "php-dev-headers: PHP $php of $suite in $dest"
