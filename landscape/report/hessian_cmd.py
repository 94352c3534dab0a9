"""``landscape hessian RESULT_DIR --point ID [--grid-point G] [--json]``: one end point's Hessian spectrum.

Prints the point's classification, loss and gradient norm, the zero tolerance used, and its eigenvalues grouped
into clusters with multiplicities; for a certified point the symmetry analyzer ran on, which null directions symmetry
explains. Everything is read from the results directory (the run stored the eigenvalues, and the analyzer's
``symmetry_text`` and ``null_directions`` columns); nothing is recomputed. ``--json`` prints the same for machines,
with the full sorted list under ``eigenvalues``.

``--spectrum auto|dense|lanczos`` recomputes the spectrum from the stored parameters and the stored config instead:
``dense`` forms the Hessian (all P eigenvalues), ``lanczos`` gives the 8 most negative and 8 largest eigenvalues
matrix-free with their residuals (:mod:`landscape.analysis.krylov`), ``auto`` picks dense up to
:data:`landscape.analysis.hessian.DENSE_MAX_PARAMS` parameters (the analyzer's rule).
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
    from ..store import load_point_arrays, load_points

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


SYMMETRY_KEYS = ("sym_class", "subspace_label", "reduced_width", "predicted_dim", "null_dim_explained")


def _text(v) -> str:
    """A stored string column's value ('' for missing, None or NaN)."""
    return v if isinstance(v, str) else ""


def analyzed(row: dict) -> bool:
    """Whether the symmetry analyzer ran on this point: certified, with a ``sym_class`` other than not_analyzed."""
    cls = _text(row.get("sym_class"))
    return bool(row.get("certified", False)) and cls not in ("", "not_analyzed")


def symmetry_explanation(row: dict) -> dict | None:
    """The stored explanation of the point's Hessian null space, or None (not analyzed, or nothing stored).

    From the analyzer's columns: ``symmetry_text`` (lines joined with newlines) and ``null_directions`` (labels of
    the predicted flat directions, joined with ``;``), with the stored null-space dimensions when present.
    """
    if not analyzed(row):
        return None
    text, directions = _text(row.get("symmetry_text")), _text(row.get("null_directions"))
    if not text and not directions:
        return None
    out = {k: _py(row[k]) for k in ("predicted_dim", "null_dim_measured", "null_dim_explained", "null_dim_excess")
           if k in row}
    out["direction_labels"] = [d for d in directions.split(";") if d]
    out["text"] = text
    return out


def _py(v):
    if isinstance(v, np.generic):
        return v.item()
    return v


def recompute_spectrum(result_dir, row: dict, arrays: dict, method: str) -> tuple[np.ndarray, str, np.ndarray | None]:
    """(sorted eigenvalues, method used, Lanczos residuals or None) at the stored point, from the stored config."""
    import jax

    from ..analysis.hessian import _lanczos_pairs, hessian_matrix, spectrum_method
    from ..config import build_problem, read_raw_config
    from ..grid import expand_sweep

    cfg_path = Path(result_dir) / "config.toml"
    if not cfg_path.is_file():
        raise ConfigError(f"{cfg_path} not found; --spectrum recomputes from the run's stored config")
    points = expand_sweep(read_raw_config(cfg_path, []))
    gp = int(row.get("grid_point", 0) or 0)
    problem = build_problem(points[gp].config)
    shapes = problem.trainable_shapes
    leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes, is_leaf=lambda x: isinstance(x, tuple))
    values = []
    for path, _ in leaves:
        name = "theta." + ".".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)
        if name not in arrays:
            raise ConfigError(f"the stored arrays have no {name!r}; re-run 'landscape run' to store the parameters")
        values.append(np.asarray(arrays[name], float))
    theta = jax.tree_util.tree_unflatten(treedef, values)
    used = spectrum_method(problem, method)
    if used == "dense":
        h = jax.jit(hessian_matrix)(problem, theta)
        return np.sort(np.linalg.eigvalsh(np.asarray(h))), used, None
    eigs, res = (np.asarray(x) for x in jax.jit(lambda t: _lanczos_pairs(problem, t, 8, None))(theta))
    # a Krylov space smaller than 16 (few distinct eigenvalues) repeats values: keep each distinct one once
    keep = np.isfinite(eigs)
    eigs, idx = np.unique(eigs[keep], return_index=True)
    return eigs, used, res[keep][idx]


def main(args) -> int:
    row, arrays = load_point(args.result_dir, args.point, args.grid_point)
    eigs = np.sort(np.asarray(arrays["eigenvalues"], float))
    method = getattr(args, "spectrum", "stored") or "stored"
    residuals = None
    if method != "stored":
        eigs, method, residuals = recompute_spectrum(args.result_dir, row, arrays, method)
    tol = float(row["zero_tol_abs"])
    groups = group_eigenvalues(eigs[np.isfinite(eigs)], zero_tol_abs=tol)
    keys = ("id", "grid_point", "kind", "index", "null_dim", "loss", "grad_norm", "certified", "flow_status",
            "zero_tol_abs")
    info = {k: _py(row[k]) for k in keys if k in row}
    if analyzed(row):
        info.update({k: _py(row[k]) for k in SYMMETRY_KEYS if k in row})
    out = {**info, "spectrum": method, "groups": groups, "eigenvalues": [float(x) for x in eigs]}
    if residuals is not None:
        out["residuals"] = [float(x) for x in residuals]
    sym = symmetry_explanation(row)
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
    for k in SYMMETRY_KEYS:
        if k in info:
            print(f"  {k:<20}{info[k]}")
    if sym is not None:
        if sym["text"]:
            first, *rest = sym["text"].splitlines()
            print(f"  symmetry: {first}")
            for line in rest:
                print(f"    {line}")
        for label in sym.get("direction_labels", []):
            print(f"    predicted flat direction: {label}")
    print(f"\n  {'eigenvalue':>16}  {'multiplicity':>12}  {'spread':>10}")
    for g in groups:
        print(f"  {g['value']:>16.9e}  {g['multiplicity']:>12}  {g['max'] - g['min']:>10.2e}")
    print(f"\n  {len(eigs)} eigenvalues in {len(groups)} groups ({method})")
    if residuals is not None:
        print(f"  Lanczos: the 8 most negative and 8 largest distinct eigenvalues (one start vector: multiplicities "
              f"are not seen); max residual |Hy - theta y| = {np.nanmax(residuals):.2e}")
    return 0
