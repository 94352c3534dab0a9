"""Numerically careful building blocks of the closed-form Gaussian kernels (:mod:`landscape.problem.activations`).

Each function is written so that values and derivatives stay finite and equal to their limits at zero, parallel and
antiparallel neurons.
"""

from __future__ import annotations

import functools
import math
from fractions import Fraction

import jax.numpy as jnp

__all__ = ["safe_sqrt", "g_small_angle", "half_linear", "arccos_tail", "arccos_tail_series", "gaussian_moment"]


def safe_sqrt(x):
    """sqrt(x) for x >= 0 whose derivative at 0 is taken as 0 instead of inf (double-where trick)."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def g_small_angle(t, sin_t=None, cos_t=None):
    """g(t) = sin t - t cos t for t in [0, pi/2]; its series t^3/3 - t^5/30 + ... below 0.1 avoids cancellation.

    ``sin_t``, ``cos_t``: sin t and cos t when the caller has them from geometry (then no sine or cosine is
    evaluated); None: computed here.
    """
    small = t < 0.1
    ts = jnp.where(small, t, 0.0)
    t2 = ts * ts
    series = ts**3 * (1.0 / 3 - t2 * (1.0 / 30 - t2 * (1.0 / 840 - t2 * (1.0 / 45360 - t2 / 3991680))))
    if sin_t is None or cos_t is None:
        tl = jnp.where(small, 0.1, t)
        sin_t, cos_t = jnp.sin(tl), jnp.cos(tl)
        t = tl
    return jnp.where(small, series, sin_t - t * cos_t)


def half_linear(w, v):
    """E[relu(w.x) v.x] = w.v / 2, with value and all derivatives 0 at w = 0 (the relu'(0) = 0 convention)."""
    return jnp.where(w @ w > 0, 0.5 * (w @ v), 0.0)


_SERIES_DEGREE = 29
_SERIES_BELOW = 0.5


def _sin_cos_series(degree: int):
    """Exact Taylor coefficients (Fractions) of sin t and cos t up to t^degree."""
    sin = [Fraction(0)] * (degree + 1)
    cos = [Fraction(0)] * (degree + 1)
    for k in range(degree + 1):
        c = Fraction((-1) ** (k // 2), math.factorial(k))
        (cos if k % 2 == 0 else sin)[k] = c
    return sin, cos


def _mul(a, b):
    out = [Fraction(0)] * len(a)
    for i, x in enumerate(a):
        if x:
            for j in range(len(a) - i):
                out[i + j] += x * b[j]
    return out


@functools.cache
def arccos_tail_series(n: int) -> tuple[float, ...]:
    """Coefficients c_k of h_n(t) = t^(2n+1) sum_k c_k t^(2k) (see :func:`arccos_tail`), exact then rounded.

    Built from the exact Taylor series of sin and cos (Fractions), so the low-order terms that cancel in the
    closed form (h_n = O(t^(2n+1))) cancel exactly: h_1 = t^3/3 - ..., h_2 = 4 t^5/15 - ..., h_3 = 12 t^7/35 - ...
    """
    deg = _SERIES_DEGREE
    s, c = _sin_cos_series(deg)
    t = [Fraction(0)] * (deg + 1)
    t[1] = Fraction(1)
    c2 = _mul(c, c)
    if n == 1:  # sin t - t cos t
        h = [a - b for a, b in zip(s, _mul(t, c), strict=True)]
    elif n == 2:  # t (1 + 2 cos^2 t) - 3 sin t cos t
        one = [Fraction(1)] + [Fraction(0)] * deg
        h = [a - 3 * b for a, b in zip(_mul(t, [o + 2 * x for o, x in zip(one, c2, strict=True)]), _mul(s, c),
                                         strict=True)]
    elif n == 3:  # 15 sin t - 11 sin^3 t - t (9 cos t + 6 cos^3 t)
        s3 = _mul(_mul(s, s), s)
        c3 = _mul(c2, c)
        inner = [9 * a + 6 * b for a, b in zip(c, c3, strict=True)]
        h = [15 * a - 11 * b - x for a, b, x in zip(s, s3, _mul(t, inner), strict=True)]
    else:
        raise ValueError(f"arc-cosine tails are implemented for n = 1, 2, 3, got {n}")
    lead = 2 * n + 1
    if any(h[:lead]):
        raise AssertionError(f"h_{n} does not vanish to order {lead}")  # pragma: no cover (exact arithmetic)
    return tuple(float(h[k]) for k in range(lead, deg + 1, 2))


def arccos_tail(t, n: int):
    """h_n(t) = J_n(pi - t) for t in [0, pi/2]: the part of the arc-cosine kernel of order n that vanishes at t = 0.

    J_n are Cho & Saul's angular functions, E[relu(w.x)^n relu(v.x)^n] = |w|^n |v|^n J_n(theta) / (2 pi):

        h_1(t) = sin t - t cos t,
        h_2(t) = t (1 + 2 cos^2 t) - 3 sin t cos t,
        h_3(t) = 15 sin t - 11 sin^3 t - t (9 cos t + 6 cos^3 t),

    odd in t and O(t^(2n+1)). Below t = 0.5 the Taylor series (:func:`arccos_tail_series`, in t^2, Horner) is
    used instead of the closed form, whose terms cancel to about 1e-13 relative accuracy there; values and all
    derivatives are those of one analytic function on both sides (the series is exact to rounding).
    """
    small = t < _SERIES_BELOW
    ts = jnp.where(small, t, 0.0)
    t2 = ts * ts
    acc = jnp.zeros_like(ts)
    for coef in reversed(arccos_tail_series(n)):
        acc = acc * t2 + coef
    series = ts ** (2 * n + 1) * acc
    tl = jnp.where(small, _SERIES_BELOW, t)
    sn, cs = jnp.sin(tl), jnp.cos(tl)
    if n == 1:
        closed = sn - tl * cs
    elif n == 2:
        closed = tl * (1.0 + 2.0 * cs * cs) - 3.0 * sn * cs
    elif n == 3:
        closed = 15.0 * sn - 11.0 * sn**3 - tl * (9.0 * cs + 6.0 * cs**3)
    else:
        raise ValueError(f"arc-cosine tails are implemented for n = 1, 2, 3, got {n}")
    return jnp.where(small, series, closed)


def gaussian_moment(n: int, nw2, nv2, dot):
    """M_n = E[(w.x)^n (v.x)^n] for x ~ N(0, I) from |w|^2, |v|^2 and w.v (Isserlis): a polynomial, smooth.

    M_1 = w.v,  M_2 = |w|^2 |v|^2 + 2 (w.v)^2,  M_3 = 9 |w|^2 |v|^2 (w.v) + 6 (w.v)^3.
    """
    if n == 1:
        return dot
    if n == 2:
        return nw2 * nv2 + 2.0 * dot * dot
    if n == 3:
        return 9.0 * nw2 * nv2 * dot + 6.0 * dot**3
    raise ValueError(f"Gaussian moments are implemented for n = 1, 2, 3, got {n}")
