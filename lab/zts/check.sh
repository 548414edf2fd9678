#!/usr/bin/env bash
# Smoke test of the ZTS PHP that lab/zts/build.sh builds: the CLI says ZTS,
# OPcache loads and its tracing JIT switches on, FFI and PCRE JIT work, and
# php-fpm answers a FastCGI request on a unix socket in a temporary directory.
# It stops only the php-fpm it started (by pid) and removes its directory.
# It does not touch kernel.core_pattern.
#
# usage: lab/zts/check.sh [PATH-TO-php-fpm]   (default: what build.sh prints; as root)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
log() { printf '[zts-check %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root (php-fpm workers run as www-data)"

FPM=${1:-$("$HERE/build.sh")}
PREFIX=$(dirname "$(dirname "$FPM")")
PHP=$PREFIX/bin/php
[ -x "$FPM" ] && [ -x "$PHP" ] || die "no php-fpm/php under $PREFIX"
command -v cgi-fcgi >/dev/null || {
  log "installing libfcgi-bin (cgi-fcgi)"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends libfcgi-bin >/dev/null
}

# --- CLI ----------------------------------------------------------------------
v=$("$PHP" -v)
head -1 <<< "$v" | grep -q '(ZTS)' || die "php -v does not say ZTS: $(head -1 <<< "$v")"
grep -q 'Zend OPcache' <<< "$v" || die "OPcache not loaded (php -v: $v)"
log "$(head -1 <<< "$v")"
# php-fpm -v names no thread model (neither does Debian's); phpinfo does
fpm_info=$("$FPM" -i)
grep -q '^Thread Safety => enabled' <<< "$fpm_info" || die "php-fpm -i does not say 'Thread Safety => enabled'"

jit=$("$PHP" -d opcache.enable_cli=1 -d opcache.jit=tracing -d opcache.jit_buffer_size=64M -r '
  $s = opcache_get_status(false);
  echo json_encode(["enabled" => $s["jit"]["enabled"], "on" => $s["jit"]["on"], "kind" => $s["jit"]["kind"],
                    "buffer_size" => $s["jit"]["buffer_size"], "zts" => PHP_ZTS]);')
log "CLI opcache_get_status()[jit]: $jit"
grep -q '"enabled":true,"on":true' <<< "$jit" || die "the tracing JIT is not on in the CLI: $jit"

ffi=$("$PHP" -d ffi.enable=1 -r '$c = FFI::cdef("size_t strlen(const char *s);", "libc.so.6"); echo $c->strlen("coroner");')
[ "$ffi" = 7 ] || die "FFI strlen gave '$ffi'"
pcre=$("$PHP" -r 'echo PCRE_JIT_SUPPORT ? "jit" : "nojit", " ", ini_get("pcre.jit"), " ", preg_replace_callback("/o+/", fn ($m) => strlen($m[0]), "coroonerooo");')
[ "$pcre" = "jit 1 c1r2ner3" ] || die "PCRE check gave '$pcre'"
posix=$("$PHP" -r 'echo posix_getpid() === getmypid() ? "ok" : "bad";')
[ "$posix" = ok ] || die "posix_getpid: $posix"
log "FFI, PCRE JIT, posix: ok"

# --- php-fpm on a unix socket ---------------------------------------------------
user=www-data
id "$user" >/dev/null 2>&1 || user=nobody
dir=$(mktemp -d)
fpm_pid=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$fpm_pid" ] && kill -0 "$fpm_pid" 2>/dev/null; then
    kill -QUIT "$fpm_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$fpm_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$fpm_pid" 2>/dev/null || true
    wait "$fpm_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
chmod 755 "$dir"
mkdir -p "$dir/www" "$dir/php.d"
cat > "$dir/php.d/99-check.ini" <<'EOF'
opcache.enable=1
opcache.memory_consumption=64
opcache.jit=tracing
opcache.jit_buffer_size=64M
pcre.jit=1
ffi.enable=1
EOF
cat > "$dir/www/status.php" <<'EOF'
<?php
$s = opcache_get_status(false);
$c = FFI::cdef('size_t strlen(const char *s);', 'libc.so.6');
echo json_encode([
    'sapi' => PHP_SAPI, 'zts' => PHP_ZTS, 'version' => PHP_VERSION,
    'jit_on' => $s['jit']['on'] ?? false, 'jit' => ini_get('opcache.jit'),
    'ffi' => $c->strlen('abc'), 'pid' => getmypid(), 'uri' => $_SERVER['REQUEST_URI'] ?? '',
]), "\n";
EOF
chmod -R a+rX "$dir/www" "$dir/php.d"
cat > "$dir/php-fpm.conf" <<EOF
[global]
pid = "$dir/php-fpm.pid"
error_log = "$dir/fpm.log"
daemonize = no
[check]
user = $user
group = $(id -gn "$user")
listen = "$dir/php-fpm.sock"
listen.mode = 0600
pm = static
pm.max_children = 1
catch_workers_output = yes
EOF
PHP_INI_SCAN_DIR=":$dir/php.d" "$FPM" --nodaemonize -y "$dir/php-fpm.conf" > "$dir/fpm-stdout.log" 2>&1 &
fpm_pid=$!
for _ in $(seq 100); do [ -S "$dir/php-fpm.sock" ] && break; sleep 0.1; done
[ -S "$dir/php-fpm.sock" ] || die "php-fpm did not start: $(cat "$dir/fpm.log" "$dir/fpm-stdout.log" 2>/dev/null | tail -5)"
resp=$(REQUEST_METHOD=GET SCRIPT_FILENAME="$dir/www/status.php" SCRIPT_NAME=/status.php REQUEST_URI=/zts/check \
  SERVER_PROTOCOL=HTTP/1.1 GATEWAY_INTERFACE=CGI/1.1 REMOTE_ADDR=127.0.0.1 \
  cgi-fcgi -bind -connect "$dir/php-fpm.sock" 2>&1 || true)
body=$(tr -d '\r' <<< "$resp" | sed -n '/^{/p')
log "php-fpm (pid $fpm_pid) answered: $body"
grep -q '"sapi":"fpm-fcgi","zts":1,' <<< "$body" || die "unexpected FastCGI answer: $resp"
grep -q '"jit_on":true' <<< "$body" || die "the tracing JIT is not on in php-fpm: $body"
grep -q '"ffi":3' <<< "$body" || die "FFI failed in php-fpm: $body"
log "all checks passed ($FPM)"
