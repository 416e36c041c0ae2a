#!/usr/bin/env python3
"""Train beacongrid's beacon classifier (LightGBM 3.3.5) from a features CSV.

Input contract (one row per flow):
  * a header row;
  * `label`: 1 = beacon, 0 = benign;
  * optional non-feature columns `src`, `dst`, `kind`, `split`, `group`, and
    `at_minute` (the event-time minute a row was sampled at, written by
    `beacongrid features`; never a feature); more with --exclude;
  * every other column is a float feature; column order = feature order, the
    order the Go side must pass features in. Empty cells, `nan` and `NaN` are
    missing values; `inf`/`-inf` are accepted.

Outputs:
  * model text (`--out-model`, LightGBM text format, header version=v3, the
    only kind github.com/dmitryikh/leaves reads);
  * metadata JSON (`--out-meta`): version, feature names, calibrated
    threshold, benign baseline (per-feature median of benign training rows, used
    by the Go side's counterfactual explanations), metrics, provenance.

Splitting: rows of one group never straddle train and validation. The group is
the `group` column when present, else `dst`, else each row is its own group
(a warning is printed). A `split` column, when present, overrides this:
`train`, `valid` (or `val`, `validation`) and `test` rows go where they say;
`test` rows are scored only for the report.

Threshold: the smallest score t such that, on validation benign rows, the
share with score >= t is at most --target-fpr. The Go detector alerts when
score >= threshold.

Training is deterministic for a given set of rows, seed and LightGBM build
(deterministic=True, force_row_wise=True, fixed num_threads): rows are put in
one canonical order (group, src, dst, at_minute, then the whole row) before
anything else, so the file's row order does not matter.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import hashlib
import json
import math
import os
import re
import sys
import time

import numpy as np

NON_FEATURE = ("src", "dst", "kind", "split", "group", "at_minute")
LABEL = "label"
EXPECTED_LIGHTGBM = "3.3.5"
# LightGBM refuses these in feature names (JSON special characters); whitespace
# would be silently rewritten to '_', so refuse it too.
BAD_NAME = re.compile(r"[\s\"',:\[\]{}]")
SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "validation": "valid", "test": "test"}


class DataError(Exception):
    pass


def parse_float(s: str, where: str) -> float:
    s = s.strip()
    if s == "" or s.lower() in ("nan", "na", "null", "none"):
        return math.nan
    try:
        return float(s)
    except ValueError:
        raise DataError(f"{where}: not a number: {s!r}") from None


def canonical_key(header):
    """Sort key putting rows in one order whatever order the file has them in:
    group, src, dst, at_minute (as a number), then the whole row. LightGBM's
    result depends on row order (its binning sample and bagging pick rows by
    index), so without this the same rows in another order train another
    model. Rows equal in every column are interchangeable."""
    at = {h: header.index(h) for h in ("group", "src", "dst", "at_minute") if h in header}

    def minute(s):
        try:
            return float(s)
        except ValueError:
            return math.inf

    def key(item):
        row = item[1]
        return (
            tuple(row[at[h]] for h in ("group", "src", "dst") if h in at),
            minute(row[at["at_minute"]]) if "at_minute" in at else 0.0,
            row,
        )

    return key


def read_features_csv(path: str, exclude=()):
    """Return (feature_names, X float64[n, f], y int[n], columns dict of the
    non-feature string columns that are present). Columns named in exclude
    are ignored."""
    with open(path, newline="") as fh:
        r = csv.reader(fh)
        try:
            header = next(r)
        except StopIteration:
            raise DataError(f"{path}: empty file") from None
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            dups = sorted({h for h in header if header.count(h) > 1})
            raise DataError(f"{path}: duplicate columns: {dups}")
        if LABEL not in header:
            raise DataError(f"{path}: no `{LABEL}` column")
        unknown = sorted(set(exclude) - set(header))
        if unknown:
            raise DataError(f"{path}: --exclude names columns the file lacks: {unknown}")
        feat_idx = [i for i, h in enumerate(header) if h != LABEL and h not in NON_FEATURE and h not in exclude]
        names = [header[i] for i in feat_idx]
        if not names:
            raise DataError(f"{path}: no feature columns")
        bad = [n for n in names if not n or BAD_NAME.search(n)]
        if bad:
            raise DataError(f"{path}: feature names must not be empty or contain whitespace or any of \"',:[]{{}}: {bad}")
        li = header.index(LABEL)
        extra = {h: header.index(h) for h in NON_FEATURE if h in header}
        rows = []
        for lineno, row in enumerate(r, start=2):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if len(row) != len(header):
                raise DataError(f"{path}:{lineno}: {len(row)} fields, header has {len(header)}")
            rows.append((lineno, row))
        rows.sort(key=canonical_key(header))
        X, y = [], []
        cols = {h: [] for h in extra}
        for lineno, row in rows:
            lab = row[li].strip()
            if lab not in ("0", "1", "0.0", "1.0"):
                raise DataError(f"{path}:{lineno}: label must be 0 or 1, got {lab!r}")
            y.append(int(float(lab)))
            X.append([parse_float(row[i], f"{path}:{lineno}:{header[i]}") for i in feat_idx])
            for h, i in extra.items():
                cols[h].append(row[i])
    if not X:
        raise DataError(f"{path}: no data rows")
    return names, np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.int64), cols


def grouped_split(y, cols, valid_frac: float, seed: int):
    """Return (train_idx, valid_idx, test_idx, how)."""
    n = y.size
    if "split" in cols:
        sp = [SPLIT_ALIASES.get(s.strip().lower()) for s in cols["split"]]
        unknown = sorted({cols["split"][i] for i, s in enumerate(sp) if s is None})
        if unknown:
            raise DataError(f"unknown split values {unknown}; use train, valid or test")
        sp = np.asarray(sp)
        return (np.flatnonzero(sp == "train"), np.flatnonzero(sp == "valid"), np.flatnonzero(sp == "test"), "split column")

    if "group" in cols:
        groups, how = cols["group"], "group column"
    elif "dst" in cols:
        groups, how = cols["dst"], "dst column"
    else:
        print("warning: no group or dst column: splitting by row, so near-duplicate flows may leak into validation", file=sys.stderr)
        groups, how = [str(i) for i in range(n)], "row"

    from sklearn.model_selection import StratifiedGroupKFold

    n_splits = max(2, int(round(1.0 / valid_frac)))
    g = np.unique(np.asarray(groups), return_inverse=True)[1]
    n_pos_groups = np.unique(g[y == 1]).size
    if n_pos_groups < n_splits:
        raise DataError(f"only {n_pos_groups} groups hold beacon rows; need at least {n_splits} for a grouped split")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    tr, va = next(folds.split(np.zeros(n), y, g))
    assert not set(g[tr]) & set(g[va])
    return np.sort(tr), np.sort(va), np.array([], dtype=np.int64), how + f" (StratifiedGroupKFold 1/{n_splits})"


def flow_keys(cols, idx):
    """Flow ids (group or dst, plus src) of rows idx, or None without those columns."""
    g = cols.get("group") or cols.get("dst")
    if g is None or "src" not in cols:
        return None
    return np.asarray([g[i] + "|" + cols["src"][i] for i in idx])


def calibrate_threshold(scores_benign: np.ndarray, target_fpr: float) -> float:
    """Smallest t with mean(scores_benign >= t) <= target_fpr."""
    s = np.sort(scores_benign)[::-1]  # descending
    k = int(math.floor(target_fpr * s.size + 1e-9))  # false positives allowed
    if k >= s.size:
        return float(s[-1])
    # Every benign score strictly above s[k] may alert (there are at most k of
    # them); s[k] itself must not: the next float above it is the smallest
    # threshold that keeps it out.
    return float(np.nextafter(s[k], np.inf))


def metrics_at(y, p, t):
    pred = p >= t
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    return {
        "rows": int(y.size),
        "positives": int(np.sum(y == 1)),
        "negatives": int(np.sum(y == 0)),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "precision": tp / (tp + fp) if tp + fp else None,
        "recall": tp / (tp + fn) if tp + fn else None,
        "fpr": fp / (fp + tn) if fp + tn else None,
    }


def ranking_metrics(y, p):
    from sklearn.metrics import average_precision_score, roc_auc_score

    if np.unique(y).size < 2:
        return {}
    return {"roc_auc": float(roc_auc_score(y, p)), "average_precision": float(average_precision_score(y, p))}


def json_float(v):
    return None if v is None or not math.isfinite(v) else float(v)


def atomic_write(path: str, data: bytes):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Train the beacongrid LightGBM model from a features CSV.")
    ap.add_argument("--features", required=True, help="features CSV (see module doc for the contract)")
    ap.add_argument("--out-model", required=True, help="LightGBM text model to write")
    ap.add_argument("--out-meta", required=True, help="metadata JSON to write")
    ap.add_argument("--seed", type=int, default=1, help="seed for the split and LightGBM (default 1)")
    ap.add_argument("--target-fpr", type=float, default=0.001, help="max false-positive rate on validation benign rows (default 0.001)")
    ap.add_argument("--valid-frac", type=float, default=0.2, help="share of groups held out for validation (default 0.2)")
    ap.add_argument("--num-boost-round", type=int, default=300, help="max trees (default 300)")
    ap.add_argument("--calibrate", default="flow", choices=["flow", "row"], help="calibrate the threshold on benign flows (their highest score) or rows")
    ap.add_argument("--pos-weight", type=float, default=5.0, help="weight of beacon rows (0 = n_benign/n_beacon; default 5)")
    ap.add_argument("--stop-metric", default="binary_logloss", choices=["binary_logloss", "average_precision", "auc"], help="validation metric early stopping watches")
    ap.add_argument("--early-stopping", type=int, default=30, help="rounds without validation improvement before stopping (default 30; 0 = off)")
    ap.add_argument("--num-leaves", type=int, default=31)
    ap.add_argument("--learning-rate", type=float, default=0.1)
    ap.add_argument("--num-threads", type=int, default=1, help="LightGBM threads (default 1; results depend on it)")
    ap.add_argument("--decreasing", default="log_prevalence,prevalence_share",
                    help="comma-separated features the score may only fall with (LightGBM monotone constraint -1): "
                         "more hosts reaching a destination never makes it more suspicious (default log_prevalence,prevalence_share; '' = none)")
    ap.add_argument("--exclude", default="", help="comma-separated columns to ignore (neither features nor labels)")
    ap.add_argument("--version-prefix", default=None, help="version id prefix (default: UTC date YYYYMMDD, or SOURCE_DATE_EPOCH's)")
    args = ap.parse_args(argv)
    if not 0 < args.target_fpr < 1:
        ap.error("--target-fpr must be in (0, 1)")
    if not 0 < args.valid_frac < 0.5:
        ap.error("--valid-frac must be in (0, 0.5)")
    if not 1 <= args.num_boost_round <= 1000:
        ap.error("--num-boost-round must be in [1, 1000]")

    import lightgbm as lgb

    if lgb.__version__ != EXPECTED_LIGHTGBM:
        print(
            f"error: lightgbm {lgb.__version__} is installed; beacongrid needs {EXPECTED_LIGHTGBM} "
            "(4.x writes version=v4 model files that the Go reader refuses). Use the venv from `make $(VENV)/.ok`.",
            file=sys.stderr,
        )
        return 2

    t0 = time.monotonic()
    try:
        exclude = tuple(c.strip() for c in args.exclude.split(",") if c.strip())
        names, X, y, cols = read_features_csv(args.features, exclude)
        tr, va, te, how = grouped_split(y, cols, args.valid_frac, args.seed)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t_read = time.monotonic() - t0
    for part, idx in (("train", tr), ("validation", va)):
        if idx.size == 0 or np.unique(y[idx]).size < 2:
            print(f"error: the {part} split needs both benign and beacon rows", file=sys.stderr)
            return 2

    n_pos, n_neg = int(y[tr].sum()), int((y[tr] == 0).sum())
    params = {
        "objective": "binary",
        # Early stopping watches the first metric (--stop-metric).
        "metric": [args.stop_metric] + [m for m in ("binary_logloss", "average_precision", "auc") if m != args.stop_metric],
        "boosting": "gbdt",
        "learning_rate": args.learning_rate,
        "num_leaves": args.num_leaves,
        "max_depth": -1,
        "min_data_in_leaf": 20,
        "min_sum_hessian_in_leaf": 1e-3,
        "feature_fraction": 0.9,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "lambda_l2": 1.0,
        "max_bin": 255,
        # Class imbalance: weight beacons by --pos-weight (0: up to the benign
        # mass). Scores are then not calibrated probabilities of the real base
        # rate; the threshold is calibrated on validation instead. Full
        # balancing pushes scores of benign periodic flows towards 1 and makes
        # early stopping quit after a few trees: a moderate weight ranks better.
        "scale_pos_weight": args.pos_weight if args.pos_weight > 0 else n_neg / n_pos,
        "seed": args.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": args.num_threads,
        "verbosity": -1,
    }
    dec = [d for d in args.decreasing.split(",") if d]
    unknown = [d for d in dec if d not in names]
    if unknown:
        print(f"error: --decreasing names unknown features {unknown}", file=sys.stderr)
        return 2
    if dec:
        params["monotone_constraints"] = [-1 if n in dec else 0 for n in names]
        params["monotone_constraints_method"] = "intermediate"
    dtrain = lgb.Dataset(X[tr], label=y[tr], feature_name=names, free_raw_data=False)
    dvalid = lgb.Dataset(X[va], label=y[va], reference=dtrain, free_raw_data=False)
    callbacks = [lgb.log_evaluation(period=0)]
    if args.early_stopping > 0:
        callbacks.append(lgb.early_stopping(args.early_stopping, first_metric_only=True, verbose=False))
    t1 = time.monotonic()
    booster = lgb.train(params, dtrain, num_boost_round=args.num_boost_round, valid_sets=[dvalid], valid_names=["valid"], callbacks=callbacks)
    t_train = time.monotonic() - t1
    best_iter = booster.best_iteration if booster.best_iteration and booster.best_iteration > 0 else booster.current_iteration()

    model_text = booster.model_to_string(num_iteration=best_iter)
    head = model_text.split("\n", 2)[:2]
    if head != ["tree", "version=v3"]:
        print(f"error: unexpected model header {head!r}; the Go reader needs tree/version=v3", file=sys.stderr)
        return 2
    # Score exactly what is shipped: reload the text and predict from it.
    shipped = lgb.Booster(model_str=model_text)
    p_va = shipped.predict(X[va])
    p_tr = shipped.predict(X[tr])
    # The detector scores a flow many times a day and alerts once any score
    # passes: what must stay under the target is the share of benign FLOWS
    # whose highest score passes, not the share of rows.
    flow_ids = flow_keys(cols, va)
    if flow_ids is not None and args.calibrate == "flow":
        benign = y[va] == 0
        flow_max = {}
        for f, p in zip(flow_ids[benign], p_va[benign]):
            if p > flow_max.get(f, -1.0):
                flow_max[f] = p
        calib = np.fromiter(flow_max.values(), dtype=np.float64)
        calib_unit = "benign flows (highest score of each)"
        kind_of = dict(zip(flow_ids[benign], np.asarray(cols["kind"])[va][benign])) if "kind" in cols else {}
        highest = sorted(flow_max.items(), key=lambda kv: -kv[1])[:5]
        highest = [{"flow": f, "kind": str(kind_of.get(f, "")), "score": float(p)} for f, p in highest]
    else:
        calib = p_va[y[va] == 0]
        calib_unit = "benign rows"
        highest = []
    thr = calibrate_threshold(calib, args.target_fpr)

    benign_tr = X[tr][y[tr] == 0]
    baseline = {}
    for j, n in enumerate(names):
        col = benign_tr[:, j]
        col = col[~np.isnan(col)]
        baseline[n] = json_float(float(np.median(col))) if col.size else None

    importance = dict(zip(names, (float(v) for v in shipped.feature_importance(importance_type="gain"))))
    metrics = {
        "split": how,
        "target_fpr": args.target_fpr,
        "fpr_resolution": 1.0 / max(1, int((y[va] == 0).sum())),
        "best_iteration": int(best_iter),
        "num_trees": int(shipped.num_trees()),
        "train": {**metrics_at(y[tr], p_tr, thr), **ranking_metrics(y[tr], p_tr)},
        "validation": {**metrics_at(y[va], p_va, thr), **ranking_metrics(y[va], p_va)},
    }
    if "kind" in cols:
        kinds = np.asarray(cols["kind"])[va]
        metrics["validation_by_kind"] = {
            k: {"rows": int(np.sum(kinds == k)), "flagged": int(np.sum((kinds == k) & (p_va >= thr))), "label": int(round(float(y[va][kinds == k].mean())))}
            for k in sorted(set(kinds.tolist()))
        }
    if highest:
        metrics["highest_benign_flows"] = highest
    if te.size:
        p_te = shipped.predict(X[te])
        metrics["test"] = {**metrics_at(y[te], p_te, thr), **ranking_metrics(y[te], p_te)}
    metrics["feature_gain"] = dict(sorted(importance.items(), key=lambda kv: -kv[1]))

    sde = os.environ.get("SOURCE_DATE_EPOCH")
    now = dt.datetime.fromtimestamp(int(sde), dt.timezone.utc) if sde else dt.datetime.now(dt.timezone.utc)
    model_bytes = model_text.encode()
    digest = hashlib.sha256(model_bytes).hexdigest()
    prefix = args.version_prefix or now.strftime("%Y%m%d")
    with open(args.features, "rb") as fh:
        data_sha = hashlib.sha256(fh.read()).hexdigest()
    meta = {
        "version": f"{prefix}-{digest[:12]}",
        "features": names,
        "threshold": thr,
        "baseline": baseline,
        "lightgbm": lgb.__version__,
        "trained_at": now.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "train_rows": int(tr.size),
        "valid_rows": int(va.size),
        "model_sha256": digest,
        "data_sha256": data_sha,
        "data_file": os.path.basename(args.features),
        "params": {k: v for k, v in params.items() if k != "verbosity"},
        "metrics": metrics,
    }
    atomic_write(args.out_model, model_bytes)
    atomic_write(args.out_meta, (json.dumps(meta, indent=2, allow_nan=False) + "\n").encode())

    v = metrics["validation"]

    def pct(x):
        return "n/a" if x is None else f"{100 * x:.2f}%"

    print(f"beacongrid model {meta['version']}  (lightgbm {lgb.__version__}, {len(names)} features)")
    print(f"  data      {args.features}: {y.size} rows, {int(y.sum())} beacon; read in {t_read:.1f}s")
    print(f"  split     by {how}: train {tr.size} rows ({n_pos} beacon), validation {va.size} rows ({v['positives']} beacon)" + (f", test {te.size}" if te.size else ""))
    print(f"  training  {best_iter} trees (max {args.num_boost_round}, num_leaves {args.num_leaves}) in {t_train:.1f}s")
    print(f"  ranking   validation ROC AUC {v.get('roc_auc', float('nan')):.4f}, average precision {v.get('average_precision', float('nan')):.4f}")
    print(f"  threshold {thr:.6g} for FPR <= {args.target_fpr:g} on {calib.size} validation {calib_unit}")
    if highest:
        print("  highest   validation benign flows: " + ", ".join(f"{h['flow']} ({h['kind']}) {h['score']:.4f}" for h in highest))
    print(f"  at it     validation precision {pct(v['precision'])}, recall {pct(v['recall'])}, FPR {pct(v['fpr'])} (tp {v['tp']}, fp {v['fp']}, fn {v['fn']})")
    if "test" in metrics:
        t = metrics["test"]
        print(f"  test      precision {pct(t['precision'])}, recall {pct(t['recall'])}, FPR {pct(t['fpr'])}")
    if "validation_by_kind" in metrics:
        print("  by kind   " + ", ".join(f"{k} {d['flagged']}/{d['rows']}" for k, d in metrics["validation_by_kind"].items()) + " flagged")
    top = list(metrics["feature_gain"].items())[:5]
    print("  top gain  " + ", ".join(f"{k} {val:.0f}" for k, val in top))
    if thr > 1.0 or thr <= 0.0:
        print("warning: the threshold is outside (0, 1]; no flow can alert or every flow alerts", file=sys.stderr)
    if v["negatives"] * args.target_fpr < 1:
        print(f"warning: {v['negatives']} validation benign rows are too few to measure FPR {args.target_fpr:g}", file=sys.stderr)
    print(f"  wrote     {args.out_model} ({len(model_bytes)} bytes), {args.out_meta}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
