#!/usr/bin/env bash
# The crash lab: a real nginx + php-fpm (OPcache tracing JIT on, PCRE JIT on,
# FFI enabled) on 127.0.0.1, whose workers are killed by real HTTP requests,
# plus small C programs that crash. Everything it produces (cores, ground
# truth written by the crashing PHP scripts, log lines, gdb's view) lands in
# one directory with a manifest.json.
#
# usage: lab/run.sh --out DIR [--scenario NAME]... [--repeat N] [--ini KEY=VALUE]...
#                   [--no-dumpable] [--no-c] [--keep]
#                   [--release SUITE | --fpm BIN [--php-ini FILE] | --apache]
#        lab/run.sh --hang --out DIR [--scenario HANG]... [--repeat N] [--workers N]
#        lab/run.sh --stop DIR        (stop what --keep or --hang left running)
#
# Scenarios: ffi-null-code shortcode-recursion kill-segv abort method-closure-include deep-comments
# C programs: pcre-null null-write stack-overflow thread-crash cpp-namespace
# Hangs (--hang): sleep usleep pcre-backtrack curl mysqli pgsql redis session-lock loop
#
# --hang starts the pool (pm.status_path=/fpm-status, request_slowlog_timeout=2s, nginx's
# fastcgi_read_timeout 3s for /hang.php) and leaves one worker hanging in each HANG
# scenario (default all; --repeat N of each; session-lock also leaves the session-holder
# worker that holds the lock), each behind a request through nginx that ends in a 504
# while the worker hangs on. curl, mysqli, pgsql and redis talk to a black hole (a TCP
# server that accepts and never answers). The extensions come from Debian's packages,
# unpacked under /var/cache/coroner/lab/ext (the host's PHP configuration is not changed).
# Pids and ground truth are in the manifest ("hangs"); everything runs until --stop DIR.
# The pool has --workers N workers (default: the hangs + 4 free ones). A hang lab does
# not change kernel.core_pattern and does not take its lock. Host php-fpm 8.2 only.
#
# A scenario listed twice (or --repeat N) runs again: the first run of NAME is
# scenarios/NAME, later ones scenarios/NAME-2, NAME-3, ... (distinct pids).
#
# Which PHP crashes:
#   (default)        the host's Debian php8.2-fpm, installed when missing.
#   --release SUITE  the php-fpm of another Debian release (bullseye: 7.4, bookworm:
#                    8.2, trixie: 8.4, sid: 8.4, experimental: 8.5) in a chroot that
#                    lab/chroot.sh builds once per machine under
#                    /var/cache/coroner/lab/chroots/SUITE. nginx stays on the host
#                    (the same nginx and configuration for every release); only
#                    php-fpm runs inside the chroot. DIR is bind-mounted at the same
#                    absolute path inside the chroot, so the document root, the FPM
#                    socket, logs, truth files and kernel.core_pattern's DIR/cores
#                    are the same paths inside and out (a chrooted process writes
#                    its core relative to its own root). /proc and /dev are mounted
#                    in the chroot only while the lab runs (listed in DIR/mounts)
#                    and unmounted on every exit path (with --keep: by --stop).
#                    gdb (the oracle) runs inside the chroot, with its libraries.
#                    The C programs are skipped (--no-c). Analyse the cores with
#                    coroner analyze --sysroot CHROOT (manifest: "sysroot").
#   --fpm BIN        a php-fpm built elsewhere, run on the host with its own php.ini
#                    (or --php-ini FILE) and its own conf.d; OPcache is loaded from
#                    its extension_dir when not already loaded.
#   --apache         Apache httpd 2.4 + mod_php (the host's apache2 and
#                    libapache2-mod-php8.2, mpm_prefork) instead of nginx + php-fpm:
#                    its own configuration tree under DIR/conf, started with
#                    apache2 -f DIR/conf/apache2.conf -DFOREGROUND on 127.0.0.1,
#                    CoreDumpDirectory DIR/cores, mod_rewrite for the pretty URLs
#                    (ffi-null-code is requested as /search/teacher) and PATH_INFO
#                    for shortcode-recursion (/index.php/teachers/profile-sarah/).
#                    Deaths are read from Apache's error log (AH00051/AH00052). The
#                    C programs are skipped (--no-c).
# PHP 8.3+ run with zend.max_allowed_stack_size=-1 (so that shortcode-recursion
# overflows the C stack instead of throwing an Error); PHP 7.4 has no JIT, every
# later PHP must really run the tracing JIT (the lab fails otherwise).
#
# It points kernel.core_pattern (machine-wide) at DIR/cores/core.%e.%p.%t only
# around each crash and puts the previous value back right after, on every exit
# path, and only if it still holds the lab's value (someone else may have
# changed it meanwhile). Each of these windows (and any other change of
# core_pattern) holds an exclusive flock on /run/lock/coroner-lab-core-pattern.lock,
# so that labs running at the same time take turns. With --keep, nginx and
# php-fpm keep running (pids in DIR/pids) and core_pattern stays pointed at
# DIR/cores until --stop DIR; such a lab holds the lock from its start until
# --stop (other labs wait for it, at most 15 minutes).
# It stops only the processes it started (by pid). Run as root.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "$0")" && pwd)
ALL_SCENARIOS=(ffi-null-code shortcode-recursion kill-segv abort method-closure-include deep-comments)
ALL_C=(pcre-null null-write stack-overflow thread-crash cpp-namespace go-panic)
ALL_HANGS=(sleep usleep pcre-backtrack curl mysqli pgsql redis session-lock loop)

out="" repeat=1 dumpable=yes keep=no with_c=yes stop="" release=host custom_fpm="" custom_ini="" server=nginx hang=no workers=""
scenarios=() inis=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --scenario) scenarios+=("$2"); shift 2 ;;
    --repeat) repeat=$2; shift 2 ;;
    --ini) inis+=("$2"); shift 2 ;;
    --no-dumpable) dumpable=no; shift ;;
    --no-c) with_c=no; shift ;;
    --keep) keep=yes; shift ;;
    --stop) stop=$2; shift 2 ;;
    --release) release=$2; shift 2 ;;
    --fpm) custom_fpm=$2; shift 2 ;;
    --php-ini) custom_ini=$2; shift 2 ;;
    --apache) server=apache; shift ;;
    --hang) hang=yes; shift ;;
    --workers) workers=$2; shift 2 ;;
    -h|--help) sed -n '2,74p' "$0"; exit 0 ;;
    *) echo "lab: unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

ours_pid() { # PID NAME -> true when PID is still the nginx/php-fpm master we started
  local exe
  exe=$(readlink "/proc/$1/exe" 2>/dev/null) || return 1
  case "$2:$exe" in php-fpm:*fpm*|nginx:*nginx*|apache2:*apache2*|apache2:*httpd*|blackhole:*php*) return 0 ;; esac
  return 1
}

restore_core_pattern() { # DIR: put back the saved kernel.core_pattern if it still holds ours
  local d=$1 cur
  [ -f "$d/core_pattern.saved" ] || return 0
  cur=$(cat /proc/sys/kernel/core_pattern)
  if [ "$cur" = "$(cat "$d/core_pattern.ours" 2>/dev/null)" ]; then
    cat "$d/core_pattern.saved" > /proc/sys/kernel/core_pattern
  elif [ "$cur" != "$(cat "$d/core_pattern.saved")" ]; then
    log "kernel.core_pattern was changed by someone else meanwhile ($cur): left as it is"
  fi
  rm -f "$d/core_pattern.saved" "$d/core_pattern.ours"
}

# Labs running at the same time (other outputs, other trees) take turns: every change of
# kernel.core_pattern, and each crash window, holds an exclusive lock on this file. A lab kept
# with --keep holds it from its start until --stop (its php-fpm and nginx inherit it), so that
# the crashes of its kept workers land in its own cores/ directory.
CP_LOCK=/run/lock/coroner-lab-core-pattern.lock
cp_fd="" cp_keep=no
lock_core_pattern() { # [SECS]: without SECS, dies after 15 minutes; with SECS, returns 1 after SECS
  [ -z "$cp_fd" ] || return 0
  mkdir -p "$(dirname "$CP_LOCK")"
  exec {cp_fd}>>"$CP_LOCK"
  if ! flock -n "$cp_fd"; then
    log "waiting for $CP_LOCK, held by the lab in $(cat "$CP_LOCK" 2>/dev/null || echo '?') (a lab kept with --keep holds it until lab/run.sh --stop DIR)"
    if ! flock -w "${1:-900}" "$cp_fd"; then
      exec {cp_fd}>&-
      cp_fd=""
      [ -n "${1:-}" ] || die "$CP_LOCK still held after 15 minutes"
      return 1
    fi
  fi
  printf '%s (pid %s, %s)\n' "${out:-?}" "$$" "$(date '+%F %T')" > "$CP_LOCK" # for the message above
}
unlock_core_pattern() {
  [ -n "$cp_fd" ] || return 0
  [ "$cp_keep" = no ] || return 0 # --keep: released when --stop ends the kept processes
  flock -u "$cp_fd"
  exec {cp_fd}>&-
  cp_fd=""
}

set_core_pattern() { # DIR: point kernel.core_pattern at DIR/cores (saving the previous value once)
  local d=$1
  [ -f "$d/core_pattern.saved" ] || cat /proc/sys/kernel/core_pattern > "$d/core_pattern.saved"
  echo "$d/cores/core.%e.%p.%t" > "$d/core_pattern.ours"
  cat "$d/core_pattern.ours" > /proc/sys/kernel/core_pattern
}

stop_lab() { # DIR
  local d=$1 name pid
  if [ -f "$d/pids" ]; then
    while read -r name pid; do
      if [ -n "$pid" ] && ours_pid "$pid" "$name"; then kill "$pid" 2>/dev/null || true; fi
    done < "$d/pids"
    for _ in $(seq 30); do
      alive=no
      while read -r name pid; do
        if [ -n "$pid" ] && ours_pid "$pid" "$name"; then alive=yes; fi
      done < "$d/pids"
      [ $alive = yes ] || break
      sleep 0.1
    done
    while read -r name pid; do
      if [ -n "$pid" ] && ours_pid "$pid" "$name"; then kill -9 "$pid" 2>/dev/null || true; fi
    done < "$d/pids"
    rm -f "$d/pids"
  fi
  if [ -f "$d/core_pattern.saved" ]; then
    local held=$cp_fd
    # (orphaned workers of a php-fpm killed with -9 may still hold the lock: restore anyway after a minute)
    lock_core_pattern 60 || log "restoring kernel.core_pattern without $CP_LOCK"
    restore_core_pattern "$d"
    [ -n "$held" ] || unlock_core_pattern
  fi
  unmount_all "$d"
}

unmount_all() { # DIR: unmount what DIR/mounts lists (mounted by the lab inside a chroot), last first
  local d=$1 m i ms=()
  [ -f "$d/mounts" ] || return 0
  while read -r m; do [ -n "$m" ] && ms+=("$m"); done < "$d/mounts"
  for ((i = ${#ms[@]} - 1; i >= 0; i--)); do
    m=${ms[$i]}
    mountpoint -q "$m" 2>/dev/null || continue
    if ! umount "$m" 2>/dev/null; then
      sleep 0.5
      umount "$m" 2>/dev/null || { umount -l "$m" && log "$m was busy: detached it (umount -l)"; } || log "could not unmount $m"
    fi
    case "$m" in */proc | */dev) ;; *) rmdir "$m" 2>/dev/null || true ;; esac
  done
  rm -f "$d/mounts"
}

if [ -n "$stop" ]; then
  stop_lab "$stop"
  log "stopped the lab in $stop; kernel.core_pattern is $(cat /proc/sys/kernel/core_pattern)"
  exit 0
fi
[ -n "$out" ] || die "--out DIR is required (see --help)"
[ "$(id -u)" = 0 ] || die "the lab must run as root (it starts php-fpm workers as www-data and sets kernel.core_pattern)"
if [ "$hang" = yes ]; then
  [ ${#scenarios[@]} -gt 0 ] || scenarios=("${ALL_HANGS[@]}")
  for s in "${scenarios[@]}"; do
    case " ${ALL_HANGS[*]} " in *" $s "*) ;; *) die "unknown hang scenario $s (one of: ${ALL_HANGS[*]})" ;; esac
  done
  [ "$release" = host ] && [ -z "$custom_fpm" ] || die "--hang runs the host's php-fpm 8.2 only"
  keep=yes with_c=no
else
  [ ${#scenarios[@]} -gt 0 ] || scenarios=("${ALL_SCENARIOS[@]}")
  for s in "${scenarios[@]}"; do
    case " ${ALL_SCENARIOS[*]} " in *" $s "*) ;; *) die "unknown scenario $s" ;; esac
  done
fi
if [ -n "$custom_fpm" ]; then
  [ "$release" = host ] || die "--fpm and --release exclude each other"
  [ -x "$custom_fpm" ] || die "--fpm $custom_fpm: not an executable file"
  custom_fpm=$(cd "$(dirname "$custom_fpm")" && pwd)/$(basename "$custom_fpm")
  release=custom
  if [ -n "$custom_ini" ]; then
    [ -f "$custom_ini" ] || die "--php-ini $custom_ini: no such file"
    custom_ini=$(cd "$(dirname "$custom_ini")" && pwd)/$(basename "$custom_ini")
  fi
elif [ -n "$custom_ini" ]; then
  die "--php-ini goes with --fpm"
fi
if [ "$server" = apache ]; then
  [ "$release" = host ] || die "--apache runs the host's mod_php: it excludes --release and --fpm"
  [ "$hang" = no ] || die "--apache and --hang exclude each other (the hang lab is nginx + php-fpm)"
  with_c=no
fi
case "$release" in
  host | custom) ;;
  *)
    "$LAB_DIR/chroot.sh" --list | awk -v r="$release" '$1 == r { found = 1 } END { exit !found }' ||
      die "unknown release $release (one of: $("$LAB_DIR/chroot.sh" --list | awk '{printf "%s ", $1}')host)"
    with_c=no ;; # the C programs are host programs: only the host lab runs them
esac
t_start=$(date +%s.%N)

# --- packages --------------------------------------------------------------
case "$release" in
  host)
    need=(nginx php8.2-fpm php8.2-opcache php8.2-cli elfutils libpcre2-dev gdb gcc g++ curl)
    [ "$server" = nginx ] || need=(apache2 libapache2-mod-php8.2 php8.2-opcache php8.2-cli gdb curl) ;;
  custom) need=(nginx elfutils libpcre2-dev gdb gcc g++ curl) ;;
  *) need=(nginx curl) ;; # php-fpm and gdb come from the chroot
esac
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The hang lab's extensions: unpacked from Debian's packages into a cache, loaded by
# path in the lab's own ini (installing them would enable them for every PHP on the host).
EXT_CACHE=/var/cache/coroner/lab/ext
ext_dir=""
if [ "$hang" = yes ]; then
  ext_debs=(php8.2-curl php8.2-mysql php8.2-pgsql php8.2-igbinary php8.2-redis)
  ext_dir=$EXT_CACHE/php8.2/usr/lib/php/20220829
  if [ ! -f "$ext_dir/redis.so" ] || [ ! -f "$ext_dir/curl.so" ] || [ ! -f "$ext_dir/pgsql.so" ] || [ ! -f "$ext_dir/mysqli.so" ]; then
    log "unpacking ${ext_debs[*]} into $EXT_CACHE"
    mkdir -p "$EXT_CACHE/debs" "$EXT_CACHE/php8.2"
    chmod 755 /var/cache/coroner /var/cache/coroner/lab "$EXT_CACHE" 2>/dev/null || true
    ( cd "$EXT_CACHE/debs" && apt-get -o DPkg::Lock::Timeout=600 download "${ext_debs[@]}" > /dev/null 2>&1 ) ||
      { apt-get -o DPkg::Lock::Timeout=600 update -qq && ( cd "$EXT_CACHE/debs" && apt-get -o DPkg::Lock::Timeout=600 download "${ext_debs[@]}" > /dev/null ); } ||
      die "cannot download ${ext_debs[*]}"
    for d in "$EXT_CACHE"/debs/*.deb; do dpkg -x "$d" "$EXT_CACHE/php8.2"; done
    chmod -R a+rX "$EXT_CACHE"
  fi
  for lib in libcurl4 libpq5 liblz4-1 libzstd1; do
    dpkg-query -W -f='${Status}' "$lib" 2>/dev/null | grep -q 'install ok installed' ||
      DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "$lib" > /dev/null
  done
fi
t_packages=$(date +%s.%N)

# --- the PHP that crashes ----------------------------------------------------
# FPM is the php-fpm binary as the host sees it, FPM_IN as the crashing process sees it
# (inside CH, the chroot, for --release); PHP_INI is its php.ini (-c), as FPM_IN sees it.
CH="" ch_fd="" PHP_INI="" LIBPHP=""
case "$release" in
  host)
    FPM=$(command -v php-fpm8.2 || echo /usr/sbin/php-fpm8.2)
    PHP_INI=/etc/php/8.2/fpm/php.ini
    if [ "$server" = apache ]; then
      # FPM is then the server binary that crashes (gdb's and the manifest's), PHP_INI
      # mod_php's php.ini; the CLI with mod_php's ini files stands in for version and modules
      FPM=$(command -v apache2 || echo /usr/sbin/apache2)
      LIBPHP=/usr/lib/apache2/modules/libphp8.2.so
      PHP_INI=/etc/php/8.2/apache2/php.ini
      [ -f "$LIBPHP" ] || die "no $LIBPHP (libapache2-mod-php8.2)"
    fi ;;
  custom)
    FPM=$custom_fpm
    PHP_INI=$custom_ini ;;
  *)
    # build or reuse the chroot, then hold a shared lock on it for as long as the lab
    # (and, with --keep, its php-fpm and nginx, which inherit the descriptor) use it:
    # lab/chroot.sh takes an exclusive one to build, so it never rebuilds under a lab
    for attempt in 1 2 3; do
      CH=$("$LAB_DIR/chroot.sh" "$release") || die "lab/chroot.sh $release failed"
      exec {ch_fd}>>"$CH.lock"
      flock -s -w 3600 "$ch_fd" || die "could not lock $CH.lock"
      "$LAB_DIR/chroot.sh" --check "$release" && break
      exec {ch_fd}>&-
      [ "$attempt" -lt 3 ] || die "the chroot $CH keeps changing under the lab"
    done
    FPM_IN=""
    for f in "$CH"/usr/sbin/php-fpm*; do [ -x "$f" ] && FPM_IN=${f#"$CH"} && break; done
    [ -n "$FPM_IN" ] || die "no php-fpm in $CH/usr/sbin"
    FPM=$CH$FPM_IN
    PHP_INI=/etc/php/${FPM_IN#/usr/sbin/php-fpm}/fpm/php.ini ;;
esac
[ -n "$CH" ] || FPM_IN=$FPM
t_chroot=$(date +%s.%N)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
WORKER_USER=www-data
id "$WORKER_USER" >/dev/null 2>&1 || WORKER_USER=nobody
WORKER_GROUP=$(id -gn "$WORKER_USER")

# --- directories -----------------------------------------------------------
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -n "$CH" ]; then
  case "$out/" in "$CH/"*) die "--out $out is inside the chroot $CH" ;; esac
  case "$CH/" in "$out/"*) die "the chroot $CH is inside --out $out" ;; esac
fi
if [ -f "$out/pids" ] || [ -f "$out/mounts" ]; then stop_lab "$out"; fi
rm -rf "$out/conf" "$out/run" "$out/log" "$out/cores" "$out/truth" "$out/www" "$out/scenarios" "$out/c" "$out/manifest.json"
mkdir -p "$out"/{conf/php.d,run,log,cores,scenarios,c}
cp -r "$LAB_DIR/www" "$out/www"
chmod 755 "$out" "$out/conf" "$out/run" "$out/log"
chmod -R a+rX "$out/www"
chmod 1777 "$out/cores" # the workers write their cores and truth.PID.json here
# The workers must be able to reach the document root and the cores directory: a parent that
# others cannot search (Go's t.TempDir() makes 0700 ones) gets o+x, and the log says which.
d=$out
while [ "$d" != / ]; do
  if [ "$(( 0$(stat -c %a "$d") & 1 ))" = 0 ]; then
    chmod o+x "$d" && log "made $d searchable by others (for the $WORKER_USER workers)"
  fi
  d=$(dirname "$d")
done
runuser -u "$WORKER_USER" -- test -w "$out/cores" -a -r "$out/www/index.php" ||
  die "$WORKER_USER cannot write $out/cores or read $out/www: use another --out"

# --- core_pattern, restored on every exit path ---------------------------
# kernel.core_pattern is machine-wide: it points at $out/cores only around each crash (and, with
# --keep, from the end of the run until --stop), and is put back only if it still holds ours.
if [ -f "$out/core_pattern.saved" ]; then # a leftover of a run that was killed with SIGKILL
  lock_core_pattern
  restore_core_pattern "$out"
  unlock_core_pattern
fi
pattern="$out/cores/core.%e.%p.%t"
[ ${#pattern} -lt 128 ] || die "core pattern $pattern is too long for the kernel (128 bytes): use a shorter --out"
gdb_jobs=() c_builds=()
cleanup() {
  local rc=$? j
  trap - EXIT INT TERM ERR
  # our own background jobs (gdb runs, compilations), by pid
  for j in "${gdb_jobs[@]}" "${c_builds[@]#*:}"; do kill "$j" 2> /dev/null || true; done
  if [ "$keep" != yes ] || [ $rc -ne 0 ]; then stop_lab "$out"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit $?' ERR
ulimit -c unlimited

# --- the chroot's mounts (--release), listed in DIR/mounts, undone by stop_lab --
# /proc and /dev for php-fpm and gdb, and DIR itself at the same absolute path.
if [ -n "$CH" ]; then
  : > "$out/mounts"
  mount -t proc proc "$CH/proc" || die "cannot mount /proc in $CH"
  echo "$CH/proc" >> "$out/mounts"
  mount --bind /dev "$CH/dev" || die "cannot bind /dev in $CH"
  echo "$CH/dev" >> "$out/mounts"
  mkdir -p "$CH$out"
  mount --bind "$out" "$CH$out" || die "cannot bind $out at $CH$out"
  echo "$CH$out" >> "$out/mounts"
  [ -f "$CH$out/mounts" ] || die "bind mount of $out at $CH$out failed"
fi
# fpm: the php-fpm command (in the chroot, with a clean environment, for --release)
# with the lab's PHP_INI_SCAN_DIR: Debian's conf.d (the empty element: the
# compiled-in directory), then the lab's, whose 99-lab.ini sorts last.
ini_args=()
[ -z "$PHP_INI" ] || ini_args=(-c "$PHP_INI")
if [ -n "$CH" ]; then
  fpm=(chroot "$CH" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin PHP_INI_SCAN_DIR=":$out/conf/php.d" "$FPM_IN")
  gdb=(chroot "$CH" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root gdb)
elif [ "$server" = apache ]; then
  fpm=(env PHP_INI_SCAN_DIR="/etc/php/8.2/apache2/conf.d:$out/conf/php.d" "$(command -v php8.2 || echo /usr/bin/php8.2)")
  gdb=(gdb)
else
  fpm=(env PHP_INI_SCAN_DIR=":$out/conf/php.d" "$FPM")
  gdb=(gdb)
fi
php_full=$("${fpm[@]}" -n -v 2>/dev/null | sed -n 's/^PHP \([0-9][0-9.]*\).*/\1/p' | head -1)
[ -n "$php_full" ] || die "$FPM -n -v does not say its version: $("${fpm[@]}" -n -v 2>&1 | head -3)"
php_major=${php_full%%.*} php_minor=${php_full#*.} php_minor=${php_minor%%.*}
php_num=$((php_major * 100 + php_minor))

# --- configuration ---------------------------------------------------------
port=18080
[ "$hang" = yes ] && port=18180 # hang labs and crash labs may start at the same time: not on the same ports
while (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done

{
  echo "; written by coroner's lab/run.sh: read after Debian's conf.d (10-opcache.ini sets opcache.jit=off)"
  echo "opcache.enable=1"
  echo "opcache.memory_consumption=128"
  if [ "$php_num" -ge 800 ]; then # PHP 7.4 has no JIT
    echo "opcache.jit=tracing"
    echo "opcache.jit_buffer_size=64M"
  fi
  if [ "$php_num" -ge 803 ]; then
    echo "; PHP 8.3+ turn deep recursion into an Error: shortcode-recursion must overflow the C stack"
    echo "zend.max_allowed_stack_size=-1"
  fi
  echo "pcre.jit=1"
  echo "ffi.enable=1"
  echo "memory_limit=-1"
  echo "display_errors=0"
  if [ "$hang" = yes ]; then
    echo "; the hang lab: its extensions by path, sessions in the lab, no time limit"
    for e in curl mysqlnd mysqli pgsql igbinary redis; do echo "extension=$ext_dir/$e.so"; done
    echo "session.save_path=$out/run/sessions"
    echo "max_execution_time=0"
    echo "max_input_time=-1"
  fi
  for kv in "${inis[@]}"; do echo "$kv"; done
} > "$out/conf/php.d/99-lab.ini"
# OPcache: Debian loads it in conf.d (built into 8.5); a PHP built elsewhere may have it
# as a shared extension that nothing loads yet. FFI and posix are needed by the scenarios.
modules=$("${fpm[@]}" "${ini_args[@]}" -m 2>/dev/null || true)
if ! printf '%s\n' "$modules" | grep -qx 'Zend OPcache'; then
  echo "zend_extension=opcache" > "$out/conf/php.d/00-lab-opcache.ini"
  modules=$("${fpm[@]}" "${ini_args[@]}" -m 2>/dev/null || true)
  printf '%s\n' "$modules" | grep -qx 'Zend OPcache' || die "$FPM cannot load OPcache: $("${fpm[@]}" "${ini_args[@]}" -m 2>&1 | grep -i opcache | head -3)"
  log "OPcache was not loaded by $FPM's own configuration: the lab loads it (conf/php.d/00-lab-opcache.ini)"
fi
for m in FFI posix; do
  printf '%s\n' "$modules" | grep -qx "$m" || die "$FPM has no $m extension (the scenarios need FFI and posix)"
done

max_children=2
hang_total=0
if [ "$hang" = yes ]; then
  for s in "${scenarios[@]}"; do
    hang_total=$((hang_total + repeat))
    [ "$s" = session-lock ] && hang_total=$((hang_total + repeat))
  done
  max_children=${workers:-$((hang_total + 4))}
  [ "$max_children" -ge $((hang_total + 1)) ] || die "--workers $max_children: the $hang_total hangs need at least $((hang_total + 1))"
  mkdir -p "$out/run/sessions"
  chown "$WORKER_USER:$WORKER_GROUP" "$out/run/sessions"
fi
if [ "$server" = nginx ]; then
cat > "$out/conf/php-fpm.conf" <<EOF
[global]
pid = $out/run/php-fpm.pid
error_log = $out/log/fpm.log
log_level = notice
daemonize = no
rlimit_core = unlimited
emergency_restart_threshold = 0

[www]
user = $WORKER_USER
group = $WORKER_GROUP
listen = $out/run/php-fpm.sock
listen.owner = $WORKER_USER
listen.group = $WORKER_GROUP
listen.mode = 0666
pm = static
pm.max_children = $max_children
rlimit_core = unlimited
$( [ "$dumpable" = yes ] && echo "process.dumpable = yes" )
catch_workers_output = yes
access.log = $out/log/fpm-access.log
env[LAB_TRUTH_DIR] = $out/cores
php_admin_value[error_log] = $out/log/php-error.log
php_admin_flag[log_errors] = on
php_admin_value[ffi.enable] = 1
$( [ "$hang" = yes ] && printf 'pm.status_path = /fpm-status\nrequest_slowlog_timeout = 2s\nslowlog = %s\n' "$out/log/fpm-slow.log" )
EOF

cat > "$out/conf/nginx.conf" <<EOF
user $WORKER_USER;
worker_processes 1;
pid $out/run/nginx.pid;
error_log $out/log/nginx-error.log error;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  access_log $out/log/nginx-access.log combined;
  client_body_temp_path $out/run/body;
  fastcgi_temp_path $out/run/fastcgi;
  proxy_temp_path $out/run/proxy;
  uwsgi_temp_path $out/run/uwsgi;
  scgi_temp_path $out/run/scgi;
  server {
    listen 127.0.0.1:$port;
    server_name lab.local;
    root $out/www;
    index index.php;
    location / { try_files \$uri \$uri/ /index.php?\$args; }
    location ~ ^/app/ { deny all; }
    location = /hang.php {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_pass unix:$out/run/php-fpm.sock;
      fastcgi_read_timeout 3s;
    }
    location ~ \.php\$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_pass unix:$out/run/php-fpm.sock;
      fastcgi_read_timeout 60s;
    }
  }
}
EOF

else
# Apache httpd + mod_php (prefork): a configuration tree of its own, nothing of /etc/apache2.
# CoreDumpDirectory makes Apache's children dumpable again after they switch to
# $WORKER_USER (prctl(PR_SET_DUMPABLE)); without it (--no-dumpable) they leave no core.
M=/usr/lib/apache2/modules
cat > "$out/conf/apache2.conf" <<EOF
# written by coroner's lab/run.sh
ServerRoot $out/run
ServerName lab.local
PidFile $out/run/apache2.pid
Mutex file:$out/run default
Listen 127.0.0.1:$port
LoadModule mpm_prefork_module $M/mod_mpm_prefork.so
LoadModule authz_core_module $M/mod_authz_core.so
LoadModule dir_module $M/mod_dir.so
LoadModule mime_module $M/mod_mime.so
LoadModule env_module $M/mod_env.so
LoadModule rewrite_module $M/mod_rewrite.so
LoadModule log_forensic_module $M/mod_log_forensic.so
LoadModule php_module $LIBPHP
User $WORKER_USER
Group $WORKER_GROUP
StartServers 2
MinSpareServers 1
MaxSpareServers 3
MaxRequestWorkers 4
MaxConnectionsPerChild 0
$( [ "$dumpable" = yes ] && echo "CoreDumpDirectory $out/cores" )
ErrorLog $out/log/apache-error.log
LogLevel warn
LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-Agent}i\\"" combined
CustomLog $out/log/apache-access.log combined
# each request's start (+ID|request line|headers) and end (-ID): a child that dies leaves a + without a -
ForensicLog $out/log/apache-forensic.log
TypesConfig /etc/mime.types
DocumentRoot $out/www
DirectoryIndex index.php
SetEnv LAB_TRUTH_DIR $out/cores
<Directory />
  AllowOverride None
  Require all denied
</Directory>
<Directory $out/www>
  Require all granted
</Directory>
<Directory $out/www/app>
  Require all denied
</Directory>
<FilesMatch ".+\\.php$">
  SetHandler application/x-httpd-php
</FilesMatch>
php_admin_value error_log $out/log/php-error.log
php_admin_flag log_errors on
RewriteEngine On
# pretty URLs: a search page, and a WordPress-like front controller
RewriteRule ^/search/([^/]*)$ /search.php?q=\$1 [L,QSA]
RewriteCond %{DOCUMENT_ROOT}%{REQUEST_URI} !-f
RewriteCond %{DOCUMENT_ROOT}%{REQUEST_URI} !-d
RewriteCond %{REQUEST_URI} !^/index\\.php
RewriteRule ^/ /index.php [L]
EOF
fi

# --- start -----------------------------------------------------------------
if [ "$keep" = yes ] && [ "$hang" = no ]; then
  lock_core_pattern # held until --stop: the servers, started below, inherit it
  cp_keep=yes
fi
: > "$out/pids"
if [ "$server" = apache ]; then
  # mod_php reads PHP_INI_SCAN_DIR when Apache starts: Debian's apache2/conf.d, then the lab's.
  # Apache signals its whole process group when it stops (killpg(getpgrp(), SIGTERM)): it gets
  # a session of its own (setsid execs it in place: $! stays Apache's pid), or stopping it would
  # kill this script and whoever started it.
  setsid env PHP_INI_SCAN_DIR=":$out/conf/php.d" LAB_TRUTH_DIR="$out/cores" "$FPM" -f "$out/conf/apache2.conf" -DFOREGROUND > "$out/log/apache-stdout.log" 2>&1 &
  echo "apache2 $!" >> "$out/pids"
  for _ in $(seq 100); do
    (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break
    sleep 0.1
  done
  (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null || die "apache2 did not start: $(tail -5 "$out/log/apache-error.log" "$out/log/apache-stdout.log" 2>/dev/null)"
else
"${fpm[@]}" --nodaemonize -y "$out/conf/php-fpm.conf" "${ini_args[@]}" > "$out/log/fpm-stdout.log" 2>&1 &
echo "php-fpm $!" >> "$out/pids"
"$NGINX" -e "$out/log/nginx-startup.log" -c "$out/conf/nginx.conf" -g 'daemon off;' > "$out/log/nginx-stdout.log" 2>&1 &
echo "nginx $!" >> "$out/pids"
for _ in $(seq 100); do
  [ -S "$out/run/php-fpm.sock" ] && (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.1
done
[ -S "$out/run/php-fpm.sock" ] || die "php-fpm did not start: $(tail -5 "$out/log/fpm.log" "$out/log/fpm-stdout.log" 2>/dev/null)"
(echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null || die "nginx did not start: $(tail -5 "$out/log/nginx-startup.log" "$out/log/nginx-stdout.log" 2>/dev/null)"
fi
base="http://127.0.0.1:$port"
status=$(curl -fsS "$base/status.php") || die "status request failed"
echo "$status" > "$out/status.json"
jit_wanted=tracing
[ "$php_num" -ge 800 ] || jit_wanted="" # PHP 7.4: no JIT to check
for kv in "${inis[@]}"; do case "$kv" in opcache.jit=*) jit_wanted=${kv#opcache.jit=} ;; esac; done
if [ -n "$jit_wanted" ]; then
  case "$status" in
    *"\"jit\":\"$jit_wanted\""*) ;;
    *) die "opcache.jit is not $jit_wanted in the pool: $status" ;;
  esac
fi
if [ "$jit_wanted" = tracing ]; then
  case "$status" in *'"jit_on":true'*) ;; *) die "the OPcache JIT is not on: $status" ;; esac
fi
opcache_wanted=yes
for kv in "${inis[@]}"; do case "$kv" in opcache.enable=0 | opcache.enable=[Oo]ff) opcache_wanted=no ;; esac; done
if [ $opcache_wanted = yes ]; then
  case "$status" in *'"opcache":true'*) ;; *) die "OPcache is not enabled in the pool: $status" ;; esac
fi
php_version=$(printf '%s' "$status" | sed 's/.*"version":"\([^"]*\)".*/\1/')
zts=false
case "$status" in *'"zts":true'*) zts=true ;; esac
if [ "$server" = apache ]; then
  log "apache2 + mod_php $php_version on 127.0.0.1:$port (JIT: $status)"
else
  log "php-fpm $php_version and nginx on 127.0.0.1:$port (JIT: $status)"
fi
t_started=$(date +%s.%N)

# --- helpers ---------------------------------------------------------------
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }
# The kernel ring buffer is full on a busy machine (line counts stay constant while old lines drop):
# new lines are those with a later timestamp than the mark.
kmsg_mark() { dmesg 2>/dev/null | tail -n 1 | sed -n 's/^\[ *\([0-9]*\.[0-9]*\)\].*/\1/p' || true; }
kmsg_since() { # MARK COMM PID -> kernel lines after MARK about PID, or about any thread named COMM
  # (a thread's line carries its own tid), each with the Code: line that follows it
  local mark=${1:-0} comm=$2 pid=$3
  dmesg 2>/dev/null | awk -v mark="${mark:-0}" -v comm="$comm" -v pid="$pid" '
    match($0, /^\[ *[0-9]+\.[0-9]+\]/) == 0 { next }
    { ts = substr($0, 2, RLENGTH - 2) + 0 }
    ts <= mark + 0 { prev = 0; next }
    prev && / Code: / { print; prev = 0; next }
    { prev = 0 }
    index($0, "[" pid "]") || (comm != "" && index($0, "] " comm "[")) { print; prev = 1 }
  ' || true
}
json_str() { # escape for JSON
  printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/\t/\\t/g' | awk 'BEGIN{ORS="\\n"} {print}' | sed 's/\\n$//'
}
json_lines() { # FILE -> JSON array of its lines
  local first=1
  printf '['
  if [ -s "$1" ]; then
    while IFS= read -r l; do
      [ $first = 1 ] || printf ','
      first=0
      printf '"%s"' "$(json_str "$l")"
    done < "$1"
  fi
  printf ']'
}
gdb_oracle() { # EXE CORE OUT [all-threads]: run in the background (it execs: $! is timeout's pid)
  # the crashed thread's bt comes first; then, for threaded programs, all threads.
  # For --release, gdb of the chroot reads the core there, with the chroot's libraries.
  local all=()
  [ "${4:-}" = all ] && all=(-ex "thread apply all bt")
  # shellcheck disable=SC2016 # $pc is gdb's
  exec timeout 120 "${gdb[@]}" -nx -batch -ex bt -ex 'info registers' -ex 'x/6i $pc' "${all[@]}" "$1" "$2" > "$3" 2>&1
}
wait_core() { # PID -> path of the finished core in the cores dir
  local pid=$1 f="" size=-1 prev=-2
  for _ in $(seq 200); do
    # shellcheck disable=SC2012 # kernel-made names
    f=$(ls "$out"/cores/core.*."$pid".* 2>/dev/null | head -1 || true)
    if [ -n "$f" ]; then
      size=$(stat -c %s "$f")
      [ "$size" = "$prev" ] && break
      prev=$size
    fi
    sleep 0.1
  done
  printf '%s' "$f"
}

# fake credentials the POST scenario sends (reports must redact them; listed in the manifest)
SECRET_COOKIE=lab-secret-cookie SECRET_TOKEN=lab-secret-token
scenario_request() { # NAME -> sets method url and runs curl
  local name=$1
  case "$name" in
    ffi-null-code) method=GET url="/search.php?q=teacher" ;;
    shortcode-recursion) method=GET url="/teachers/profile-sarah/" ;;
  esac
  if [ "$server" = apache ]; then # a mod_rewrite URL, and a PATH_INFO one
    case "$name" in
      ffi-null-code) url="/search/teacher" ;;
      shortcode-recursion) url="/index.php/teachers/profile-sarah/" ;;
    esac
  fi
  case "$name" in
    kill-segv) method=GET url="/kill.php?mode=kill" ;;
    abort) method=GET url="/abort.php?img=photo.jpg" ;;
    method-closure-include) method=POST url="/checkout.php" ;;
    deep-comments) method=GET url="/comments.php?post=7" ;;
  esac
  if [ "$method" = POST ]; then
    curl -sS -m 60 -o /dev/null -X POST -H "Cookie: wordpress_logged_in=$SECRET_COOKIE" \
      -H "Authorization: Bearer $SECRET_TOKEN" -H 'User-Agent: coroner-lab/1.0' \
      --data 'items=book%2Cpen&coupon=SPRING' "$base$url" || true
  else
    curl -sS -m 60 -o /dev/null -H 'User-Agent: coroner-lab/1.0' "$base$url" || true
  fi
}

manifest_scenarios=()
deathlog="$out/log/fpm.log" deathre='exited on signal'
if [ "$server" = apache ]; then deathlog="$out/log/apache-error.log" deathre='AH0005[12]: child pid'; fi
last_crash_second=0
run_scenario() { # NAME KEY: one request that kills a worker; artifacts in scenarios/KEY
  local name=$1 key=$2 dir="$out/scenarios/$2" n0 f0 k0 pid="" sig="" core="" line t0 secs secrets="[]"
  mkdir -p "$dir"
  # nginx and FPM log with 1-second resolution: each crash gets a second of its own, so that the
  # logs of one run link unambiguously (tests of the log correlator rely on it)
  while [ "$(date +%s)" -le "$last_crash_second" ]; do sleep 0.05; done
  n0=$(lines "$out/log/nginx-error.log"); f0=$(lines "$deathlog"); k0=$(kmsg_mark)
  t0=$(date +%s.%N)
  lock_core_pattern
  set_core_pattern "$out"
  scenario_request "$name"
  # wait for the FPM master (Apache's parent) to report the death of the worker (the core is
  # complete by then)
  for _ in $(seq 300); do
    if tail -n +"$((f0 + 1))" "$deathlog" | grep -q "$deathre"; then break; fi
    sleep 0.1
  done
  restore_core_pattern "$out"
  unlock_core_pattern
  last_crash_second=$(date +%s)
  line=$(tail -n +"$((f0 + 1))" "$deathlog" | grep -m1 "$deathre" || true)
  [ -n "$line" ] || die "scenario $name: no worker died ($(tail -n +"$((f0 + 1))" "$deathlog" | tail -3))"
  if [ "$server" = apache ]; then # AH00051: child pid N exit signal Segmentation fault (11), possible coredump in DIR
    pid=$(printf '%s' "$line" | sed 's/.*child pid \([0-9]*\) exit.*/\1/')
    sig=$(printf '%s' "$line" | sed 's/.*exit signal .*(\([0-9]*\)).*/\1/')
  else
    pid=$(printf '%s' "$line" | sed 's/.*child \([0-9]*\) exited.*/\1/')
    sig=$(printf '%s' "$line" | sed 's/.*exited on signal \([0-9]*\).*/\1/')
  fi
  if [ "$dumpable" = yes ]; then
    case "$line" in *"core dumped"* | *"possible coredump"*) ;; *) die "scenario $name: worker $pid died without dumping core: $line" ;; esac
    core=$(wait_core "$pid")
    [ -n "$core" ] || die "scenario $name: worker $pid dumped core but not into $out/cores (kernel.core_pattern is now $(cat /proc/sys/kernel/core_pattern): changed by someone else?)"
    mv "$core" "$dir/"
    core="$dir/$(basename "$core")"
    gdb_oracle "$FPM_IN" "$core" "$dir/gdb.txt" &
    gdb_jobs+=($!)
  fi
  sleep 0.1
  tail -n +"$((n0 + 1))" "$out/log/nginx-error.log" > "$dir/nginx-error.log" 2>/dev/null || : > "$dir/nginx-error.log"
  : > "$dir/fpm.log"
  : > "$dir/apache-error.log"
  tail -n +"$((f0 + 1))" "$deathlog" > "$dir/$(basename "$deathlog")" 2>/dev/null || true
  kmsg_since "$k0" "" "$pid" > "$dir/kernel.log"
  cat "$dir/kernel.log" >> "$out/log/kernel.log"
  if [ -f "$out/cores/truth.$pid.json" ]; then mv "$out/cores/truth.$pid.json" "$dir/truth.json"; fi
  [ "$method" = POST ] && secrets="[\"$SECRET_COOKIE\",\"$SECRET_TOKEN\"]"
  secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
  log "$(printf '%-26s pid %-7s signal %-3s core %6s MB  %ss' "$key" "$pid" "$sig" "$([ -n "$core" ] && echo $(( $(stat -c %s "$core") / 1048576 )) || echo -)" "$secs")"
  manifest_scenarios+=("$(printf '"%s":{"name":"%s","method":"%s","url":"%s","core":"%s","pid":%s,"signal":%s,"truth_path":"%s","gdb":"%s","nginx_error":%s,"fpm_log":%s,"apache_error":%s,"kernel":%s,"secrets":%s}' \
    "$key" "$name" "$method" "$(json_str "$url")" "$core" "$pid" "$sig" \
    "$([ -f "$dir/truth.json" ] && echo "$dir/truth.json")" "$([ -n "$core" ] && echo "$dir/gdb.txt")" \
    "$(json_lines "$dir/nginx-error.log")" "$(json_lines "$dir/fpm.log")" "$(json_lines "$dir/apache-error.log")" "$(json_lines "$dir/kernel.log")" "$secrets")")
}

# The C programs compile while the workers crash.
c_build() { # PROG DIR -> builds DIR/PROG; prints "true"/"false" (built with -g) into DIR/debug
  local prog=$1 dir=$2
  mkdir -p "$dir"
  case "$prog" in
    pcre-null) gcc -O2 -o "$dir/$prog" "$LAB_DIR/c/$prog.c" -lpcre2-8 && echo false > "$dir/debug" ;;
    thread-crash) gcc -O2 -g -pthread -o "$dir/$prog" "$LAB_DIR/c/$prog.c" && echo true > "$dir/debug" ;;
    cpp-namespace) g++ -O0 -g -o "$dir/$prog" "$LAB_DIR/c/$prog.cpp" && echo true > "$dir/debug" ;;
    go-panic) (cd "$LAB_DIR/c/gopanic" && CGO_ENABLED=0 "$GO" build -o "$dir/$prog" .) && echo true > "$dir/debug" ;;
    *) gcc -O0 -g -o "$dir/$prog" "$LAB_DIR/c/$prog.c" && echo true > "$dir/debug" ;;
  esac
}
GO=$(command -v go || echo /usr/local/go/bin/go)
if [ "$with_c" = yes ]; then
  if [ ! -x "$GO" ]; then
    log "no Go toolchain: the go-panic program is left out"
    ALL_C=("${ALL_C[@]/go-panic}")
  fi
  for prog in "${ALL_C[@]}"; do
    [ -n "$prog" ] || continue
    c_build "$prog" "$out/c/$prog" > "$out/log/build-$prog.log" 2>&1 &
    c_builds+=("$prog:$!")
  done
fi

: > "$out/log/kernel.log"

# --- hangs (--hang) ----------------------------------------------------------
# Each hang is one request through nginx: the worker writes its ground truth, then hangs;
# nginx gives up after 3 s (504) and the worker hangs on. Its pid comes from the truth file.
manifest_hangs=()
blackhole_port=0
declare -A hang_pids=()
fire_hang() { # KEY MODE: the request, in the background (curl ends with nginx's 504)
  local key=$1 mode=$2 dir="$out/hangs/$1"
  mkdir -p "$dir"
  curl -sS -m 60 -o "$dir/response" -w '%{http_code}' -H 'User-Agent: coroner-lab/1.0' \
    "$base/hang.php?mode=$mode&port=$blackhole_port&key=$key" > "$dir/http_status" 2> "$dir/curl.log" &
  hang_curls+=($!)
}
wait_hang() { # KEY -> pid of the worker whose truth file names KEY (moved to hangs/KEY/truth.json)
  local key=$1 f="" pid
  for _ in $(seq 300); do
    f=$(grep -l -F "key=$key\"" "$out"/cores/truth.*.json 2>/dev/null | head -1 || true)
    [ -n "$f" ] && break
    sleep 0.1
  done
  [ -n "$f" ] || die "hang $key: no worker wrote its ground truth (php-error.log: $(tail -3 "$out/log/php-error.log" 2>/dev/null))"
  pid=$(basename "$f" .json)
  pid=${pid#truth.}
  mv "$f" "$out/hangs/$key/truth.json"
  printf '%s' "$pid"
}
if [ "$hang" = yes ]; then
  PHP_CLI=$(command -v php8.2 || command -v php) || die "no php CLI for the black hole"
  "$PHP_CLI" -n "$LAB_DIR/hang/blackhole.php" "$out/run/blackhole.port" > "$out/log/blackhole.log" 2>&1 &
  echo "blackhole $!" >> "$out/pids"
  for _ in $(seq 100); do [ -s "$out/run/blackhole.port" ] && break; sleep 0.1; done
  blackhole_port=$(cat "$out/run/blackhole.port" 2>/dev/null) || die "the black hole did not start: $(cat "$out/log/blackhole.log")"
  hang_curls=()
  hang_keys=() hang_names=()
  declare -A hruns=()
  for s in "${scenarios[@]}"; do
    if [ "$s" = session-lock ] && [ -z "${hruns[session-holder]:-}" ]; then
      hruns[session-holder]=1
      fire_hang session-holder session-holder
      hang_keys+=(session-holder) hang_names+=(session-holder)
      hang_pids[session-holder]=$(wait_hang session-holder)
    fi
    for _ in $(seq "$repeat"); do
      n=$(( ${hruns[$s]:-0} + 1 ))
      hruns[$s]=$n
      key=$s
      [ "$n" -gt 1 ] && key="$s-$n"
      fire_hang "$key" "$s"
      hang_keys+=("$key") hang_names+=("$s")
    done
  done
fi
if [ "$hang" = yes ]; then
  for i in "${!hang_keys[@]}"; do
    key=${hang_keys[$i]}
    [ -n "${hang_pids[$key]:-}" ] || hang_pids[$key]=$(wait_hang "$key")
  done
  # nginx's 504s (3 s) and FPM's slowlog (2 s) come while the workers hang on
  for j in "${hang_curls[@]}"; do wait "$j" || true; done
  sleep 0.5
  for i in "${!hang_keys[@]}"; do
    key=${hang_keys[$i]} name=${hang_names[$i]}
    pid=${hang_pids[$key]} dir="$out/hangs/$key"
    [ -d "/proc/$pid" ] || die "hang $key: worker $pid is gone ($(grep -F "child $pid " "$out/log/fpm.log" | tail -1))"
    url="/hang.php?mode=$name&port=$blackhole_port&key=$key"
    grep -F "key=$key HTTP/" "$out/log/nginx-error.log" > "$dir/nginx-error.log" 2>/dev/null || : > "$dir/nginx-error.log"
    grep -F "child $pid," "$out/log/fpm.log" > "$dir/fpm.log" 2>/dev/null || : > "$dir/fpm.log"
    manifest_hangs+=("$(printf '"%s":{"name":"%s","method":"GET","url":"%s","pid":%s,"truth_path":"%s","http_status":%s,"nginx_error":%s,"fpm_log":%s}' \
      "$key" "$name" "$(json_str "$url")" "$pid" "$dir/truth.json" "$(cat "$dir/http_status" 2>/dev/null || echo 0)" \
      "$(json_lines "$dir/nginx-error.log")" "$(json_lines "$dir/fpm.log")")")
    log "$(printf 'hang %-20s pid %-7s HTTP %s' "$key" "$pid" "$(cat "$dir/http_status" 2>/dev/null)")"
  done
fi

if [ "$hang" = no ]; then
  declare -A runs=()
  for s in "${scenarios[@]}"; do
    for _ in $(seq "$repeat"); do
      n=$(( ${runs[$s]:-0} + 1 ))
      runs[$s]=$n
      key=$s
      [ "$n" -gt 1 ] && key="$s-$n"
      run_scenario "$s" "$key"
    done
  done
fi
t_scenarios=$(date +%s.%N)

# --- C programs ------------------------------------------------------------
manifest_c=()
if [ "$with_c" = yes ]; then
  for b in "${c_builds[@]}"; do
    wait "${b#*:}" || die "building C program ${b%%:*} failed: $(tail -5 "$out/log/build-${b%%:*}.log")"
  done
  for prog in "${ALL_C[@]}"; do
    [ -n "$prog" ] || continue
    dir="$out/c/$prog"
    k0=$(kmsg_mark)
    lock_core_pattern
    set_core_pattern "$out"
    # run through sh so that bash's job control does not print "Segmentation fault" for it
    # (GOTRACEBACK=crash makes the Go program dump core; C programs ignore it)
    read -r cpid crc < <(cd "$dir" && GOTRACEBACK=crash sh -c './"$1" > /dev/null 2>&1 & p=$!; wait $p; echo "$p $?"' sh "$prog" 2> /dev/null)
    restore_core_pattern "$out"
    unlock_core_pattern
    core=$(wait_core "$cpid")
    [ -n "$core" ] || die "C program $prog (pid $cpid, exit $crc) left no core in $out/cores (kernel.core_pattern is now $(cat /proc/sys/kernel/core_pattern))"
    mv "$core" "$dir/"
    core="$dir/$(basename "$core")"
    kmsg_since "$k0" "$prog" "$cpid" > "$dir/kernel.log"
    cat "$dir/kernel.log" >> "$out/log/kernel.log"
    mode=""
    [ "$prog" = thread-crash ] && mode=all
    gdb_oracle "$dir/$prog" "$core" "$dir/gdb.txt" $mode &
    gdb_jobs+=($!)
    src="$LAB_DIR/c/$prog.c"; [ -f "$src" ] || src="$LAB_DIR/c/$prog.cpp"; [ -f "$src" ] || src="$LAB_DIR/c/gopanic/main.go"
    # the output keeps its own copy: it is reused by checkouts other than this one
    # (a Go source keeps a .txt suffix there: lab-out/ may sit inside the module, where a .go file is a package)
    dst="$dir/$(basename "$src")"; case "$src" in *.go) dst="$dst.txt" ;; esac
    cp "$src" "$dst" && src="$dst"
    manifest_c+=("$(printf '"%s":{"name":"%s","source":"%s","binary":"%s","core":"%s","gdb":"%s","signal":%d,"debug":%s,"pid":%d,"kernel":%s}' \
      "$prog" "$prog" "$src" "$dir/$prog" "$core" "$dir/gdb.txt" "$((crc - 128))" "$(cat "$dir/debug")" "$cpid" "$(json_lines "$dir/kernel.log")")")
  done
fi
for j in "${gdb_jobs[@]}"; do wait "$j" || true; done
t_c=$(date +%s.%N)

# --- manifest --------------------------------------------------------------
join() { local IFS=,; printf '%s' "$*"; }
cat > "$out/manifest.json" <<EOF
{
  "dir": "$out",
  "release": "$release",
  "php_version": "$php_version",
  "php_fpm": "$FPM",
  "sysroot": "$CH",
  "php_fpm_in_sysroot": "$FPM_IN",
  "zts": $zts,
  "server": "$server",
  "libphp": "$LIBPHP",
  "apache_config": "$([ "$server" = apache ] && echo "$out/conf/apache2.conf")",
  "apache_error_log": "$([ "$server" = apache ] && echo "$out/log/apache-error.log")",
  "apache_access_log": "$([ "$server" = apache ] && echo "$out/log/apache-access.log")",
  "apache_forensic_log": "$([ "$server" = apache ] && echo "$out/log/apache-forensic.log")",
  "jit": "$jit_wanted",
  "fpm_config": "$out/conf/php-fpm.conf",
  "php_ini_dir": ":$out/conf/php.d",
  "nginx_config": "$out/conf/nginx.conf",
  "port": $port,
  "dumpable": $([ "$dumpable" = yes ] && echo true || echo false),
  "nginx_error_log": "$out/log/nginx-error.log",
  "nginx_access_log": "$out/log/nginx-access.log",
  "fpm_log": "$out/log/fpm.log",
  "kernel_log": "$out/log/kernel.log",
  "timings": {"packages": $(awk -v a="$t_start" -v b="$t_packages" 'BEGIN{printf "%.2f", b-a}'), "chroot": $(awk -v a="$t_packages" -v b="$t_chroot" 'BEGIN{printf "%.2f", b-a}'), "start": $(awk -v a="$t_chroot" -v b="$t_started" 'BEGIN{printf "%.2f", b-a}'), "scenarios": $(awk -v a="$t_started" -v b="$t_scenarios" 'BEGIN{printf "%.2f", b-a}'), "c_programs": $(awk -v a="$t_scenarios" -v b="$t_c" 'BEGIN{printf "%.2f", b-a}')},
  "scenarios": {$(join "${manifest_scenarios[@]}")},
  "c_programs": {$(join "${manifest_c[@]}")},
  "hang": $([ "$hang" = yes ] && echo true || echo false),
  "fpm_socket": "$out/run/php-fpm.sock",
  "fpm_pool": "www",
  "workers": $max_children,
  "status_path": "$([ "$hang" = yes ] && echo /fpm-status)",
  "slowlog": "$([ "$hang" = yes ] && echo "$out/log/fpm-slow.log")",
  "blackhole_port": $blackhole_port,
  "hangs": {$(join "${manifest_hangs[@]}")}
}
EOF
total=$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
if [ "$hang" = yes ]; then
  log "done in ${total}s; ${#manifest_hangs[@]} workers left hanging (stop with: lab/run.sh --stop $out); base URL $base"
elif [ "$keep" = yes ]; then
  set_core_pattern "$out" # further crashes of the kept workers land in $out/cores until --stop
  log "done in ${total}s; left running (stop with: lab/run.sh --stop $out); base URL $base"
else
  log "done in ${total}s; artifacts in $out (manifest.json)"
fi
