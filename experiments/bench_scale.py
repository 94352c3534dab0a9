"""Throughput: certified critical points per minute against batch size and problem size, with peak memory.

The problem is Safran-Shamir's (ReLU population loss through the arc-cosine kernel, orthonormal teacher V = I_d,
k = d, output weights fixed to one, Xavier initialisations), for d = k in ``--dims``. For each (d, batch size n) the
whole pipeline of :func:`landscape.explore` runs twice on the same shapes: the first run compiles (its wall time
is reported as ``first s``), the second is timed (``warm s``) with fresh initialisations. Certified points per minute
= certified end points of the warm run / its wall time * 60; ``useful`` and ``pol use``: the fractions of
computed flow lane-steps and polishing passes that were useful (packed segments). Peak memory: the device's
``peak_bytes_in_use`` on a GPU, else the process's peak RSS (VmHWM), both cumulative over the process (so read them
down a column).

    python experiments/bench_scale.py                     # d = 6, 10, 20; n = 64, 256, 1024
    python experiments/bench_scale.py --dims 6 --sizes 64 256 --quick
    python experiments/bench_scale.py --dims 10 --sizes 4096 16384 65536   # on a GPU

``--quick`` shortens the flows (t_max 200) so a CPU finishes in minutes; the default t_max 2000 follows
``configs/safran_shamir.toml``. ``--certify-only`` keeps the Hessian spectrum and the classification and drops the
(host-side) symmetry analysis: trajectories to certified, classified critical points. One ``explore`` call holds the
whole batch (the sweep layer, not ``explore``, cuts batches to the device's memory): a size that does not fit is
printed as failed and the table goes on (on one H100 at d = 10, n = 16384 peaked at 55 GiB; 65536 ran out).
"""

from __future__ import annotations

import argparse
import sys
import time


def peak_memory() -> tuple[float, str]:
    """(peak bytes, what was measured): device peak on a GPU, else the process's peak RSS."""
    import jax

    dev = jax.local_devices()[0]
    if dev.platform != "cpu":
        stats = dev.memory_stats() or {}
        if "peak_bytes_in_use" in stats:
            return float(stats["peak_bytes_in_use"]), "device"
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) * 1024, "rss"
    except OSError:
        pass
    import resource

    return float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024, "rss"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dims", type=int, nargs="+", default=[6, 10, 20])
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--quick", action="store_true", help="t_max 200 instead of 2000")
    ap.add_argument("--cache", default=None, help="persistent compilation cache directory (default: off)")
    ap.add_argument("--certify-only", action="store_true",
                    help="analyzers: Hessian spectrum and classification only (no symmetry analysis)")
    args = ap.parse_args(argv)
    import jax

    import landscape as ls

    ls.use_cpu_cores()  # as `landscape run` does: the flows' lanes split over the cores

    if args.cache:
        ls.enable_compile_cache(args.cache)
    flow = ls.GradientFlow(t_max=200.0 if args.quick else 2000.0, rtol=1e-7, atol=1e-9)
    kw = {"analyzers": (ls.HessianSpectrum(), ls.Classify())} if args.certify_only else {}
    print(f"device: {jax.devices()[0].device_kind} ({jax.default_backend()}), flow t_max {float(flow.t_max):g}, "
          f"grad_tol {float(flow.grad_tol):g}, segment_steps {flow.segment_steps}")
    print(f"{'d':>3} {'n':>7} {'first s':>8} {'warm s':>8} {'certified':>9} {'cert/min':>10} {'useful':>7} "
          f"{'pol use':>7} {'peak MiB':>9}  stages (warm, s)")
    for d in args.dims:
        problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=d, width=d), ls.TwoLayer(width=d),
                                    ls.PopulationLoss(), output_weights="teacher")
        for n in args.sizes:
            try:
                t0 = time.perf_counter()
                ls.explore(problem, flow, key=jax.random.key(0), n=n, init=ls.GaussianInit(1.0), **kw)
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                res = ls.explore(problem, flow, key=jax.random.key(0), n=n, init=ls.GaussianInit(1.0), start=n, **kw)
                warm = time.perf_counter() - t0
            except Exception as err:  # noqa: BLE001  (e.g. out of device memory: one explore call holds the batch)
                line = next((ln for ln in str(err).splitlines() if "memory" in ln.lower()), str(err).splitlines()[0])
                print(f"{d:>3} {n:>7}  failed: {type(err).__name__}: {line[:160]}", flush=True)
                continue
            cert = int(res.points.certified.sum())
            peak, _ = peak_memory()
            stages = " ".join(f"{k[:-2]}={v:.1f}" for k, v in res.timings.items() if k.endswith("_s"))
            useful = res.packing.fraction if res.packing is not None else float("nan")
            pol = res.polish_packing.fraction if res.polish_packing is not None else float("nan")
            print(f"{d:>3} {n:>7} {first:8.1f} {warm:8.1f} {cert:>9} {cert / warm * 60:10.0f} {useful:7.2f} "
                  f"{pol:7.2f} {peak / 2**20:9.0f}  {stages}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
