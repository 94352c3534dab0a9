"""Gaussian kernels k(w, v) = E_x[sigma(w . x + b) sigma(v . x + c)], x ~ N(0, I_d), for the population loss.

Closed forms (no biases), written to stay smooth at parallel, antiparallel and coincident neurons:

- ReLU, arc-cosine kernel (Cho & Saul 2009), with g(t) = sin t - t cos t:
      k(w, v) = |w||v| / (2 pi) * (sin theta + (pi - theta) cos theta) = |w||v| / (2 pi) * g(pi - theta)
              = w . v / 2 + |w||v| / (2 pi) * g(theta).
  g(t) = t^3/3 - t^5/30 + ... vanishes to third order, so the kernel is C^2 across theta = 0 and theta = pi with
  a zero second-order contribution from g there. We evaluate the form whose g argument is <= pi/2, compute
  theta = 2 atan2(|u - z|, |u + z|) from unit vectors u, z (accurate for tiny angles), use the series of g for
  small arguments and guard every square root so that derivatives at exactly parallel neurons are the limits.
- Leaky ReLU with slope alpha: leaky(z) = alpha z + (1 - alpha) relu(z) and E[u relu(v)] = E[u v] / 2, so
      k(w, v) = alpha w . v + (1 - alpha)^2 k_relu(w, v).
- erf (Williams 1997): k(w, v) = (2 / pi) arcsin(2 w . v / sqrt((1 + 2|w|^2)(1 + 2|v|^2))); smooth everywhere.

At a zero neuron ReLU kernels are only directionally differentiable; we use the convention relu'(0) = 0 of the
finite-sample loss, i.e. k and its derivatives in w are taken as 0 at w = 0.

Smooth activations (and erf with biases): two-dimensional Gauss-Hermite quadrature over (u, v) ~ N(mu, C) with
C the Gram matrix [[|w|^2, w.v], [w.v, |v|^2]] and mu = (b, c). Derivatives do not go through the Cholesky factor
of C (whose square roots are singular at parallel or zero neurons); a custom JVP applies Price's theorem instead:
    dF/dmu_1 = E[f' g],  dF/dC_11 = E[f'' g] / 2,  dF/dC_12 = E[f' g'],  dF/dC_22 = E[f g''] / 2,
themselves expectations of the same form, so Hessians follow by recursion and stay finite everywhere.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .activations import Activation

__all__ = ["relu_kernel", "leaky_relu_kernel", "erf_kernel", "gauss_kernel", "pair_kernel", "has_closed_form"]


def _safe_sqrt(x):
    """sqrt(x) for x >= 0 whose derivative at 0 is taken as 0 instead of inf (double-where trick)."""
    pos = x > 0
    return jnp.where(pos, jnp.sqrt(jnp.where(pos, x, 1.0)), 0.0)


def _g(t):
    """g(t) = sin t - t cos t for t in [0, pi/2]; series for small t to avoid cancellation."""
    small = t < 0.1
    ts = jnp.where(small, t, 0.0)
    t2 = ts * ts
    series = ts**3 * (1.0 / 3 - t2 * (1.0 / 30 - t2 * (1.0 / 840 - t2 * (1.0 / 45360 - t2 / 3991680))))
    tl = jnp.where(small, 0.1, t)
    return jnp.where(small, series, jnp.sin(tl) - tl * jnp.cos(tl))


def relu_kernel(w, v):
    """E[relu(w.x) relu(v.x)] for x ~ N(0, I); arc-cosine kernel of degree 1, smooth at parallel neurons."""
    nw2, nv2 = w @ w, v @ v
    ok = (nw2 > 0) & (nv2 > 0)
    nw, nv = _safe_sqrt(nw2), _safe_sqrt(nv2)
    u = w / jnp.where(ok, nw, 1.0)
    z = v / jnp.where(ok, nv, 1.0)
    dm2 = jnp.sum((u - z) ** 2)  # |u - z|^2 = 4 sin^2(theta/2)
    dp2 = jnp.sum((u + z) ** 2)  # |u + z|^2 = 4 cos^2(theta/2)
    dm, dp = _safe_sqrt(dm2), _safe_sqrt(dp2)
    acute = dm2 <= dp2
    theta = 2.0 * jnp.arctan2(dm, jnp.where(acute, dp, 1.0))  # used only when acute
    phi = 2.0 * jnp.arctan2(dp, jnp.where(acute, 1.0, dm))  # pi - theta, used only when obtuse
    n = nw * nv / (2.0 * math.pi)
    k_acute = 0.5 * (w @ v) + n * _g(jnp.where(acute, theta, 0.0))
    k_obtuse = n * _g(jnp.where(acute, 0.0, phi))
    return jnp.where(ok, jnp.where(acute, k_acute, k_obtuse), 0.0)


def leaky_relu_kernel(w, v, alpha):
    """E[leaky(w.x) leaky(v.x)] = alpha w.v + (1 - alpha)^2 k_relu(w, v)."""
    return alpha * (w @ v) + (1.0 - alpha) ** 2 * relu_kernel(w, v)


def erf_kernel(w, v):
    """E[erf(w.x) erf(v.x)] = (2/pi) arcsin(2 w.v / sqrt((1 + 2|w|^2)(1 + 2|v|^2))) (Williams 1997)."""
    return (2.0 / math.pi) * jnp.arcsin(2.0 * (w @ v) / jnp.sqrt((1.0 + 2.0 * (w @ w)) * (1.0 + 2.0 * (v @ v))))


@functools.cache
def _hermite(order: int):
    """Gauss-Hermite nodes and weights for E_{z ~ N(0,1)}[f(z)] (probabilists' normalisation)."""
    x, wts = np.polynomial.hermite_e.hermegauss(order)
    return x, wts / math.sqrt(2.0 * math.pi)


@functools.cache
def _derivative(act: Activation, k: int):
    """The k-th derivative of sigma as an elementwise function."""
    f = act.__call__
    for _ in range(k):
        f = jax.grad(f)
    return jnp.vectorize(f) if k else f


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2, 3))
def _gauss2(act: Activation, k1: int, k2: int, order: int, mu1, mu2, c11, c12, c22):
    """E[sigma^(k1)(u) sigma^(k2)(v)] for (u, v) ~ N((mu1, mu2), [[c11, c12], [c12, c22]]) by Gauss-Hermite.

    The clamped Cholesky factor gives exact values at singular C; derivatives come from the custom JVP below.
    """
    z, wq = _hermite(order)
    z, wq = jnp.asarray(z), jnp.asarray(wq)
    l11 = jnp.sqrt(jnp.maximum(c11, 0.0))
    l21 = jnp.where(l11 > 0, c12 / jnp.where(l11 > 0, l11, 1.0), 0.0)
    l22 = jnp.sqrt(jnp.maximum(c22 - l21 * l21, 0.0))
    f, g = _derivative(act, k1), _derivative(act, k2)
    fu = f(mu1 + l11 * z)  # (q,)
    gv = g(mu2 + l21 * z[:, None] + l22 * z[None, :])  # (q, q): first index z1, second z2
    return jnp.einsum("i,j,i,ij->", wq, wq, fu, gv)


@_gauss2.defjvp
def _gauss2_jvp(act, k1, k2, order, primals, tangents):
    mu1, mu2, c11, c12, c22 = primals
    dmu1, dmu2, dc11, dc12, dc22 = tangents
    F = functools.partial(_gauss2, act)
    out = F(k1, k2, order, *primals)
    d = (
        F(k1 + 1, k2, order, *primals) * dmu1
        + F(k1, k2 + 1, order, *primals) * dmu2
        + 0.5 * F(k1 + 2, k2, order, *primals) * dc11
        + F(k1 + 1, k2 + 1, order, *primals) * dc12
        + 0.5 * F(k1, k2 + 2, order, *primals) * dc22
    )
    return out, d


def gauss_kernel(act: Activation, w, b, v, c, order: int = 64):
    """E[sigma(w.x + b) sigma(v.x + c)] for a smooth sigma by Gauss-Hermite quadrature with Price-rule derivatives."""
    return _gauss2(act, 0, 0, order, b, c, w @ w, w @ v, v @ v)


def has_closed_form(act: Activation, bias: bool) -> bool:
    """Whether :func:`pair_kernel` uses an exact closed form for this activation."""
    return not bias and act.name in ("relu", "leaky_relu", "erf")


def pair_kernel(act: Activation, w, b, v, c, order: int = 64, bias: bool = False):
    """k(w, v) = E[sigma(w.x + b) sigma(v.x + c)]: closed form where one exists, else quadrature.

    ``b`` and ``c`` are scalars (0.0 without biases); ``bias`` (static) decides whether a closed form applies.
    ReLU-type activations with biases have no implementation here (the config refuses them).
    """
    if bias or not has_closed_form(act, False):
        if not act.smooth and act.name != "erf":
            raise ValueError(f"population kernel for {act.label} with biases is not available")
        return gauss_kernel(act, w, b, v, c, order)
    if act.name == "relu":
        return relu_kernel(w, v)
    if act.name == "leaky_relu":
        return leaky_relu_kernel(w, v, act.param)
    if act.name == "erf":
        return erf_kernel(w, v)
    raise ValueError(f"no closed-form population kernel for {act.label}")
