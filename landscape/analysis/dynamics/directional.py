"""Directional convergence of loss flows from small initialisations, against the scale delta (Kumar & Haupt 2024).

For an L-homogeneous student and theta(0) = delta w0 (|w0| = 1, :class:`landscape.SphereInit`), the gradient flow
of the loss stays small while its direction converges to a KKT point of the neural correlation function N
(:mod:`.neural_correlation`). Along a KKT direction t* with lambda* = L N(t*) the norm obeys
d rho / dt = lambda* rho^(L-1), so leaving the origin takes

    L > 2:  T(delta) = delta^(2-L) / ((L - 2) lambda*)      (the blow-up time of the radial equation)
    L = 2:  T(delta) = log(1 / delta) / lambda*              (to reach norm 1)

:func:`directional_convergence` runs, for each delta, ``n`` gradient flows (:func:`landscape.run_flow` with
parameter snapshots, one ``jit(vmap)`` compiled once for all deltas: t_max, t_min and tolerances are traced) from
delta w0 with the same w0 for every delta, and records

- the direction theta / |theta| at the first snapshot where |theta| >= ``radius_factor`` * delta, its cosine to the
  nearest KKT point modulo symmetry (two-layer nets: neuron permutations, and for p = 1 activations the split of a
  neuron into copies of any magnitudes, :func:`cosine_mod_split`; plain cosine for deep nets), and its relative
  KKT residual |grad N(t) - L N(t) t| / |grad N(t)| (invariant under every symmetry);
- the escape time: the first time the loss has dropped by the fraction ``escape_drop`` of its initial value
  (log-time interpolation between snapshots),

and fits the escape times against delta: log T against log(1/delta) (slope L - 2) for L > 2, T against
log(1/delta) (slope 1/lambda*) for L = 2.

References:
    Kumar & Haupt, `Early Directional Convergence in Deep Homogeneous Neural Networks for Small Initializations
    <https://arxiv.org/abs/2403.08121>`_, 2024; `Directional Convergence Near Small Initializations and Saddles in
    Two-Homogeneous Neural Networks <https://arxiv.org/abs/2402.09226>`_, 2024.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from ...flow import GradientFlow, SphereInit, run_flow
from ...flow.programs import persistent_jit
from ...problem.networks import TwoLayer
from .neural_correlation import KKTPoints, homogeneity_order, neural_correlation

__all__ = ["DirectionalSweep", "directional_convergence", "escape_time_law", "cosine_mod_permutation",
           "cosine_mod_split"]

MAX_PERMUTED_WIDTH = 7
"""Two-layer widths up to which cosines are maximised over all m! neuron permutations (vmapped); plain above."""


def escape_time_law(delta, order: int, lam: float):
    """The radial escape time T(delta) of the module docstring (array in, array out)."""
    delta = np.asarray(delta, float)
    if order > 2:
        return delta ** (2.0 - order) / ((order - 2) * lam)
    return np.log(1.0 / delta) / lam


def _rows(problem, theta):
    """(m, k) rows (w_j, a_j) of a two-layer trainable dict (w only when output weights are frozen)."""
    rows = [theta["w"]]
    if "a" in theta:
        rows.append(theta["a"][:, None])
    return jnp.concatenate(rows, axis=1)


def cosine_mod_permutation(problem, theta, target, perms):
    """max over neuron permutations pi of <theta, pi(target)> / (|theta| |target|), for ONE pair of points.

    ``perms`` (P, m) int: the permutations to try (all m! for small widths; the identity alone gives the plain
    cosine, which is also what deep nets use). Pure, vmappable.
    """
    fa, fb = ravel_pytree(theta)[0], ravel_pytree(target)[0]
    scale = jnp.linalg.norm(fa) * jnp.linalg.norm(fb)
    if not isinstance(problem.student, TwoLayer):
        return fa @ fb / scale
    g = _rows(problem, theta) @ _rows(problem, target).T  # (m, m) neuron-by-neuron inner products
    m = g.shape[0]
    return jnp.max(jnp.sum(g[jnp.arange(m)[None, :], perms], axis=1)) / scale


def cosine_mod_split(problem, theta, target):
    """Cosine of ``theta`` to the nearest point of the KKT family of ``target`` for 1-homogeneous activations.

    For relu / leaky relu (p = 1) a KKT point's neurons may be split among any number of copies on the same rays
    r = (w_j, a_j) / |(w_j, a_j)| with any magnitudes (README, science section 3; condition (iii) of
    :mod:`.neural_correlation` does not fix them), so the nearest family member keeps each neuron of ``theta`` on
    its best ray: cos = sqrt(sum_j max(0, max_r <n_j, r>)^2) / |theta|, n_j = (w_j, a_j). Pure, vmappable.
    """
    rows, ref = _rows(problem, theta), _rows(problem, target)
    nrm = jnp.linalg.norm(ref, axis=1, keepdims=True)
    rays = jnp.where(nrm > 0, ref / jnp.where(nrm > 0, nrm, 1.0), 0.0)
    best = jnp.maximum(jnp.max(rows @ rays.T, axis=1), 0.0)
    return jnp.sqrt(jnp.sum(best**2)) / jnp.linalg.norm(ravel_pytree(theta)[0])


def _split_family(problem) -> bool:
    return (isinstance(problem.student, TwoLayer) and problem.student.activation.homogeneity == 1.0
            and "a" not in problem.frozen)


def _perms(problem) -> np.ndarray:
    if isinstance(problem.student, TwoLayer) and problem.student.width <= MAX_PERMUTED_WIDTH:
        return np.asarray(list(itertools.permutations(range(problem.student.width))), np.int32)
    m = problem.student.width
    return np.arange(m, dtype=np.int32)[None, :]


@persistent_jit
def _flows(problem, flow, theta0):
    return jax.vmap(lambda t: run_flow(problem, flow, t))(theta0)


@persistent_jit
def _directions(problem, directions, targets, perms, order: int):
    """(cosines (n, k), relative KKT residuals (n,)) of n directions against k KKT points."""
    if _split_family(problem):
        pair = lambda d, t: cosine_mod_split(problem, d, t)  # noqa: E731
    else:
        pair = lambda d, t: cosine_mod_permutation(problem, d, t, perms)  # noqa: E731
    cos = jax.vmap(lambda d: jax.vmap(lambda t: pair(d, t))(targets))(directions)

    def rel_residual(d):
        flat, unravel = ravel_pytree(d)
        t = flat / jnp.linalg.norm(flat)
        n, g = jax.value_and_grad(lambda z: neural_correlation(problem, unravel(z)))(t)
        return jnp.linalg.norm(g - order * n * t) / jnp.maximum(jnp.linalg.norm(g), 1e-300)

    return cos, jax.vmap(rel_residual)(directions)


@dataclass(frozen=True)
class DirectionalSweep:
    """Result of :func:`directional_convergence` (host numpy; rows are deltas, columns initialisations).

    Attributes:
        deltas: (k,) initialisation scales; order: L; lam: lambda* = L N* of the best KKT point.
        radius_factor, escape_drop: the recording radius (multiple of delta) and the loss drop defining escape.
        cosine: (k, n) cosine of the recorded direction to the nearest KKT point (modulo permutations).
        nearest: (k, n) index of that KKT point in ``kkt``.
        kkt_residual: (k, n) relative KKT residual of the recorded direction.
        radius: (k, n) |theta| / delta at the recorded snapshot (>= radius_factor; NaN if never reached).
        escape_time: (k, n) escape time (NaN if the loss never dropped that far before t_max).
        t_max: (k,) horizon used per delta.
        slope, intercept: the fit (module docstring); predicted_slope: L - 2 (L > 2) or 1 / lambda* (L = 2).
        kkt: the :class:`KKTPoints` compared with.
    """

    deltas: np.ndarray
    order: int
    lam: float
    radius_factor: float
    escape_drop: float
    cosine: np.ndarray
    nearest: np.ndarray
    kkt_residual: np.ndarray
    radius: np.ndarray
    escape_time: np.ndarray
    t_max: np.ndarray
    slope: float
    intercept: float
    predicted_slope: float
    kkt: KKTPoints

    @property
    def law(self) -> str:
        """The fitted law in words."""
        if self.order > 2:
            return f"log T = {self.intercept:.3f} + {self.slope:.3f} log(1/delta)  (paper: slope L - 2 = " \
                   f"{self.predicted_slope:g})"
        return f"T = {self.intercept:.3f} + {self.slope:.3f} log(1/delta)  (radial law: slope 1/lambda* = " \
               f"{self.predicted_slope:.3f})"

    def table(self):
        """pandas DataFrame, one row per delta: median and min cosine, fraction with cosine >= 0.99, median
        relative KKT residual, median |theta| / delta where the direction was recorded, median escape time, the
        radial prediction, and how many flows reached the radius / escaped."""
        import warnings

        import pandas as pd

        with warnings.catch_warnings():  # all-NaN rows (no flow reached the radius) give NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            return pd.DataFrame({
                "delta": self.deltas,
                "cos_median": np.nanmedian(self.cosine, axis=1),
                "cos_min": np.nanmin(self.cosine, axis=1),
                "frac_cos_0.99": np.nanmean(self.cosine >= 0.99, axis=1),
                "kkt_res_median": np.nanmedian(self.kkt_residual, axis=1),
                "radius_median": np.nanmedian(self.radius, axis=1),
                "escape_median": np.nanmedian(self.escape_time, axis=1),
                "escape_law": escape_time_law(self.deltas, self.order, self.lam),
                "reached": np.sum(np.isfinite(self.radius), axis=1),
                "escaped": np.sum(np.isfinite(self.escape_time), axis=1),
            })


def _first_index(mask):
    """Index of the first True along the last axis, or -1."""
    any_ = mask.any(axis=-1)
    return np.where(any_, np.argmax(mask, axis=-1), -1)


def _escape_times(ts, loss, drop, t_final, loss_final):
    """First log-interpolated time where loss <= (1 - drop) loss[0], per row of loss (n, S); NaN if never.

    The end state (t_final, loss_final) of each flow counts as one more sample after its last finite snapshot (a
    flow stopped by its step budget right after escaping has no snapshot below the target)."""
    n, S = loss.shape
    last = np.where(np.isfinite(loss), np.arange(S)[None, :], -1).max(axis=1)
    ts = np.broadcast_to(np.append(ts, np.inf), (n, S + 1)).copy()
    loss = np.concatenate([loss, np.full((n, 1), np.nan)], axis=1)
    rows = np.arange(n)
    extra = (last + 1 < S + 1) & (t_final > ts[rows, np.maximum(last, 0)])
    ts[rows[extra], last[extra] + 1] = t_final[extra]
    loss[rows[extra], last[extra] + 1] = loss_final[extra]
    target = (1.0 - drop) * loss[:, :1]
    below = np.nan_to_num(loss, nan=np.inf) <= target
    i = _first_index(below)
    out = np.full(n, np.nan)
    for r in np.flatnonzero(i > 0):
        k = i[r]
        t0, t1, l0, l1 = ts[r, k - 1], ts[r, k], loss[r, k - 1], loss[r, k]
        if t0 <= 0:
            out[r] = t1
            continue
        frac = (l0 - target[r, 0]) / (l0 - l1) if l0 != l1 else 1.0
        out[r] = float(np.exp(np.log(t0) + frac * (np.log(t1) - np.log(t0))))
    return out


def directional_convergence(problem, kkt: KKTPoints, *, deltas, key, n: int = 64, radius_factor: float = 30.0,
                            escape_drop: float = 0.1, horizon: float = 12.0, n_snapshots: int = 400,
                            rtol: float = 1e-8, max_steps: int = 4000) -> DirectionalSweep:
    """The delta sweep of the module docstring.

    Args:
        problem: a :class:`landscape.TeacherStudent` with an L-homogeneous student.
        kkt: KKT points of N (:func:`landscape.kkt_points`), to compare the directions with.
        deltas: initialisation scales (e.g. 1e-1 ... 1e-6).
        key: PRNG key of the unit directions w0 (the same w0 for every delta; keyword-only).
        n: initialisations per delta.
        radius_factor: record the direction when |theta| first reaches radius_factor * delta.
        escape_drop: escape = the loss has dropped by this fraction of its initial value.
        horizon: t_max = horizon * T(delta) of the radial law (module docstring).
        n_snapshots: log-spaced snapshots per flow, from T(delta) / 4 (L > 2; t_max * 1e-5 for L = 2) to t_max:
            their spacing must resolve the radius crossing, which for L > 2 falls in the last fraction
            1 / radius_factor^(L-2) of the time before the blow-up (400 snapshots: 0.9 % spacing).
        rtol: solver tolerance (atol = rtol * delta * 1e-2, scaled with the size of the weights).
        max_steps: solver steps per flow (static). Escaping takes a few hundred adaptive steps; after it the flow
            moves on O(1) time scales, so a flow that escaped early stops here (MAX_STEPS) instead of integrating
            the rest of the horizon: what is recorded happens before.

    Returns:
        :class:`DirectionalSweep`.

    Example:
        >>> import jax, landscape as ls
        >>> teacher = ls.Teacher.gaussian(d=3, width=2, key=jax.random.key(1), output_weights=[1.0, 0.7])
        >>> problem = ls.TeacherStudent(teacher, ls.TwoLayer(width=2, activation=ls.ReLUPower(2)))  # L = 3
        >>> kkt = ls.kkt_points(problem, key=jax.random.key(0), n=16)  # doctest: +SKIP
        >>> sweep = ls.directional_convergence(problem, kkt, deltas=[1e-2, 1e-3, 1e-4], key=jax.random.key(1),
        ...                                    n=8)  # doctest: +SKIP
        >>> round(sweep.slope, 1), sweep.predicted_slope  # escape time ~ 1/delta^(L-2)  # doctest: +SKIP
        (1.0, 1.0)
    """
    order = homogeneity_order(problem)
    if len(kkt) == 0:
        raise ValueError("no KKT points to compare with: run kkt_points with more starts or steps")
    lam = float(order * kkt.value[0])
    if not lam > 0:
        raise ValueError(f"the best KKT point has N = {kkt.value[0]:.3g} <= 0: no escape from the origin")
    deltas = np.asarray(deltas, float)
    keys = jax.random.split(key, n)
    unit = jax.vmap(lambda k: SphereInit(1.0).sample(k, problem))(keys)
    targets = jax.tree.map(jnp.asarray, kkt.theta)
    perms = jnp.asarray(_perms(problem))
    out = {k: [] for k in ("cosine", "nearest", "kkt_residual", "radius", "escape_time", "t_max")}
    for delta in deltas:
        t_law = float(escape_time_law(delta, order, lam)) if order > 2 else float(np.log(1.0 / delta) + 1.0) / lam
        t_max = horizon * t_law
        # L > 2: nothing happens before ~T(delta) (|theta| < 1.2 delta at T / 4), so the snapshots are spent on
        # [T / 4, t_max], where the norm blows up; L = 2: log-spaced from t_max * 1e-5
        t_min = 0.25 * t_law if order > 2 else t_max * 1e-5
        flow = GradientFlow(t_max, grad_tol=0.0, rtol=rtol, atol=rtol * delta * 1e-2, t_min=t_min,
                            max_steps=max_steps, n_snapshots=n_snapshots, save_params=True)
        theta0 = jax.tree.map(lambda x: delta * x, unit)  # noqa: B023
        traj = _flows(problem, flow, theta0)
        ts, norm = np.asarray(traj.ts)[0], np.asarray(traj.param_norm)
        i = _first_index(np.nan_to_num(norm, nan=-np.inf) >= radius_factor * delta)
        rows = np.arange(n)
        pick = np.where(i >= 0, i, 0)
        direction = jax.tree.map(lambda p, rows=rows, pick=pick: p[rows, pick], traj.params)
        cos, res = (np.asarray(a) for a in _directions(problem, direction, targets, perms, order))
        reached = i >= 0
        out["cosine"].append(np.where(reached, cos.max(axis=1), np.nan))
        out["nearest"].append(np.where(reached, cos.argmax(axis=1), -1))
        out["kkt_residual"].append(np.where(reached, res, np.nan))
        out["radius"].append(np.where(reached, norm[rows, pick] / delta, np.nan))
        out["escape_time"].append(_escape_times(ts, np.asarray(traj.loss), escape_drop, np.asarray(traj.t_final),
                                                np.asarray(traj.loss_final)))
        out["t_max"].append(t_max)
    arr = {k: np.asarray(v) for k, v in out.items()}
    med = np.array([np.nanmedian(r) if np.isfinite(r).any() else np.nan for r in arr["escape_time"]])
    x = np.log(1.0 / deltas)
    ok = np.isfinite(med) & (med > 0)
    y = np.log(np.where(ok, med, 1.0)) if order > 2 else med
    if ok.sum() >= 2:
        slope, intercept = (float(c) for c in np.polyfit(x[ok], y[ok], 1))
    else:
        slope = intercept = float("nan")
    predicted = float(order - 2) if order > 2 else 1.0 / lam
    return DirectionalSweep(deltas=deltas, order=order, lam=lam, radius_factor=float(radius_factor),
                            escape_drop=float(escape_drop), cosine=arr["cosine"], nearest=arr["nearest"],
                            kkt_residual=arr["kkt_residual"], radius=arr["radius"], escape_time=arr["escape_time"],
                            t_max=arr["t_max"], slope=slope, intercept=intercept, predicted_slope=predicted, kkt=kkt)
