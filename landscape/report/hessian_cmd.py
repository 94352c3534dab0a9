"""``landscape hessian RESULT_DIR --point ID [--grid-point G] [--json]``: one end point's Hessian spectrum.

Prints the point's classification, loss and gradient norm, the zero tolerance used, and its eigenvalues grouped
into clusters with multiplicities; with a symmetry analysis available, which null directions symmetry explains.
``--json`` prints the same for machines, with the full sorted list under ``eigenvalues``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import ConfigError
from .summary import group_eigenvalues

__all__ = ["main", "load_point"]


def load_point(result_dir, point_id: int, grid_point: int | None = None) -> tuple[dict, dict]:
    """The stored row (dict) and arrays (dict of per-point arrays) of one initialisation id."""
    from ..sweep.storage import load_point_arrays, load_points

    result_dir = Path(result_dir)
    if not result_dir.is_dir():
        raise ConfigError(f"results directory {str(result_dir)!r} not found; give the --out of a 'landscape run'")
    table = load_points(result_dir)
    rows = table[table["id"] == point_id]
    if "grid_point" in rows and rows["grid_point"].nunique() > 1:
        if grid_point is None:
            points = sorted(int(g) for g in rows["grid_point"].unique())
            raise ConfigError(f"point {point_id} exists in grid points {points}; choose one with --grid-point")
    if grid_point is not None and "grid_point" in rows:
        rows = rows[rows["grid_point"] == grid_point]
    if rows.empty:
        ids = table["id"]
        raise ConfigError(
            f"no point with id {point_id}"
            + (f" in grid point {grid_point}" if grid_point is not None else "")
            + f"; ids run from {int(ids.min())} to {int(ids.max())}"
        )
    row = rows.iloc[0].to_dict()
    gp = int(row["grid_point"]) if "grid_point" in row else None
    arrays = load_point_arrays(result_dir, point_id, grid_point=gp)
    return row, arrays


def point_config(result_dir, grid_point: int | None):
    """The resolved config of one grid point of a results directory."""
    import tomllib

    from ..sweep.grid import expand_sweep

    raw = tomllib.loads((Path(result_dir) / "config.toml").read_text())
    return expand_sweep(raw)[grid_point or 0].config


def symmetry_explanation(result_dir, row: dict, arrays: dict) -> dict | None:
    """Which Hessian null directions symmetry explains (two-layer students only; None otherwise)."""
    import jax.numpy as jnp

    from ..analysis.hessian import hessian_matrix
    from ..analysis.symmetry import explain_null_space
    from ..problem.networks import TwoLayerNet
    from ..problem.problem import build_problem

    cfg = point_config(result_dir, row.get("grid_point"))
    problem = build_problem(cfg)
    if not isinstance(problem.student, TwoLayerNet):
        return None
    theta = {k.split(".", 1)[1]: jnp.asarray(v) for k, v in arrays.items() if k.startswith("theta.")}
    h = np.asarray(hessian_matrix(problem, theta))
    ex = explain_null_space(problem, theta, h, cfg.analysis.zero_tol, loss=float(row["loss"]),
                            global_loss_tol=cfg.analysis.global_loss_tol)
    return {k: _py(ex[k]) for k in ("predicted_dim", "null_dim_measured", "null_dim_explained", "null_dim_excess",
                                     "direction_labels", "text") if k in ex}


def _py(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def main(args) -> int:
    row, arrays = load_point(args.result_dir, args.point, args.grid_point)
    eigs = np.sort(np.asarray(arrays["eigenvalues"], float))
    tol = float(row["zero_tol_abs"])
    groups = group_eigenvalues(eigs[np.isfinite(eigs)], zero_tol_abs=tol)
    keys = ("id", "grid_point", "kind", "index", "null_dim", "loss", "grad_norm", "certified", "flow_status",
            "zero_tol_abs", "sym_class", "subspace_label", "reduced_width", "predicted_dim", "null_dim_explained")
    info = {k: _py(row[k]) for k in keys if k in row}
    out = {**info, "groups": groups, "eigenvalues": [float(x) for x in eigs]}
    sym = symmetry_explanation(args.result_dir, row, arrays) if np.all(np.isfinite(eigs)) else None
    if sym is not None:
        out["symmetry"] = sym
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    kind = info["kind"] + (f" (index {info['index']})" if info["kind"] == "saddle" else "")
    print(f"point {info['id']}" + (f" of grid point {info['grid_point']}" if "grid_point" in info else ""))
    print(f"  {'kind':<20}{kind}")
    print(f"  {'loss':<20}{info['loss']:.6e}")
    print(f"  {'grad norm':<20}{info['grad_norm']:.3e}  ({'certified' if info['certified'] else 'NOT certified'})")
    print(f"  {'null dim':<20}{info['null_dim']}  (|lambda| <= {tol:.2e})")
    for k in ("sym_class", "subspace_label", "reduced_width", "predicted_dim", "null_dim_explained"):
        if k in info:
            print(f"  {k:<20}{info[k]}")
    if sym is not None:
        print(f"  symmetry: {sym['text']}")
        for label in sym.get("direction_labels", []):
            print(f"    predicted flat direction: {label}")
    print(f"\n  {'eigenvalue':>16}  {'multiplicity':>12}  {'spread':>10}")
    for g in groups:
        print(f"  {g['value']:>16.9e}  {g['multiplicity']:>12}  {g['max'] - g['min']:>10.2e}")
    print(f"\n  {len(eigs)} eigenvalues in {len(groups)} groups")
    return 0
