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
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .lanes import lane_devices, lanes_map, unshard
from .programs import persistent_jit
from .trajectory import RUNNING, AbstractFlow, Trajectory

__all__ = ["PackStats", "run_flows_packed", "buckets"]

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
    state = _start(problem, flow, theta0_batch)
    active = np.arange(n)
    useful = computed = segments = 0
    used = []
    while active.size:
        size = min(b for b in sizes if b >= active.size)
        if size not in used:
            used.append(size)
        k = active.size
        if size == n and k == n:
            out = _advance(problem, flow, state)
            steps_before = np.asarray(state.trajectory.n_steps)
            state = out
        else:  # fixed shapes per bucket: padding lanes repeat a running lane (same input, same output)
            idx = jnp.asarray(np.concatenate([active, np.full(size - k, active[0])]))
            sub = _gather(state, idx)
            out = _advance(problem, flow, sub)
            steps_before = np.asarray(sub.trajectory.n_steps)
            state = _scatter(state, out, idx)
        steps_after, status = np.asarray(out.trajectory.n_steps), np.asarray(out.trajectory.status)
        done = (steps_after - steps_before)[:k]
        useful += int(done.sum())
        computed += int(size * done.max(initial=0))
        segments += 1
        active = active[status[:k] == RUNNING]
    return unshard(state.trajectory), PackStats(useful, computed, segments, tuple(used))
