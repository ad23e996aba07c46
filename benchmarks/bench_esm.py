"""ESM (GP uncertainty tracker) speed, memory and exactness against the performance issue.

Data: pools of 384-d unit vectors shaped like sentence embeddings (see `_common.Topics`).

- Exactness: on a pool small enough for the reference to finish, the clusters of
  `DemonstrationSelector` (float64 and float32 factor) must equal the paper-style loop's:
  a scikit-learn `GaussianProcessRegressor` with the same fixed RBF kernel
  (`optimizer=None`, alpha = noise) refitted every round on the shown points, std
  predicted over the pool, argmax over unused points with the same seeded tie-break.
- 10,000 points, 500 clusters of 4: at least 50x faster than that loop. The loop would
  run for far longer than 10 minutes, so it is timed for its first rounds (whose picks are
  also checked against ours) and at sampled later rounds, one GP fit and prediction each on
  the points shown by then; the total is the sum over all 500 rounds with round costs
  interpolated linearly in the number of shown points.
- 100,000 points, 2,000 clusters of 4, in a fresh process: time and peak resident memory.

    python benchmarks/bench_esm.py           # the full targets (about 10 minutes)
    python benchmarks/bench_esm.py --quick   # a smoke run (seconds)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (
    Topics,
    command,
    git_state,
    header,
    load,
    machine,
    now,
    peak_rss_gib,
    run_child,
    timed,
    verdict,
    write,
)

from synalign.esm import DemonstrationSelector

SPEEDUP = 50.0
NOISE = 1e-4
SIZE = 4


def pool(n: int, seed: int = 0) -> np.ndarray:
    return Topics(seed=seed).sample(n, "real", np.random.default_rng(seed + 1))


def gp_std(X: np.ndarray, shown: list[int], bw: float) -> np.ndarray:
    """One round of the paper-style loop: refit the GP on the shown points, predict std."""
    if not shown:
        return np.ones(X.shape[0])
    gp = GaussianProcessRegressor(
        kernel=RBF(length_scale=bw, length_scale_bounds="fixed"), alpha=NOISE, optimizer=None
    ).fit(X[shown], np.zeros(len(shown)))
    with warnings.catch_warnings():
        # sklearn warns when rounding makes a predicted variance negative (it clips to 0).
        warnings.simplefilter("ignore")
        _, std = gp.predict(X, return_std=True)
    return std


def reference(
    X: np.ndarray, n_clusters: int, bw: float, seed: int
) -> tuple[list[list[int]], list[float]]:
    """The paper-style loop; returns the clusters and each round's wall time."""
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    unused = np.ones(n, dtype=bool)
    shown: list[int] = []
    clusters, seconds = [], []
    for _ in range(n_clusters):
        start = time.perf_counter()
        if not unused.any():
            unused[:] = True
            shown = []
            perm = rng.permutation(n)
        std = gp_std(X, shown, bw)
        score = np.where(unused, std, -np.inf)
        pick = int(perm[np.argmax(score[perm])])
        dist = ((X - X[pick]) ** 2).sum(axis=1)
        order = [int(i) for i in np.argsort(dist, kind="stable") if i != pick and unused[i]]
        cluster = [pick, *order[: SIZE - 1]]
        shown.extend(cluster)
        unused[cluster] = False
        clusters.append(cluster)
        seconds.append(time.perf_counter() - start)
    return clusters, seconds


def exactness(n: int, n_clusters: int) -> dict[str, Any]:
    X = pool(n, seed=5)
    out: dict[str, Any] = {"pool": n, "clusters": n_clusters}
    ref = None
    for dtype in ("float64", "float32"):
        selector = DemonstrationSelector(cluster_size=SIZE, noise=NOISE, seed=3, factor_dtype=dtype)
        ours = selector.select(X, n_clusters)
        if ref is None:
            start = time.perf_counter()
            ref, _ = reference(X, n_clusters, selector.bandwidth_, seed=3)
            out["reference_seconds"] = time.perf_counter() - start
        same = ours == ref
        first = next((i for i, (a, b) in enumerate(zip(ours, ref, strict=True)) if a != b), None)
        out[dtype] = {"identical": same, "first_difference": first}
    return out


def speed(n: int, n_clusters: int, measured_rounds: int, samples: int) -> dict[str, Any]:
    X = pool(n)
    load_start = load()
    t_ours, selector = timed(lambda: _select(X, n_clusters), 2)
    clusters = selector.clusters_
    bw = selector.bandwidth_
    # The reference's first rounds, timed; its picks must equal ours.
    ref_clusters, ref_seconds = reference(X, measured_rounds, bw, seed=0)
    same_prefix = ref_clusters == clusters[:measured_rounds]
    # Later rounds: one GP fit and prediction on the points shown before that round.
    shown = [i for c in clusters for i in c]
    sampled = {}
    for r in np.linspace(measured_rounds, n_clusters - 1, samples).round().astype(int):
        t = SIZE * int(r)
        start = time.perf_counter()
        gp_std(X, shown[:t], bw)
        sampled[int(r)] = time.perf_counter() - start
    rounds = np.array(list(range(measured_rounds)) + list(sampled))
    costs = np.array(ref_seconds + list(sampled.values()))
    order = np.argsort(rounds)
    estimate = float(np.interp(np.arange(n_clusters), rounds[order], costs[order]).sum())
    return {
        "pool": n,
        "clusters": n_clusters,
        "cluster_size": SIZE,
        "load_at_start": load_start,
        "seconds": t_ours,
        "repeats": 2,
        "full_updates": selector.n_full_updates_,
        "factor_dtype": str(selector._tracker.factor_dtype_),
        "reference_measured_rounds": measured_rounds,
        "reference_measured_seconds": float(sum(ref_seconds)),
        "reference_picks_match_on_measured_rounds": same_prefix,
        "reference_sampled_round_seconds": sampled,
        "reference_estimated_seconds": estimate,
        "speedup": estimate / t_ours,
    }


def _select(X: np.ndarray, n_clusters: int) -> DemonstrationSelector:
    selector = DemonstrationSelector(cluster_size=SIZE, noise=NOISE, seed=0)
    selector.select(X, n_clusters)
    return selector


def large_child(n: int, n_clusters: int) -> dict[str, Any]:
    """Runs in a fresh process: build the pool, select, report time and peak memory."""
    X = pool(n)
    rss_data = peak_rss_gib()
    load_start = load()
    start = time.perf_counter()
    selector = _select(X, n_clusters)
    seconds = time.perf_counter() - start
    return {
        "pool": n,
        "clusters": n_clusters,
        "cluster_size": SIZE,
        "load_at_start": load_start,
        "seconds": seconds,
        "peak_rss_gib": peak_rss_gib(),
        "peak_rss_gib_after_data": rss_data,
        "full_updates": selector.n_full_updates_,
        "factor_dtype": str(selector._tracker.factor_dtype_),
        "passes": selector.n_passes_,
        "last_pick_variance": selector.pick_variance_[-1],
    }


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        print(json.dumps(large_child(*(int(a) for a in argv[1:]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    args = parser.parse_args(argv)
    if args.quick:
        check, moderate, large = (300, 60), (2000, 100, 10, 3), (5000, 200)
    else:
        check, moderate, large = (1000, 250), (10_000, 500, 40, 6), (100_000, 2000)
    report: dict[str, Any] = {
        "date": now(),
        "command": command("bench_esm.py", argv),
        "machine": machine(),
        "git": git_state(),
        "load_before": load(),
        "targets": {"speedup_vs_reference": SPEEDUP},
    }
    report["exactness"] = ex = exactness(*check)
    for dtype in ("float64", "float32"):
        print(
            f"picks on {ex['pool']} points, {ex['clusters']} clusters of {SIZE}, {dtype} factor: "
            f"{'identical to' if ex[dtype]['identical'] else 'DIFFERENT from'} the refitted GP "
            f"(reference ran {ex['reference_seconds']:.1f} s)"
        )
    report["moderate"] = m = speed(*moderate)
    print(
        f"{m['pool']} points, {m['clusters']} clusters of {SIZE}: {m['seconds']:.2f} s "
        f"({m['full_updates']} full variance updates); reference ~"
        f"{m['reference_estimated_seconds']:.0f} s (measured {m['reference_measured_rounds']} "
        f"rounds in {m['reference_measured_seconds']:.1f} s, picks "
        f"{'match' if m['reference_picks_match_on_measured_rounds'] else 'DIFFER'}; rest "
        f"extrapolated) -> {m['speedup']:.0f}x (target >= {SPEEDUP:.0f}x: "
        f"{verdict(m['speedup'], SPEEDUP, True)})"
    )
    report["large"] = big = run_child(Path(__file__).resolve(), [str(v) for v in large])
    print(
        f"{big['pool']} points, {big['clusters']} clusters of {SIZE}: {big['seconds']:.1f} s, "
        f"peak RSS {big['peak_rss_gib']:.2f} GiB incl. the pool ({big['factor_dtype']} factor, "
        f"{big['full_updates']} full variance updates)"
    )
    report["load_after"] = load()
    path = write("esm-quick" if args.quick else "esm", report, markdown(report))
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def markdown(report: dict[str, Any]) -> list[str]:
    ex, m, big = report["exactness"], report["moderate"], report["large"]
    lines = header("ESM benchmark (GP uncertainty tracker)", report)
    same = all(ex[d]["identical"] for d in ("float64", "float32"))
    sampled = ", ".join(
        f"round {r}: {s:.2f} s" for r, s in m["reference_sampled_round_seconds"].items()
    )
    lines += [
        "| case | figure | measured | target | ratio | verdict |",
        "|---|---|---|---|---|---|",
        f"| {ex['pool']:,} points, {ex['clusters']} clusters of {SIZE} | picks vs refitted "
        f"sklearn GP (float64 / float32 factor) | "
        f"{'identical' if ex['float64']['identical'] else 'different'} / "
        f"{'identical' if ex['float32']['identical'] else 'different'} | identical | - | "
        f"{'pass' if same else 'MISS'} |",
        f"| {m['pool']:,} points, {m['clusters']} clusters of {SIZE} | time vs paper-style loop "
        f"| {m['seconds']:.2f} s vs ~{m['reference_estimated_seconds']:.0f} s (extrapolated) | "
        f">= {SPEEDUP:.0f}x | {m['speedup']:.0f}x | {verdict(m['speedup'], SPEEDUP, True)} |",
        f"| {big['pool']:,} points, {big['clusters']:,} clusters of {SIZE} | finishes; time, "
        f"peak RSS | {big['seconds']:.1f} s, {big['peak_rss_gib']:.2f} GiB | finishes | - | "
        "pass |",
        "",
        f"Reference at {m['pool']:,} points: not run in full (it would take far more than 10 "
        f"minutes). Its first {m['reference_measured_rounds']} rounds ran in "
        f"{m['reference_measured_seconds']:.1f} s with picks "
        f"{'identical to' if m['reference_picks_match_on_measured_rounds'] else 'DIFFERENT from'}"
        f" ours; single later rounds (GP fit on the points shown by then plus std over the "
        f"pool): {sampled}. The estimate sums all {m['clusters']} rounds with costs "
        "interpolated linearly between these measurements.",
        "",
        f"Ours at {m['pool']:,} points: best of {m['repeats']} runs, {m['full_updates']} "
        f"full variance updates, {m['factor_dtype']} factor. Exactness pool: the reference "
        f"ran {ex['reference_seconds']:.1f} s.",
        "",
        f"{big['pool']:,} points in a fresh process: peak RSS {big['peak_rss_gib']:.2f} GiB "
        f"(pool alone {big['peak_rss_gib_after_data']:.2f} GiB), {big['factor_dtype']} factor, "
        f"{big['full_updates']} full variance updates, last picked variance "
        f"{big['last_pick_variance']:.4f}.",
    ]
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
