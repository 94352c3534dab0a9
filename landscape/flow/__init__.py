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
from .optimizers import OptaxFlow
from .polish import PolishResult, polish, polish_batch
from .trajectory import (
    CONVERGED,
    MAX_STEPS,
    NONFINITE,
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
    "AbstractFlow",
    "GradientFlow",
    "OptaxFlow",
    "Trajectory",
    "Status",
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

    Batch with ``jax.vmap(run_flow, in_axes=(None, None, 0))`` or use :func:`run_flows`.
    """
    return flow.run(problem, theta0)


@jax.jit
def run_flows(problem, flow: AbstractFlow, theta0_batch) -> Trajectory:
    """``jit(vmap(run_flow))`` over the leading axis of every leaf of ``theta0_batch``; one compile per shape."""
    return jax.vmap(run_flow, in_axes=(None, None, 0))(problem, flow, theta0_batch)
