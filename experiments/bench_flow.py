"""Benchmark: trajectories per second, jit(vmap(run_flow)) over a batch vs a Python loop of jit(run_flow).

Both sides run the same flow from the same initialisations in one process. Compile time is measured apart from
run time (``lower().compile()``); the batch compiles once per batch size, the loop once in all. The loop is
capped by ``--loop-budget`` seconds per size: when it cannot finish every initialisation it times a prefix and
reports the rate measured on that subset (marked ``*``). Vmapped adaptive solves run until the slowest element
finishes, so the table also gives the mean and max solver steps per batch.

Default problem: ReLU population loss (Safran & Shamir / Arjevani & Field setting), d = k = 4 orthonormal
teacher, student width 5 with output weights frozen to 1, small initialisation (scale 0.1), gradient flow to
t_max = 1e3 or |grad L| <= 1e-9. Runs unchanged on GPU (``--device gpu``).

    python experiments/bench_flow.py                      # all sizes 1 .. 4096
    python experiments/bench_flow.py --sizes 1,16,256 --method gd --device cpu
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,4,16,64,256,1024,4096", help="comma-separated batch sizes")
    ap.add_argument("--method", default="gradient_flow", choices=["gradient_flow", "gd", "momentum", "adam"])
    ap.add_argument("--device", default="default", choices=["default", "cpu", "gpu"], help="JAX platform")
    ap.add_argument("--input-dim", type=int, default=4)
    ap.add_argument("--teacher-width", type=int, default=4)
    ap.add_argument("--width", type=int, default=5, help="student width")
    ap.add_argument("--activation", default="relu")
    ap.add_argument("--loss", default="population", choices=["population", "sample"])
    ap.add_argument("--scale", type=float, default=0.1, help="initialisation scale")
    ap.add_argument("--t-max", type=float, default=1e3)
    ap.add_argument("--steps", type=int, default=5000, help="optax methods: step budget")
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--loop-budget", type=float, default=30.0, help="seconds per size for the Python loop")
    ap.add_argument("--seed", type=int, default=0)
    return ap.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.device != "default":
        os.environ["JAX_PLATFORMS"] = {"cpu": "cpu", "gpu": "cuda"}[args.device]
    import jax
    import numpy as np

    import landscape  # noqa: F401  (float64)
    from landscape.config import build_flow, build_problem, config_from_dict
    from landscape.flow import init_batch, run_flow, run_flows, status_name

    sizes = [int(s) for s in args.sizes.split(",") if s]
    cfg = config_from_dict(
        {
            "problem": {"input_dim": args.input_dim, "activation": args.activation, "loss": args.loss},
            "teacher": {"width": args.teacher_width},
            "student": {"width": args.width, "train_output_weights": False},
            "flow": {"method": args.method, "t_max": args.t_max, "steps": args.steps, "lr": args.lr},
        }
    )
    problem = build_problem(cfg)
    flow = build_flow(cfg.flow)
    dev = jax.devices()[0]
    print(f"device: {dev.platform} ({dev.device_kind}), {os.cpu_count()} host cores, jax {jax.__version__}")
    print(
        f"problem: {args.activation} {args.loss} loss, d={args.input_dim}, teacher width {args.teacher_width}, "
        f"student width {args.width} (a = 1 frozen), init scale {args.scale}; flow: {args.method}, "
        + (f"t_max={args.t_max:g}" if args.method == "gradient_flow" else f"steps={args.steps}, lr={args.lr:g}")
    )
    theta_all = init_batch(jax.random.PRNGKey(args.seed), problem, max(sizes), scale=args.scale)
    # host copies of single initialisations, so the loop times only the calls
    singles = [jax.tree.map(lambda x, i=i: jax.device_put(np.asarray(x[i])), theta_all) for i in range(max(sizes))]

    single = jax.jit(run_flow)
    t0 = time.perf_counter()
    single_c = single.lower(problem, flow, singles[0]).compile()
    loop_compile = time.perf_counter() - t0
    jax.block_until_ready(single_c(problem, flow, singles[0]))  # warm up

    header = (
        f"{'batch':>6} {'compile_s':>9} {'batch_run_s':>11} {'batch_traj/s':>12} {'loop_run_s':>10} "
        f"{'loop_traj/s':>11} {'speedup':>8} {'steps mean/max':>15}  status"
    )
    print(f"loop: one jit(run_flow) compile {loop_compile:.2f} s, reused for every size")
    print(header)
    print("-" * len(header))
    rows = []
    for n in sizes:
        theta = jax.tree.map(lambda x, n=n: x[:n], theta_all)
        t0 = time.perf_counter()
        compiled = run_flows.lower(problem, flow, theta).compile()
        t_compile = time.perf_counter() - t0
        t0 = time.perf_counter()
        traj = jax.block_until_ready(compiled(problem, flow, theta))
        t_batch = time.perf_counter() - t0
        if t_batch < 1.0:  # repeat short runs for a steadier figure
            reps = max(1, int(1.0 / max(t_batch, 1e-4)))
            t0 = time.perf_counter()
            for _ in range(reps):
                traj = jax.block_until_ready(compiled(problem, flow, theta))
            t_batch = (time.perf_counter() - t0) / reps
        # loop over the same initialisations, capped in time
        done, t0 = 0, time.perf_counter()
        out = None
        while done < n:
            out = single_c(problem, flow, singles[done])
            done += 1
            if done % 8 == 0 or done == n:
                jax.block_until_ready(out)
                if time.perf_counter() - t0 > args.loop_budget:
                    break
        jax.block_until_ready(out)
        t_loop = time.perf_counter() - t0
        rate_b, rate_l = n / t_batch, done / t_loop
        steps = np.asarray(traj.n_steps)
        codes, counts = np.unique(np.asarray(traj.status), return_counts=True)
        status = " ".join(f"{status_name(c)}:{k}" for c, k in zip(codes, counts, strict=True))
        mark = "" if done == n else "*"
        print(
            f"{n:>6} {t_compile:>9.2f} {t_batch:>11.3f} {rate_b:>12.1f} {t_loop:>10.2f} "
            f"{rate_l:>10.1f}{mark:1} {rate_b / rate_l:>8.2f} {steps.mean():>8.0f}/{steps.max():<6}  {status}",
            flush=True,
        )
        rows.append((n, done))
    capped = [(n, d) for n, d in rows if d < n]
    if capped:
        subsets = ", ".join(f"{d} of {n}" for n, d in capped)
        print(f"* loop capped at --loop-budget = {args.loop_budget:g} s: rate measured on the first {subsets} inits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
