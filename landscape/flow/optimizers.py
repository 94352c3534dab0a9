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

Segments (:meth:`OptaxFlow.start` / :meth:`OptaxFlow.advance`, what :func:`landscape.flow.run_flows_packed` and
:func:`landscape.explore` use): the same iteration cut into pieces of at most ``segment_steps`` updates, the state
(:class:`OptaxSegment`) carrying the optimiser state, the step count, the status and the next snapshot slot, so
that finished lanes leave the batch and the running ones are re-packed. Every lane takes exactly the updates of
:meth:`OptaxFlow.run` (the same body, the same stop test, snapshots at the same step indices): the results are
the single run's.
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
    RUNNING,
    T_MAX,
    AbstractFlow,
    Trajectory,
    is_bad,
    loss_and_grad,
    mask_after_stop,
    snapshot_steps,
    summaries,
)

__all__ = ["OptaxFlow", "OptaxSegment"]


class OptaxSegment(eqx.Module):
    """The state a packed optax run carries between segments (one student; :meth:`OptaxFlow.advance`).

    ``trajectory`` holds theta, the step count ``n_steps``, the status (RUNNING until the run ends) and the
    snapshots taken so far; ``opt_state`` is the optimiser's state; ``next_snapshot`` the index of the first
    snapshot slot not yet filled (int32, S once all are).
    """

    trajectory: Trajectory
    opt_state: object
    next_snapshot: jax.Array


class OptaxFlow(AbstractFlow):
    """An optax optimiser run for at most ``steps`` steps; see the module docstring.

        g_k = grad L(theta_k),   (u_k, s_{k+1}) = optimizer.update(g_k, s_k, theta_k),   theta_{k+1} = theta_k + u_k

    e.g. theta_{k+1} = theta_k - lr g_k for ``optax.sgd``; reported time t_k = k * lr. The optimiser is static,
    ``steps``, ``grad_tol`` and the hyperparameters are traced (a learning-rate sweep compiles once).

    Args:
        optimizer: an optax factory (``optax.sgd``, ``optax.adam``, ...) or a ``GradientTransformation`` (static).
        steps: maximal number of updates (traced int).
        grad_tol: stop at the first iterate with |grad L| <= grad_tol (traced).
        segment_steps: updates per segment when a batch runs in segments with its unfinished lanes re-packed
            (:func:`landscape.flow.run_flows_packed`, what :func:`landscape.explore` uses; traced); 0 runs every
            student as one loop in lockstep. The results do not depend on it.
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
    segment_steps: jax.Array
    n_snapshots: int = eqx.field(static=True)
    save_params: bool = eqx.field(static=True)

    def __init__(self, optimizer, *, steps=20_000, grad_tol=1.0e-6, segment_steps=256, n_snapshots: int = 64,
                 save_params: bool = False, **hyperparams):
        is_transform = isinstance(optimizer, optax.GradientTransformation)
        if not (is_transform or callable(optimizer)):
            raise TypeError(f"OptaxFlow needs an optax factory or GradientTransformation, got {optimizer!r}")
        self.optimizer = optimizer
        self.hyperparams = {k: jnp.asarray(v, float) for k, v in hyperparams.items()}
        self.steps = jnp.asarray(steps, jnp.int32)
        self.grad_tol = jnp.asarray(grad_tol, float)
        self.segment_steps = jnp.asarray(segment_steps, jnp.int32)
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

    def _body(self, problem, opt):
        """One update on the carry (theta, opt_state, step, done, converged); a stop leaves theta and step."""
        def body(c):
            theta, state, k, done, conv = c
            loss, g = loss_and_grad(problem, theta)
            gn = jnp.linalg.norm(ravel_pytree(g)[0])
            now_conv = gn <= self.grad_tol
            stop = now_conv | is_bad(loss, gn)
            updates, new_state = opt.update(g, state, theta)
            new_theta = optax.apply_updates(theta, updates)
            keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(stop, b, a), new, old)  # noqa: E731
            return (keep(new_theta, theta), keep(new_state, state), jnp.where(stop, k, k + 1), stop, now_conv)

        return body

    def _status(self, final, conv):
        bad = is_bad(final["loss"], final["grad_norm"])
        return jnp.select([bad, conv | (final["grad_norm"] <= self.grad_tol)], [NONFINITE, CONVERGED],
                          default=T_MAX).astype(jnp.int32)

    def start(self, problem, theta0) -> OptaxSegment:
        """The state before the first segment (one student): step 0, status RUNNING, no snapshots yet."""
        opt = self._transformation()
        idx = snapshot_steps(jnp.asarray(self.steps, jnp.int32), self.n_snapshots)
        s = summaries(problem, theta0, self.save_params)
        blank = jax.tree.map(lambda x: jnp.full((self.n_snapshots,) + jnp.shape(x), jnp.nan, jnp.result_type(x)),
                             s)
        traj = Trajectory(theta=theta0, t_final=jnp.zeros((), float), n_steps=jnp.zeros((), jnp.int32),
                          status=jnp.asarray(RUNNING, jnp.int32), ts=idx * jnp.asarray(self.time_scale, float),
                          loss=blank["loss"], grad_norm=blank["grad_norm"], param_norm=blank["param_norm"],
                          params=blank.get("params"), loss_final=s["loss"], grad_norm_final=s["grad_norm"])
        return OptaxSegment(trajectory=traj, opt_state=self._init_state(opt, theta0),
                            next_snapshot=jnp.zeros((), jnp.int32))

    def advance(self, problem, segment: OptaxSegment) -> OptaxSegment:
        """At most ``segment_steps`` more updates from ``segment`` (one student; see :meth:`start`).

        The updates of :meth:`run` (same body and stop test): a ``while_loop`` over the snapshot slots met in the
        segment, each a ``while_loop`` over steps up to min(next snapshot step, segment end); a slot is filled
        when its step is reached. The status stays RUNNING until the run stops or takes ``steps`` updates; a
        finished segment passes through unchanged.
        """
        opt = self._transformation()
        body = self._body(problem, opt)
        state = segment.trajectory
        n = self.n_snapshots
        steps = jnp.asarray(self.steps, jnp.int32)
        idx = snapshot_steps(steps, n)
        running = state.status == RUNNING
        k_end = jnp.minimum(state.n_steps + jnp.maximum(self.segment_steps, 1), steps)
        snaps0 = {"loss": state.loss, "grad_norm": state.grad_norm, "param_norm": state.param_norm}
        if self.save_params:
            snaps0["params"] = state.params

        def due(j, k):  # snapshot slot j is taken at step k
            return (j < n) & (idx[jnp.minimum(j, n - 1)] == k)

        def cond(c):
            (_, _, k, done, _), j, _ = c
            return (~done) & ((k < k_end) | due(j, k))

        def slot(c):
            inner, j, snaps = c
            target = jnp.minimum(idx[jnp.minimum(j, n - 1)], k_end)
            inner = jax.lax.while_loop(lambda c: (~c[3]) & (c[2] < target), body, inner)
            hit = due(j, inner[2])
            now = summaries(problem, inner[0], self.save_params)
            snaps = jax.tree.map(lambda old, v: jnp.where(hit, old.at[jnp.minimum(j, n - 1)].set(v), old),
                                 snaps, now)
            return inner, j + hit.astype(jnp.int32), snaps

        carry0 = ((state.theta, segment.opt_state, state.n_steps, ~running, jnp.bool_(False)),
                  segment.next_snapshot, snaps0)
        (theta, opt_state, k, done, conv), j, snaps = jax.lax.while_loop(cond, slot, carry0)
        final = summaries(problem, theta)
        finished = done | (k >= steps)
        status = jnp.where(finished, self._status(final, conv), RUNNING).astype(jnp.int32)
        new = Trajectory(theta=theta, t_final=k * jnp.asarray(self.time_scale, float), n_steps=k, status=status,
                         ts=state.ts, loss=snaps["loss"], grad_norm=snaps["grad_norm"],
                         param_norm=snaps["param_norm"], params=snaps.get("params"), loss_final=final["loss"],
                         grad_norm_final=final["grad_norm"])
        new = OptaxSegment(trajectory=new, opt_state=opt_state, next_snapshot=j)
        return jax.tree.map(lambda a, b: jnp.where(running, a, b), new, segment)

    def run(self, problem, theta0) -> Trajectory:
        """Run the optimiser from theta0 (one student) as one loop; see the module docstring."""
        opt = self._transformation()
        body = self._body(problem, opt)
        steps = jnp.asarray(self.steps, jnp.int32)
        idx = snapshot_steps(steps, self.n_snapshots)
        # carry: (theta, opt_state, step, done, converged)
        carry0 = (theta0, self._init_state(opt, theta0), jnp.int32(0), jnp.bool_(False), jnp.bool_(False))

        def segment(c, target):
            c = jax.lax.while_loop(lambda c: (~c[3]) & (c[2] < target), body, c)
            reached = c[2] == target
            return c, (summaries(problem, c[0], self.save_params), reached)

        (theta, _, k, done, conv), (snaps, reached) = jax.lax.scan(segment, carry0, idx)
        final = summaries(problem, theta)
        status = self._status(final, conv)
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
