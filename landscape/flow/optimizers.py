"""Discrete optimisers (gd, heavy-ball momentum, adam via optax) for one student, with the flow's stopping rule.

    gd:        theta_{k+1} = theta_k - lr grad L(theta_k)
    momentum:  v_{k+1} = m v_k + grad L(theta_k),  theta_{k+1} = theta_k - lr v_{k+1}   (optax.sgd(lr, momentum=m))
    adam:      optax.adam(lr) with its default betas and eps

At most ``steps`` updates; the run stops at the first iterate with |grad L| <= grad_tol (CONVERGED) or with NaN/inf
or loss > 1e30 (NONFINITE), otherwise after ``steps`` updates (T_MAX: the horizon t = steps * lr). Snapshots at
log-spaced step indices (:func:`landscape.flow.trajectory.snapshot_steps`), reported at times t = step * lr so the
curves line up with gradient flow. Implemented as a ``lax.scan`` over snapshot intervals, each a
``lax.while_loop`` over steps: no Python loop over steps, and lr, momentum, steps are traced.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from .trajectory import (
    CONVERGED,
    NONFINITE,
    T_MAX,
    AbstractFlow,
    Trajectory,
    is_bad,
    mask_after_stop,
    snapshot_steps,
    summaries,
)

__all__ = ["OptaxFlow", "OPTAX_METHODS"]

OPTAX_METHODS = ("gd", "momentum", "adam")


class OptaxFlow(AbstractFlow):
    """An optax optimiser run for at most ``steps`` steps; lr, momentum, steps, grad_tol are traced.

    Attributes:
        method: "gd" | "momentum" | "adam" (static).
        lr, momentum, grad_tol: traced scalars; steps: traced int.
        n_snapshots, save_params: static snapshot settings.
    """

    method: str = eqx.field(static=True)
    lr: jax.Array
    momentum: jax.Array
    steps: jax.Array
    grad_tol: jax.Array
    n_snapshots: int = eqx.field(static=True)
    save_params: bool = eqx.field(static=True)

    def __check_init__(self):
        if self.method not in OPTAX_METHODS:
            raise ValueError(f"flow.method = {self.method!r} is not an optax method; use one of {OPTAX_METHODS}")

    def optimizer(self) -> optax.GradientTransformation:
        """The optax transformation for ``method`` with the traced lr (and momentum)."""
        if self.method == "gd":
            return optax.sgd(self.lr)
        if self.method == "momentum":
            return optax.sgd(self.lr, momentum=self.momentum)
        return optax.adam(self.lr)

    def run(self, problem, theta0) -> Trajectory:
        """Run the optimiser from theta0 (one student); see the module docstring."""
        opt = self.optimizer()
        vg = jax.value_and_grad(problem.loss)
        steps = jnp.asarray(self.steps, jnp.int32)
        idx = snapshot_steps(steps, self.n_snapshots)
        # carry: (theta, opt_state, step, done, converged)
        carry0 = (theta0, opt.init(theta0), jnp.int32(0), jnp.bool_(False), jnp.bool_(False))

        def body(c):
            theta, state, k, done, conv = c
            loss, g = vg(theta)
            gn = jnp.linalg.norm(ravel_pytree(g)[0])
            now_conv = gn <= self.grad_tol
            stop = now_conv | is_bad(loss, gn)
            updates, new_state = opt.update(g, state, theta)
            new_theta = optax.apply_updates(theta, updates)
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(stop, b, a), new, old)  # noqa: E731
            return (keep(new_theta, theta), keep(new_state, state), jnp.where(stop, k, k + 1), stop, now_conv)

        def segment(c, target):
            c = jax.lax.while_loop(lambda c: (~c[3]) & (c[2] < target), body, c)
            reached = c[2] == target
            return c, (summaries(problem, c[0], self.save_params), reached)

        (theta, _, k, done, conv), (snaps, reached) = jax.lax.scan(segment, carry0, idx)
        final = summaries(problem, theta)
        bad = is_bad(final["loss"], final["grad_norm"])
        status = jnp.select(
            [bad, conv | (final["grad_norm"] <= self.grad_tol)], [NONFINITE, CONVERGED], default=T_MAX
        ).astype(jnp.int32)
        snaps = mask_after_stop(snaps, reached)
        lr = jnp.asarray(self.lr, float)
        return Trajectory(
            theta=theta,
            t_final=k * lr,
            n_steps=k,
            status=status,
            ts=idx * lr,
            loss=snaps["loss"],
            grad_norm=snaps["grad_norm"],
            param_norm=snaps["param_norm"],
            params=snaps.get("params"),
            loss_final=final["loss"],
            grad_norm_final=final["grad_norm"],
        )
