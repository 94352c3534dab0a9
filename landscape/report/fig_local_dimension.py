"""``landscape figure local-dimension``: the local dimension of a deep ReLU MLP along training on real data.

Reads a run config with ``problem.dataset`` (default ``configs/local_dimension.toml``: scikit-learn digits, one-hot
targets, a ReLU MLP, gradient descent, a ``[sweep]`` grid over ``init.scale``). For every initialisation scale it
trains ``init.count`` nets at once (``jit(vmap(run_flow))`` through :func:`landscape.flow.run_flows`, parameters
saved at the snapshot times) and computes, at every snapshot, the local dimension rank J(theta) on the training
inputs (:func:`landscape.analysis.local_dimension.local_dimension_along`, float64 SVD, with its gap); at the end
points the flatness (Hessian trace and top eigenvalue, dense float64) and the number of linear regions (distinct
activation patterns) the sample perceives. Writes ``local_dimension.png`` (rank / bound against training time per
scale; rank against Hessian trace, top eigenvalue and linear regions at the end points) and
``local_dimension.json`` (the numbers), and prints them.

README, science section 4 (Bona-Pellissier, Malgouyres & Bachoc 2024, arXiv:2402.08269).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["make", "study", "draw", "QUICK"]

QUICK = ["problem.n_samples=60", "student.hidden_widths=[8, 8]", "student.width=8", "init.count=2",
         "flow.steps=300", "flow.n_snapshots=3"]
"""``--quick`` overrides: a small net on 60 digits, 2 initialisations per scale, 3 snapshots."""


def study(config_path, *, quick: bool = False, overrides=()) -> dict:
    """Train per initialisation scale and track the local dimension; returns the numbers (plain python).

    Returns:
        ``{"setting": {...}, "scales": [{"scale", "ts", "rank" (count, S), "gap" (count, S), "loss" (count, S),
        "bound" (count, S), "rank_final", "gap_final", "bound_final", "n_dead_final", "loss_final" (count,) at the
        end points, "accuracy", "hessian_trace", "hessian_top", "regions_init", "regions_final", "flow_status"},
        ...], "timings": {...}}`` (rank -1 at snapshots after a trajectory stopped).
    """
    from ..analysis.hessian import hessian_matrix
    from ..analysis.local_dimension import linear_regions, local_dimension_along
    from ..config import ConfigError, build_flow, build_init, build_problem, read_raw_config
    from ..flow import run_flows, status_name
    from ..grid import expand_sweep

    raw = read_raw_config(config_path, list(QUICK if quick else []) + list(overrides))
    points = expand_sweep(raw)
    if not points[0].config.problem.dataset:
        raise ConfigError(f"{config_path}: the local-dimension figure needs problem.dataset (e.g. \"digits\")")
    if not points[0].config.flow.save_params:
        raise ConfigError(f"{config_path}: set flow.save_params = true (the local dimension is taken at snapshots)")
    problem = build_problem(points[0].config)  # the data and network are shared by the grid (scales only differ)
    along = jax.jit(lambda thetas: local_dimension_along(problem, thetas))
    hess = jax.jit(lambda theta: hessian_matrix(problem, theta))
    out, timings = [], {"train_s": 0.0, "local_dimension_s": 0.0, "hessian_s": 0.0}
    for gp in points:
        cfg = gp.config
        init, flow = build_init(cfg.init), build_flow(cfg.flow)
        base = jax.random.PRNGKey(gp.seed)  # initialisation i: fold_in(PRNGKey(seed), i), as landscape run
        keys = jnp.stack([jax.random.fold_in(base, i) for i in range(cfg.init.count)])
        theta0 = jax.vmap(init.sample, in_axes=(0, None))(keys, problem)
        t0 = time.perf_counter()
        traj = jax.block_until_ready(run_flows(problem, flow, theta0))
        t1 = time.perf_counter()
        lds = [along(jax.tree.map(lambda v, i=i: v[i], traj.params)) for i in range(cfg.init.count)]
        final = jax.block_until_ready(along(traj.theta))  # the end points (snapshots after a stop are NaN)
        t2 = time.perf_counter()
        finals = [jax.tree.map(lambda v, i=i: v[i], traj.theta) for i in range(cfg.init.count)]
        eigs = [np.linalg.eigvalsh(np.asarray(hess(th))) for th in finals]
        t3 = time.perf_counter()
        timings["train_s"] += t1 - t0
        timings["local_dimension_s"] += t2 - t1
        timings["hessian_s"] += t3 - t2
        out.append({
            "scale": float(cfg.init.scale),
            "ts": np.asarray(traj.ts[0]).tolist(),
            "loss": np.asarray(traj.loss).tolist(),
            "rank": [np.asarray(ld.rank).tolist() for ld in lds],
            "gap": [np.asarray(ld.gap).tolist() for ld in lds],
            "bound": [np.asarray(ld.bound).tolist() for ld in lds],
            "rank_final": np.asarray(final.rank).tolist(),
            "gap_final": np.asarray(final.gap).tolist(),
            "bound_final": np.asarray(final.bound).tolist(),
            "n_dead_final": np.asarray(final.n_dead).tolist(),
            "loss_final": np.asarray(traj.loss_final).tolist(),
            "accuracy": [float(problem.accuracy(th)) for th in finals],
            "hessian_trace": [float(np.sum(e)) for e in eigs],
            "hessian_top": [float(e[-1]) for e in eigs],
            "regions_init": [linear_regions(problem, jax.tree.map(lambda v, i=i: v[i], theta0))
                             for i in range(cfg.init.count)],
            "regions_final": [linear_regions(problem, th) for th in finals],
            "flow_status": [status_name(s) for s in np.asarray(traj.status)],
        })
    net = problem.student
    setting = {"dataset": points[0].config.problem.dataset, "n": int(problem.x.shape[0]),
               "hidden_widths": list(net.hidden_widths), "outputs": int(net.outputs),
               "n_params": int(sum(np.size(v) for v in jax.tree.leaves(theta0)) // points[0].config.init.count),
               "hidden_neurons": int(sum(net.hidden_widths)), "jacobian_rows": int(problem.x.shape[0] * net.outputs),
               "method": points[0].config.flow.method, "lr": points[0].config.flow.lr,
               "steps": points[0].config.flow.steps, "count": points[0].config.init.count}
    return {"setting": setting, "scales": out, "timings": timings}


def _print(res: dict) -> None:
    s = res["setting"]
    print(f"local dimension on {s['dataset']} (n = {s['n']}, {s['outputs']} outputs): MLP {s['hidden_widths']}, "
          f"P = {s['n_params']}, P - #hidden = {s['n_params'] - s['hidden_neurons']}, J is {s['jacobian_rows']} x "
          f"{s['n_params']}; {s['method']} lr = {s['lr']}, {s['steps']} steps")
    print(f"{'scale':>6} {'init':>3} {'rank(0)':>8} {'rank(T)':>8} {'bound(T)':>8} {'gap(T)':>9} {'loss(T)':>9} "
          f"{'acc':>5} {'tr H':>9} {'lam_max':>9} {'regions 0->T':>13} status")
    for sc in res["scales"]:
        for i in range(len(sc["rank"])):
            print(f"{sc['scale']:6.3g} {i:3d} {sc['rank'][i][0]:8d} {sc['rank_final'][i]:8d} "
                  f"{sc['bound_final'][i]:8d} {sc['gap_final'][i]:9.2e} {sc['loss_final'][i]:9.3e} "
                  f"{sc['accuracy'][i]:5.3f} "
                  f"{sc['hessian_trace'][i]:9.3e} {sc['hessian_top'][i]:9.3e} "
                  f"{sc['regions_init'][i]:>6d}->{sc['regions_final'][i]:<6d} {sc['flow_status'][i]}")
    print("timings: " + ", ".join(f"{k} {v:.1f}" for k, v in res["timings"].items()))


def make(config_path: Path | None, out_dir: Path, *, quick: bool) -> list[Path]:
    """Draw the figure from ``config_path`` into ``out_dir`` (see the module docstring); returns the paths."""
    res = study(config_path, quick=quick)
    _print(res)
    return draw(res, out_dir)


def draw(res: dict, out_dir: Path) -> list[Path]:
    """Write ``local_dimension.png`` and ``local_dimension.json`` from the numbers of :func:`study` (or the JSON)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 4, figsize=(17, 4), constrained_layout=True)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    P = res["setting"]["n_params"]
    for c, sc in zip(colors, res["scales"], strict=False):
        ts = np.asarray(sc["ts"], float)
        t0 = ts[ts > 0].min() / 3 if np.any(ts > 0) else 1.0
        ts = np.where(ts > 0, ts, t0)  # t = 0 drawn a third of the first snapshot time to its left
        for i, (rank, bound) in enumerate(zip(sc["rank"], sc["bound"], strict=True)):
            r = np.where(np.asarray(rank) >= 0, rank, np.nan)
            axes[0].plot(ts, r / P, "o-", color=c, ms=3, label=f"scale {sc['scale']:g}" if i == 0 else None)
            axes[0].plot(ts, np.asarray(bound) / P, ":", color=c, lw=1)
        final = np.asarray(sc["rank_final"]) / P
        axes[1].plot(sc["hessian_trace"], final, "o", color=c, label=f"scale {sc['scale']:g}")
        axes[2].plot(sc["hessian_top"], final, "o", color=c)
        axes[3].plot(sc["regions_final"], final, "o", color=c)
        axes[3].plot(sc["regions_init"], [r[0] / P for r in sc["rank"]], "x", color=c)
    axes[0].set_xscale("log")
    axes[0].set_xlabel("training time t = step * lr (snapshots; leftmost: t = 0)")
    axes[0].set_ylabel("local dimension / P  (dotted: bound / P)")
    axes[0].set_title(f"rank J along training ({res['setting']['dataset']})")
    for ax, lab in zip(axes[1:], ["Hessian trace at the end point", "top Hessian eigenvalue at the end point",
                                  "linear regions X perceives (x: init, o: end)"], strict=True):
        ax.set_xscale("log")
        ax.set_xlabel(lab)
        ax.set_ylabel("local dimension / P at the end point")
    axes[0].legend(fontsize=7)
    axes[1].legend(fontsize=7)
    png, js = out_dir / "local_dimension.png", out_dir / "local_dimension.json"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    js.write_text(json.dumps(res, indent=1))
    return [png, js]
