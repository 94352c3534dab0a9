"""Local dimension of a deep ReLU MLP during training on scikit-learn's digits (issue 10; README, science section 4).

For every initialisation scale of the config's ``[sweep]`` grid, trains ``init.count`` nets at once
(``jit(vmap(run_flow))``, parameters saved at the snapshot times) and prints, per net, the local dimension
rank J(theta) at every snapshot (float64 SVD of the (n K) x P Jacobian, with the gap s_r / s_(r+1)), the bound
P - #alive hidden neurons - #weights touching dead neurons, and at the end point the loss, accuracy, Hessian trace
and top eigenvalue and the number of linear regions (activation patterns) the sample perceives. With ``--matfree``
it also compares the matrix-free rank estimate (stochastic Lanczos quadrature on J^T J) with the dense rank at one
end point, with timings.

    python experiments/local_dimension.py                       # configs/local_dimension.toml (a few minutes)
    python experiments/local_dimension.py --quick --matfree     # small sizes, under a minute
    python experiments/local_dimension.py --set flow.steps=8000 --set "sweep.grid={\\"init.scale\\" = [0.25, 4.0]}"
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np

from landscape.analysis.local_dimension import local_dimension, local_dimension_matfree
from landscape.config import build_init, build_problem, read_raw_config
from landscape.grid import expand_sweep
from landscape.report.fig_local_dimension import QUICK, _print, study


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/local_dimension.toml")
    ap.add_argument("--quick", action="store_true", help="the figure's --quick sizes")
    ap.add_argument("--set", action="append", default=[], help="section.key=value override (repeatable)")
    ap.add_argument("--matfree", action="store_true", help="also check the matrix-free rank against the dense SVD")
    args = ap.parse_args()
    print(f"devices: {jax.devices()}")
    t0 = time.perf_counter()
    res = study(args.config, quick=args.quick, overrides=args.set)
    _print(res)
    print("rank along training (snapshot times t = step * lr):")
    for sc in res["scales"]:
        print(f"  scale {sc['scale']:g}: t = " + " ".join(f"{t:.3g}" for t in sc["ts"]))
        for i, (rank, gap) in enumerate(zip(sc["rank"], sc["gap"], strict=True)):
            print(f"    init {i}: rank " + " ".join(f"{r:5d}" for r in rank)
                  + "   min gap " + f"{np.nanmin(np.where(np.asarray(rank) > 0, gap, np.nan)):.2e}")
    print(f"total {time.perf_counter() - t0:.1f} s")
    if args.matfree:
        raw = read_raw_config(args.config, list(QUICK if args.quick else []) + list(args.set))
        cfg = expand_sweep(raw)[0].config
        problem = build_problem(cfg)
        theta = build_init(cfg.init).sample(jax.random.PRNGKey(cfg.init.seed), problem)
        t1 = time.perf_counter()
        dense = jax.block_until_ready(jax.jit(lambda th: local_dimension(problem, th))(theta))
        t2 = time.perf_counter()
        P = int(dense.n_params)
        for k in (min(200, P), min(600, P)):
            run = jax.jit(lambda th, key, k=k: local_dimension_matfree(problem, th, key=key, num_matvecs=k,
                                                                        num_samples=20))
            t3 = time.perf_counter()
            est = jax.block_until_ready(run(theta, jax.random.PRNGKey(1)))
            t4 = time.perf_counter()
            print(f"matrix-free at the initialisation (P = {P}, J {int(dense.n_rows)} x {P}): SLQ rank "
                  f"{float(est.rank):.1f} +- {float(est.sem):.1f} (resolved {float(est.resolved):.2f}, "
                  f"{k} Lanczos steps, 20 probes, {t4 - t3:.1f} s with compilation) against dense rank "
                  f"{int(dense.rank)} (gap {float(dense.gap):.2e}, {t2 - t1:.1f} s with compilation); "
                  f"s_max {float(est.s_max):.6g} vs {float(dense.singular_values[0]):.6g}; "
                  f"kappa on the range s_1 / s_r = "
                  f"{float(dense.singular_values[0] / dense.singular_values[int(dense.rank) - 1]):.3g}")


if __name__ == "__main__":
    main()
