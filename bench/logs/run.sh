#!/bin/sh
# Benchmark `coroner logs` on a generated mixed log set (default 1 GiB:
# access 70%, kern.log 15%, nginx error 10%, PHP-FPM 5%; mostly ordinary
# lines and a few hundred crashes) against `grep -c 'exited on signal'`
# over the same files in the same run. Reports throughput, peak RSS and the
# ratio. Usage: bench/logs/run.sh [DIR] [SIZE_MIB] [CRASHES]
set -eu
cd "$(dirname "$0")/../.."
DIR=${1:-${TMPDIR:-/tmp}/coroner-logbench}
SIZE=${2:-1024}
CRASHES=${3:-300}
BIN=$DIR/coroner
mkdir -p "$DIR/logs"
go build -o "$BIN" ./cmd/coroner
if [ ! -f "$DIR/logs/.size-$SIZE-$CRASHES" ]; then
	rm -f "$DIR"/logs/*.log "$DIR"/logs/.size-*
	go run ./bench/logs/gen -dir "$DIR/logs" -size "$SIZE" -crashes "$CRASHES"
	touch -d '2026-11-27 01:00:00' "$DIR/logs/kern.log" # year of the syslog lines
	touch "$DIR/logs/.size-$SIZE-$CRASHES"
fi
FILES="$DIR/logs/access.log $DIR/logs/error.log $DIR/logs/kern.log $DIR/logs/php8.2-fpm.log"
BYTES=$(cat $FILES | wc -c)
cat $FILES > /dev/null # warm the page cache for both contenders

run() { # label, command...: prints seconds and max RSS KiB
	label=$1; shift
	best=""
	for i in 1 2 3; do
		/usr/bin/time -f "%e %M" -o "$DIR/time.txt" "$@" > "$DIR/out.txt"
		set -- "$@"
		t=$(cut -d' ' -f1 "$DIR/time.txt"); m=$(cut -d' ' -f2 "$DIR/time.txt")
		if [ -z "$best" ] || [ "$(echo "$t < $best" | bc)" = 1 ]; then best=$t; rss=$m; fi
	done
	mbs=$(echo "scale=1; $BYTES / 1048576 / $best" | bc)
	printf '%-34s %7.2f s %8.1f MiB/s %8d KiB max RSS\n' "$label" "$best" "$mbs" "$rss"
	echo "$best" > "$DIR/$label.t"
}

echo "input: $(echo "scale=1; $BYTES/1048576" | bc) MiB in 4 files, $CRASHES crashes; best of 3"
run grep grep -c 'exited on signal' $FILES
run coroner-1core env GOMAXPROCS=1 "$BIN" logs --tz UTC --json $FILES
run coroner-2core "$BIN" logs --tz UTC --json $FILES
G=$(cat "$DIR/grep.t"); C1=$(cat "$DIR/coroner-1core.t"); C2=$(cat "$DIR/coroner-2core.t")
echo "ratio coroner(1 core)/grep: $(echo "scale=2; $C1 / $G" | bc)x   coroner(all cores)/grep: $(echo "scale=2; $C2 / $G" | bc)x"
grep -c '"pid"' "$DIR/out.txt" | sed 's/^/JSON "pid" fields in the last run: /'
