#!/usr/bin/env python3
"""Score feature rows with LightGBM itself, for the Go parity test.

    predict.py --model M.txt [--input FEATURES.csv] [--edge-rows] [--probe-rows N] --out OUT.csv

Rows come from --input (a features CSV: the model's feature columns are picked
by name, every other column is ignored), from --edge-rows (zeros, NaN, +-inf,
huge and tiny values, -0, every split threshold of the model exactly and one
float either side of it) and from --probe-rows (random rows whose values sit
mostly on or next to split thresholds, with NaN and zeros mixed in), in that
order. The output CSV has a `case` column naming where the row came from, the
model's features in model order, and `prediction`: LightGBM's probability
(Booster.predict, sigmoid applied). Floats are written with Python's repr, so
they parse back to the same float64 bits.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys

import numpy as np

EXPECTED_LIGHTGBM = "3.3.5"


def parse_float(s: str) -> float:
    s = s.strip()
    if s == "" or s.lower() in ("nan", "na", "null", "none"):
        return math.nan
    return float(s)


def read_input(path: str, names: list[str]):
    with open(path, newline="") as fh:
        r = csv.reader(fh)
        header = [h.strip() for h in next(r)]
        missing = [n for n in names if n not in header]
        if missing:
            raise SystemExit(f"error: {path} lacks the model's feature columns {missing}")
        idx = [header.index(n) for n in names]
        case_i = header.index("case") if "case" in header else None
        cases, rows = [], []
        for lineno, row in enumerate(r, start=2):
            if not row:
                continue
            rows.append([parse_float(row[i]) for i in idx])
            cases.append(row[case_i] if case_i is not None else f"input:{lineno}")
    return cases, rows


def split_thresholds(booster) -> dict[int, list[float]]:
    """Numerical split thresholds per feature index, from the model itself."""
    out: dict[int, set] = {}

    def walk(node):
        if "split_feature" not in node:
            return
        if node.get("decision_type") == "<=":
            out.setdefault(node["split_feature"], set()).add(float(node["threshold"]))
        walk(node["left_child"])
        walk(node["right_child"])

    for t in booster.dump_model()["tree_info"]:
        walk(t["tree_structure"])
    return {k: sorted(v) for k, v in out.items()}


def edge_rows(n: int, thresholds: dict[int, list[float]]):
    nan, inf = math.nan, math.inf
    fills = {
        "zeros": 0.0,
        "neg_zero": -0.0,
        "nan": nan,
        "pos_inf": inf,
        "neg_inf": -inf,
        "huge": 1e308,
        "neg_huge": -1e308,
        "tiny": 1e-300,
        "neg_tiny": -1e-300,
        "denormal": 5e-324,
        "below_zero_threshold": 1e-36,
        "ones": 1.0,
        "minus_one": -1.0,
    }
    for name, v in fills.items():
        yield f"edge:all_{name}", [v] * n
    for j in range(n):
        for name in ("nan", "pos_inf", "neg_inf", "huge", "neg_huge"):
            row = [0.0] * n
            row[j] = fills[name]
            yield f"edge:f{j}_{name}_else_zero", row
            row = [nan] * n
            row[j] = 0.0 if name == "nan" else fills[name]
            yield f"edge:f{j}_{'zero' if name == 'nan' else name}_else_nan", row
    for j, ts in sorted(thresholds.items()):
        for k, t in enumerate(ts):
            for tag, v in (("at", t), ("below", float(np.nextafter(t, -inf))), ("above", float(np.nextafter(t, inf)))):
                row = [0.0] * n
                row[j] = v
                yield f"edge:f{j}_thr{k}_{tag}", row


def probe_rows(n: int, count: int, thresholds: dict[int, list[float]], seed: int):
    rng = np.random.default_rng(seed)
    for i in range(count):
        row = []
        for j in range(n):
            ts = thresholds.get(j)
            u = rng.random()
            if u < 0.08:
                row.append(math.nan)
            elif u < 0.13 or not ts:
                row.append(0.0 if u < 0.13 else float(rng.normal(0, 10)))
            else:
                t = ts[int(rng.integers(len(ts)))]
                w = rng.random()
                if w < 0.3:
                    row.append(t)
                elif w < 0.45:
                    row.append(float(np.nextafter(t, -math.inf)))
                elif w < 0.6:
                    row.append(float(np.nextafter(t, math.inf)))
                else:
                    lo, hi = ts[0], ts[-1]
                    span = (hi - lo) or abs(hi) or 1.0
                    row.append(float(rng.uniform(lo - 0.1 * span, hi + 0.1 * span)))
        yield f"probe:{i}", row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Score feature rows with LightGBM for the Go parity test.")
    ap.add_argument("--model", required=True, help="LightGBM text model")
    ap.add_argument("--input", help="features CSV to score")
    ap.add_argument("--edge-rows", action="store_true", help="add edge-case rows")
    ap.add_argument("--probe-rows", type=int, default=0, help="add N random rows around split thresholds")
    ap.add_argument("--seed", type=int, default=1, help="seed for --probe-rows (default 1)")
    ap.add_argument("--out", required=True, help="output CSV ('-' for stdout)")
    args = ap.parse_args(argv)

    import lightgbm as lgb

    if lgb.__version__ != EXPECTED_LIGHTGBM:
        print(f"warning: lightgbm {lgb.__version__}, the project pins {EXPECTED_LIGHTGBM}", file=sys.stderr)
    booster = lgb.Booster(model_file=args.model)
    names = booster.feature_name()
    n = len(names)
    thresholds = split_thresholds(booster)

    cases: list[str] = []
    rows: list[list[float]] = []
    if args.input:
        c, r = read_input(args.input, names)
        cases += c
        rows += r
    if args.edge_rows:
        for c, r in edge_rows(n, thresholds):
            cases.append(c)
            rows.append(r)
    if args.probe_rows > 0:
        for c, r in probe_rows(n, args.probe_rows, thresholds, args.seed):
            cases.append(c)
            rows.append(r)
    if not rows:
        ap.error("no rows: give --input, --edge-rows or --probe-rows")

    X = np.asarray(rows, dtype=np.float64)
    pred = booster.predict(X)  # probabilities: the binary objective's sigmoid is applied

    out = sys.stdout if args.out == "-" else open(args.out + ".tmp", "w", newline="")
    try:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["case", *names, "prediction"])
        for c, r, p in zip(cases, X.tolist(), pred.tolist()):
            w.writerow([c, *(repr(v) for v in r), repr(float(p))])
    finally:
        if out is not sys.stdout:
            out.close()
    if out is not sys.stdout:
        os.replace(args.out + ".tmp", args.out)
        print(f"predict: {len(rows)} rows scored by lightgbm {lgb.__version__} -> {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
