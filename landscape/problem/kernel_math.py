"""Numerically careful building blocks of the closed-form Gaussian kernels (:mod:`landscape.problem.activations`).

Each function is written so that values and derivatives stay finite and equal to their limits at zero, parallel and
antiparallel neurons.
"""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["safe_sqrt", "g_small_angle", "half_linear"]


def safe_sqrt(x):
    """sqrt(x) for x >= 0 whose derivative at 0 is taken as 0 instead of inf (double-where trick)."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def g_small_angle(t):
    """g(t) = sin t - t cos t for t in [0, pi/2]; its series t^3/3 - t^5/30 + ... below 0.1 avoids cancellation."""
    small = t < 0.1
    ts = jnp.where(small, t, 0.0)
    t2 = ts * ts
    series = ts**3 * (1.0 / 3 - t2 * (1.0 / 30 - t2 * (1.0 / 840 - t2 * (1.0 / 45360 - t2 / 3991680))))
    tl = jnp.where(small, 0.1, t)
    return jnp.where(small, series, jnp.sin(tl) - tl * jnp.cos(tl))


def half_linear(w, v):
    """E[relu(w.x) v.x] = w.v / 2, with value and all derivatives 0 at w = 0 (the relu'(0) = 0 convention)."""
    return jnp.where(w @ w > 0, 0.5 * (w @ v), 0.0)
