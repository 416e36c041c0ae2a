#!/bin/bash
# Instructions per record of the in-process flush path (docs/benchmarks.md,
# "Plugin hot path"), by part: cachegrind counts BenchmarkFlushZeekHTTP at
# 30 and 90 flushes of 1000 records; the difference over 60,000 records
# leaves out the set-up. Unlike time, the counts do not depend on the load.
# Usage: build/bench/instructions.sh [repo dir] (default: the current one)
set -euo pipefail
repo=$(cd "${1:-.}" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$repo" && go test -c -o "$tmp/instance.test" ./plugin/instance
cd "$repo/plugin/instance"
for n in 30 90; do
	valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$tmp/cg$n.out" \
		"$tmp/instance.test" -test.run '^$' -test.bench FlushZeekHTTP -test.benchtime ${n}x >/dev/null 2>&1
done
cg_diff "$tmp/cg30.out" "$tmp/cg90.out" > "$tmp/cgd.out" 2>/dev/null
cg_annotate --show-percs=no --threshold=0.0001 "$tmp/cgd.out" 2>/dev/null |
	awk '$1 ~ /^-?[0-9,]+$/ && $2 ~ /:/ { x = $1; gsub(",", "", x); print x / 60000, $2 }' |
	awk '{ split($2, a, ":"); f = a[1]; fn = a[2]
		if (fn ~ /plugin\/chunk|tinylib\/msgp/ || f ~ /plugin\/chunk|tinylib/ || f ~ /bytealg\/equal/) c = "1 reader (plugin/chunk, msgp, string compares)"
		else if (f ~ /\/fields\// || fn ~ /beacongrid\/fields/) c = "2 flow key (fields)"
		else if (f ~ /plugin\/instance/ || fn ~ /plugin\/instance/) c = "3 instance loop (plugin/instance)"
		else if (f ~ /\/cache\/|ristretto|xxhash|maphash/ || fn ~ /beacongrid\/cache|ristretto|xxhash|maphash/) c = "4 cache"
		else if (fn ~ /^runtime\./ || f ~ /\/runtime\//) c = "6 Go runtime"
		else c = "5 detector, model and the rest"
		s[c] += $1; t += $1 }
		END { for (k in s) printf "%-48s %6.0f\n", k, s[k]; printf "%-48s %6.0f\n", "7 total", t }' | sort
