#!/usr/bin/env bash
# Builds the training set: simulated days (several seeds, 25 implanted
# hosts per 100 so beacons are not too rare to learn, and a second day per
# seed with the simulator's --training-mix) through `beacongrid features`.
# Rows are grouped by seed and destination: the training split keeps every
# sample of one flow on one side, while a shared service (seen under every
# seed) is learnt from some seeds and validated on others.
# usage: make_features.sh BEACONGRID OUTDIR OUT.csv SEED...
set -euo pipefail
bin=$1 out=$2 csv=$3; shift 3
mkdir -p "$out"
: > "$csv.tmp"
first=1
# day NAME SEED HOSTS SIMULATE-FLAGS...: one simulated day's feature rows.
day() {
  local name=$1 seed=$2 n=$3; shift 3
  local d="$out/$name"
  "$bin" simulate --hosts "$n" --days 1 --seed "$seed" "$@" --out "$d" >/dev/null
  "$bin" features --min-active "${MIN_ACTIVE:-10}" --every "${EVERY:-240}" --group-prefix "$name:" --truth "$d/truth.csv" --out "$d/features.csv" "$d/http.log" "$d/ssl.log" "$d/conn.log"
  if [ $first = 1 ]; then cat "$d/features.csv" >> "$csv.tmp"; first=0
  else tail -n +2 "$d/features.csv" >> "$csv.tmp"; fi
  rm -f "$d"/*.log
}
for seed in "$@"; do
  # Vary the network's size so prevalence features do not learn one size;
  # small networks teach timing where prevalence cannot help.
  hosts=(40 80 150 250 15 30)
  day "sim-$seed" "$seed" "${hosts[$((seed % 6))]}" --c2-per-100 25
  # A second day (seed + 10000) with the simulator's training mix: shared
  # C2 servers of 2-10 hosts, every-minute beacons and every C2 kind in
  # networks of 30 to 200 hosts.
  mixhosts=(30 40 50 60 70 100 120 200)
  day "mix-$seed" "$((seed + 10000))" "${mixhosts[$((seed % 8))]}" --c2-per-100 10 --training-mix
done
mv "$csv.tmp" "$csv"
