"""Any optax optimiser run on one student, with the flow's stopping rule (:class:`OptaxFlow`).

    OptaxFlow(optax.sgd, learning_rate=0.1)                 gd: theta_{k+1} = theta_k - lr grad L(theta_k)
    OptaxFlow(optax.sgd, learning_rate=0.1, momentum=0.9)   heavy ball: v <- m v + g, theta <- theta - lr v
    OptaxFlow(optax.adam, learning_rate=1e-3)               adam with optax's default betas and eps
    OptaxFlow(optax.inject_hyperparams(optax.adam)(learning_rate=1e-3), learning_rate=lr)
    OptaxFlow(optax.chain(...))                             any GradientTransformation, hyperparameters fixed

The optimiser (a factory such as ``optax.sgd`` or a ``GradientTransformation``) is static; the keyword
hyperparameters are traced array leaves. A factory is called with them inside the trace; for a transformation made
by ``optax.inject_hyperparams`` they replace the values in its state. Either way a sweep over the learning rate
reuses one compilation (keep the same factory or transformation object: a new object is a new static value).

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

__all__ = ["OptaxFlow"]


class OptaxFlow(AbstractFlow):
    """An optax optimiser run for at most ``steps`` steps; see the module docstring.

        g_k = grad L(theta_k),   (u_k, s_{k+1}) = optimizer.update(g_k, s_k, theta_k),   theta_{k+1} = theta_k + u_k

    e.g. theta_{k+1} = theta_k - lr g_k for ``optax.sgd``; reported time t_k = k * lr. The optimiser is static,
    ``steps``, ``grad_tol`` and the hyperparameters are traced (a learning-rate sweep compiles once).

    Args:
        optimizer: an optax factory (``optax.sgd``, ``optax.adam``, ...) or a ``GradientTransformation`` (static).
        steps: maximal number of updates (traced int).
        grad_tol: stop at the first iterate with |grad L| <= grad_tol (traced).
        n_snapshots, save_params: static snapshot settings.
        **hyperparams: traced hyperparameters (``learning_rate``, ``momentum``, ...): the factory's keyword
            arguments, or entries of an ``inject_hyperparams`` state. Time is reported as t = step * learning_rate.

    Raises:
        TypeError: if ``optimizer`` is neither an optax factory nor a ``GradientTransformation``.
        ValueError: (when run) hyperparameters given for a transformation without injected hyperparameters, or
            unknown to it.

    Example:
        >>> import optax, landscape as ls
        >>> flow = ls.OptaxFlow(optax.sgd, learning_rate=0.5, steps=1000)
        >>> float(flow.hyperparams["learning_rate"])
        0.5
        >>> adam = ls.OptaxFlow(optax.inject_hyperparams(optax.adam)(learning_rate=1e-3), learning_rate=1e-2)
        >>> float(adam.time_scale)
        0.01
    """

    optimizer: object = eqx.field(static=True)
    hyperparams: dict
    steps: jax.Array
    grad_tol: jax.Array
    n_snapshots: int = eqx.field(static=True)
    save_params: bool = eqx.field(static=True)

    def __init__(self, optimizer, *, steps=20_000, grad_tol=1.0e-6, n_snapshots: int = 64, save_params: bool = False,
                 **hyperparams):
        is_transform = isinstance(optimizer, optax.GradientTransformation)
        if not (is_transform or callable(optimizer)):
            raise TypeError(f"OptaxFlow needs an optax factory or GradientTransformation, got {optimizer!r}")
        self.optimizer = optimizer
        self.hyperparams = {k: jnp.asarray(v, float) for k, v in hyperparams.items()}
        self.steps = jnp.asarray(steps, jnp.int32)
        self.grad_tol = jnp.asarray(grad_tol, float)
        self.n_snapshots = int(n_snapshots)
        self.save_params = bool(save_params)

    def _transformation(self) -> optax.GradientTransformation:
        if isinstance(self.optimizer, optax.GradientTransformation):
            return self.optimizer
        return self.optimizer(**self.hyperparams)

    def _init_state(self, opt, theta0):
        state = opt.init(theta0)
        if isinstance(self.optimizer, optax.GradientTransformation) and self.hyperparams:
            if not hasattr(state, "hyperparams"):
                raise ValueError("hyperparameters given for a GradientTransformation without injected "
                                 "hyperparameters; wrap its factory with optax.inject_hyperparams or pass the factory")
            hp = dict(state.hyperparams)
            unknown = sorted(set(self.hyperparams) - set(hp))
            if unknown:
                raise ValueError(f"unknown hyperparameter {unknown[0]!r}; the optimiser has {sorted(hp)}")
            hp.update({k: v.astype(jnp.asarray(hp[k]).dtype) for k, v in self.hyperparams.items()})
            state = state._replace(hyperparams=hp)
        return state

    @property
    def time_scale(self):
        """Time per step: the learning rate when it is a hyperparameter, else 1."""
        return self.hyperparams.get("learning_rate", jnp.asarray(1.0))

    def run(self, problem, theta0) -> Trajectory:
        """Run the optimiser from theta0 (one student); see the module docstring."""
        opt = self._transformation()
        vg = jax.value_and_grad(problem.loss)
        steps = jnp.asarray(self.steps, jnp.int32)
        idx = snapshot_steps(steps, self.n_snapshots)
        # carry: (theta, opt_state, step, done, converged)
        carry0 = (theta0, self._init_state(opt, theta0), jnp.int32(0), jnp.bool_(False), jnp.bool_(False))

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
        lr = jnp.asarray(self.time_scale, float)
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
