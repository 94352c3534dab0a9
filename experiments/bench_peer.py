"""Equal work against the batched PyTorch peer (``../shared/peers/torch_safran_shamir.py``), whole processes.

The work: Safran-Shamir (ReLU population loss through the arc-cosine kernel, V = I_d, k = d, output weights fixed to
one, float64), COUNT Xavier initialisations, STEPS plain gradient-descent steps at lr 5/d, then the dense Hessian
spectrum of every end point. Each side runs as a whole process (start-up, imports, compilation and figures of
nothing: only the work), alternated ROUNDS times; the table gives every wall time and the median ratio
peer / landscape (> 1: landscape is faster).

landscape runs :func:`landscape.explore` with ``OptaxFlow(optax.sgd, learning_rate=5/d, steps=STEPS,
grad_tol=0)`` (no early stop: every lane takes all STEPS steps, as the peer does), polishing off and the analyzers
reduced to :class:`landscape.HessianSpectrum`: the same work. Two landscape variants are timed: ``cold`` (no
persistent compilation cache: everything compiles in the process) and ``warm`` (the cache filled by an earlier
run, as on a researcher's second run), both with the CPU's cores as devices the lanes spread over
(:func:`landscape.use_cpu_cores`, as ``landscape run`` does), and ``warm 1 dev`` without (one device, XLA's
threads inside each operation). ``--full`` adds the whole default pipeline as a third variant (Newton
polishing to |grad| <= 1e-10, symmetry analysis, classification): more work than the peer does, for reference.

The peer needs ``torch`` (CPU wheel), kept out of the project's dependencies: pass ``--peer-python`` pointing at
an interpreter that has it (default: this one), and ``--peer-script`` where ``../shared`` is not beside the checkout.

``--gpu``: both sides on the GPU at the same work. JAX takes its default backend instead of ``JAX_PLATFORMS=cpu``,
and the peer runs with ``torch.set_default_device("cuda")`` (its tensors are made by ``torch.eye``/``torch.randn``,
so the whole peer moves). The ``1 dev`` variant is dropped (one GPU is one device).

    python experiments/bench_peer.py                              # d = 6, 1024 inits, 2000 steps, 3 rounds
    python experiments/bench_peer.py --peer-python /path/to/torch-venv/bin/python --count 256 --rounds 1
    python experiments/bench_peer.py --gpu --count 16384 --peer-script peers/torch_safran_shamir.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "torch_safran_shamir.py"

PEER_ON_GPU = r"""
import runpy, sys
import torch
torch.set_default_device("cuda")
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
torch.cuda.synchronize()
"""

CHILD = r"""
import sys, time
t_start = time.perf_counter()
import jax, optax
import landscape as ls
d, count, steps, mode, cache = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
cores = sys.argv[6] if len(sys.argv) > 6 else "all"
if cache != "off":
    ls.enable_compile_cache(cache)
if cores != "1":
    ls.use_cpu_cores()
problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=d, width=d), ls.TwoLayer(width=d, activation=ls.ReLU()),
                            ls.PopulationLoss(), output_weights="teacher")  # output weights frozen to one
flow = ls.OptaxFlow(optax.sgd, learning_rate=5.0 / d, steps=steps, grad_tol=0.0)
kw = {} if mode == "full" else {"polish": ls.Polish(enabled=False), "analyzers": (ls.HessianSpectrum(),)}
res = ls.explore(problem, flow, key=jax.random.key(0), n=count, init=ls.GaussianInit(1.0), **kw)
table = res.table()
spurious = int((table["loss"] > 1e-3).sum())
timings = " ".join(f"{k}={v:.2f}" for k, v in res.timings.items())
print(f"RESULT seconds={time.perf_counter() - t_start:.2f} spurious={spurious} {timings}")
"""


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return time.perf_counter() - t0, out.stdout.strip().splitlines()[-1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--d", type=int, default=6)
    ap.add_argument("--count", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--peer-python", default=sys.executable, help="a Python with torch installed")
    ap.add_argument("--peer-script", type=Path, default=PEER, help="the peer's script (default: ../shared/peers)")
    ap.add_argument("--full", action="store_true", help="also time the whole default pipeline")
    ap.add_argument("--gpu", action="store_true", help="both sides on the GPU (JAX's default backend, torch cuda)")
    ap.add_argument("--no-cold", action="store_true", help="skip the variant without a compilation cache")
    args = ap.parse_args(argv)
    if not args.peer_script.is_file():
        print(f"error: peer script {args.peer_script} not found; pass --peer-script PATH", file=sys.stderr)
        return 2
    env = dict(os.environ)
    if not args.gpu:
        env["JAX_PLATFORMS"] = os.environ.get("JAX_PLATFORMS", "cpu")
    cache = tempfile.mkdtemp(prefix="bench-peer-jax-cache-")
    child = Path(cache) / "child.py"
    child.write_text(CHILD)
    sizes = [str(args.d), str(args.count), str(args.steps)]
    peer = [args.peer_python, str(args.peer_script), "batched", *sizes]
    if args.gpu:
        wrapper = Path(cache) / "peer_on_gpu.py"
        wrapper.write_text(PEER_ON_GPU)
        peer = [args.peer_python, str(wrapper), *peer[1:]]
    variants = {
        "peer": peer,
        "landscape cold": [sys.executable, str(child), *sizes, "equal", "off"],
        "landscape warm": [sys.executable, str(child), *sizes, "equal", cache],
    }
    if args.no_cold:
        del variants["landscape cold"]
    if not args.gpu:
        variants["landscape warm 1 dev"] = [sys.executable, str(child), *sizes, "equal", cache, "1"]
    if args.full:
        variants["landscape full (warm)"] = [sys.executable, str(child), *sizes, "full", cache]
    print(f"d={args.d} count={args.count} steps={args.steps} lr=5/d float64, whole processes, {args.rounds} rounds, "
          f"{'GPU' if args.gpu else 'CPU'}")
    warmup = ("landscape warm", "landscape warm 1 dev", "landscape full (warm)")
    for name in warmup:  # fill the compilation cache once (not timed)
        if name in variants:
            subprocess.run(variants[name], capture_output=True, text=True, env=env, check=True)
    walls: dict[str, list[float]] = {name: [] for name in variants}
    for r in range(args.rounds):
        for name, cmd in variants.items():
            wall, line = timed(cmd, env)
            walls[name].append(wall)
            print(f"round {r + 1} {name:22s} {wall:7.2f} s   {line}", flush=True)
    peer = statistics.median(walls["peer"])
    print(f"\n{'variant':22s} {'median s':>9s} {'peer / this':>12s}")
    for name, ws in walls.items():
        med = statistics.median(ws)
        print(f"{name:22s} {med:9.2f} {peer / med:12.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
