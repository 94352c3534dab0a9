"""The population loss evaluated accurately near zero loss (residual form).

The kernel form L = 1/2 (a^T K(W,W) a - 2 a^T K(W,V) c + c^T K(V,V) c) is a difference of O(1) terms, so at a
global minimum it returns rounding noise of order 1e-16 (even negative values) instead of a true loss of 1e-30.
We rewrite it exactly as a sum of small terms. Match each student neuron i to a reference r_i: the nearest teacher
neuron direction when the relative distance is below ``match_tol`` (for a p-homogeneous activation r_i = rho v_j
with rho = |w_i| / |v_j|, so sigma(r_i . x) = rho^p sigma(v_j . x); for an odd activation also r_i = -v_j, with
sigma(r_i . x) = -sigma(v_j . x)), else r_i = w_i. With Delta_i = w_i - r_i and
e_i(x) = sigma(w_i . x) - sigma(r_i . x):

    f - y = sum_i a_i e_i + sum_u gamma_u sigma(u . x),   u over teacher neurons and unmatched student neurons,
    gamma_{v_j} = sum_{i -> j} s_ij a_i rho_ij^p - c_j,   gamma_{w_i} = a_i (i unmatched),
    (s_ij = -1 for a neuron matched to -v_j, else 1)

    L = 1/2 [ sum_ik a_i a_k E[e_i e_k] + 2 sum_iu a_i gamma_u E[e_i sigma_u] + sum_uv gamma_u gamma_v k(u, v) ],

where the differences are integrals of kernel derivatives along the short segments r_i -> w_i,
    E[e_i e_k] = int_0^1 int_0^1 d^2/(ds dt) k(r_i + s Delta_i, r_k + t Delta_k) ds dt,
    E[e_i sigma_u] = int_0^1 d/ds k(r_i + s Delta_i, u) ds,
by Gauss-Legendre quadrature. This is an identity for any matching; matching only short segments keeps the
quadrature error relative to the (tiny) differences, so a loss of 1e-30 comes out as 1e-30. Without biases only
(the closed-form kernels); with biases the plain kernel form is returned.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .kernels import pair_kernel
from .population import population_loss

__all__ = ["population_loss_accurate"]


@functools.cache
def _gauss_legendre(n: int):
    x, w = np.polynomial.legendre.leggauss(n)
    return (x + 1.0) / 2.0, w / 2.0


def population_loss_accurate(
    student, params, teacher, teacher_params, *, order: int | None = None, match_tol: float = 1e-3, n_nodes: int = 8
):
    """Population loss in the residual form above (same value as :func:`population_loss`, accurate near 0)."""
    if student.bias or teacher.bias:
        return population_loss(student, params, teacher, teacher_params, order=order)
    act = student.activation
    k = lambda u, v: pair_kernel(act, u, 0.0, v, 0.0, order, False)
    W, A = params["w"], params["a"]
    V, C = teacher_params["w"], teacher_params["a"]
    nw = jnp.linalg.norm(W, axis=1)
    nv = jnp.linalg.norm(V, axis=1)
    p = act.homogeneity
    safe_nv = jnp.where(nv > 0, nv, 1.0)
    # candidate references sign * rho * v_j; for odd sigma also -v_j, since sigma(-v.x) = -sigma(v.x)
    signs = (1.0, -1.0) if act.odd else (1.0,)
    sign = jnp.repeat(jnp.asarray(signs), V.shape[0])  # (q,), q = len(signs) * r
    Vs = jnp.concatenate([sg * V for sg in signs], axis=0)  # (q, d)
    col = jnp.tile(jnp.arange(V.shape[0]), len(signs))  # teacher neuron of each candidate
    rho = nw[:, None] / safe_nv[None, col] if p is not None else jnp.ones((W.shape[0], Vs.shape[0]))
    refs = rho[:, :, None] * Vs[None, :, :]  # (m, q, d)
    dist = jnp.linalg.norm(W[:, None, :] - refs, axis=-1) / jnp.where(nw > 0, nw, 1.0)[:, None]
    jq = jnp.argmin(dist, axis=1)
    j = col[jq]
    matched = (jnp.min(dist, axis=1) < match_tol) & (nw > 0) & (nv[j] > 0)
    m = W.shape[0]
    R = jnp.where(matched[:, None], refs[jnp.arange(m), jq], W)
    D = W - R
    # sigma(r_i . x) = sign rho^p sigma(v_j . x): the matched neuron's share of teacher neuron j's coefficient
    scale = jnp.where(matched, sign[jq] * rho[jnp.arange(m), jq] ** (p if p is not None else 0.0), 0.0)
    beta = jnp.zeros_like(C).at[j].add(A * scale) - C  # sum_{i -> j} a_i sign rho^p - c_j
    U = jnp.concatenate([V, W], axis=0)
    gamma = jnp.concatenate([beta, jnp.where(matched, 0.0, A)])

    s, ws = _gauss_legendre(n_nodes)
    s, ws = jnp.asarray(s), jnp.asarray(ws)

    def ee(ri, di, rk, dk):
        def mixed(si, ti):
            inner = lambda a: jax.jvp(lambda b: k(ri + a * di, rk + b * dk), (ti,), (1.0,))[1]
            return jax.jvp(inner, (si,), (1.0,))[1]

        vals = jax.vmap(lambda si: jax.vmap(lambda ti: mixed(si, ti))(s))(s)
        return ws @ vals @ ws

    def es(ri, di, u):
        d1 = jax.vmap(lambda si: jax.jvp(lambda a: k(ri + a * di, u), (si,), (1.0,))[1])(s)
        return ws @ d1

    # E[e_i e_k] is symmetric in (i, k) (swap s and t): its m (m + 1) / 2 distinct pairs, the off-diagonal ones twice
    iu, ku = np.triu_indices(m)
    E_ee = jax.vmap(ee)(R[iu], D[iu], R[ku], D[ku])
    ee_form = jnp.sum(jnp.where(iu == ku, 1.0, 2.0) * A[iu] * A[ku] * E_ee)
    E_es = jax.vmap(lambda ri, di: jax.vmap(lambda u: es(ri, di, u))(U))(R, D)
    K_uu = jax.vmap(lambda u: jax.vmap(lambda v: k(u, v))(U))(U)
    return 0.5 * (ee_form + 2.0 * A @ E_es @ gamma + gamma @ K_uu @ gamma)
