"""``landscape slice RESULT_DIR --point ID [--directions D1[,D2]] [--through ID ID] [--grid-point N]``.

Draws the loss on a line or plane through a stored end point (:func:`landscape.analysis.paths.loss_slice`):
directions ``most_negative``, ``smallest``, ``largest`` (Hessian eigenvectors at the point), ``random`` (a unit
Gaussian direction) or ``filter`` (filter-normalised random, Li et al. 2018); one name gives a line, two a plane;
``--through ID2 ID3`` gives the plane through the point and two other stored points. The grid contains the point
exactly, and the loss there is the stored loss (both the accurate loss; the printed difference is rounding in the
last bits). Writes ``slice.png``, ``slice.json`` (the numbers) and ``slice.npz`` (grid, directions, loss) into a
new directory ``RESULT_DIR/slices/<name>`` (never overwriting: an existing name gets a ``-2``, ``-3``, ... suffix)
and prints a summary.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np

from ..config import ConfigError

__all__ = ["add_parser", "main", "stored_point", "new_dir", "DIRECTION_NAMES"]

DIRECTION_NAMES = ("most_negative", "smallest", "largest", "random", "filter")


def add_parser(sub):
    """Register the ``slice`` subcommand."""
    p = sub.add_parser("slice", help="loss on a line or plane through a stored point (Hessian, random, 3 points)")
    p.add_argument("result_dir", help="results directory written by 'landscape run'")
    p.add_argument("--point", type=int, required=True, help="initialisation id of the point (the origin)")
    p.add_argument("--grid-point", type=int, default=None, help="grid point of a sweep (default: the only one)")
    p.add_argument("--directions", default="most_negative,largest",
                   help="one name (a line) or two comma-separated names (a plane) of: " + ", ".join(DIRECTION_NAMES)
                   + " (default most_negative,largest)")
    p.add_argument("--through", type=int, nargs=2, default=None, metavar="ID",
                   help="the plane through the point and two other stored points (replaces --directions)")
    p.add_argument("--span", type=float, default=1.0, help="half-width of the grid along each direction (default 1)")
    p.add_argument("--n", type=int, default=41, help="grid points per axis (default 41)")
    p.add_argument("--seed", type=int, default=0, help="seed of random directions (default 0)")
    p.add_argument("--name", default=None, help="output directory name under RESULT_DIR/slices (default: derived)")
    p.set_defaults(func=main)
    return p


def stored_point(result_dir, point_id: int, grid_point: int | None = None):
    """(problem, theta, row) of a stored end point: the problem rebuilt from the directory's config, theta its
    final parameters (``theta.*`` arrays), row its stored table row (dict)."""
    import jax.numpy as jnp

    from ..config import build_problem
    from ..grid import expand_sweep
    from ..store import load_manifest
    from .hessian_cmd import load_point

    result_dir = Path(result_dir)
    row, arrays = load_point(result_dir, point_id, grid_point)
    manifest = load_manifest(result_dir)
    cfg_path = result_dir / manifest.get("config_file", "config.toml")
    if not cfg_path.is_file():
        raise ConfigError(f"{cfg_path} is missing; the problem of {result_dir} cannot be rebuilt")
    points = expand_sweep(tomllib.loads(cfg_path.read_text()))
    gp = int(row.get("grid_point", 0) or 0)
    problem = build_problem(points[gp].config)
    theta = {}
    for k in problem.trainable_shapes:
        if f"theta.{k}" not in arrays:
            raise ConfigError(f"{result_dir}: point {point_id} has no stored final parameters theta.{k}")
        theta[k] = jnp.asarray(np.asarray(arrays[f"theta.{k}"], float))
    return problem, theta, row


def new_dir(parent: Path, name: str) -> Path:
    """Create and return ``parent/name``, or ``parent/name-2``, ``-3``, ... if it exists (never overwrite)."""
    parent.mkdir(parents=True, exist_ok=True)
    for k in range(1, 10_000):
        path = parent / (name if k == 1 else f"{name}-{k}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            continue
    raise ConfigError(f"{parent} holds too many outputs named {name!r}; give another --name")


def _directions(problem, theta, names: list[str], seed: int):
    import jax

    from ..analysis.paths import hessian_directions, random_direction

    out, labels = [], []
    hess = [n for n in names if n in ("most_negative", "smallest", "largest")]
    hd = dict(zip(hess, zip(*hessian_directions(problem, theta, hess), strict=True), strict=True)) if hess else {}
    for i, n in enumerate(names):
        if n in hd:
            vec, lam = hd[n]
            out.append(vec)
            labels.append(f"Hessian {n.replace('_', ' ')} (lambda = {lam:.3e})")
        else:
            key = jax.random.fold_in(jax.random.key(seed), i)
            out.append(np.asarray(random_direction(theta, key=key, filter_normalized=n == "filter"), float))
            labels.append("filter-normalised random" if n == "filter" else "random unit")
    if len(out) == 2 and abs(float(out[0] @ out[1])) > (1 - 1e-9) * np.linalg.norm(out[0]) * np.linalg.norm(out[1]):
        raise ConfigError(f"--directions {','.join(names)}: the two directions are parallel; choose two different ones")
    return np.stack(out), labels


def main(args) -> int:
    from ..analysis.paths import loss_slice, plane_through
    from .fig_connectivity import plot_slice

    if args.n < 3 or args.n > 401:
        raise ConfigError(f"--n {args.n} must be between 3 and 401 grid points per axis")
    if not (np.isfinite(args.span) and args.span > 0):
        raise ConfigError(f"--span {args.span} must be a positive number")
    problem, theta, row = stored_point(args.result_dir, args.point, args.grid_point)
    marks = None
    ranges = None
    if args.through is not None:
        ids = [args.point, *args.through]
        if len(set(ids)) < 3:
            raise ConfigError(f"--through {args.through[0]} {args.through[1]}: give two other points than --point")
        others = [stored_point(args.result_dir, i, args.grid_point)[1] for i in args.through]
        try:
            dirs, coords = plane_through(theta, *others)
        except ValueError as e:
            raise ConfigError(f"--through: {e}") from None
        labels = [f"towards point {args.through[0]}", f"towards point {args.through[1]} (orthogonalised)"]
        marks = {f"point {i}": tuple(c) for i, c in zip(ids[1:], coords[1:], strict=True)}
        pad = 0.25 * max(np.ptp(coords[:, 0]), np.ptp(coords[:, 1]))
        ranges = [(min(0.0, coords[:, j].min()) - pad, max(0.0, coords[:, j].max()) + pad) for j in range(2)]
        name = f"point{args.point}-through-{args.through[0]}-{args.through[1]}"
    else:
        names = [n.strip() for n in args.directions.split(",") if n.strip()]
        bad = [n for n in names if n not in DIRECTION_NAMES]
        if bad or len(names) not in (1, 2):
            raise ConfigError(f"--directions {args.directions!r}: give one or two comma-separated names of "
                              f"{', '.join(DIRECTION_NAMES)}")
        dirs, labels = _directions(problem, theta, names, args.seed)
        name = f"point{args.point}-" + "-".join(names)
    s = loss_slice(problem, theta, dirs, span=args.span, n=args.n, ranges=ranges, labels=labels, marks=marks)
    out = new_dir(Path(args.result_dir) / "slices", args.name or name)
    title = f"point {args.point}: {row.get('kind', '')}, loss {float(row['loss']):.3e}"
    plot_slice(s, out / "slice.png", title=title)
    stored = float(row["loss"])
    summary = {"point": int(args.point), "stored_loss": stored, "kind": str(row.get("kind", "")),
               "origin_abs_diff": abs(s.origin_loss - stored), **s.summary()}
    (out / "slice.json").write_text(json.dumps(summary, indent=2))
    np.savez(out / "slice.npz", alphas=s.alphas, betas=np.array([]) if s.betas is None else s.betas, loss=s.loss,
             directions=s.directions)
    print(f"slice through point {args.point} ({summary['kind']}, stored loss {summary['stored_loss']:.6e})")
    for lab in s.labels:
        print(f"  direction: {lab}")
    print(f"  grid {'x'.join(map(str, s.loss.shape))}, loss at the origin (the point itself) {s.origin_loss:.15e}, "
          f"stored {stored:.15e} (difference {summary['origin_abs_diff']:.1e})")
    print(f"  loss on the grid: min {summary['loss_min']:.3e}, max {summary['loss_max']:.3e}")
    print(f"wrote {out}")
    return 0
