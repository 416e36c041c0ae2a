#!/bin/bash
# TestPluginBenchmark (make bench-plugin's first step) of several trees in
# alternating rounds, so that they meet the same load (docs/benchmarks.md,
# "Plugin hot path"): each tree is a checkout (git worktree add) built with
# `make build`, and needs ../shared/data beside it.
# Usage: build/bench/alternate.sh ROUNDS TREE... (CORE=1 pins to core 1;
# default 0, as make bench-plugin)
set -euo pipefail
rounds=$1
shift
for r in $(seq "$rounds"); do
	for t in "$@"; do
		t=$(cd "$t" && pwd)
		out=$(cd "$t" && BEACONGRID_BENCH_PLUGIN=1 BEACONGRID_BIN="$t/bin" taskset -c "${CORE:-0}" \
			go test -count=1 -run '^TestPluginBenchmark$' -v ./test/plugin 2>&1) || true
		ours=$(echo "$out" | awk '/\(3000 flushes/ { print $3, $4 }')
		dec=$(echo "$out" | awk '/fluent-bit-go decoder/ { print $4 }')
		echo "round $r $t: records per CPU s, per wall s: ${ours:-failed}; decoder plugin per CPU s: ${dec:-failed}; load $(cut -d' ' -f1 /proc/loadavg)"
	done
done
