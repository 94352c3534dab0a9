"""Benchmark: the symmetry analysis of 1024 end points, per-point reference (old) against the batched path (new).

The points are those of the equal-work benchmark (``experiments/bench_peer.py --full``): Safran-Shamir, ReLU
population loss, orthonormal teacher V = I_d, k = d = 6, output weights frozen to one, Gaussian initialisations
(scale 1, key 0), 2000 GD steps at lr 5/d, then Newton polishing (``landscape.explore`` with the Hessian analyzer
only); their float64 Hessians are computed once and cached in an npz (``--cache``), so that only the analysis is
timed. Timed, in one process, on the same points:

- ``old``: the loop of :func:`landscape.analysis.symmetry.analyze_point` the analyzer ran before (BLAS threads as
  the process has them);
- ``old, 1 BLAS thread``: the same loop with BLAS limited to one thread (what the thread limit alone gives);
- ``new``: :func:`landscape.analysis.symmetry.analyze_points` (the batched :mod:`.batch` path; the first call
  includes the classification rule's compilation for the batch's padded size, reported apart);
- ``analyzer``: :meth:`SymmetryAnalysis.call_batch`, what ``landscape run`` / ``explore`` call.

``--mixed N`` adds a harder case for the grouping by structure: N points of a width-6 ReLU student with trained
output weights (d = 4, r* = 3, population loss), random, with zero-output (20 %) and zero-input (10 %) neurons,
so that nearly every point has its own structure (not critical points: the analysis does not need them to be).

It then checks that every column agrees (ints and strings equal, floats to rtol 1e-9) and prints the ratio
old / new and the load average (the machine may be shared).

    python experiments/bench_symmetry.py                  # d = 6, 1024 points
    python experiments/bench_symmetry.py --count 256 --d 5
    python experiments/bench_symmetry.py --mixed 1024       # also the many-structures case
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_points(d: int, count: int, steps: int, cache: Path) -> dict:
    """End points, losses and Hessians of the bench_peer problem (cached in ``cache``)."""
    if cache.is_file():
        z = np.load(cache)
        if z["w"].shape[0] == count and z["w"].shape[1] == d:
            return dict(z)
    import jax
    import optax

    import landscape as ls
    from landscape.analysis.hessian import hessians

    t0 = time.perf_counter()
    res = ls.explore(problem_for(d), ls.OptaxFlow(optax.sgd, learning_rate=5.0 / d, steps=steps, grad_tol=0.0),
                     key=jax.random.key(0), n=count, init=ls.GaussianInit(1.0), analyzers=(ls.HessianSpectrum(),))
    p = jax.device_get(res.points)
    out = {"w": np.asarray(p.theta["w"]), "loss": np.asarray(p.loss), "grad_norm": np.asarray(p.grad_norm),
           "certified": np.asarray(p.certified), "hessian": np.asarray(hessians(problem_for(d), res.points.theta))}
    np.savez(cache, **out)
    print(f"made {count} points in {time.perf_counter() - t0:.1f} s (cached in {cache})")
    return out


def problem_for(d: int):
    import landscape as ls

    return ls.TeacherStudent(ls.Teacher.orthonormal(d=d, width=d), ls.TwoLayer(width=d, activation=ls.ReLU()),
                             ls.PopulationLoss(), output_weights="teacher")


def compare(columns: dict, rows: list) -> list[str]:
    """Names of the columns where ``columns`` and the reference ``rows`` disagree."""
    from landscape.analysis.symmetry.analyze import COLUMNS, FILL

    bad = []
    for c in (*COLUMNS, "kind_refined"):
        ref, got = [r[c] for r in rows], list(columns[c])
        if isinstance(FILL.get(c), float):
            same = np.allclose(np.asarray(got, float), np.asarray(ref, float), rtol=1e-9, atol=1e-13, equal_nan=True)
        else:
            same = [str(v) for v in got] == [str(v) for v in ref]
        if not same:
            bad.append(c)
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=6)
    ap.add_argument("--count", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--cache", type=Path, default=None, help="npz of the points (default: in the temp directory)")
    ap.add_argument("--mixed", type=int, default=0, help="also time N random points with many structures")
    args = ap.parse_args(argv)
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    cache = args.cache or Path(tempfile.gettempdir()) / f"landscape-bench-symmetry-d{args.d}-n{args.count}.npz"
    data = make_points(args.d, args.count, args.steps, cache)

    import jax

    import landscape as ls
    from landscape.analysis.symmetry import Tolerances, teacher_reduction
    from landscape.analysis.symmetry.analyze import analyze_point, analyze_points
    from landscape.analysis.symmetry.batch import one_blas_thread

    problem = problem_for(args.d)
    zero_tol, global_loss_tol = 1e-7, 1e-20
    n = data["w"].shape[0]
    teacher = teacher_reduction(problem, Tolerances())

    def old():
        return [analyze_point(problem, {"w": data["w"][i]}, loss=data["loss"][i], hessian=data["hessian"][i],
                              zero_tol=zero_tol, global_loss_tol=global_loss_tol, teacher=teacher) for i in range(n)]

    def new():
        return analyze_points(problem, {"w": data["w"]}, losses=data["loss"], grad_norms=data["grad_norm"],
                              hessians=data["hessian"], zero_tol=zero_tol, global_loss_tol=global_loss_tol)[0]

    analyzer = ls.SymmetryAnalysis(zero_tol, global_loss_tol).prepare(problem)
    points = ls.Point(theta={"w": data["w"]}, loss=data["loss"], grad_norm=data["grad_norm"],
                      certified=np.ones(n, bool), finite=np.ones(n, bool))

    def via_analyzer():
        return analyzer.call_batch(problem, points, {"_hessian": data["hessian"]})

    old()[:1]  # imports and the classification rule's op-by-op compilations, not timed
    timings = {}
    t0 = time.perf_counter()
    rows = old()
    timings["old (per point)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    with one_blas_thread():
        old()
    timings["old, 1 BLAS thread"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    new()
    timings["new, first call (compiles)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    cols = new()
    timings["new (batched)"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = via_analyzer()
    timings["analyzer call_batch"] = time.perf_counter() - t0
    bad = compare(cols, rows)
    bad_an = [c for c in rows[0] if c not in ("kind_refined",) and any(
        str(o[c]) != str(r[c]) and not (isinstance(r[c], float) and np.isclose(o[c], r[c], rtol=1e-9, atol=1e-13,
                                                                                 equal_nan=True))
        for o, r in zip(out, rows, strict=True))]

    kinds = {str(k): int(v) for k, v in zip(*np.unique(cols["kind_refined"], return_counts=True), strict=True)}
    classes = {str(k): int(v) for k, v in zip(*np.unique(cols["sym_class"], return_counts=True), strict=True)}
    print(f"d={args.d} n={n} points ({jax.devices()[0].platform}), load average {os.getloadavg()}")
    print(f"kinds {kinds}; symmetry classes {classes}")
    for name, t in timings.items():
        print(f"{name:28s} {t:8.3f} s  {1e3 * t / n:7.3f} ms/point")
    print(f"ratio old / new: {timings['old (per point)'] / timings['new (batched)']:.1f}x "
          f"(old with 1 BLAS thread / new: {timings['old, 1 BLAS thread'] / timings['new (batched)']:.1f}x)")
    print("columns equal to the per-point reference: " + ("all" if not bad else f"NO, differ: {bad}")
          + "; analyzer rows: " + ("all" if not bad_an else f"NO, differ: {bad_an}"))
    if args.mixed:
        bad += mixed(args.mixed)
    return 0 if not (bad or bad_an) else 1


def mixed(n: int) -> list[str]:
    """Old against new on ``n`` random points with zero-output and zero-input neurons (see the module docstring)."""
    import jax
    import jax.numpy as jnp

    import landscape as ls
    from landscape.analysis.hessian import hessians
    from landscape.analysis.symmetry import Tolerances, teacher_reduction
    from landscape.analysis.symmetry.analyze import analyze_point, analyze_points

    rng = np.random.default_rng(0)
    problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=4, width=3), ls.TwoLayer(width=6, activation=ls.ReLU()))
    w, a = rng.standard_normal((n, 6, 4)), rng.standard_normal((n, 6))
    a[rng.random((n, 6)) < 0.2] = 0.0
    w[rng.random((n, 6)) < 0.1] = 0.0
    th = {"w": w, "a": a}
    jt = {k: jnp.asarray(v) for k, v in th.items()}
    losses = np.asarray(jax.jit(jax.vmap(problem.loss_accurate))(jt))
    hs = np.asarray(hessians(problem, jt))
    kw = {"zero_tol": 1e-7, "global_loss_tol": 1e-20}
    analyze_points(problem, th, losses=losses, grad_norms=np.zeros(n), hessians=hs, **kw)  # compile, not timed
    t0 = time.perf_counter()
    cols = analyze_points(problem, th, losses=losses, grad_norms=np.zeros(n), hessians=hs, **kw)[0]
    t_new = time.perf_counter() - t0
    teacher = teacher_reduction(problem, Tolerances())
    t0 = time.perf_counter()
    rows = [analyze_point(problem, {k: v[i] for k, v in th.items()}, loss=losses[i], hessian=hs[i], teacher=teacher,
                          **kw) for i in range(n)]
    t_old = time.perf_counter() - t0
    bad = compare(cols, rows)
    classes = {str(k): int(v) for k, v in zip(*np.unique(cols["sym_class"], return_counts=True), strict=True)}
    print(f"\nmixed: n={n}, {len(set(cols['partition']))} distinct partitions, classes {classes}")
    print(f"old {t_old:.3f} s, new {t_new:.3f} s, ratio {t_old / t_new:.1f}x; columns equal: "
          + ("all" if not bad else f"NO, differ: {bad}"))
    return bad


if __name__ == "__main__":
    sys.exit(main())
