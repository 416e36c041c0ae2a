#!/usr/bin/env bash
# Builds the training set: simulated days (several seeds, 25 implanted
# hosts per 100 so beacons are not too rare to learn) through `beacongrid features`.
# Rows are grouped by seed and destination: the training split keeps every
# sample of one flow on one side, while a shared service (seen under every
# seed) is learnt from some seeds and validated on others.
# usage: make_features.sh BEACONGRID OUTDIR OUT.csv SEED...
set -euo pipefail
bin=$1 out=$2 csv=$3; shift 3
mkdir -p "$out"
: > "$csv.tmp"
first=1
for seed in "$@"; do
  d="$out/sim-$seed"
  # Vary the network's size so prevalence features do not learn one size;
  # small networks teach timing where prevalence cannot help.
  hosts=(40 80 150 250 15 30)
  n=${hosts[$((seed % 6))]}
  "$bin" simulate --hosts "$n" --days 1 --seed "$seed" --c2-per-100 25 --out "$d" >/dev/null
  "$bin" features --min-active "${MIN_ACTIVE:-10}" --group-prefix "seed$seed:" --truth "$d/truth.csv" --out "$d/features.csv" "$d/http.log" "$d/ssl.log" "$d/conn.log"
  if [ $first = 1 ]; then cat "$d/features.csv" >> "$csv.tmp"; first=0
  else tail -n +2 "$d/features.csv" >> "$csv.tmp"; fi
  rm -f "$d"/*.log
done
mv "$csv.tmp" "$csv"
