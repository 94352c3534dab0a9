"""Sweep throughput and peak memory: chunk-size scaling, then a >= 100k-trajectory chunked sweep.

Runs the real runner (chunk planning, engine, atomic Parquet/npz writes, manifest, consolidation) on a tiny problem
with short flows, through :func:`landscape.sweep.runner.run_sweep` with the engine wrapped in a timer:

1. chunk-size scaling: for each chunk size C, a sweep of ``chunks_per_size`` chunks of C; the first chunk compiles,
   the rest give the steady throughput of the engine (trajectories per second of ``run_chunk``) and end to end
   (wall time of the later chunks, storage included);
2. the big sweep: ``--count`` trajectories over a grid of init.scale values (same shapes: one compilation), chunked
   at ``--chunk-size`` (default: automatic), reporting wall time, throughput and peak resident memory.

Peak memory is the maximum resident set size sampled every 10 ms during each phase, above the baseline before it;
the runner's own estimate of memory per chunk is printed beside it. Usage::

    python experiments/bench_sweep.py                       # defaults: 100k trajectories, chunk sizes 128..2048
    python experiments/bench_sweep.py --count 20000 --chunk-sizes 256 1024
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import tempfile
import threading
import time
from pathlib import Path

import jax

import landscape  # noqa: F401  (x64)
from landscape.config import read_raw_config
from landscape.grid import expand_sweep
from landscape.report.finalize import finalize
from landscape.store import load_points
from landscape.sweep.execute import run_chunk
from landscape.sweep.runner import auto_chunk_size, bytes_per_trajectory, run_sweep

CONFIG = """
[problem]
input_dim = 3
activation = "relu"
[teacher]
width = 2
[student]
width = 2
[init]
count = {count}
seed = 0
[flow]
method = "gd"
lr = 0.05
steps = {steps}
n_snapshots = 8
[polish]
enabled = false
[sweep]
grid = {{ "init.scale" = {scales} }}
"""


def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class PeakRSS:
    """Maximum resident set size sampled every ``interval`` seconds while in the ``with`` block."""

    def __init__(self, interval: float = 0.01):
        self.interval, self.peak, self.baseline = interval, 0, 0
        self._stop = threading.Event()

    def __enter__(self):
        self.baseline = self.peak = rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())


class TimedEngine:
    """``run_chunk`` with a record of (trajectories computed, seconds) per call."""

    def __init__(self):
        self.calls: list[tuple[int, float, float]] = []  # (count, seconds, end time)

    def __call__(self, cfg, start, count, **kw):
        t0 = time.perf_counter()
        res = run_chunk(cfg, start, count, **kw)
        t1 = time.perf_counter()
        self.calls.append((count, t1 - t0, t1))
        return res


def sweep(tmp: Path, name: str, *, count: int, scales: list[float], steps: int, chunk_size: int | None):
    cfg_path = tmp / f"{name}.toml"
    cfg_path.write_text(CONFIG.format(count=count, steps=steps, scales=json.dumps(scales)))
    out = tmp / name
    engine = TimedEngine()
    with PeakRSS() as mem, contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        t0 = time.perf_counter()
        rc = run_sweep(cfg_path, out_dir=out, chunk_size=chunk_size, figures=False, progress=False,
                       run_chunk=engine, on_complete=finalize)  # as `landscape run --no-figures`
        wall = time.perf_counter() - t0
    assert rc == 0
    n_rows = len(load_points(out))
    points = expand_sweep(read_raw_config(cfg_path))
    return {"wall": wall, "engine": engine.calls, "rows": n_rows, "peak": mem.peak, "baseline": mem.baseline,
            "estimate_per_traj": bytes_per_trajectory(points[0].config), "points": points, "start": t0}


def mib(b: float) -> str:
    return f"{b / 2**20:8.1f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=100_000, help="trajectories in the big sweep (default 100000)")
    ap.add_argument("--chunk-sizes", type=int, nargs="*", default=[128, 512, 2048])
    ap.add_argument("--chunks-per-size", type=int, default=4)
    ap.add_argument("--chunk-size", type=int, default=None, help="chunk size of the big sweep (default automatic)")
    ap.add_argument("--steps", type=int, default=100, help="gd steps per flow (default 100)")
    ap.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    ap.add_argument("--skip-symmetry", action="store_true",
                    help="skip the engine's host-side symmetry analysis (measures flows, Hessians and storage)")
    args = ap.parse_args(argv)
    if args.skip_symmetry:
        import landscape.sweep.execute as execute

        class _NotTwoLayer:  # run_chunk analyses symmetry only for two-layer students
            pass

        execute.TwoLayerNet = _NotTwoLayer

    dev = jax.devices()[0]
    print(f"device: {dev.platform} ({getattr(dev, 'device_kind', dev)}), {jax.device_count()} device(s); "
          f"problem: relu, d=3, k=2, m=2 (P=8), population loss, gd {args.steps} steps, Hessians, no polish"
          + (", no symmetry analysis" if args.skip_symmetry else ""))
    tmp = Path(tempfile.mkdtemp(prefix="bench_sweep_"))
    results = {"scaling": [], "big": None}
    try:
        print("\n1. chunk-size scaling (first chunk compiles; steady = later chunks)")
        print(f"{'chunk':>7} {'compile+1st s':>14} {'engine traj/s':>14} {'end-to-end traj/s':>18} "
              f"{'peak RSS MiB':>13} {'est. MiB':>9}")
        for c in args.chunk_sizes:
            r = sweep(tmp, f"scale{c}", count=c * args.chunks_per_size, scales=[1.0], steps=args.steps,
                      chunk_size=c)
            calls = r["engine"]
            steady = calls[1:]
            eng = sum(n for n, _, _ in steady) / sum(s for _, s, _ in steady)
            e2e = sum(n for n, _, _ in steady) / (calls[-1][2] - calls[0][2])
            row = {"chunk": c, "first_s": calls[0][1], "engine_traj_s": eng, "end_to_end_traj_s": e2e,
                   "peak_rss_mib": (r["peak"] - r["baseline"]) / 2**20,
                   "estimate_mib": r["estimate_per_traj"] * c / 2**20}
            results["scaling"].append(row)
            print(f"{c:>7} {row['first_s']:>14.1f} {eng:>14.0f} {e2e:>18.0f} {mib(r['peak'] - r['baseline']):>13} "
                  f"{mib(r['estimate_per_traj'] * c):>9}", flush=True)
            shutil.rmtree(tmp / f"scale{c}")

        scales = [0.25, 0.5, 1.0, 2.0]
        per_point = -(-args.count // len(scales))
        raw_points = expand_sweep(read_raw_config(_write(tmp, per_point, scales, args.steps)))
        size = args.chunk_size or auto_chunk_size(raw_points)
        print(f"\n2. sweep of {per_point * len(scales)} trajectories: {len(scales)} grid points (init.scale = {scales})"
              f" x {per_point}, chunk size {size} ({'given' if args.chunk_size else 'automatic'})")
        r = sweep(tmp, "big", count=per_point, scales=scales, steps=args.steps, chunk_size=size)
        calls = r["engine"]
        n_total = r["rows"]
        steady = calls[1:]
        eng = sum(n for n, _, _ in steady) / sum(s for _, s, _ in steady)
        big = {"trajectories": n_total, "chunks": len(calls), "chunk_size": size, "wall_s": r["wall"],
               "first_chunk_s": calls[0][1], "throughput_traj_s": n_total / r["wall"], "engine_traj_s": eng,
               "end_to_end_after_compile_traj_s": sum(n for n, _, _ in steady) / (calls[-1][2] - calls[0][2]),
               "peak_rss_mib": r["peak"] / 2**20, "peak_above_baseline_mib": (r["peak"] - r["baseline"]) / 2**20,
               "estimate_per_chunk_mib": r["estimate_per_traj"] * size / 2**20}
        results["big"] = big
        print(f"   rows stored: {n_total} in {len(calls)} chunks; wall {r['wall']:.1f} s (first chunk incl. compile "
              f"{calls[0][1]:.1f} s)")
        print(f"   throughput: {big['throughput_traj_s']:.0f} traj/s overall, "
              f"{big['end_to_end_after_compile_traj_s']:.0f} traj/s after compilation, engine alone {eng:.0f} traj/s")
        print(f"   peak RSS {big['peak_rss_mib']:.0f} MiB ({big['peak_above_baseline_mib']:.0f} MiB above the "
              f"baseline); runner's estimate per chunk {big['estimate_per_chunk_mib']:.1f} MiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return results


def _write(tmp: Path, count: int, scales, steps) -> Path:
    p = tmp / "plan.toml"
    p.write_text(CONFIG.format(count=count, steps=steps, scales=json.dumps(scales)))
    return p


if __name__ == "__main__":
    main()
