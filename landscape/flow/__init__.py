"""Training flows for one student (gradient flow, gd, momentum, adam), batching with vmap, and polishing.

    flow = make_flow(cfg.flow)                  # a strategy object: structure static, numbers traced
    traj = run_flow(problem, flow, theta0)      # one student -> Trajectory
    trajs = run_flows(problem, flow, theta0s)   # jit(vmap(run_flow)) over a leading inits axis

``run_flows`` compiles once per (problem structure, flow structure, batch shape): new values of t_max, grad_tol,
rtol, atol, lr, momentum, steps, teacher parameters or data reuse the compiled function.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp

from .gradient_flow import GradientFlow
from .init import init_batch, init_params
from .optimizers import OPTAX_METHODS, OptaxFlow
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
    "make_flow",
    "run_flow",
    "run_flows",
    "PolishResult",
    "polish",
    "polish_batch",
    "init_params",
    "init_batch",
]


def make_flow(flow_cfg, *, t_min=None, solver: diffrax.AbstractSolver | None = None) -> AbstractFlow:
    """Resolve a :class:`landscape.config.FlowConfig` into a flow strategy object (once, at the edge).

    Static (a new compilation when changed): method, n_snapshots, save_params, max_steps, solver. Traced (a sweep
    over them reuses one compilation): t_max, grad_tol, rtol, atol, t_min, lr, momentum, steps.

    Args:
        flow_cfg: the ``[flow]`` config section.
        t_min: first nonzero snapshot time of gradient flow (default t_max * 1e-6).
        solver: diffrax solver for gradient flow (default Tsit5).
    """
    f = flow_cfg
    if f.method == "gradient_flow":
        t_max = jnp.asarray(f.t_max, float)
        return GradientFlow(
            t_max=t_max,
            grad_tol=jnp.asarray(f.grad_tol, float),
            rtol=jnp.asarray(f.rtol, float),
            atol=jnp.asarray(f.atol, float),
            t_min=t_max * 1e-6 if t_min is None else jnp.asarray(t_min, float),
            max_steps=int(f.max_steps),
            n_snapshots=int(f.n_snapshots),
            save_params=bool(f.save_params),
            solver=diffrax.Tsit5(scan_kind="lax") if solver is None else solver,
        )
    if f.method in OPTAX_METHODS:
        return OptaxFlow(
            method=f.method,
            lr=jnp.asarray(f.lr, float),
            momentum=jnp.asarray(f.momentum, float),
            steps=jnp.asarray(f.steps, jnp.int32),
            grad_tol=jnp.asarray(f.grad_tol, float),
            n_snapshots=int(f.n_snapshots),
            save_params=bool(f.save_params),
        )
    raise ValueError(f"flow.method = {f.method!r} is not valid; use one of: gradient_flow, {', '.join(OPTAX_METHODS)}")


def run_flow(problem, flow: AbstractFlow, theta0) -> Trajectory:
    """Run ``flow`` from one initialisation ``theta0`` of ``problem``'s student; pure, jittable, vmappable.

    Batch with ``jax.vmap(run_flow, in_axes=(None, None, 0))`` or use :func:`run_flows`.
    """
    return flow.run(problem, theta0)


@jax.jit
def run_flows(problem, flow: AbstractFlow, theta0_batch) -> Trajectory:
    """``jit(vmap(run_flow))`` over the leading axis of every leaf of ``theta0_batch``; one compile per shape."""
    return jax.vmap(run_flow, in_axes=(None, None, 0))(problem, flow, theta0_batch)
