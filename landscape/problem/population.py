"""Exact population loss for Gaussian inputs (papers.md, common setting).

For two-layer nets f = sum_j a_j sigma(w_j . x + b_j) and a two-layer teacher (V, c, d) with x ~ N(0, I_d):

    L = 1/2 (a^T K(W, W) a - 2 a^T K(W, V) c + c^T K(V, V) c),   K(W, V)_ij = k(w_i, v_j)

with k from :mod:`landscape.problem.kernels`. Works for one student; vmap over students outside.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .kernels import pair_kernel
from .networks import TwoLayerNet

__all__ = ["kernel_matrix", "population_loss"]


def _biases(net: TwoLayerNet, params):
    return params["b"] if net.bias else jnp.zeros(params["w"].shape[0], params["w"].dtype)


def kernel_matrix(act, w1, b1, w2, b2, *, order: int = 64, bias: bool = False):
    """K_ij = E[sigma(w1_i . x + b1_i) sigma(w2_j . x + b2_j)], shape (m1, m2)."""
    k = lambda w, b, v, c: pair_kernel(act, w, b, v, c, order, bias)
    row = jax.vmap(k, in_axes=(None, None, 0, 0))
    return jax.vmap(row, in_axes=(0, 0, None, None))(w1, b1, w2, b2)


def population_loss(student: TwoLayerNet, params, teacher: TwoLayerNet, teacher_params, *, order: int = 64):
    """1/2 E[(f_student(x) - f_teacher(x))^2] for x ~ N(0, I_d), exactly (closed forms) or by quadrature."""
    act = student.activation
    bias = student.bias or teacher.bias
    w, b, a = params["w"], _biases(student, params), params["a"]
    v, c, cv = teacher_params["w"], _biases(teacher, teacher_params), teacher_params["a"]
    kmat = lambda w1, b1, w2, b2: kernel_matrix(act, w1, b1, w2, b2, order=order, bias=bias)
    kss = kmat(w, b, w, b)
    kst = kmat(w, b, v, c)
    ktt = kmat(v, c, v, c)
    return 0.5 * (a @ kss @ a - 2.0 * a @ kst @ cv + cv @ ktt @ cv)
