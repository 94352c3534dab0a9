"""``landscape figure inverse-stability``: parameter distance modulo symmetries against realization distance.

Panels: (1) the ratio d_sym / d_L2 along the families whose pathology sits at t -> 0 (parallel and opposite
neurons) against a balanced, well-separated net moved by t; (2) the families with t -> inf (unbalanced scaling: the
raw ratio and the ratio modulo rescalings; dead neurons); (3) d_sym against d_L2 over all pairs of certified minima
of the run config (``configs/inverse_stability.toml``, explored in process, or a stored run through
:func:`ratios_of_run`), the pairs whose realizations coincide drawn at the bottom. Writes
``inverse_stability.png`` and ``inverse_stability.json`` and prints the numbers.

README, science section 5 (Berner, Elbrächter & Grohs 2019, arXiv:1905.09803).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["make", "families", "minima_ratios", "ratios_of_run", "FAMILY_T"]

FAMILY_T = {
    "parallel": np.logspace(0, -4, 9),
    "opposite": np.logspace(0, -4, 9),
    "well_separated": np.logspace(0, -4, 9),
    "unbalanced": np.logspace(0, 2, 9),
    "dead": np.linspace(0.0, 3.5, 8),
}
"""Family parameters t of each panel (``--quick``: every other value)."""

QUICK = ["init.count=4", 'flow.method="gd"', "flow.lr=0.05", "flow.steps=3000"]
"""``--quick`` overrides of the run config: 4 initialisations, 3000 steps of gradient descent (compiles faster than
the adaptive ODE solver), then the same polishing and certification."""

EQUAL = 1e-10
"""Floor of the realization resolution: pairs with L2 below max(EQUAL, 10 (sqrt(2 L_i) + sqrt(2 L_j))) count as
equal realizations, since two minima at losses L_i, L_j against the same target differ by at most
sqrt(2 L_i) + sqrt(2 L_j) in L2 (triangle inequality): their ratio is infinite to certification accuracy."""


def families(*, quick: bool = False) -> dict:
    """Ratios along every pathology family and the well-separated reference (plain python numbers)."""
    from ..analysis.inverse_stability import pathology_family

    out = {}
    for kind, ts in FAMILY_T.items():
        fam = pathology_family(kind, ts[::2] if quick else ts)
        out[kind] = {k: v.tolist() for k, v in fam.items()}
    return out


def _pairs(problem, thetas, table) -> dict:
    from ..analysis.inverse_stability import pairwise_ratios

    select = np.asarray(table["certified"], bool) & (np.asarray(table["kind"]) == "minimum")
    res = pairwise_ratios(problem, thetas, select=select)
    glob = np.asarray(table["is_global"], bool)
    loss = np.asarray(table["loss"], float)
    out = {k: v.tolist() for k, v in res.items()}
    out["both_global"] = [bool(glob[i] and glob[j]) for i, j in zip(res["i"], res["j"], strict=True)]
    out["loss_gap"] = [float(abs(loss[i] - loss[j])) for i, j in zip(res["i"], res["j"], strict=True)]
    resolution = [max(EQUAL, 10 * (math.sqrt(2 * max(loss[i], 0)) + math.sqrt(2 * max(loss[j], 0))))
                  for i, j in zip(res["i"], res["j"], strict=True)]
    out["equal"] = [bool(d <= r) for d, r in zip(res["l2"], resolution, strict=True)]
    out["l2_resolution"] = resolution
    out["n_minima"] = int(select.sum())
    out["n_points"] = int(len(select))
    return out


def minima_ratios(config_path, *, quick: bool = False) -> dict:
    """Explore the run config's problem and pair its certified minima (see :func:`landscape.explore`)."""
    import jax

    from ..analysis.explore import explore
    from ..config import build, load_config

    cfg = load_config(config_path, list(QUICK) if quick else [])
    b = build(cfg)
    res = explore(b.problem, b.flow, key=jax.random.PRNGKey(b.seed), n=b.count, init=b.init, polish=b.polish,
                  analyzers=b.analyzers)
    return _pairs(b.problem, res.points.theta, res.table())


def ratios_of_run(results_dir, *, point: int = 0) -> dict:
    """The same pairs from a stored run (``landscape run CONFIG --out DIR``): its ``config.toml``, certified
    minima (``points.parquet``) and end parameters (``arrays.npz``) of grid point ``point``."""
    from ..config import build_problem, read_raw_config
    from ..grid import expand_sweep
    from ..store import load_arrays, load_points

    results_dir = Path(results_dir)
    problem = build_problem(expand_sweep(read_raw_config(results_dir / "config.toml"))[point].config)
    table = load_points(results_dir)
    if "grid_point" in table:
        table = table[table["grid_point"] == point]
    table = table.sort_values("id")
    arrays = load_arrays(results_dir, point)
    order = np.argsort(arrays["id"])
    thetas = {k.removeprefix("theta."): v[order] for k, v in arrays.items() if k.startswith("theta.")}
    return _pairs(problem, thetas, {k: table[k].to_numpy() for k in ("certified", "kind", "is_global", "loss")})


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.3g}"


def make(config_path: Path | None, out_dir: Path, *, quick: bool) -> list[Path]:
    """Draw the figure (see the module docstring) into ``out_dir``; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fams = families(quick=quick)
    minima = minima_ratios(config_path, quick=quick)
    print("ratio d_sym / d_L2 along each family (d_raw: neurons matched, not balanced):")
    for kind, fam in fams.items():
        key = "ratio_raw" if kind == "unbalanced" else "ratio_l2"
        print(f"  {kind:15s} t: " + " ".join(_fmt(t) for t in fam["t"]))
        print(f"  {'':15s} {key}: " + " ".join(_fmt(r) for r in fam[key]))
        if kind == "unbalanced":
            print(f"  {'':15s} ratio_l2 (mod rescalings): " + " ".join(_fmt(r) for r in fam["ratio_l2"]))
    ratios = np.asarray(minima["ratio_l2"], float)
    eq = np.asarray(minima["equal"], bool)
    d_eq = np.asarray(minima["d_sym"], float)[eq]
    print(f"certified minima: {minima['n_minima']} of {minima['n_points']} points, {len(ratios)} pairs; "
          f"{int(eq.sum())} pairs with equal realizations (L2 below the certification resolution "
          f"10 (sqrt(2 L_i) + sqrt(2 L_j)), at least {EQUAL:g}): d_sym in [{_fmt(min(d_eq, default=math.nan))}, "
          f"{_fmt(max(d_eq, default=math.nan))}], {int(np.sum(d_eq > 1e-4))} of them at d_sym > 1e-4 (distinct "
          "parametrizations of one function: ratio infinite)")
    finite = ratios[~eq & np.isfinite(ratios)]
    if finite.size:
        print(f"  other pairs: ratio min {finite.min():.3g}, median {np.median(finite):.3g}, max {finite.max():.3g}")

    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5), constrained_layout=True)
    for kind, style in [("parallel", "o-"), ("opposite", "s-"), ("well_separated", "k^--")]:
        f = fams[kind]
        axes[0].loglog(f["t"], f["ratio_l2"], style, ms=4, label=f"{kind}: d_sym / L2")
        if kind != "well_separated":
            axes[0].loglog(f["t"], f["ratio_sobolev"], style.replace("-", ":"), ms=3, alpha=0.6,
                           label=f"{kind}: d_sym / Sobolev")
    axes[0].invert_xaxis()
    axes[0].set_xlabel("t (pathology at t -> 0)")
    axes[0].set_ylabel("ratio")
    axes[0].set_title("parallel and opposite neurons")
    f = fams["unbalanced"]
    axes[1].loglog(f["t"], f["ratio_raw"], "o-", ms=4, label="unbalanced: d_raw / L2")
    axes[1].loglog(f["t"], f["ratio_l2"], "o:", ms=4, label="unbalanced: d_sym / L2 (balanced)")
    f = fams["dead"]
    axes[1].semilogy(np.maximum(f["t"], 1e-2), f["ratio_l2"], "s-", ms=4, label="dead (bias -t): d_sym / L2")
    axes[1].set_xlabel("t (pathology at t -> inf; dead plotted at max(t, 0.01))")
    axes[1].set_title("unbalanced scaling and dead neurons")
    d_sym, l2 = np.asarray(minima["d_sym"], float), np.asarray(minima["l2"], float)
    glob = np.asarray(minima["both_global"], bool)
    floor = EQUAL / 10
    for mask, lab, mk in [(glob & ~eq, "both global, distinct realizations", "o"),
                          (~glob & ~eq, "other pairs of minima", "s"),
                          (eq, f"equal realizations to certification accuracy, drawn at L2 = {floor:g}", "v")]:
        if mask.any():
            axes[2].loglog(np.where(eq[mask], floor, l2[mask]), np.maximum(d_sym[mask], 1e-12), mk, ms=5, label=lab)
    axes[2].set_xlim(floor / 3, max(float(np.max(l2, initial=0.0)), 1.0) * 3)
    axes[2].set_xlabel("L2 distance of realizations")
    axes[2].set_ylabel("d_sym (balanced, matched)")
    axes[2].set_title(f"pairs of certified minima ({minima['n_minima']} minima)")
    for ax in axes:
        ax.legend(fontsize=7)
    png, js = out_dir / "inverse_stability.png", out_dir / "inverse_stability.json"
    fig.savefig(png, dpi=110)
    plt.close(fig)
    js.write_text(json.dumps({"families": fams, "minima": minima}, indent=1, default=float))
    return [png, js]
