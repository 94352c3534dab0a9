"""``landscape run``: expand the sweep, plan chunks, run them on an executor, store them; a hook at the end.

The runner stores; it never reports. After a complete run it consolidates the arrays and calls ``on_complete(store,
points, figures=...)``: the CLI passes :func:`landscape.report.finalize.finalize` (summary.json, figures, the printed
summary), so the sweep layer imports nothing from :mod:`landscape.report`.

Re-running the same command resumes (finished chunks are skipped); a run killed with SIGKILL loses at most the chunks
in flight; a different config pointed at an existing results directory is refused unless ``force``.

Chunk size (trajectories per chunk) is automatic unless given: a rough upper bound on the bytes one trajectory needs
(:func:`bytes_per_trajectory`) against a fraction of the free device memory, capped (a vmapped adaptive flow runs
until its slowest member stops, so huge chunks gain little), balanced so the chunks of a grid point are of nearly
equal size, rounded to a multiple of 64 above 64 (nearby sweeps then share shapes), and to a multiple of the device
count. All chunks have the same batch size (a short last
chunk is padded), so each shape group compiles once.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

from ..config import ConfigError, read_raw_config
from ..grid import GridPoint, config_hash, expand_sweep, resolved_dict
from ..store import SweepStore, environment

__all__ = [
    "run_sweep",
    "read_raw_config",
    "bytes_per_trajectory",
    "available_memory",
    "auto_chunk_size",
    "format_plan",
]

BYTES = 8  # float64
MEMORY_FRACTION = {"cpu": 0.25, "gpu": 0.5}
MAX_CHUNK = {"cpu": 512, "gpu": 8192}
GRANULE = 64
CHUNK_OVERHEAD = {"cpu": 2**30, "gpu": 512 * 2**20}
"""Bytes a chunk needs besides its trajectories: on CPU compiling the flow, certification and analysis programs, the
compiled code and JAX's caches (measured 200-600 MiB of peak RSS for the problems of experiments/bench_memory.py,
independent of the chunk size); on GPUs solver workspaces and the compiled programs (not measured here)."""
ACCURATE_LOSS_NODES = 8  # Gauss-Legendre nodes per segment of landscape.problem.accurate_loss (its n_nodes default)


def _n_params(cfg) -> int:
    from ..config import build_problem

    shapes = build_problem(cfg).trainable_shapes
    return int(sum(math.prod(s) for s in _leaves(shapes)))


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    elif isinstance(tree, list | tuple) and not all(isinstance(i, int) for i in tree):
        for v in tree:
            yield from _leaves(v)
    else:
        yield tree


def bytes_per_trajectory(cfg, n_params: int | None = None) -> int:
    """An upper bound on the device bytes one trajectory adds to a chunk (float64), from the problem's structure.

    Sizes: P trainable parameters, m student hidden units (all layers), k teacher units, n samples, S snapshots,
    q quadrature nodes per dimension, b = ``grid_block_nodes(q)`` nodes per quadrature grid block (2048 for q >= 46,
    q^2 below), B Hessian columns per block (:func:`landscape.flow.polish.hessian_block_size`), t = float64 words
    each Hessian tangent carries (:func:`landscape.flow.polish.tangent_words`). In float64 words:

    - kept through the chunk: theta0 and theta, S snapshots of (t, loss, |g|, |theta|) (+ P with ``save_params``),
      the eigenvalues and the P x P Hessian passed to the symmetry analyzer: 4 P + S (4 [+ P]) + P^2 + P + 16;
    - loss intermediates of one evaluation with r derivatives, L_r (the population loss evaluates
      E = m (m + 1) / 2 + m k + k (k + 1) / 2 kernels): sample losses 8 n (m + 1) (r = 1); closed-form kernels
      64 E; quadrature 2 (2 r + 1) E b, i.e. the 2 r + 1 derivative orders sigma^(j) that one Price-rule pass
      evaluates at once, twice, on a block of b grid nodes per kernel (``landscape.problem.kernels``); the Hessian,
      L_2 + B t (B tangents at once);
    - then the largest stage: the flow, 64 P (Tsit5 stages, error estimate, controller) + 2 S (4 [+ P]) (saved
      snapshots) + L_1; certification, polishing state 10 P^2 + 64 P (Hessian, its symmetrised copy, eigenvectors
      of the iterate and the trial point, eigh workspace) + the Hessian's intermediates + L_1, plus the accurate
      population loss (no biases): 64 m^2 mixed second derivatives and 8 m (m + k) first derivatives of kernels on
      Gauss-Legendre nodes, (64 m^2 + 8 m (m + k)) L_2-sized kernel evaluations, 10 b each with quadrature;
      the Hessian analyzer, 6 P^2 (Hessian, symmetrised copy, eigvalsh workspace) + the Hessian's intermediates.

    Checked against XLA's buffer assignment (``memory_analysis`` of each stage) and against peak RSS on CPU
    (experiments/bench_memory.py, tests/test_memory.py): per trajectory it exceeds the measured growth by 1.5-3.5x
    (softplus m = 3, 6, q = 32, 128; tanh sample loss), whole chunks with :data:`CHUNK_OVERHEAD` (compilation,
    see :func:`auto_chunk_size`) by 1.6-4.5x. ``n_params`` overrides P.
    """
    from ..config import build_problem
    from ..flow.polish import hessian_block_size, tangent_words
    from ..problem.kernels import grid_block_nodes, has_closed_form

    problem = build_problem(cfg)
    shapes = problem.trainable_shapes
    P = int(sum(math.prod(s) for s in _leaves(shapes))) if n_params is None else int(n_params)
    fl = cfg.flow
    S = fl.n_snapshots
    snap = S * (4 + (P if fl.save_params else 0))
    m = int(sum(problem.student.hidden_widths))
    B, t = hessian_block_size(problem, P), tangent_words(problem)
    if problem.loss_kind == "sample":
        n = int(problem.x.shape[0])
        loss = {0: 4 * n * (m + 1), 1: 8 * n * (m + 1), 2: 8 * n * (m + 1)}
        accurate = 0
    else:
        k = int(problem.teacher.width)
        evals = m * (m + 1) // 2 + m * k + k * (k + 1) // 2
        act, bias = problem.student.activation, bool(problem.student.bias or problem.teacher.bias)
        if has_closed_form(act, bias):
            per = {r: 64 for r in (0, 1, 2)}
        else:
            order = problem.objective.quadrature_order
            b = grid_block_nodes(int(act.quadrature_order if order is None else order))
            per = {r: 2 * (2 * r + 1) * b for r in (0, 1, 2)}
        loss = {r: evals * per[r] for r in (0, 1, 2)}
        gl = ACCURATE_LOSS_NODES
        accurate = 0 if bias else ((gl * gl * m * m + gl * m * (m + k)) * per[2] + (m + k) ** 2 * per[0])
    hessian_loss = loss[2] + B * t
    kept = 4 * P + snap + P * P + P + 16
    flow = 64 * P + 2 * snap + loss[1]
    certify = loss[1] + accurate + ((10 * P * P + 64 * P + hessian_loss) if cfg.polish.enabled else 0)
    analysis = 6 * P * P + hessian_loss
    return int((kept + max(flow, certify, analysis)) * BYTES)


def available_memory() -> tuple[int, str]:
    """(free bytes on the first local device, platform): allocator statistics on GPUs; on CPU MemAvailable, or less
    where a cgroup (container) memory limit leaves less (v2 ``memory.max - memory.current``, v1 likewise)."""
    import jax

    dev = jax.local_devices()[0]
    platform = "cpu" if dev.platform == "cpu" else "gpu"
    stats = None
    try:
        stats = dev.memory_stats()
    except Exception:  # noqa: BLE001  (backends without statistics)
        stats = None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"] - stats.get("bytes_in_use", 0)), platform
    free = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                free = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError, IndexError):
        free = None
    for limit, usage in (("memory.max", "memory.current"),
                         ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        try:
            cap = Path("/sys/fs/cgroup", limit).read_text().strip()
            used = int(Path("/sys/fs/cgroup", usage).read_text().strip())
            if cap != "max" and int(cap) < 2**60:  # v1 reports "no limit" as a huge number
                left = max(0, int(cap) - used)
                free = left if free is None else min(free, left)
                break
        except (OSError, ValueError):
            continue
    return (4 * 2**30 if free is None else int(free)), platform


def auto_chunk_size(points: list[GridPoint], *, n_devices: int = 1, memory: tuple[int, str] | None = None,
                    per_traj: list[int] | None = None) -> int:
    """Trajectories per chunk for the whole sweep (module docstring): fits memory, capped, balanced, device multiple.

    Fits memory: chunk size C * :func:`bytes_per_trajectory` (an upper bound) within ``MEMORY_FRACTION`` of the free
    memory, and CHUNK_OVERHEAD + C * per trajectory (the whole chunk, compilation included) within the free memory.
    """
    free, platform = memory or available_memory()
    per_traj = per_traj or [bytes_per_trajectory(p.config) for p in points]
    budget = MEMORY_FRACTION[platform] * free * n_devices
    budget = min(budget, (free - CHUNK_OVERHEAD[platform]) * n_devices)  # room left once the programs are compiled
    fit = max(1, int(budget // max(per_traj)))
    cap = min(fit, MAX_CHUNK[platform] * n_devices)
    biggest = max(p.config.init.count for p in points)
    size = math.ceil(biggest / math.ceil(biggest / cap))  # balanced chunks of at most cap
    if size > GRANULE:  # round to a multiple of GRANULE, so nearby sweeps share shapes (and compilations)
        up = math.ceil(size / GRANULE) * GRANULE
        size = up if up <= cap else max(GRANULE, cap // GRANULE * GRANULE)
    return max(n_devices, math.ceil(size / n_devices) * n_devices)


def _fmt_bytes(b: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if b < 1024 or unit == "TiB":
            return f"{b:.1f} {unit}" if unit != "B" else f"{int(b)} B"
        b /= 1024
    return f"{b:.1f} TiB"


def format_plan(points: list[GridPoint], chunk_size: int, per_traj: list[int], *, auto: bool, n_devices: int,
                out_dir: Path) -> str:
    """The dry-run table: grid points, trajectories, chunks and memory per chunk."""
    import jax

    platform = "cpu" if jax.local_devices()[0].platform == "cpu" else "gpu"
    overhead = CHUNK_OVERHEAD[platform]
    keys = list(points[0].values)
    total = sum(p.config.init.count for p in points)
    n_chunks = sum(math.ceil(p.config.init.count / chunk_size) for p in points)
    per_device = math.ceil(chunk_size / n_devices)
    lines = [
        f"sweep: {len(points)} grid point{'s' if len(points) != 1 else ''}, {total} trajectories, "
        f"{n_chunks} chunk{'s' if n_chunks != 1 else ''} of {chunk_size} "
        f"({'automatic' if auto else 'given'}; {n_devices} device{'s' if n_devices != 1 else ''}) -> {out_dir}",
        f"memory per chunk (upper bound): {_fmt_bytes(overhead + max(per_traj) * per_device)} per device "
        f"({_fmt_bytes(max(per_traj))} per trajectory x {per_device} + {_fmt_bytes(overhead)} for compiled "
        f"programs on {platform.upper()})",
        "",
    ]
    header = ["point", *keys, "init.seed", "count", "chunks", "mem/chunk"]
    body = [
        [p.name, *[str(p.values[k]) for k in keys], str(p.seed), str(p.config.init.count),
         str(math.ceil(p.config.init.count / chunk_size)), _fmt_bytes(overhead + b * per_device)]
        for p, b in zip(points, per_traj, strict=True)
    ]
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]
    for r in [header, *body]:
        lines.append("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths,
                                                                                               strict=True))))
    return "\n".join(lines)


def run_sweep(
    config_path,
    *,
    overrides=(),
    out_dir=None,
    force: bool = False,
    dry_run: bool = False,
    executor: str = "local",
    address: str | None = None,
    chunk_size: int | None = None,
    figures: bool = True,
    progress: bool | None = None,
    run_chunk=None,
    on_complete: Callable[..., object] | None = None,
) -> int:
    """Run (or resume) the sweep of ``config_path`` into ``out_dir``; returns the exit code (0 when complete).

    ``out_dir`` defaults to ``results/<config stem>``; ``chunk_size`` to :func:`auto_chunk_size`; ``executor`` is
    ``"local"`` or ``"ray"`` (``address`` names an existing Ray cluster). Bad input raises :class:`ConfigError`.
    ``run_chunk`` replaces :func:`landscape.sweep.execute.run_chunk` (same signature; for tests and benchmarks).

    Once every chunk is stored, the arrays are consolidated and ``on_complete(store, points, figures=figures)`` is
    called (with the directory still locked) when given: :func:`landscape.report.finalize.finalize` writes
    summary.json and, with ``figures``, the figures, and prints the summary. Without it nothing is summarised here
    (``figures`` is then unused); ``landscape report DIR`` or ``finalize(DIR)`` can summarise later.
    """
    from .executors import device_count, make_executor

    t_start = time.perf_counter()
    raw = read_raw_config(config_path, overrides)
    points = expand_sweep(raw)
    resolved = resolved_dict(raw, points)
    cfg_hash = config_hash(resolved)
    out_dir = Path(out_dir) if out_dir else Path("results") / Path(config_path).stem
    if executor not in ("local", "ray"):
        raise ConfigError(f"--executor {executor!r} is not valid; use local or ray")
    if address and executor != "ray":
        raise ConfigError("--address is for --executor ray; drop it or add --executor ray")
    if chunk_size is not None and (isinstance(chunk_size, bool) or chunk_size < 1):
        raise ConfigError(f"--chunk-size {chunk_size} must be a positive integer (or leave it out for automatic)")
    n_devices = device_count() if executor == "local" else 1
    per_traj = [bytes_per_trajectory(p.config) for p in points]
    auto = chunk_size is None
    if auto:
        size = auto_chunk_size(points, n_devices=n_devices, per_traj=per_traj)
    else:
        size = math.ceil(chunk_size / n_devices) * n_devices
        free, platform = available_memory()
        need = CHUNK_OVERHEAD[platform] + math.ceil(size / n_devices) * max(per_traj)
        if need > free:
            fits = auto_chunk_size(points, n_devices=n_devices, memory=(free, platform), per_traj=per_traj)
            raise ConfigError(f"--chunk-size {chunk_size} needs about {_fmt_bytes(need)} per device, more than the "
                              f"{_fmt_bytes(free)} free; use --chunk-size {fits} or leave it out (automatic)")
    if dry_run:
        print(format_plan(points, size, per_traj, auto=auto, n_devices=n_devices, out_dir=out_dir))
        return 0

    store = SweepStore.open(out_dir, resolved=resolved, cfg_hash=cfg_hash, points=points, chunk_size=size,
                            force=force, info={"executor": executor, **environment()})
    for line in store.warnings:  # damage found on open and what is done about it, one line each
        print(line, file=sys.stderr)
    ex = None
    try:
        ex = make_executor(executor, address, run_chunk=run_chunk)
        store.manifest["runs"][-1].update(ex.describe())
        if store.note:
            print(store.note, file=sys.stderr)
        pending = store.pending()
        if pending:
            _execute(store, points, pending, ex, progress=progress)
        store.manifest["runs"][-1]["wall_s"] = time.perf_counter() - t_start
        store.finish()
        if store.complete:
            store.consolidate()
            if on_complete is not None:
                on_complete(store, points, figures=figures)
            store.manifest["runs"][-1]["wall_s"] = time.perf_counter() - t_start
        store.write_manifest()
    finally:
        store.close()
        if ex is not None:
            ex.close()
    print(f"results: {out_dir}", file=sys.stderr)
    return 0 if store.complete else 1


def _execute(store: SweepStore, points: list[GridPoint], pending, ex, *, progress: bool | None) -> None:
    from tqdm.auto import tqdm

    total = sum(c.count for c in pending)
    done_before = store.manifest["n_trajectories"] - total
    tty = sys.stderr.isatty()
    bar = tqdm(total=total, unit="traj", desc=f"{len(pending)} chunks", dynamic_ncols=True,
               disable=(progress is False), mininterval=0.5 if tty else 10.0, file=sys.stderr,
               postfix={"done before": done_before} if done_before else None)
    entries = {c["name"]: c for c in store.manifest["chunks"]}
    try:
        for chunk, result in ex.run((c, points[c.point].config) for c in pending):
            entries[chunk.name]["timings"] = {k: float(v) for k, v in result.timings.items()
                                              if isinstance(v, int | float)}
            entries[chunk.name]["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            store.write_chunk(chunk, result.rows, result.arrays)
            bar.update(chunk.count)
    finally:
        bar.close()
