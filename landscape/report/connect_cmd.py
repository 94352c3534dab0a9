"""``landscape connect RESULT_DIR --from ID --to ID [--method symmetry|neb] [--grid-point N]``.

Connects two stored end points:

- ``symmetry`` (default): an explicit piecewise-linear path inside the global-minima manifold
  (:func:`landscape.analysis.paths.zero_loss_path`; both points must be global minima of a student of width
  m >= r* + 1 with trained output weights), certified densely with the accurate loss;
- ``neb``: a climbing-image nudged elastic band (:func:`landscape.analysis.paths.neb`) whose top image is polished
  into a certified critical point, classified and identified by the symmetry analyzer; prints the barrier heights.

Writes ``path.json`` (the numbers: length, loss profile, moves and subspaces, or barrier and saddle), ``path.npz``
(vertices or images, arc length, loss) and ``profile.png`` into a new directory
``RESULT_DIR/connect/<from>-<to>-<method>`` (an existing name gets a ``-2``, ``-3``, ... suffix: nothing stored is
overwritten).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..config import ConfigError
from .slice_cmd import new_dir, stored_point

__all__ = ["add_parser", "main"]


def add_parser(sub):
    """Register the ``connect`` subcommand."""
    p = sub.add_parser("connect", help="zero-loss path (symmetry) or NEB saddle (neb) between two stored points")
    p.add_argument("result_dir", help="results directory written by 'landscape run'")
    p.add_argument("--from", dest="src", type=int, required=True, help="initialisation id of the first point")
    p.add_argument("--to", dest="dst", type=int, required=True, help="initialisation id of the second point")
    p.add_argument("--method", choices=("symmetry", "neb"), default="symmetry",
                   help="symmetry: certified zero-loss path (m >= r*+1); neb: nudged elastic band and its saddle")
    p.add_argument("--grid-point", type=int, default=None, help="grid point of a sweep (default: the only one)")
    p.add_argument("--images", type=int, default=15, help="NEB: movable images (default 15)")
    p.add_argument("--n-per-segment", type=int, default=65, help="symmetry: loss evaluations per segment")
    p.add_argument("--name", default=None, help="output directory name under RESULT_DIR/connect")
    p.set_defaults(func=main)
    return p


def main(args) -> int:
    from ..analysis.paths import NEB, NotOnManifold, neb, zero_loss_path
    from .fig_connectivity import plot_profile

    if args.src == args.dst:
        raise ConfigError(f"--from {args.src} and --to {args.dst} are the same point; give two different ids")
    problem, theta_a, row_a = stored_point(args.result_dir, args.src, args.grid_point)
    _, theta_b, row_b = stored_point(args.result_dir, args.dst, args.grid_point)
    if args.method == "symmetry":
        if args.n_per_segment < 2:
            raise ConfigError(f"--n-per-segment {args.n_per_segment} must be >= 2")
        try:
            path = zero_loss_path(problem, theta_a, theta_b, n_per_segment=args.n_per_segment)
        except (NotOnManifold, ValueError) as e:
            raise ConfigError(f"no symmetry path from point {args.src} to {args.dst}: {e}") from None
        summary = {"method": "symmetry", "from": args.src, "to": args.dst, **path.summary()}
        arrays = {"s": path.s, "loss": path.loss, "grad_norm": path.grad_norm,
                  **{f"vertices.{k}": v for k, v in path.vertices.items()}}
        vertices_s = np.concatenate([[0.0], np.cumsum(path.segment_lengths)])
        curves = {"zero-loss path": (path.s, path.loss)}
        marks = {"vertices": (vertices_s, path.vertex_loss)}
    else:
        if args.images < 3 or args.images > 200:
            raise ConfigError(f"--images {args.images} must be between 3 and 200")
        res = neb(problem, theta_a, theta_b, NEB(n_images=args.images))
        summary = {"method": "neb", "from": args.src, "to": args.dst, **res.summary()}
        arrays = {"s": res.s, "loss": res.loss, **{f"images.{k}": v for k, v in res.images.items()},
                  **{f"saddle.{k}": v for k, v in res.saddle.theta.items()},
                  "saddle.eigenvalues": res.saddle.eigenvalues}
        curves = {"NEB band": (res.s, res.loss)}
        marks = {"polished top image": (np.array([res.s[res.top]]), np.array([res.saddle.loss]))}
    out = new_dir(Path(args.result_dir) / "connect", args.name or f"{args.src}-{args.dst}-{args.method}")
    summary["stored_loss_from"], summary["stored_loss_to"] = float(row_a["loss"]), float(row_b["loss"])
    (out / "path.json").write_text(json.dumps(summary, indent=2, default=float))
    np.savez(out / "path.npz", **arrays)
    plot_profile(curves, marks, out / "profile.png", title=f"{args.method}: point {args.src} -> point {args.dst}",
                 log=args.method == "symmetry")
    _print(summary)
    print(f"wrote {out}")
    return 0


def _print(s: dict) -> None:
    print(f"{s['method']} path from point {s['from']} (loss {s['stored_loss_from']:.3e}) to point {s['to']} "
          f"(loss {s['stored_loss_to']:.3e})")
    if s["method"] == "symmetry":
        print(f"  {s['n_segments']} segments, length {s['length']:.6f}, {s['n_dense']} points evaluated")
        print(f"  max accurate loss along the path {s['max_loss']:.3e} (tolerance {s['loss_tol']:.0e}); max |grad| "
              f"{s['max_grad_norm']:.3e}; vertices certified {s['vertices_certified']}/{s['n_vertices']} "
              f"(|grad| <= {s['grad_tol']:.0e}): {'CERTIFIED' if s['certified'] else 'NOT certified'}")
        print(f"  snapped end points: moved {s['snap']['from_distance']:.2e} and {s['snap']['to_distance']:.2e}")
        for mv, sub, ln in zip(s["moves"], s["segment_subspaces"], s["segment_lengths"], strict=True):
            print(f"    {ln:8.4f}  {sub:45s}  {mv}")
    else:
        sd = s["saddle"]
        print(f"  band: {s['n_images']} images, {s['n_iter']} iterations, max force {s['max_force']:.2e} "
              f"({'converged' if s['converged'] else 'NOT converged'}), length {s['path_length']:.4f}")
        print(f"  barrier {s['barrier_from']:.6e} from point {s['from']}, {s['barrier_to']:.6e} from point {s['to']}")
        print(f"  top image polished: {sd['kind']} of index {sd['index']}, loss {sd['loss']:.9e}, |grad| "
              f"{sd['grad_norm']:.2e} ({'certified' if sd['certified'] else 'NOT certified'}), null dim "
              f"{sd['null_dim']}")
        print(f"  symmetry: {sd['sym_class']}, reduced width {sd['reduced_width']}, {sd['subspace_label']}")
