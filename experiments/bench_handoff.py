"""Early hand-off to Newton (``polish.handoff_tol``) against flows run to ``flow.grad_tol``: same seeds, same results?

For a config (``[sweep]`` ignored; ``--count`` overrides ``init.count``; for ``configs/spurious_census.toml``
``--d`` picks the census case: orthonormal teacher, k = d), runs :func:`landscape.explore` once per hand-off
tolerance (0: none, every flow to ``flow.grad_tol``), in one process, and prints per run: seconds per stage, useful
and computed flow lane-steps, lanes re-flowed, kinds, global minima, certified points, polishing iterations and flow
steps; then, against the first run, per-id differences in kind and ``is_global`` and the largest relative loss
difference among points that are not global minima (the global minima's losses are rounding, ~1e-24).

    python experiments/bench_handoff.py configs/spurious_census.toml --d 7 --count 250 --handoff 0 1e-3 1e-2
    python experiments/bench_handoff.py configs/quickstart.toml --handoff 0 1e-3

The first run includes compilation; pass the first tolerance twice to see it warm.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np

import landscape as ls
from landscape.config import build, config_from_dict, read_raw_config


def built_for(config: Path, handoff: float, count: int | None, d: int | None):
    raw = read_raw_config(config, [])
    raw.pop("sweep", None)
    for section in ("dynamics", "connectivity"):
        raw.pop(section, None)
    if d is not None:  # the census case at this d (experiments/spurious_census.py)
        raw["problem"]["input_dim"] = d
        raw["teacher"].update(kind="orthonormal", width=d, output_weights="ones")
        raw["student"].update(width=d, bias=False, train_output_weights=False, output_weights=1.0)
    if count is not None:
        raw.setdefault("init", {})["count"] = count
    raw.setdefault("polish", {})["handoff_tol"] = handoff
    return build(config_from_dict(raw))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--count", type=int, default=None)
    ap.add_argument("--d", type=int, default=None, help="census case: orthonormal teacher, k = d students")
    ap.add_argument("--handoff", type=float, nargs="+", default=[0.0, 1e-3])
    args = ap.parse_args(argv)
    ls.use_cpu_cores()  # as `landscape run` does: the flows' lanes split over the cores
    if not args.config.is_file():
        print(f"error: config {args.config} not found", file=sys.stderr)
        return 2
    tables = []
    for tol in args.handoff:
        b = built_for(args.config, tol, args.count, args.d)
        t0 = time.perf_counter()
        res = ls.explore(b.problem, b.flow, key=jax.random.PRNGKey(b.seed), n=b.count, init=b.init, polish=b.polish,
                         analyzers=b.analyzers)
        table = res.table()
        tables.append(table)
        t = res.timings
        kinds = ", ".join(f"{k} {v}" for k, v in table["kind"].value_counts().items())
        wall = time.perf_counter() - t0
        print(f"handoff_tol {tol:g}: {wall:.1f} s (flow {t['flow_s']:.1f}, polish {t['polish_s']:.1f}); "
              f"lane-steps useful {t.get('flow_lane_steps_useful', 0):,} computed "
              f"{t.get('flow_lane_steps_computed', 0):,}; re-flowed {t.get('handoff_reflowed', 0)}; {kinds}; "
              f"global {int(table['is_global'].sum())}; certified {int(table['certified'].sum())} of {len(table)}; "
              f"polish iterations median {np.median(table['polish_iters']):.0f} max {table['polish_iters'].max()}; "
              f"flow steps median {np.median(table['n_steps']):.0f} max {table['n_steps'].max()}", flush=True)
    ref = tables[0]
    for tol, table in zip(args.handoff[1:], tables[1:], strict=True):
        other = ~ref["is_global"].to_numpy(bool)
        rel = np.abs(ref["loss"] - table["loss"]) / np.maximum(np.abs(ref["loss"]), 1e-300)
        worst = float(rel[other].max()) if other.any() else 0.0
        kind_diff = int((ref["kind"] != table["kind"]).sum())
        print(f"handoff_tol {tol:g} against {args.handoff[0]:g}: kind differs at {kind_diff} ids, "
              f"is_global at {int((ref['is_global'] != table['is_global']).sum())}; largest relative loss "
              f"difference (not global minima) {worst:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
