#!/usr/bin/env python3
"""SYNTHETIC bootstrap data only: fake per-flow feature rows for beacongrid.

This exists so the training pipeline, the committed first model and the Go
parity test can be built before the real feature extractor (package detect,
`bin/beacongrid features`) exists. Nothing here is evidence of how well the
detector works on real traffic. Once `bin/beacongrid features` produces
labelled rows, retrain with `make train` and stop using this file for models.

What it does: for every simulated flow (src -> dst) it draws event times over
24 hours, bins them into the same 24x60 per-minute count matrix the detector
builds (minute index = hour*60 + minute), and computes a plausible set of
timing features from that matrix alone. Flows to one destination share a
generating configuration (a C2 campaign with its period and jitter, a CDN,
an update server), and the `group` column is the destination, so train.py can
keep a destination entirely on one side of its train/validation split.

Output follows the features CSV contract of build/train/train.py: a header,
`src,dst,kind,group`, the feature columns in order, then `label` (1 = beacon).

    python3 build/train/synth_features.py --flows 60000 --seed 7 --out f.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys

import numpy as np

MINUTES = 24 * 60

# Feature order is the model's input order. Names are snake_case so they are
# valid LightGBM feature names and easy to match against detect.FeatureNames.
FEATURE_NAMES = [
    "active_minutes_frac",  # minutes with >= 1 request / 1440
    "active_hours",  # hours (of 24) with any request
    "requests_log1p",  # log1p(total requests)
    "count_mean_active",  # mean requests per active minute
    "count_cv_active",  # coefficient of variation of counts over active minutes
    "gap_median_min",  # median gap between consecutive active minutes (NaN if < 2 gaps)
    "gap_cv",  # std/mean of the gaps (NaN if < 2 gaps)
    "gap_mad_ratio",  # median absolute deviation / median of the gaps (NaN if < 2 gaps)
    "gap_mode_frac",  # share of gaps within +-1 minute of the median gap (NaN if < 2 gaps)
    "gap_burstiness",  # (std-mean)/(std+mean) of the gaps, -1 periodic .. 1 bursty (NaN if < 2 gaps)
    "longest_gap_frac",  # longest run of idle minutes / 1440
    "spectral_peak_ratio",  # strongest non-DC power of the activity series / total power
    "acf_peak",  # highest autocorrelation of the activity series at lags 2..720
    "hour_entropy",  # entropy of the per-hour request totals / log(24)
    "night_frac",  # share of requests in hours 0..5
    "max_count_ratio",  # busiest minute / mean active minute
]


def features_from_counts(c: np.ndarray) -> list[float]:
    """Compute FEATURE_NAMES from a 1440-long vector of per-minute counts."""
    c = np.asarray(c, dtype=np.float64)
    active = np.flatnonzero(c > 0)
    n_active = active.size
    total = float(c.sum())
    nan = float("nan")
    if n_active == 0:
        return [0.0, 0.0, 0.0, 0.0, 0.0, nan, nan, nan, nan, nan, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    per_hour = c.reshape(24, 60).sum(axis=1)
    counts_active = c[active]
    mean_active = float(counts_active.mean())
    cv_active = float(counts_active.std() / mean_active)

    gaps = np.diff(active).astype(np.float64)
    if gaps.size >= 2:
        gmed = float(np.median(gaps))
        gmean = float(gaps.mean())
        gstd = float(gaps.std())
        gap_median = gmed
        gap_cv = gstd / gmean
        gap_mad = float(np.median(np.abs(gaps - gmed))) / gmed
        gap_mode = float(np.mean(np.abs(gaps - gmed) <= 1.0))
        gap_burst = (gstd - gmean) / (gstd + gmean)
    else:
        gap_median = gap_cv = gap_mad = gap_mode = gap_burst = nan

    # Longest idle run, the day wrapping around (the window is a ring of 24 h).
    if n_active == 1:
        longest = MINUTES - 1
    else:
        ring = np.diff(np.concatenate([active, [active[0] + MINUTES]])) - 1
        longest = int(ring.max())

    x = (c > 0).astype(np.float64)
    x = x - x.mean()
    power = np.abs(np.fft.rfft(x)) ** 2
    ptotal = float(power[1:].sum())
    spectral = float(power[1:].max() / ptotal) if ptotal > 0 else 0.0
    var = float((x * x).sum())
    if var > 0 and n_active >= 3:
        f = np.fft.rfft(x, n=2 * MINUTES)
        acf = np.fft.irfft(f * np.conj(f))[: MINUTES // 2 + 1] / var
        acf_peak = float(acf[2 : MINUTES // 2 + 1].max())
    else:
        acf_peak = 0.0

    p = per_hour[per_hour > 0] / total
    entropy = float(-(p * np.log(p)).sum() / math.log(24))
    night = float(per_hour[:6].sum() / total)
    return [
        n_active / MINUTES,
        float((per_hour > 0).sum()),
        math.log1p(total),
        mean_active,
        cv_active,
        gap_median,
        gap_cv,
        gap_mad,
        gap_mode,
        gap_burst,
        longest / MINUTES,
        spectral,
        acf_peak,
        entropy,
        night,
        float(c.max()) / mean_active,
    ]


def _bin(times_s: np.ndarray) -> np.ndarray:
    t = np.mod(times_s, MINUTES * 60.0)
    return np.bincount((t // 60).astype(np.int64), minlength=MINUTES)[:MINUTES]


def _work_hours(rng, start_h, hours):
    """Boolean mask of minutes inside a daily window starting at start_h."""
    m = np.zeros(MINUTES, dtype=bool)
    s = int(start_h * 60)
    e = s + int(hours * 60)
    idx = np.arange(s, e) % MINUTES
    m[idx] = True
    return m


# ---- benign kinds ------------------------------------------------------------


def browsing(rng, cfg):
    """Human browsing: sessions during a working day, bursty within."""
    mask = _work_hours(rng, cfg["day_start"] + rng.normal(0, 0.5), cfg["day_len"])
    counts = np.zeros(MINUTES, dtype=np.int64)
    n_sessions = rng.poisson(cfg["sessions"]) + 1
    starts = rng.choice(np.flatnonzero(mask), size=n_sessions)
    for s in starts:
        length = int(rng.lognormal(math.log(cfg["session_min"]), 0.8)) + 1
        idx = (s + np.arange(length)) % MINUTES
        on = rng.random(length) < cfg["density"]
        counts[idx[on]] += rng.poisson(cfg["rate"], size=int(on.sum())) + 1
    return counts


def periodic_benign(rng, cfg):
    """Update checks, telemetry, NTP, mail polling: periodic, usually several
    requests per check, long periods, modest jitter, sometimes only while the
    machine is in use."""
    period = cfg["period_s"] * rng.uniform(0.98, 1.02)
    n = int(MINUTES * 60 / period) + 2
    t = rng.uniform(0, period) + np.arange(n) * period
    t = t + rng.normal(0, cfg["jitter"] * period, size=n)
    keep = rng.random(n) > cfg["drop"]
    if cfg["office_only"]:
        mask = _work_hours(rng, cfg["day_start"], cfg["day_len"])
        keep &= mask[(np.mod(t, MINUTES * 60) // 60).astype(np.int64)]
    t = t[keep]
    per = rng.integers(1, cfg["per_check"] + 1, size=t.size)
    return _bin(np.repeat(t, per) + rng.uniform(0, 20, size=int(per.sum())))


def streaming(rng, cfg):
    """Persistent sessions: chat, streaming, websockets with chatter."""
    mask = _work_hours(rng, cfg["day_start"], cfg["day_len"])
    lam = np.where(mask, cfg["rate"], cfg["rate"] * cfg["off_factor"])
    lam = lam * rng.gamma(2.0, 0.5, size=MINUTES)
    return rng.poisson(lam)


def sparse(rng, cfg):
    """A handful of requests at random: rare sites, one-off API calls."""
    n = rng.poisson(cfg["n"]) + 1
    t = rng.uniform(0, MINUTES * 60, size=n)
    return _bin(t)


def mixed(rng, cfg):
    """A shared service (CDN, SaaS) carrying both browsing and telemetry."""
    return browsing(rng, cfg["b"]) + periodic_benign(rng, cfg["p"])


# ---- beacon kinds --------------------------------------------------------------


def beacon(rng, cfg):
    """Implant check-ins: fixed sleep with jitter, missed check-ins, sometimes
    a working-hours schedule, sometimes operator tasking bursts."""
    period = cfg["period_s"] * rng.uniform(0.995, 1.005)
    jitter = cfg["jitter"]
    start = rng.uniform(0, MINUTES * 60) if rng.random() < cfg["late_start"] else 0.0
    n = int(MINUTES * 60 / period) + 2
    # Cobalt Strike style jitter: each sleep is period * (1 - U(0, jitter)).
    sleeps = period * (1.0 - rng.uniform(0, jitter, size=n))
    t = start + rng.uniform(0, period) + np.cumsum(sleeps)
    t = t[t < MINUTES * 60]
    keep = rng.random(t.size) > cfg["drop"]
    if cfg["office_only"]:
        mask = _work_hours(rng, cfg["day_start"], cfg["day_len"])
        keep &= mask[(t // 60).astype(np.int64)]
    t = t[keep]
    counts = _bin(t) if t.size else np.zeros(MINUTES, dtype=np.int64)
    if t.size and rng.random() < cfg["tasking"]:
        # Operator interaction: a short burst of fast check-ins.
        s = int(rng.choice(t) // 60)
        length = int(rng.integers(3, 40))
        idx = (s + np.arange(length)) % MINUTES
        counts[idx] += rng.poisson(3, size=length)
    if counts.sum() == 0:
        counts[int(rng.integers(0, MINUTES))] = 1
    return counts


def _benign_cfg(rng, kind):
    day_start = rng.uniform(6, 11)
    day_len = rng.uniform(6, 12)
    if kind == "browsing":
        return dict(
            day_start=day_start,
            day_len=day_len,
            sessions=rng.uniform(1, 12),
            session_min=rng.uniform(2, 30),
            density=rng.uniform(0.2, 0.9),
            rate=rng.uniform(0.5, 15),
        )
    if kind == "periodic_benign":
        return dict(
            period_s=float(rng.choice([300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 60, 120])),
            jitter=rng.uniform(0.0, 0.08),
            drop=rng.uniform(0.0, 0.3),
            per_check=int(rng.integers(1, 6)),
            office_only=bool(rng.random() < 0.4),
            day_start=day_start,
            day_len=day_len,
        )
    if kind == "streaming":
        return dict(day_start=day_start, day_len=day_len, rate=rng.uniform(0.3, 20), off_factor=rng.uniform(0, 0.3))
    if kind == "sparse":
        return dict(n=rng.uniform(0.5, 25))
    if kind == "mixed":
        return dict(b=_benign_cfg(rng, "browsing"), p=_benign_cfg(rng, "periodic_benign"))
    raise ValueError(kind)


def _beacon_cfg(rng, kind):
    if kind == "beacon":
        period = float(rng.choice([30, 45, 60, 60, 120, 180, 300, 300, 600, 900, 1800]))
    else:  # beacon_lowslow
        period = float(rng.choice([3600, 5400, 7200, 10800, 14400]))
    return dict(
        period_s=period,
        jitter=float(rng.choice([0.0, 0.05, 0.1, 0.2, 0.3, 0.5])) * rng.uniform(0.8, 1.2),
        drop=rng.uniform(0.0, 0.25),
        late_start=0.3,
        office_only=bool(rng.random() < 0.15),
        day_start=rng.uniform(6, 11),
        day_len=rng.uniform(8, 12),
        tasking=rng.uniform(0, 0.4),
    )


BENIGN = {
    "browsing": (browsing, 0.40),
    "periodic_benign": (periodic_benign, 0.15),
    "streaming": (streaming, 0.12),
    "sparse": (sparse, 0.23),
    "mixed": (mixed, 0.10),
}
BEACONS = {"beacon": (beacon, 0.8), "beacon_lowslow": (beacon, 0.2)}


def generate(n_flows: int, beacon_frac: float, seed: int):
    """Yield (src, dst, kind, group, features, label) rows, deterministically."""
    rng = np.random.default_rng(seed)
    produced = 0
    dst_id = 0
    bkinds, bprobs = zip(*[(k, p) for k, (_, p) in BENIGN.items()])
    ckinds, cprobs = zip(*[(k, p) for k, (_, p) in BEACONS.items()])
    while produced < n_flows:
        dst_id += 1
        is_beacon = rng.random() < beacon_frac
        if is_beacon:
            kind = str(rng.choice(ckinds, p=cprobs))
            fn = BEACONS[kind][0]
            cfg = _beacon_cfg(rng, kind)
            n_src = int(rng.integers(1, 6))
            dst = f"c2-{dst_id}.example"
        else:
            kind = str(rng.choice(bkinds, p=bprobs))
            fn = BENIGN[kind][0]
            cfg = _benign_cfg(rng, kind)
            n_src = int(min(rng.zipf(1.6), 40))
            dst = f"svc-{dst_id}.example"
        for _ in range(n_src):
            if produced >= n_flows:
                break
            src = f"10.{rng.integers(0, 256)}.{rng.integers(0, 256)}.{rng.integers(1, 255)}"
            counts = fn(rng, cfg)
            if counts.sum() == 0:
                counts[int(rng.integers(0, MINUTES))] = 1
            yield src, dst, kind, dst, features_from_counts(counts), int(is_beacon)
            produced += 1


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--flows", type=int, default=60000, help="rows to write (default 60000)")
    ap.add_argument("--beacon-frac", type=float, default=0.08, help="share of destinations that are C2 (default 0.08)")
    ap.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    ap.add_argument("--out", required=True, help="output CSV path ('-' for stdout)")
    args = ap.parse_args(argv)
    if args.flows < 1:
        ap.error("--flows must be >= 1")

    out = sys.stdout if args.out == "-" else open(args.out + ".tmp", "w", newline="")
    try:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(["src", "dst", "kind", "group", *FEATURE_NAMES, "label"])
        for src, dst, kind, group, feats, label in generate(args.flows, args.beacon_frac, args.seed):
            w.writerow([src, dst, kind, group, *(repr(float(v)) for v in feats), label])
    finally:
        if out is not sys.stdout:
            out.close()
    if out is not sys.stdout:
        os.replace(args.out + ".tmp", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
