#!/usr/bin/env bash
# The Apache lab end to end: crashes Apache httpd + mod_php children with the
# lab's PHP scenarios (lab/run.sh --apache), then prints, per crash, what
# `coroner analyze` says (the signal the core records, the signal analysed
# after a re-raise and where it was read, the fault, the rule and its
# confidence, the SAPI and the request read from the core, time and peak
# memory), then `coroner doctor` on Apache's error log, the cores and the
# lab's Apache configuration (PHP deaths, groups, cores linked, the audit's
# verdict), and `coroner logs` on the error log alone with and without the
# configuration (an Apache child counts as PHP only with mod_php). Removes
# the lab afterwards. Run as root.
#
# usage: bench/apache.sh [--coroner BIN] [--keep-lab]
set -euo pipefail

coroner="" keep=no
while [ $# -gt 0 ]; do
  case "$1" in
    --coroner) coroner=$2; shift 2 ;;
    --keep-lab) keep=yes; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$coroner" ]; then
  (cd "$root" && CGO_ENABLED=0 go build -o bin/coroner ./cmd/coroner)
  coroner=$root/bin/coroner
fi
lab=$(mktemp -d -t coroner-bench-apache-XXXXXX)
[ "$keep" = yes ] || trap 'rm -rf "$lab"' EXIT
t0=$(date +%s.%N)
"$root/lab/run.sh" --apache --out "$lab" > "$lab.log" 2>&1 || { tail -20 "$lab.log"; rm -f "$lab.log"; exit 1; }
t1=$(date +%s.%N)
rm -f "$lab.log"
echo "host: $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "lab --apache: $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s for $(find "$lab/scenarios" -mindepth 1 -maxdepth 1 -type d | wc -l) crashes"
printf '%-24s %-8s %-20s %-28s %-18s %-40s %-15s %s\n' scenario recorded analysed "re-raise" fault rule sapi "uri | time, peak RSS"
cores=()
for dir in "$lab"/scenarios/*/; do
  name=$(basename "$dir")
  core=$(find "$dir" -maxdepth 1 -name 'core.*' | head -1)
  [ -n "$core" ] || { echo "$name: no core"; continue; }
  cores+=(--cores "$dir")
  /usr/bin/time -f '%e s, %M KB' -o "$lab/time" "$coroner" analyze --json "$core" > "$lab/report.json"
  python3 - "$lab/report.json" "$name" "$(cat "$lab/time")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
name, took = sys.argv[2], sys.argv[3]
sig = r.get("signal") or {}
rr = r.get("reraise")
rec = (rr or {}).get("recorded") or sig
d = (r.get("diagnosis") or [{}])[0]
php = r.get("php") or {}
req = php.get("request") or {}
print(f"{name:24} {rec.get('code_name', ''):8} {sig.get('name', '') + ' ' + sig.get('code_name', ''):20} "
      f"{(rr or {}).get('evidence', '-'):28} {(r.get('fault') or {}).get('kind', ''):18} "
      f"{d.get('rule', '-') + '/' + d.get('confidence', ''):40} {php.get('sapi', '-'):15} {req.get('uri', '-')} | {took}")
PY
done
echo
/usr/bin/time -f '%e s, %M KB' -o "$lab/time" "$coroner" doctor --json --apache-config "$lab/conf/apache2.conf" --max-cores 10 "${cores[@]}" "$lab/log/apache-error.log" > "$lab/doctor.json"
python3 - "$lab/doctor.json" "$(cat "$lab/time")" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = (r.get("logs") or {}).get("summary") or {}
print(f"doctor: {sys.argv[2]}; {s.get('incidents')} PHP deaths, {s.get('other_incidents', 0)} of other programs; "
      f"{r.get('analysed')} cores analysed, {len(r.get('groups') or [])} groups")
for g in r.get("groups") or []:
    d = (g.get("diagnosis") or [{}])[0]
    uris = ", ".join(c["key"] for c in g.get("uris") or [])
    print(f"  {g.get('count')} x {d.get('rule', '-')}/{d.get('confidence', '')} on {uris}")
for p in r.get("crashed_pools") or []:
    print(f"  {p.get('installation')}: {p.get('deaths')} deaths, {p.get('cores_dumped')} with a core logged; audit: cores written = {p.get('cores_written')}; notes {p.get('notes') or []}")
PY
: > "$lab/no-php.conf"
for conf in "$lab/conf/apache2.conf" "$lab/no-php.conf"; do
  "$coroner" logs --json --apache-config "$conf" "$lab/log/apache-error.log" > "$lab/logs.json" 2> /dev/null || true
  python3 - "$lab/logs.json" "$conf" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
s = r.get("summary") or {}
why = sorted({i.get("process_why", "") for i in r.get("incidents") or []})
label = "the lab's configuration" if not sys.argv[2].endswith("no-php.conf") else "a configuration without mod_php"
print(f"logs, error log only, {label}: {s.get('incidents')} PHP deaths, {s.get('other_incidents', 0)} others {why}")
PY
done
[ "$keep" = no ] || echo "lab kept in $lab"
