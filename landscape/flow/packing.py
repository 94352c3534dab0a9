"""Batches of flows without lockstep waste: run in segments and re-pack the lanes still running.

A vmapped ``while_loop`` (a diffrax solve under ``vmap``) runs until its slowest lane finishes: with n lanes whose
step counts are s_1..s_n, it computes n * max(s) lane-steps for sum(s) useful ones. On a CPU every lane-step costs
the same whether useful or not; on a GPU a stiff lane holds its whole chunk (measured: one trajectory of 142,455
steps against <= 510 for the 63 others of its chunk). Here a batch advances in segments of ``flow.segment_steps``
solver steps or optimiser updates (:meth:`landscape.GradientFlow.advance`, :meth:`landscape.OptaxFlow.advance`);
after each segment the finished lanes leave and the running ones are gathered into a smaller batch once they fit
one: batch sizes are the *buckets* n, n / 4, n / 16, ...
(each at least ``min_bucket``), padded by repeating a running lane, so a chunk compiles at most a few shapes and
each is reused by every later chunk of the same size (and by later runs, with the persistent compilation cache).
The host sees one status vector per segment, not per step. Each segment spreads its lanes over the local devices
(:func:`landscape.flow.lanes.lanes_map`; the smaller buckets are rounded up to a multiple of their number); the
finished trajectories come back on one device, as polishing needs (see :mod:`landscape.flow.lanes`).

Flows without segments (``segment_steps=0``, or a flow without ``start``/``advance``) run as one
``jit(vmap(flow.run))``.

:class:`PackStats` reports the fraction of computed lane-steps that were useful (``sum(s) / computed``).

Newton polishing is packed the same way (:func:`polish_packed`): segments of ``polish.segment_iters``
Levenberg-Marquardt passes, the points still polishing re-packed into the same buckets, on one device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .lanes import lane_devices, lanes_map, unshard
from .polish import PolishResult, polish_advance, polish_result, polish_running, polish_start
from .programs import persistent_jit
from .trajectory import RUNNING, AbstractFlow, Trajectory

__all__ = ["PackStats", "run_flows_packed", "polish_packed", "buckets", "POLISH_SEGMENT"]

MIN_BUCKET = 8
"""Smallest batch a packed run shrinks to (below it a segment costs about the same whatever its size)."""

SHRINK = 4
"""Bucket sizes fall by this factor: n, n / 4, n / 16, ... (a few compilations per chunk size)."""


@dataclass(frozen=True)
class PackStats:
    """Work accounting of a packed batch: ``useful`` solver steps of real lanes, ``computed`` lane-steps paid
    (bucket size x the longest segment of each call), ``segments`` calls, ``shapes`` the bucket sizes used."""

    useful: int
    computed: int
    segments: int
    shapes: tuple[int, ...]

    @property
    def fraction(self) -> float:
        """useful / computed (1.0: no lane waited for another)."""
        return self.useful / self.computed if self.computed else 1.0


def buckets(n: int, *, min_bucket: int = MIN_BUCKET, shrink: int = SHRINK) -> list[int]:
    """Batch sizes a packed run of n lanes may use, largest first: n, ceil(n / 4), ... down to ``min_bucket``.

    Example:
        >>> buckets(64), buckets(1000), buckets(6)
        ([64, 16], [1000, 250, 63, 16], [6])
    """
    out = [n]
    while min_bucket <= math.ceil(out[-1] / shrink) < out[-1]:  # stops at 1 too (min_bucket=1 looped forever)
        out.append(math.ceil(out[-1] / shrink))
    return out


@persistent_jit
def _start(problem, flow, theta0):
    return lanes_map(lambda t: flow.start(problem, t), theta0)


@persistent_jit
def _advance(problem, flow, state):
    return lanes_map(lambda s: flow.advance(problem, s), state)


@jax.jit
def _gather(state, idx):
    return jax.tree.map(lambda x: x[idx], state)


@jax.jit
def _scatter(state, new, idx):
    return jax.tree.map(lambda full, part: full.at[idx].set(part), state, new)


@persistent_jit
def _run(problem, flow, theta0):
    return lanes_map(lambda t: flow.run(problem, t), theta0)


def run_flows_packed(problem, flow: AbstractFlow, theta0_batch, *, min_bucket: int = MIN_BUCKET
                     ) -> tuple[Trajectory, PackStats]:
    """Run ``flow`` from every initialisation of the batch, in re-packed segments (module docstring).

    Args:
        problem: the problem (shared by the batch).
        flow: the flow; packed when it has ``advance`` and ``segment_steps > 0``, else one vmapped run.
        theta0_batch: parameter dict whose leaves have a leading axis n.
        min_bucket: smallest batch size a packed run shrinks to.

    Returns:
        (the batched :class:`Trajectory`, as ``run_flows`` returns it, and :class:`PackStats`).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> from landscape.flow.packing import run_flows_packed
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2))
        >>> theta0 = {"w": 0.3 * jax.random.normal(jax.random.key(0), (16, 2, 3)), "a": jnp.ones((16, 2))}
        >>> traj, stats = run_flows_packed(problem, ls.GradientFlow(t_max=100.0, segment_steps=32), theta0)
        >>> traj.loss.shape, 0 < stats.fraction <= 1  # doctest: +SKIP
        ((16, 64), True)
    """
    n = jax.tree.leaves(theta0_batch)[0].shape[0]
    if int(getattr(flow, "segment_steps", 0)) <= 0 or not hasattr(flow, "advance"):
        traj = _run(problem, flow, theta0_batch)
        steps = np.asarray(traj.n_steps)
        return unshard(traj), PackStats(int(steps.sum()), int(n * steps.max(initial=0)), 1, (n,))
    devices = lane_devices()  # smaller buckets are multiples of it, so that they too spread over the devices
    sizes = sorted({n} | {min(n, -(-b // devices) * devices) for b in buckets(n, min_bucket=min_bucket)}, reverse=True)

    def advance(state):
        out = _advance(problem, flow, state)
        return out, out.trajectory.status == RUNNING

    state, stats = _run_packed(_start(problem, flow, theta0_batch), n, sizes, advance,
                               lambda state: state.trajectory.n_steps)
    return unshard(state.trajectory), stats


def _run_packed(state, n: int, sizes: list[int], advance, progress) -> tuple:
    """The re-packing loop (module docstring): ``advance(state) -> (state, running)`` runs one segment of a batch
    (any bucket size), ``progress(state)`` counts each lane's work so far; returns (final state, PackStats)."""
    active = np.arange(n)
    useful = computed = segments = 0
    used = []
    while active.size:
        size = min(b for b in sizes if b >= active.size)
        if size not in used:
            used.append(size)
        k = active.size
        if size == n and k == n:
            before = progress(state)
            out, running = advance(state)
            state = out
        else:  # fixed shapes per bucket: padding lanes repeat a running lane (same input, same output)
            idx = jnp.asarray(np.concatenate([active, np.full(size - k, active[0])]))
            sub = _gather(state, idx)
            before = progress(sub)
            out, running = advance(sub)
            state = _scatter(state, out, idx)
        done = (np.asarray(progress(out)) - np.asarray(before))[:k]
        useful += int(done.sum())
        computed += int(size * done.max(initial=0))
        segments += 1
        active = active[np.asarray(running)[:k]]
    return state, PackStats(useful, computed, segments, tuple(used))


POLISH_SEGMENT = 8
"""Levenberg-Marquardt passes per segment of a packed polish (:func:`polish_packed`)."""


@persistent_jit
def _polish_start(thetas):
    return jax.vmap(polish_start)(thetas)


@persistent_jit
def _polish_advance(problem, state, tol, steps, max_iter: int):
    out = jax.vmap(lambda s: polish_advance(problem, s, tol=tol, max_iter=max_iter, steps=steps))(state)
    return out, jax.vmap(lambda s: polish_running(s, tol, max_iter))(out)


def polish_packed(problem, thetas, *, tol=1e-10, max_iter: int = 100, segment: int = POLISH_SEGMENT,
                  min_bucket: int = MIN_BUCKET) -> tuple[PolishResult, PackStats]:
    """:func:`landscape.flow.polish` of every point of a batch, in re-packed segments of ``segment`` passes.

    Polishing a batch under one vmapped ``while_loop`` runs every point for as many Levenberg-Marquardt passes as
    the slowest needs; their counts can be very uneven (d = k = 10 Safran-Shamir, flows cut at t = 200: median 6
    passes, 99th percentile 119, largest 151), and then most of that work is wasted. Here the batch advances
    ``segment`` passes at a time and the points still polishing are gathered into the buckets n, n / 4, ...
    (module docstring). Each point takes the passes of :func:`polish` (a segment boundary changes nothing; a
    smaller batch may round differently, ~1e-14). ``eigh`` runs in every pass, so the batch stays on the device it
    is on (no :func:`~landscape.flow.lanes.lanes_map`; see :mod:`landscape.flow.lanes`).

    Args:
        problem: the problem (shared by the batch).
        thetas: trainable parameter dict whose leaves have a leading axis n.
        tol: target |grad L| (traced); max_iter: iteration cap (static).
        segment: passes per segment (traced); 0: one vmapped loop, as :func:`landscape.flow.polish_batch`.
        min_bucket: smallest batch size a packed run shrinks to.

    Returns:
        (:class:`landscape.flow.PolishResult` with leaves of leading axis n, :class:`PackStats` counting passes).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> from landscape.flow.packing import polish_packed
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> thetas = {"w": jnp.stack([jnp.eye(3)[:2] + 1e-3, jnp.eye(3)[:2] - 1e-3]), "a": jnp.ones((2, 2))}
        >>> res, stats = polish_packed(problem, thetas, segment=2)
        >>> res.converged.tolist(), stats.segments >= 1
        ([True, True], True)
    """
    n = jax.tree.leaves(thetas)[0].shape[0]
    tol = jnp.asarray(tol, float)
    state = _polish_start(thetas)
    if int(segment) <= 0:  # one loop: every point runs as long as the slowest (the segments' program, traced steps)
        state, _ = _polish_advance(problem, state, tol, jnp.asarray(jnp.iinfo(jnp.int32).max, jnp.int32),
                                   int(max_iter))
        its = np.asarray(state.it)
        return polish_result(state, tol), PackStats(int(its.sum()), int(n * its.max(initial=0)), 1, (n,))
    steps = jnp.asarray(int(segment), jnp.int32)

    def advance(state):
        return _polish_advance(problem, state, tol, steps, int(max_iter))

    state, stats = _run_packed(state, n, buckets(n, min_bucket=min_bucket), advance, lambda state: state.it)
    return polish_result(state, tol), stats
