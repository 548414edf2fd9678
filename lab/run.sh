#!/usr/bin/env bash
# The crash lab: a real nginx + php-fpm (OPcache tracing JIT on, PCRE JIT on,
# FFI enabled) on 127.0.0.1, whose workers are killed by real HTTP requests,
# plus small C programs that crash. Everything it produces (cores, ground
# truth written by the crashing PHP scripts, log lines, gdb's view) lands in
# one directory with a manifest.json.
#
# usage: lab/run.sh --out DIR [--scenario NAME]... [--repeat N] [--ini KEY=VALUE]...
#                   [--no-dumpable] [--no-c] [--keep]
#        lab/run.sh --stop DIR        (stop what --keep left running)
#
# Scenarios: ffi-null-code shortcode-recursion kill-segv abort method-closure-include
# C programs: pcre-null null-write stack-overflow thread-crash cpp-namespace
#
# It changes kernel.core_pattern (machine-wide) to DIR/cores/core.%e.%p.%t and
# restores the previous value on every exit path; it stops only the processes
# it started (by pid). Run as root.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "$0")" && pwd)
ALL_SCENARIOS=(ffi-null-code shortcode-recursion kill-segv abort method-closure-include)
ALL_C=(pcre-null null-write stack-overflow thread-crash cpp-namespace)

out="" repeat=1 dumpable=yes keep=no with_c=yes stop=""
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
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "lab: unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { printf '[lab %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

stop_lab() { # DIR
  local d=$1
  if [ -f "$d/pids" ]; then
    while read -r name pid; do
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill "$pid" 2>/dev/null || true; fi
    done < "$d/pids"
    sleep 0.3
    while read -r name pid; do
      if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    done < "$d/pids"
    rm -f "$d/pids"
  fi
  if [ -f "$d/core_pattern.saved" ]; then
    cat "$d/core_pattern.saved" > /proc/sys/kernel/core_pattern
    rm -f "$d/core_pattern.saved"
  fi
}

if [ -n "$stop" ]; then
  stop_lab "$stop"
  log "stopped the lab in $stop; kernel.core_pattern is $(cat /proc/sys/kernel/core_pattern)"
  exit 0
fi
[ -n "$out" ] || die "--out DIR is required (see --help)"
[ "$(id -u)" = 0 ] || die "the lab must run as root (it starts php-fpm workers as www-data and sets kernel.core_pattern)"
[ ${#scenarios[@]} -gt 0 ] || scenarios=("${ALL_SCENARIOS[@]}")
for s in "${scenarios[@]}"; do
  case " ${ALL_SCENARIOS[*]} " in *" $s "*) ;; *) die "unknown scenario $s" ;; esac
done
t_start=$(date +%s.%N)

# --- packages --------------------------------------------------------------
need=(nginx php8.2-fpm php8.2-opcache php8.2-cli elfutils libpcre2-dev gdb gcc g++ curl)
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
t_packages=$(date +%s.%N)
FPM=$(command -v php-fpm8.2 || echo /usr/sbin/php-fpm8.2)
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
PHP_INI=/etc/php/8.2/fpm/php.ini
WORKER_USER=www-data
id "$WORKER_USER" >/dev/null 2>&1 || WORKER_USER=nobody
WORKER_GROUP=$(id -gn "$WORKER_USER")

# --- directories -----------------------------------------------------------
mkdir -p "$out"
out=$(cd "$out" && pwd)
if [ -f "$out/pids" ]; then stop_lab "$out"; fi
rm -rf "$out/conf" "$out/run" "$out/log" "$out/cores" "$out/truth" "$out/www" "$out/scenarios" "$out/c" "$out/manifest.json"
mkdir -p "$out"/{conf/php.d,run,log,cores,truth,scenarios,c}
cp -r "$LAB_DIR/www" "$out/www"
chmod 755 "$out" "$out/conf" "$out/run" "$out/log"
chmod -R a+rX "$out/www"
chmod 1777 "$out/cores" "$out/truth"
# the workers must be able to reach the document root
d=$out; while [ "$d" != / ]; do chmod o+x "$d" 2>/dev/null || true; d=$(dirname "$d"); done

# --- core_pattern, restored on every exit path ---------------------------
cat /proc/sys/kernel/core_pattern > "$out/core_pattern.saved"
restore() {
  local rc=$?
  if [ "$keep" != yes ] || [ $rc -ne 0 ]; then stop_lab "$out"; fi
  exit $rc
}
trap restore EXIT
trap 'exit 130' INT TERM
echo "$out/cores/core.%e.%p.%t" > /proc/sys/kernel/core_pattern
ulimit -c unlimited

# --- configuration ---------------------------------------------------------
port=18080
while (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null; do port=$((port + 1)); done

{
  echo "; written by coroner's lab/run.sh: read after Debian's conf.d (10-opcache.ini sets opcache.jit=off)"
  echo "opcache.enable=1"
  echo "opcache.memory_consumption=128"
  echo "opcache.jit=tracing"
  echo "opcache.jit_buffer_size=64M"
  echo "pcre.jit=1"
  echo "ffi.enable=1"
  echo "memory_limit=-1"
  for kv in "${inis[@]}"; do echo "$kv"; done
} > "$out/conf/php.d/99-lab.ini"

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
pm.max_children = 2
rlimit_core = unlimited
$( [ "$dumpable" = yes ] && echo "process.dumpable = yes" )
catch_workers_output = yes
access.log = $out/log/fpm-access.log
env[LAB_TRUTH_DIR] = $out/truth
php_admin_value[error_log] = $out/log/php-error.log
php_admin_flag[log_errors] = on
php_admin_value[ffi.enable] = 1
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
    location ~ \.php\$ {
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME \$document_root\$fastcgi_script_name;
      fastcgi_pass unix:$out/run/php-fpm.sock;
      fastcgi_read_timeout 60s;
    }
  }
}
EOF

# --- start -----------------------------------------------------------------
: > "$out/pids"
PHP_INI_SCAN_DIR=":$out/conf/php.d" "$FPM" --nodaemonize -y "$out/conf/php-fpm.conf" -c "$PHP_INI" \
  > "$out/log/fpm-stdout.log" 2>&1 &
echo "php-fpm $!" >> "$out/pids"
"$NGINX" -e "$out/log/nginx-startup.log" -c "$out/conf/nginx.conf" -g 'daemon off;' > "$out/log/nginx-stdout.log" 2>&1 &
echo "nginx $!" >> "$out/pids"
for _ in $(seq 100); do
  [ -S "$out/run/php-fpm.sock" ] && (echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.1
done
[ -S "$out/run/php-fpm.sock" ] || die "php-fpm did not start: $(tail -5 "$out/log/fpm.log" "$out/log/fpm-stdout.log" 2>/dev/null)"
(echo > /dev/tcp/127.0.0.1/$port) 2>/dev/null || die "nginx did not start: $(tail -5 "$out/log/nginx-startup.log" "$out/log/nginx-stdout.log" 2>/dev/null)"
base="http://127.0.0.1:$port"
status=$(curl -fsS "$base/status.php") || die "status request failed"
echo "$status" > "$out/status.json"
jit_wanted=tracing
for kv in "${inis[@]}"; do case "$kv" in opcache.jit=*) jit_wanted=${kv#opcache.jit=} ;; esac; done
case "$status" in
  *"\"jit\":\"$jit_wanted\""*) ;;
  *) die "opcache.jit is not $jit_wanted in the pool: $status" ;;
esac
if [ "$jit_wanted" = tracing ]; then
  case "$status" in *'"jit_on":true'*) ;; *) die "the OPcache JIT is not on: $status" ;; esac
fi
php_version=$(printf '%s' "$status" | sed 's/.*"version":"\([^"]*\)".*/\1/')
log "php-fpm $php_version and nginx on 127.0.0.1:$port (JIT: $status)"
t_started=$(date +%s.%N)

# --- helpers ---------------------------------------------------------------
lines() { [ -f "$1" ] && wc -l < "$1" || echo 0; }
dmesg_lines() { dmesg 2>/dev/null | wc -l || echo 0; }
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
gdb_oracle() { # EXE CORE OUT [all-threads]
  # the crashed thread's bt comes first; then, for threaded programs, all threads
  local all=()
  [ "${4:-}" = all ] && all=(-ex "thread apply all bt")
  timeout 120 gdb -nx -batch -ex bt -ex 'info registers' -ex 'x/6i $pc' "${all[@]}" "$1" "$2" > "$3" 2>&1 || true
}
wait_core() { # PID -> path of the finished core in the cores dir
  local pid=$1 f="" size=-1 prev=-2
  for _ in $(seq 200); do
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

scenario_request() { # NAME -> sets method url and runs curl
  local name=$1
  case "$name" in
    ffi-null-code) method=GET url="/search.php?q=teacher" ;;
    shortcode-recursion) method=GET url="/teachers/profile-sarah/" ;;
    kill-segv) method=GET url="/kill.php?mode=kill" ;;
    abort) method=GET url="/abort.php?img=photo.jpg" ;;
    method-closure-include) method=POST url="/checkout.php" ;;
  esac
  if [ "$method" = POST ]; then
    curl -sS -m 60 -o /dev/null -X POST -H 'Cookie: wordpress_logged_in=lab-secret-cookie' \
      -H 'Authorization: Bearer lab-secret-token' -H 'User-Agent: coroner-lab/1.0' \
      --data 'items=book%2Cpen&coupon=SPRING' "$base$url" || true
  else
    curl -sS -m 60 -o /dev/null -H 'User-Agent: coroner-lab/1.0' "$base$url" || true
  fi
}

manifest_scenarios=()
run_scenario() { # NAME DIRNAME
  local name=$1 dir="$out/scenarios/$2" n0 f0 k0 a0 pid="" sig="" core=""
  mkdir -p "$dir"
  n0=$(lines "$out/log/nginx-error.log"); f0=$(lines "$out/log/fpm.log"); k0=$(dmesg_lines)
  local t0; t0=$(date +%s.%N)
  scenario_request "$name"
  # wait for the FPM master to report the death of the worker
  for _ in $(seq 150); do
    if tail -n +"$((f0 + 1))" "$out/log/fpm.log" | grep -q 'exited on signal'; then break; fi
    sleep 0.1
  done
  local line
  line=$(tail -n +"$((f0 + 1))" "$out/log/fpm.log" | grep -m1 'exited on signal' || true)
  [ -n "$line" ] || die "scenario $name: no worker died ($(tail -n +"$((f0 + 1))" "$out/log/fpm.log" | tail -3))"
  pid=$(printf '%s' "$line" | sed 's/.*child \([0-9]*\) exited.*/\1/')
  sig=$(printf '%s' "$line" | sed 's/.*exited on signal \([0-9]*\).*/\1/')
  if [ "$dumpable" = yes ]; then
    core=$(wait_core "$pid")
    [ -n "$core" ] || die "scenario $name: worker $pid died but left no core in $out/cores"
    mv "$core" "$dir/core"
    core="$dir/core"
    gdb_oracle "$FPM" "$core" "$dir/gdb.txt"
  fi
  sleep 0.2
  tail -n +"$((n0 + 1))" "$out/log/nginx-error.log" > "$dir/nginx-error.log" 2>/dev/null || : > "$dir/nginx-error.log"
  tail -n +"$((f0 + 1))" "$out/log/fpm.log" > "$dir/fpm.log" 2>/dev/null || : > "$dir/fpm.log"
  dmesg 2>/dev/null | tail -n +"$((k0 + 1))" | grep -E "\[$pid\]|\b$pid\b" > "$dir/kernel.log" || : > "$dir/kernel.log"
  cat "$dir/kernel.log" >> "$out/log/kernel.log"
  if [ -f "$out/truth/truth.$pid.json" ]; then mv "$out/truth/truth.$pid.json" "$dir/truth.json"; fi
  local secs; secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.2f", b-a}')
  log "$(printf '%-24s pid %-7s signal %-3s core %6s MB  %ss' "$2" "$pid" "$sig" "$([ -n "$core" ] && echo $(( $(stat -c %s "$core") / 1048576 )) || echo -)" "$secs")"
  manifest_scenarios+=("$(printf '"%s":{"name":"%s","method":"%s","url":"%s","core":"%s","pid":%s,"signal":%s,"truth_path":"%s","gdb":"%s","nginx_error":%s,"fpm_log":%s,"kernel":%s}' \
    "$2" "$name" "$method" "$(json_str "$url")" "$core" "$pid" "$sig" \
    "$([ -f "$dir/truth.json" ] && echo "$dir/truth.json")" "$([ -f "$dir/gdb.txt" ] && echo "$dir/gdb.txt")" \
    "$(json_lines "$dir/nginx-error.log")" "$(json_lines "$dir/fpm.log")" "$(json_lines "$dir/kernel.log")")")
}

: > "$out/log/kernel.log"
for s in "${scenarios[@]}"; do
  for k in $(seq "$repeat"); do
    dirname=$s
    [ "$repeat" -gt 1 ] && dirname="$s-$k"
    run_scenario "$s" "$dirname"
  done
done
t_scenarios=$(date +%s.%N)

# --- C programs ------------------------------------------------------------
manifest_c=()
if [ "$with_c" = yes ]; then
  for prog in "${ALL_C[@]}"; do
    dir="$out/c/$prog"
    mkdir -p "$dir"
    debug=true
    case "$prog" in
      pcre-null) gcc -O2 -o "$dir/$prog" "$LAB_DIR/c/$prog.c" -lpcre2-8; debug=false ;;
      thread-crash) gcc -O2 -g -pthread -o "$dir/$prog" "$LAB_DIR/c/$prog.c" ;;
      cpp-namespace) g++ -O0 -g -o "$dir/$prog" "$LAB_DIR/c/$prog.cpp" ;;
      *) gcc -O0 -g -o "$dir/$prog" "$LAB_DIR/c/$prog.c" ;;
    esac
    (cd "$dir" && exec "./$prog" > /dev/null 2>&1) &
    cpid=$!
    wait "$cpid" && crc=0 || crc=$?
    core=$(wait_core "$cpid")
    [ -n "$core" ] || die "C program $prog (pid $cpid, exit $crc) left no core"
    mv "$core" "$dir/core"
    mode=""
    [ "$prog" = thread-crash ] && mode=all
    gdb_oracle "$dir/$prog" "$dir/core" "$dir/gdb.txt" $mode
    src="$LAB_DIR/c/$prog.c"; [ -f "$src" ] || src="$LAB_DIR/c/$prog.cpp"
    manifest_c+=("$(printf '"%s":{"name":"%s","source":"%s","binary":"%s","core":"%s","gdb":"%s","signal":%d,"debug":%s}' \
      "$prog" "$prog" "$src" "$dir/$prog" "$dir/core" "$dir/gdb.txt" "$((crc - 128))" "$debug")")
  done
fi
t_c=$(date +%s.%N)

# --- manifest --------------------------------------------------------------
join() { local IFS=,; printf '%s' "$*"; }
cat > "$out/manifest.json" <<EOF
{
  "dir": "$out",
  "php_version": "$php_version",
  "php_fpm": "$FPM",
  "fpm_config": "$out/conf/php-fpm.conf",
  "php_ini_dir": ":$out/conf/php.d",
  "nginx_config": "$out/conf/nginx.conf",
  "port": $port,
  "dumpable": $([ "$dumpable" = yes ] && echo true || echo false),
  "nginx_error_log": "$out/log/nginx-error.log",
  "nginx_access_log": "$out/log/nginx-access.log",
  "fpm_log": "$out/log/fpm.log",
  "kernel_log": "$out/log/kernel.log",
  "timings": {"packages": $(awk -v a="$t_start" -v b="$t_packages" 'BEGIN{printf "%.2f", b-a}'), "start": $(awk -v a="$t_packages" -v b="$t_started" 'BEGIN{printf "%.2f", b-a}'), "scenarios": $(awk -v a="$t_started" -v b="$t_scenarios" 'BEGIN{printf "%.2f", b-a}'), "c_programs": $(awk -v a="$t_scenarios" -v b="$t_c" 'BEGIN{printf "%.2f", b-a}')},
  "scenarios": {$(join "${manifest_scenarios[@]}")},
  "c_programs": {$(join "${manifest_c[@]}")}
}
EOF
total=$(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
if [ "$keep" = yes ]; then
  log "done in ${total}s; left running (stop with: lab/run.sh --stop $out); base URL $base"
else
  log "done in ${total}s; artifacts in $out (manifest.json)"
fi
