"""Exact population loss for Gaussian inputs (README science, common setting).

For two-layer nets f = sum_j a_j sigma(w_j . x + b_j) and a two-layer teacher (V, c, d) with x ~ N(0, I_d):

    L = 1/2 (a^T K(W, W) a - 2 a^T K(W, V) c + c^T K(V, V) c),   K(W, V)_ij = k(w_i, v_j)

with k from :mod:`landscape.problem.kernels` (closed forms for relu, leaky relu and erf without biases, else
2-D quadrature with ``order`` nodes per dimension; None: kernels.default_order). Works for one student; vmap
over students outside.

Derivatives: jax.grad / jax.hessian / jax.jacfwd(jax.jacrev) all work and stay finite at coincident, parallel,
antiparallel and zero neurons. At a zero ReLU neuron (w_i = 0) derivatives follow relu'(0) = 0 (see kernels).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .kernels import pair_kernel
from .networks import TwoLayer

__all__ = ["kernel_matrix", "gram_kernel_matrix", "gram_quadratic_form", "population_loss"]


def _biases(net: TwoLayer, params):
    return params["b"] if net.bias else jnp.zeros(params["w"].shape[0], params["w"].dtype)


def kernel_matrix(act, w1, b1, w2, b2, *, order: int | None = None, bias: bool = False):
    """K_ij = E[sigma(w1_i . x + b1_i) sigma(w2_j . x + b2_j)], shape (m1, m2); w1 (m1, d), b1 (m1,)."""
    k = lambda w, b, v, c: pair_kernel(act, w, b, v, c, order, bias)
    row = jax.vmap(k, in_axes=(None, None, 0, 0))
    return jax.vmap(row, in_axes=(0, 0, None, None))(w1, b1, w2, b2)


def gram_kernel_matrix(act, w, b, *, order: int | None = None, bias: bool = False):
    """The symmetric K_ij = E[sigma(w_i . x + b_i) sigma(w_j . x + b_j)], shape (m, m), from its m(m+1)/2 pairs."""
    m = w.shape[0]
    iu, ju = np.triu_indices(m)
    k = lambda wi, bi, wj, bj: pair_kernel(act, wi, bi, wj, bj, order, bias)
    vals = jax.vmap(k)(w[iu], b[iu], w[ju], b[ju])
    upper = jnp.zeros((m, m), vals.dtype).at[iu, ju].set(vals)
    return upper + jnp.triu(upper, 1).T


def gram_quadratic_form(act, w, b, a, *, order: int | None = None, bias: bool = False):
    """a^T K a with K_ij = E[sigma(w_i . x + b_i) sigma(w_j . x + b_j)], from the m(m+1)/2 distinct pairs:

        a^T K a = sum_i a_i^2 k(w_i, w_i) + 2 sum_{i<j} a_i a_j k(w_i, w_j).

    Equal to ``a @ gram_kernel_matrix(...) @ a`` without assembling the matrix (no scatter: in the vmapped
    flow the scatter and its transpose cost ~10 % of a gradient step). w (m, d), b (m,), a (m,). Returns a scalar.
    """
    m = w.shape[0]
    iu, ju = np.triu_indices(m, 1)
    k = lambda wi, bi, wj, bj: pair_kernel(act, wi, bi, wj, bj, order, bias)
    diag = jax.vmap(k)(w, b, w, b)
    total = (a * a) @ diag
    if m > 1:
        total = total + 2.0 * (a[iu] * a[ju]) @ jax.vmap(k)(w[iu], b[iu], w[ju], b[ju])
    return total


def population_loss(student: TwoLayer, params, teacher: TwoLayer, teacher_params, *, order: int | None = None):
    """1/2 E[(f_student(x) - f_teacher(x))^2] for x ~ N(0, I_d), exactly (closed forms) or by quadrature.

    ``params``/``teacher_params``: full parameter dicts {"w": (m, d), "b": (m,) if bias, "a": (m,)}. Returns a scalar.
    """
    act = student.activation
    bias = student.bias or teacher.bias
    w, b, a = params["w"], _biases(student, params), params["a"]
    v, c, cv = teacher_params["w"], _biases(teacher, teacher_params), teacher_params["a"]
    ss = gram_quadratic_form(act, w, b, a, order=order, bias=bias)
    kst = kernel_matrix(act, w, b, v, c, order=order, bias=bias)
    tt = gram_quadratic_form(act, v, c, cv, order=order, bias=bias)
    return 0.5 * (ss - 2.0 * a @ kst @ cv + tt)
