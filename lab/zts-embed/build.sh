#!/bin/bash
# lab/zts-embed/build.sh: a thread-safe (ZTS) libphp with the embed SAPI, for the tests that need several
# threads running PHP at once in one process (as FrankenPHP or a threaded Apache do):
# internal/labtest.ZTSThreads compiles lab/zts-embed/threads.c against it and crashes it.
#
#   lab/zts-embed/build.sh [SOURCE_TARBALL]
#
# Builds PHP from Debian's source of the host's php8.2 (apt-get source, or SOURCE_TARBALL, a
# php-8.2 source .tar.xz) with --enable-zts --enable-embed --disable-all, and installs it under
# $CORONER_ZTS_EMBED (default /var/cache/coroner/php-zts-embed): lib/libphp.so, include/php.
# Idempotent: a complete installation is left as it is. About 5-10 minutes with two cores.
set -euo pipefail
die() { echo "zts-embed: $*" >&2; exit 1; }
root=${CORONER_ZTS_EMBED:-/var/cache/coroner/php-zts-embed}
stamp=$root/.complete
if [ -f "$stamp" ] && [ -f "$root/lib/libphp.so" ]; then
  echo "zts-embed: $root is complete"
  exit 0
fi
mkdir -p "$root/build"
cd "$root/build"
tarball=${1:-}
if [ -z "$tarball" ]; then
  # a tarball downloaded before (here, or by lab/zts/build.sh)
  tarball=$(ls "$root"/build/php*.orig.tar.xz /var/cache/coroner/php-zts/build/*/php8.2_*.orig.tar.xz 2>/dev/null | head -1 || true)
fi
if [ -z "$tarball" ]; then
  command -v apt-get >/dev/null || die "no source tarball given and no apt-get"
  apt-get source --download-only php8.2 >/dev/null 2>&1 || die "apt-get source --download-only php8.2 failed (deb-src lines needed), or pass a tarball"
  tarball=$(ls "$root"/build/php*.orig.tar.xz | head -1)
fi
src=$root/build/src
rm -rf "$src" && mkdir -p "$src"
tar -xJf "$tarball" -C "$src" --strip-components=1
cd "$src"
./configure --prefix="$root" --enable-zts --enable-embed=shared --disable-all --disable-cgi --disable-phpdbg \
  --without-sqlite3 --without-pdo-sqlite --without-pear --disable-cli >"$root/configure.log" 2>&1 ||
  die "configure failed (see $root/configure.log)"
make -j"$(nproc)" >"$root/make.log" 2>&1 || die "make failed (see $root/make.log)"
make install-sapi install-headers >"$root/install.log" 2>&1 || die "make install failed (see $root/install.log)"
[ -f "$root/lib/libphp.so" ] || die "no libphp.so installed under $root/lib"
date -u +%FT%TZ >"$stamp"
echo "zts-embed: ZTS libphp with the embed SAPI in $root"
