#!/usr/bin/env bash
# The README's main job: coroner's diagnosis of the crash lab's dead workers.
# usage: scripts/demo.sh CORONER_BINARY LAB_OUTPUT_DIR
set -euo pipefail
bin=$1 lab=$2
[ -f "$lab/manifest.json" ] || { echo "no lab output in $lab (run lab/run.sh --out $lab)" >&2; exit 1; }
section() { printf '\n\033[1m===== %s =====\033[0m\n\n' "$*"; }

section "coroner doctor: logs + configuration + cores of the lab"
"$bin" doctor --fpm-config "$lab/conf/php-fpm.conf" --php-ini-scan-dir ":$lab/conf/php.d" \
  --cores "$lab/scenarios" --max-cores 10 \
  "$lab/log/nginx-error.log" "$lab/log/fpm.log" "$lab/log/kernel.log"

core=$(ls "$lab"/scenarios/shortcode-recursion/core* 2>/dev/null | head -1)
if [ -n "$core" ]; then
  section "coroner analyze: the shortcode crash (/teachers/profile-sarah/), native + PHP stacks"
  "$bin" analyze --registers=false --timings "$core"
fi
