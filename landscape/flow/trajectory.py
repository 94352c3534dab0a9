"""Trajectories of one student under a training flow, their status codes, and the flow strategy interface.

A :class:`Trajectory` is an equinox Module (a pytree). For one student its leaves are scalars and arrays of
snapshot length S; a batch built with ``vmap`` gives every leaf a leading ``inits`` axis.

Snapshots are taken on a fixed schedule ``ts`` (the same for every student of a batch, log-spaced in time, see
:func:`snapshot_times`). A trajectory that stops early (converged, diverged, out of steps) has NaN in ``loss``,
``grad_norm``, ``param_norm`` and ``params`` at every scheduled time after its stop time ``t_final``; ``ts`` keeps
the planned times, so a loss curve is drawn from the finite entries and simply ends at the stop.

Status codes (int32, :class:`Status`): every element of a batch gets its own code and a failing element never
raises or aborts the batch (``status_message`` says what to do about it).
"""

from __future__ import annotations

import abc
import enum

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

__all__ = [
    "Status",
    "RUNNING",
    "CONVERGED",
    "T_MAX",
    "MAX_STEPS",
    "NONFINITE",
    "SOLVER_FAILED",
    "status_name",
    "status_message",
    "Trajectory",
    "AbstractFlow",
    "summaries",
    "loss_and_grad",
    "snapshot_times",
    "snapshot_steps",
    "DIVERGENCE_LOSS",
]

# A loss above this counts as a divergence (status NONFINITE).
DIVERGENCE_LOSS = 1.0e30


class Status(enum.IntEnum):
    """Why a trajectory stopped (stored as int32 in :attr:`Trajectory.status`)."""

    RUNNING = -1  # only between segments of a packed run (landscape.flow.packing); never in a finished result
    CONVERGED = 0
    T_MAX = 1
    MAX_STEPS = 2
    NONFINITE = 3
    SOLVER_FAILED = 4


RUNNING = Status.RUNNING
CONVERGED = Status.CONVERGED
T_MAX = Status.T_MAX
MAX_STEPS = Status.MAX_STEPS
NONFINITE = Status.NONFINITE
SOLVER_FAILED = Status.SOLVER_FAILED

_MESSAGES = {
    Status.RUNNING: "still running (a segment of a packed run ended; the next one continues it)",
    Status.CONVERGED: "converged: |grad L| <= flow.grad_tol",
    Status.T_MAX: (
        "time horizon reached before |grad L| <= flow.grad_tol (gradient flow: t = flow.t_max; optax methods: "
        "flow.steps steps); increase flow.t_max or flow.steps, or loosen flow.grad_tol"
    ),
    Status.MAX_STEPS: (
        "the ODE solver used its step budget before t_max; increase flow.max_steps (or lower flow.t_max, or loosen "
        "flow.rtol/flow.atol)"
    ),
    Status.NONFINITE: (
        f"NaN/inf or divergence (loss > {DIVERGENCE_LOSS:g}); for optax methods lower flow.lr, otherwise check the "
        "initialisation (init.scale) and the problem"
    ),
    Status.SOLVER_FAILED: "the ODE solver failed (step size underflow or internal error); tighten flow.rtol/atol",
}


def status_name(code) -> str:
    """Human name of a status code, e.g. ``status_name(0) == "CONVERGED"``; ``"UNKNOWN(c)"`` for other codes."""
    try:
        return Status(int(code)).name
    except ValueError:
        return f"UNKNOWN({int(code)})"


def status_message(code) -> str:
    """One line saying what a status code means and what to change about it."""
    try:
        return _MESSAGES[Status(int(code))]
    except ValueError:
        return f"unknown status code {int(code)}"


class Trajectory(eqx.Module):
    """The result of one flow run (leaves gain a leading axis under vmap).

    Attributes:
        theta: final trainable parameters (dict pytree, same structure as theta0).
        t_final: time at which the run stopped (gradient flow: ODE time; optax: step * lr).
        n_steps: solver steps taken (diffrax: all steps, rejected ones included; optax: updates applied).
        status: int32 :class:`Status` code.
        ts: (S,) planned snapshot times.
        loss: (S,) L(theta(ts)); NaN after ``t_final``.
        grad_norm: (S,) |grad L(theta(ts))|; NaN after ``t_final``.
        param_norm: (S,) |theta(ts)|; NaN after ``t_final``.
        params: snapshot parameters, every leaf with a leading axis S (NaN after ``t_final``), or None.
        loss_final: L(theta) at the final parameters.
        grad_norm_final: |grad L(theta)| at the final parameters.

    Example:
        >>> import jax, jax.numpy as jnp, optax, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> theta0 = {"w": jnp.eye(3)[:2] + 0.1, "a": jnp.ones(2)}
        >>> flow = ls.OptaxFlow(optax.sgd, learning_rate=0.2, steps=500, n_snapshots=8)
        >>> traj = jax.jit(ls.run_flow)(problem, flow, theta0)
        >>> [round(float(t), 6) for t in traj.ts]  # t = step * learning_rate: step 0, then log-spaced up to 500
        [0.0, 0.2, 0.6, 1.6, 4.4, 12.6, 35.4, 100.0]
        >>> traj.theta["w"].shape, int(traj.n_steps), ls.flow.status_message(traj.status)
        ((2, 3), 500, 'time horizon reached before |grad L| <= flow.grad_tol ...')
    """

    theta: dict
    t_final: jax.Array
    n_steps: jax.Array
    status: jax.Array
    ts: jax.Array
    loss: jax.Array
    grad_norm: jax.Array
    param_norm: jax.Array
    params: dict | None
    loss_final: jax.Array
    grad_norm_final: jax.Array


class AbstractFlow(eqx.Module):
    """A training flow: structural settings are static fields, numbers are traced array leaves.

    Concrete flows implement :meth:`run` for ONE student; :func:`landscape.flow.run_flows` vmaps it. Fields that
    fix shapes or the program (solver, optimiser, ``n_snapshots``, ``save_params``) are static; numbers
    (horizon, tolerances, hyperparameters) are traced, so a sweep over them reuses one compilation.

    Attributes:
        n_snapshots: S, the number of scheduled snapshots (static).
        save_params: also store the parameters at the snapshots (static).
        grad_tol: stop once |grad L| <= grad_tol (traced).

    Example:
        >>> import optax, landscape as ls
        >>> [isinstance(f, ls.AbstractFlow) for f in (ls.GradientFlow(), ls.OptaxFlow(optax.adam, learning_rate=1e-3))]
        [True, True]
    """

    n_snapshots: eqx.AbstractVar[int]
    save_params: eqx.AbstractVar[bool]
    grad_tol: eqx.AbstractVar[jax.Array]

    @abc.abstractmethod
    def run(self, problem, theta0) -> Trajectory:
        """Integrate from ``theta0`` (one student) and return its :class:`Trajectory`."""


@eqx.filter_jit
def loss_and_grad(problem, theta):
    """(L(theta), grad L(theta)) for one student: :meth:`landscape.TeacherStudent.value_and_grad` (the closed-form
    gradient where the loss has one, else ``jax.value_and_grad(problem.loss)``).

    Jitted so that a program calling it many times (a diffrax solve evaluates the gradient in its vector field, its
    stopping event, its saves and its first-step choice) traces the loss once: the same numbers, several times less
    tracing per compilation (measured on the quickstart's packed segment: 4.2 s -> 1.5 s to trace and lower), which
    is what a run with a warm persistent compilation cache still pays.
    """
    return problem.value_and_grad(theta)


def summaries(problem, theta, save_params: bool = False) -> dict:
    """Loss, gradient norm and parameter norm at ``theta`` (and ``theta`` itself if ``save_params``)."""
    loss, grad = loss_and_grad(problem, theta)
    out = {
        "loss": loss,
        "grad_norm": jnp.linalg.norm(ravel_pytree(grad)[0]),
        "param_norm": jnp.linalg.norm(ravel_pytree(theta)[0]),
    }
    if save_params:
        out["params"] = theta
    return out


def is_bad(loss, grad_norm):
    """True where the state is NaN/inf or has diverged (loss > DIVERGENCE_LOSS)."""
    return ~jnp.isfinite(loss) | ~jnp.isfinite(grad_norm) | (loss > DIVERGENCE_LOSS)


def snapshot_times(t_max, n_snapshots: int, t_min=None):
    """Snapshot schedule (S,): 0, then S - 1 times log-spaced from ``t_min`` (default t_max * 1e-6) to t_max."""
    t_max = jnp.asarray(t_max, dtype=float)
    t_min = t_max * 1e-6 if t_min is None else jnp.asarray(t_min, dtype=float)
    if n_snapshots == 1:
        return t_max[None]
    logs = jnp.linspace(jnp.log(t_min), jnp.log(t_max), n_snapshots - 1)
    ts = jnp.minimum(jnp.exp(logs), t_max).at[-1].set(t_max)
    return jnp.concatenate([jnp.zeros(1), ts])


def snapshot_steps(steps, n_snapshots: int):
    """Step-index schedule (S,) int: 0, then S - 1 indices log-spaced from 1 to ``steps`` (repeats allowed)."""
    steps = jnp.asarray(steps)
    if n_snapshots == 1:
        return steps[None].astype(jnp.int32)
    logs = jnp.linspace(0.0, jnp.log(steps.astype(float)), n_snapshots - 1)
    idx = jnp.clip(jnp.round(jnp.exp(logs)), 1, steps).astype(jnp.int32).at[-1].set(steps.astype(jnp.int32))
    return jnp.concatenate([jnp.zeros(1, jnp.int32), idx])


def mask_after_stop(snaps: dict, reached):
    """Replace every snapshot entry not ``reached`` (bool (S,)) by NaN."""

    def fill(x):
        if not jnp.issubdtype(x.dtype, jnp.floating):
            return x
        m = reached.reshape(reached.shape + (1,) * (x.ndim - 1))
        return jnp.where(m, x, jnp.nan)

    return jax.tree.map(fill, snaps)
