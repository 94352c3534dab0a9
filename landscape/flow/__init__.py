"""Training flows for one student (gradient flow, gd, momentum, adam), batching with vmap, and polishing.

    flow = GradientFlow(t_max=300.0)            # or OptaxFlow(optax.sgd, learning_rate=0.1, steps=2000)
    traj = run_flow(problem, flow, theta0)      # one student -> Trajectory
    trajs = run_flows(problem, flow, theta0s)   # jit(vmap(run_flow)) over a leading inits axis

``run_flows`` compiles once per (problem structure, flow structure, batch shape): new values of t_max, grad_tol,
rtol, atol, lr, momentum, steps, teacher parameters or data reuse the compiled function.
"""

from __future__ import annotations

import jax

from .gradient_flow import GradientFlow
from .init import AbstractInit, GaussianInit, OrthogonalInit, SphereInit, init_batch, init_params
from .lanes import lane_devices, lanes_map, use_cpu_cores
from .optimizers import OptaxFlow
from .packing import PackStats, run_flows_packed
from .polish import PolishResult, polish, polish_batch
from .trajectory import (
    CONVERGED,
    MAX_STEPS,
    NONFINITE,
    RUNNING,
    SOLVER_FAILED,
    T_MAX,
    AbstractFlow,
    Status,
    Trajectory,
    snapshot_steps,
    snapshot_times,
    status_message,
    status_name,
)

__all__ = [
    "lanes_map",
    "lane_devices",
    "use_cpu_cores",
    "PackStats",
    "run_flows_packed",
    "AbstractFlow",
    "GradientFlow",
    "OptaxFlow",
    "Trajectory",
    "Status",
    "RUNNING",
    "CONVERGED",
    "T_MAX",
    "MAX_STEPS",
    "NONFINITE",
    "SOLVER_FAILED",
    "status_name",
    "status_message",
    "snapshot_times",
    "snapshot_steps",
    "run_flow",
    "run_flows",
    "PolishResult",
    "polish",
    "polish_batch",
    "init_params",
    "init_batch",
    "AbstractInit",
    "GaussianInit",
    "OrthogonalInit",
    "SphereInit",
]


def run_flow(problem, flow: AbstractFlow, theta0) -> Trajectory:
    """Run ``flow`` from one initialisation ``theta0`` of ``problem``'s student; pure, jittable, vmappable.

    Follows d theta / dt = -grad L(theta) (:class:`landscape.GradientFlow`) or the iteration of an optax optimiser
    (:class:`landscape.OptaxFlow`) from theta(0) = theta0 until |grad L| <= ``flow.grad_tol`` or the horizon.
    Under ``jit`` the problem's and the flow's numbers (t_max, tolerances, learning rate, teacher, data) are traced
    and their structure (student, solver, optimiser, snapshot count) is static. Batch with
    ``jax.vmap(run_flow, in_axes=(None, None, 0))`` or use :func:`run_flows`.

    Args:
        problem: a :class:`landscape.TeacherStudent`.
        flow: an :class:`landscape.AbstractFlow`.
        theta0: trainable parameter dict of one student (shapes ``problem.trainable_shapes``).

    Returns:
        A :class:`Trajectory`: final ``theta``, ``status`` and (S,) snapshot curves for S = ``flow.n_snapshots``.

    Example:
        >>> import jax, jax.numpy as jnp, optax, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> theta0 = {"w": jnp.eye(3)[:2] + 0.1, "a": jnp.ones(2)}
        >>> flow = ls.OptaxFlow(optax.sgd, learning_rate=0.2, steps=500, n_snapshots=8)
        >>> traj = jax.jit(ls.run_flow)(problem, flow, theta0)  # or ls.run_flow(...) without jit
        >>> traj.loss.shape, ls.flow.status_name(traj.status), bool(traj.loss_final < traj.loss[0])
        ((8,), 'T_MAX', True)
        >>> traj = ls.run_flow(problem, ls.GradientFlow(t_max=100.0), theta0)  # doctest: +SKIP
    """
    return flow.run(problem, theta0)


@jax.jit
def run_flows(problem, flow: AbstractFlow, theta0_batch) -> Trajectory:
    """``jit(vmap(run_flow))`` over the leading axis of every leaf of ``theta0_batch``; one compile per shape.

    Args:
        problem: a :class:`landscape.TeacherStudent` (shared by the batch).
        flow: an :class:`landscape.AbstractFlow` (shared by the batch).
        theta0_batch: trainable parameter dict whose leaves have a leading axis n.

    Returns:
        A :class:`Trajectory` whose leaves have a leading axis n (e.g. ``loss`` (n, S)).

    Example:
        >>> import jax, jax.numpy as jnp, optax, landscape as ls
        >>> from landscape.flow import run_flows
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> theta0s = {"w": jnp.stack([jnp.eye(3)[:2] + 0.1, jnp.eye(3)[:2] - 0.1, -jnp.eye(3)[:2]]),
        ...            "a": jnp.ones((3, 2))}
        >>> flow = ls.OptaxFlow(optax.sgd, learning_rate=0.2, steps=500, n_snapshots=8)
        >>> traj = run_flows(problem, flow, theta0s)  # doctest: +SKIP
        >>> traj.loss.shape, traj.theta["w"].shape  # doctest: +SKIP
        ((3, 8), (3, 2, 3))
    """
    return jax.vmap(run_flow, in_axes=(None, None, 0))(problem, flow, theta0_batch)
