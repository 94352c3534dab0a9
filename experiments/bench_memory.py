"""Memory estimate vs measured peak: does ``bytes_per_trajectory`` bound what a chunk really uses?

For each case (a quickstart-like problem with overrides, and a chunk size) a fresh subprocess imports landscape,
builds the problem, records its peak resident set size (``VmHWM`` of /proc/self/status: the high-water mark of its
own address space; ``ru_maxrss`` is not used because on Linux a child's starts from its parent's high-water mark,
copied at fork + exec, so a large parent would mask it) as the baseline, runs one chunk through the engine
(:func:`landscape.sweep.execute.run_chunk`: flow, polish and certification, Hessian, symmetry, classification),
and records the peak again. The measured figure is peak minus baseline: everything the chunk adds, compilation
included. The estimate is ``CHUNK_OVERHEAD["cpu"] + count * bytes_per_trajectory(cfg)``; the difference between
two chunk sizes of the same problem isolates the per-trajectory part (compilation is the same for both), printed as
"per-traj measured" against the per-trajectory estimate. CPU only (on a GPU the estimate is about device memory,
which RSS does not see). Usage::

    python experiments/bench_memory.py               # the default cases (~10 minutes on 2 cores)
    python experiments/bench_memory.py --quick       # two small cases
    python experiments/bench_memory.py --case softplus_m3 --counts 4 16
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

BASE = {
    "problem": {"input_dim": 4, "activation": "relu", "loss": "population"},
    "teacher": {"kind": "gaussian", "width": 3, "output_weights": [1.0, -1.0, 0.6], "seed": 1},
    "student": {"width": 3, "train_output_weights": True},
    "init": {"count": 4, "scale": 0.01, "distribution": "gaussian", "seed": 0},
    "flow": {"method": "gradient_flow", "t_max": 20.0, "grad_tol": 1e-9},
    "polish": {"tol": 1e-10, "max_iter": 20},
    "analysis": {"zero_tol": 1e-7},
}

CASES = {
    "relu_quickstart": {},
    "softplus_m3": {"problem.activation": "softplus"},
    "softplus_m6": {"problem.activation": "softplus", "student.width": 6},
    "softplus_m3_q32": {"problem.activation": "softplus", "problem.quadrature_order": 32},
    "sigmoid4_softplus_m3": {"problem.activation": "sigmoid4_softplus"},
    "tanh_sample_n4000": {"problem.activation": "tanh", "problem.loss": "sample", "problem.n_samples": 4000},
}
DEFAULT = [("relu_quickstart", (4, 16)), ("softplus_m3", (4, 16)), ("softplus_m6", (4, 16)),
           ("softplus_m3_q32", (4, 16)), ("sigmoid4_softplus_m3", (4,)), ("tanh_sample_n4000", (4, 16))]
QUICK = [("softplus_m3_q32", (4,)), ("softplus_m3", (4,))]


def config_for(case: str, count: int, extra: dict | None = None) -> dict:
    """The raw config dict of ``case`` with ``count`` initialisations (and ``extra`` dotted overrides)."""
    raw = json.loads(json.dumps(BASE))
    for key, value in {**CASES[case], **(extra or {}), "init.count": count}.items():
        section, name = key.split(".")
        raw[section][name] = value
    return raw


def peak_rss() -> int:
    """Peak resident set size of this process in bytes: VmHWM (Linux), else ru_maxrss (KiB on Linux, bytes on macOS)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def child(raw: dict) -> dict:
    """In a fresh process: baseline peak RSS after import and build, run one chunk, peak RSS again (bytes)."""
    import landscape  # noqa: F401  (x64)
    from landscape.config import build_problem, config_from_dict
    from landscape.sweep.execute import run_chunk

    cfg = config_from_dict(raw)
    problem = build_problem(cfg)
    base = peak_rss()
    t0 = time.perf_counter()
    res = run_chunk(cfg, 0, cfg.init.count, problem=problem)
    wall = time.perf_counter() - t0
    peak = peak_rss()
    return {"base": base, "peak": peak, "wall_s": wall, "timings": {k: float(v) for k, v in res.timings.items()}}


def measure(raw: dict, *, timeout: float = 1800) -> dict:
    """Run :func:`child` on ``raw`` in a subprocess (CPU) and return its JSON line."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(raw)], capture_output=True, text=True,
                         env=env, timeout=timeout, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"child failed ({out.returncode}): {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def estimate(raw: dict) -> tuple[int, int]:
    """(bytes per trajectory, bytes for the chunk = CHUNK_OVERHEAD['cpu'] + count * per trajectory)."""
    from landscape.config import config_from_dict
    from landscape.sweep.runner import CHUNK_OVERHEAD, bytes_per_trajectory

    cfg = config_from_dict(raw)
    per = bytes_per_trajectory(cfg)
    return per, CHUNK_OVERHEAD["cpu"] + cfg.init.count * per


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--quick", action="store_true", help="two small cases")
    ap.add_argument("--case", choices=sorted(CASES), action="append", help="run only these cases")
    ap.add_argument("--counts", type=int, nargs="+", default=None, help="chunk sizes (default per case)")
    ap.add_argument("--json", help="also write the rows to this file")
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    plan = QUICK if args.quick else DEFAULT
    if args.case:
        plan = [(c, tuple(args.counts or (4, 16))) for c in args.case]
    elif args.counts:
        plan = [(c, tuple(args.counts)) for c, _ in plan]
    mib = 2**20
    print(f"{'case':<22} {'count':>5} {'estimate':>10} {'measured':>10} {'ratio':>6} {'est/traj':>9} "
          f"{'meas/traj':>10} {'wall s':>7}   (MiB; measured = peak RSS - RSS after import and build)")
    rows = []
    for case, counts in plan:
        previous = None
        for count in counts:
            raw = config_for(case, count)
            per, est = estimate(raw)
            got = measure(raw)
            used = got["peak"] - got["base"]
            per_meas = ""
            if previous is not None:
                per_meas = f"{(used - previous[1]) / (count - previous[0]) / mib:10.2f}"
            previous = (count, used)
            rows.append({"case": case, "count": count, "estimate": est, "per_traj": per, "measured": used,
                         "base": got["base"], "wall_s": got["wall_s"], "timings": got["timings"]})
            print(f"{case:<22} {count:>5} {est / mib:10.1f} {used / mib:10.1f} {est / used:6.2f} {per / mib:9.2f} "
                  f"{per_meas:>10} {got['wall_s']:7.1f}", flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=1)
    bad = [r for r in rows if r["estimate"] < r["measured"]]
    print("estimate bounds every measured peak" if not bad else f"{len(bad)} case(s) exceed the estimate")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
