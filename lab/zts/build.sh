#!/usr/bin/env bash
# Builds a thread-safe (ZTS) PHP 8.2 php-fpm from Debian bookworm's own source
# package, so that coroner can be tested on cores of ZTS workers (Debian ships
# no ZTS PHP). Cached: a second call with the same source version and the same
# script prints the path at once.
#
# usage: lab/zts/build.sh            (as root; prints the php-fpm path on stdout, logs on stderr)
#        lab/zts/build.sh --force    (rebuild even when the cache is valid)
#
# What it does:
#  1. adds a deb-src entry for bookworm (same mirror and keyring as the deb entry of
#     /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list) in its own
#     file, /etc/apt/sources.list.d/coroner-src.sources, and runs apt-get update once;
#  2. `apt-get source php8.2/bookworm` (bookworm-security publishes binaries whose
#     source the mirror does not serve), into /var/cache/coroner/php-zts/build/;
#  3. installs the few build dependencies that are missing (no Build-Depends sweep);
#  4. like debian/rules: `./buildconf --force` (Debian's m4 patches take effect), then
#     ./configure --disable-all --enable-zts --enable-fpm --enable-cli --enable-opcache
#     --with-ffi --enable-posix --enable-ctype --with-external-pcre (PCRE JIT on),
#     with Debian's build flags (dpkg-buildflags with debian/rules' options: -g -O2,
#     hardening, -fsigned-char -fno-strict-aliasing, bindnow, PIE) and its
#     --with-pic --disable-static, then make -jN (libtool compiles every file twice,
#     a PIC object for shared objects and one for the programs, as in Debian's build);
#  5. installs into PREFIX=/var/cache/coroner/php-zts/UPSTREAM-VERSION (e.g. 8.2.32; staged,
#     then moved in place),
#     and strips the binaries as Debian's dh_strip does: sbin/php-fpm, bin/php and
#     opcache.so are stripped (.dynsym, .eh_frame and a .gnu_debuglink kept);
#     PREFIX/debug/ keeps the unstripped copies (php-fpm, php, opcache.so: full symbols
#     and DWARF, usable as gdb's executable) and PREFIX/debug/.build-id/xx/yyy.debug
#     (the --only-keep-debug files). The unstripped binaries are deliberately NOT where
#     gdb or coroner look on their own (next to the binary, .debug/, /usr/lib/debug):
#     a tool under test sees a stripped php-fpm like Debian's; opt in with
#     `gdb PREFIX/debug/php-fpm CORE` or a debug directory of PREFIX/debug.
#     PREFIX/etc/conf.d/10-opcache.ini loads opcache (the compiled-in scan dir, so
#     PHP_INI_SCAN_DIR=":DIR" keeps it); PREFIX/coroner-zts.env lists the paths.
#  6. writes PREFIX/.coroner-stamp (source version + sha256 of this script) last.
#
# Environment: JOBS (make -j, default: number of CPUs), CORONER_ZTS_ROOT (default
# /var/cache/coroner/php-zts). Two concurrent callers serialise on ROOT/.lock.
set -euo pipefail

SRC_PKG=php8.2
SUITE=bookworm
ROOT=${CORONER_ZTS_ROOT:-/var/cache/coroner/php-zts}
JOBS=${JOBS:-$(nproc)}
SOURCES_FILE=/etc/apt/sources.list.d/coroner-src.sources
APT_OPTS=(-o DPkg::Lock::Timeout=600)
# Build dependencies of this configuration only (not php8.2's whole Build-Depends).
BUILD_DEPS=(gcc make libc6-dev dpkg-dev autoconf pkg-config file xz-utils libpcre2-dev libffi-dev binutils)

force=no
case "${1:-}" in
  --force) force=yes ;;
  "") ;;
  -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
  *) echo "zts: unknown argument $1" >&2; exit 2 ;;
esac

log() { printf '[zts %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (it adds an apt source, installs build dependencies and writes $ROOT)"

SELF=$(readlink -f "${BASH_SOURCE[0]}")
SELF_HASH=$(sha256sum "$SELF" | cut -d' ' -f1)
mkdir -p "$ROOT"

# --- one build at a time ----------------------------------------------------
exec 9> "$ROOT/.lock"
if ! flock -n 9; then
  log "another build holds $ROOT/.lock: waiting for it"
  flock -w 7200 9 || die "timed out waiting for $ROOT/.lock"
fi

# --- deb-src entry -----------------------------------------------------------
# The deb-src stanza mirrors the deb entry that serves $SUITE itself (URIs, keyring).
deb_src_stanza() {
  local f=/etc/apt/sources.list.d/debian.sources
  if [ -f "$f" ]; then
    awk -v suite="$SUITE" 'BEGIN { RS = ""; FS = "\n" }
      {
        types = ""; uris = ""; suites = ""; signed = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^Types:/) types = $i
          else if ($i ~ /^URIs:/) uris = $i
          else if ($i ~ /^Suites:/) suites = $i
          else if ($i ~ /^Signed-By:/) signed = $i
        }
        if (done || (" " types " ") !~ / deb / || (" " suites " ") !~ (" " suite " ")) next
        print "Types: deb-src"; print uris; print "Suites: " suite; print "Components: main"
        if (signed != "") print signed
        print ""
        done = 1
      }' "$f"
  fi
  if [ -f /etc/apt/sources.list ]; then
    # one-line format: "deb [opts] URI SUITE COMPONENTS"
    awk -v suite="$SUITE" '$1 == "deb" && !done {
        opts = ""; i = 2
        if ($2 ~ /^\[/) { while ($i !~ /\]$/) { opts = opts " " $i; i++ } opts = opts " " $i; i++ }
        if ($(i + 1) != suite) next
        print "Types: deb-src"; print "URIs: " $i; print "Suites: " suite; print "Components: main"
        if (opts ~ /signed-by=/) { s = opts; sub(/.*signed-by=/, "", s); sub(/[] ].*/, "", s); print "Signed-By: " s }
        print ""
        done = 1
      }' /etc/apt/sources.list
  fi
}
want=$(deb_src_stanza | awk 'BEGIN { RS = ""; ORS = "\n" } NR == 1')
[ -n "$want" ] || die "no deb entry for $SUITE in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list"
want="# written by coroner's lab/zts/build.sh (source of the ZTS PHP build)
$want"
updated=no
if [ "$(cat "$SOURCES_FILE" 2>/dev/null)" != "$want" ]; then
  log "adding $SOURCES_FILE (deb-src $SUITE) and running apt-get update"
  printf '%s\n' "$want" > "$SOURCES_FILE"
  apt-get "${APT_OPTS[@]}" update -qq
  updated=yes
fi

# --- which source version ----------------------------------------------------
source_version() { # from the local package lists only (no download)
  apt-get source --print-uris -qq "$SRC_PKG/$SUITE" 2>/dev/null |
    sed -n "s/^'[^']*' ${SRC_PKG}_\(.*\)\.dsc .*/\1/p" | head -1
}
version=$(source_version || true)
if [ -z "$version" ] && [ $updated = no ]; then
  log "no $SRC_PKG source in the package lists: apt-get update"
  apt-get "${APT_OPTS[@]}" update -qq
  version=$(source_version || true)
fi
[ -n "$version" ] || die "apt-get source --print-uris $SRC_PKG/$SUITE found no source package"

# The directory is named by the upstream version ("8.2.32"): a "~" (as in 1~deb12u1) in a
# path breaks unquoted values of php.ini / php-fpm.conf ("syntax error, unexpected '~'").
upstream=${version#*:}
upstream=${upstream%-*}
PREFIX=$ROOT/${upstream//\~/_}
STAMP=$PREFIX/.coroner-stamp
stamp_text="source=$SRC_PKG $version
script_sha256=$SELF_HASH"

if [ $force = no ] && [ -x "$PREFIX/sbin/php-fpm" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$stamp_text" ]; then
  log "cached: $SRC_PKG $version (ZTS) in $PREFIX"
  echo "$PREFIX/sbin/php-fpm"
  exit 0
fi

t0=$(date +%s)
log "building $SRC_PKG $version (ZTS) into $PREFIX"

# --- build dependencies (only the missing ones) -------------------------------
missing=()
for p in "${BUILD_DEPS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# libpcre2-dev pins libpcre2-8-0 to its own version: take the one matching the installed
# runtime library when the archive still has it, rather than upgrading it machine-wide.
pcre_rt=$(dpkg-query -W -f='${Version}' libpcre2-8-0 2>/dev/null || true)
for i in "${!missing[@]}"; do
  if [ "${missing[$i]}" = libpcre2-dev ] && [ -n "$pcre_rt" ] &&
     apt-cache madison libpcre2-dev | awk -F'|' '{gsub(/ /, "", $2); print $2}' | grep -qxF "$pcre_rt"; then
    missing[$i]="libpcre2-dev=$pcre_rt"
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# --- source -----------------------------------------------------------------
BUILD=$ROOT/build/$(basename "$PREFIX")
rm -rf "$BUILD"
mkdir -p "$BUILD"
chmod 755 "$BUILD"
log "apt-get source $SRC_PKG/$SUITE"
(cd "$BUILD" && apt-get source -qq "$SRC_PKG/$SUITE" >&2 2> >(grep -v 'unsandboxed as root' >&2))
SRC=$(find "$BUILD" -mindepth 1 -maxdepth 1 -type d -name "$SRC_PKG-*" | head -1)
[ -n "$SRC" ] && [ -f "$SRC/configure.ac" ] || die "no unpacked source tree in $BUILD"

# --- configure (Debian's flags, as debian/rules asks dpkg-buildflags) -----------
cd "$SRC"
log "buildconf --force"
./buildconf --force >&2
export DEB_BUILD_MAINT_OPTIONS="hardening=+all optimize=-lto"
export DEB_CFLAGS_MAINT_APPEND="-O2 -Wall -pedantic -fsigned-char -fno-strict-aliasing $(getconf LFS_CFLAGS) -g"
export DEB_LDFLAGS_MAINT_APPEND="-Wl,--as-needed"
# No -ffile-prefix-map: the DWARF keeps the real source paths, so gdb can list the source.
CFLAGS=$(dpkg-buildflags --get CFLAGS | sed 's/ *-ffile-prefix-map=[^ ]*//g')
CPPFLAGS=$(dpkg-buildflags --get CPPFLAGS)
LDFLAGS=$(dpkg-buildflags --get LDFLAGS)
export CFLAGS CPPFLAGS LDFLAGS CXXFLAGS="$CFLAGS"
log "CFLAGS=$CFLAGS CPPFLAGS=$CPPFLAGS LDFLAGS=$LDFLAGS"

configure_args=(
  --prefix="$PREFIX"
  --sysconfdir="$PREFIX/etc"
  --with-config-file-path="$PREFIX/etc"
  --with-config-file-scan-dir="$PREFIX/etc/conf.d"
  --disable-all --disable-debug --disable-rpath --disable-static --with-pic
  --without-pear --disable-phpdbg --disable-cgi
  --enable-zts
  --enable-fpm --with-fpm-user=www-data --with-fpm-group=www-data
  --enable-cli
  --enable-opcache
  --with-ffi
  --enable-posix
  --enable-ctype
  --with-external-pcre
)
log "configure ${configure_args[*]}"
./configure "${configure_args[@]}" > "$BUILD/configure.log" 2>&1 || { tail -30 "$BUILD/configure.log" >&2; die "configure failed (log: $BUILD/configure.log)"; }

log "make -j$JOBS"
make -j"$JOBS" > "$BUILD/make.log" 2>&1 || { tail -40 "$BUILD/make.log" >&2; die "make failed (log: $BUILD/make.log)"; }

# --- install (staged, then moved into place) --------------------------------------
STAGE=$ROOT/.stage-$(basename "$PREFIX")
rm -rf "$STAGE"
make install INSTALL_ROOT="$STAGE" > "$BUILD/install.log" 2>&1 || { tail -30 "$BUILD/install.log" >&2; die "make install failed (log: $BUILD/install.log)"; }
S=$STAGE$PREFIX
[ -x "$S/sbin/php-fpm" ] || die "make install left no $S/sbin/php-fpm"

ext_dir_rel=$(cd "$S" && find lib/php/extensions -name opcache.so -printf '%h\n' | head -1)
[ -n "$ext_dir_rel" ] || die "no opcache.so installed"

# Like dh_strip: keep the debug info in debug/.build-id/xx/yyy.debug, strip the binary,
# add a .gnu_debuglink naming yyy.debug. Also keep the whole unstripped file in debug/.
strip_like_debian() { # RELPATH KIND(exe|lib)
  local rel=$1 kind=$2 f id dbg
  f=$S/$rel
  id=$(readelf -n "$f" | sed -n 's/.*Build ID: *\([0-9a-f]*\).*/\1/p' | head -1)
  [ -n "$id" ] || die "$rel has no build-id"
  mkdir -p "$S/debug/.build-id/${id:0:2}"
  cp -p "$f" "$S/debug/$(basename "$rel")"
  dbg=$S/debug/.build-id/${id:0:2}/${id:2}.debug
  objcopy --only-keep-debug --compress-debug-sections "$f" "$dbg"
  chmod 644 "$dbg"
  if [ "$kind" = lib ]; then
    strip --remove-section=.comment --remove-section=.note --strip-unneeded "$f"
  else
    strip --remove-section=.comment --remove-section=.note "$f"
  fi
  objcopy --add-gnu-debuglink="$dbg" "$f"
}
strip_like_debian sbin/php-fpm exe
strip_like_debian bin/php exe
strip_like_debian "$ext_dir_rel/opcache.so" lib

mkdir -p "$S/etc/conf.d"
cat > "$S/etc/conf.d/10-opcache.ini" <<'EOF'
; written by coroner's lab/zts/build.sh: like Debian's php8.2-opcache, load OPcache
; (from the compiled-in extension_dir). The JIT is left to the caller's ini.
zend_extension=opcache.so
EOF
cp "$SRC/php.ini-production" "$S/etc/php.ini-production"
cat > "$S/coroner-zts.env" <<EOF
# written by coroner's lab/zts/build.sh
PHP_ZTS_SOURCE_VERSION=$version
PHP_ZTS_PREFIX=$PREFIX
PHP_ZTS_FPM=$PREFIX/sbin/php-fpm
PHP_ZTS_CLI=$PREFIX/bin/php
PHP_ZTS_FPM_UNSTRIPPED=$PREFIX/debug/php-fpm
PHP_ZTS_CLI_UNSTRIPPED=$PREFIX/debug/php
PHP_ZTS_OPCACHE_UNSTRIPPED=$PREFIX/debug/opcache.so
PHP_ZTS_DEBUG_DIR=$PREFIX/debug
PHP_ZTS_EXTENSION_DIR=$PREFIX/$ext_dir_rel
PHP_ZTS_INCLUDE_DIR=$PREFIX/include/php
PHP_ZTS_SOURCE_DIR=$SRC
EOF

# quick self-check before the cache is declared valid
"$S/bin/php" -n -v | grep -q 'ZTS' || die "the built php is not ZTS: $("$S/bin/php" -n -v | head -1)"

rm -rf "$PREFIX"
mkdir -p "$(dirname "$PREFIX")"
mv "$S" "$PREFIX"
rm -rf "$STAGE"
printf '%s\n' "$stamp_text" > "$STAMP"
log "built $SRC_PKG $version (ZTS) in $(( $(date +%s) - t0 )) s: $PREFIX"
"$PREFIX/bin/php" -n -v | head -1 >&2
echo "$PREFIX/sbin/php-fpm"
