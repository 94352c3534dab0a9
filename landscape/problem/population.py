"""Exact population loss for Gaussian inputs (README science, common setting).

For two-layer nets f = sum_j a_j sigma(w_j . x + b_j) and a two-layer teacher (V, c, d) with x ~ N(0, I_d):

    L = 1/2 (a^T K(W, W) a - 2 a^T K(W, V) c + c^T K(V, V) c),   K(W, V)_ij = k(w_i, v_j)

with k from :mod:`landscape.problem.kernels` (closed forms for relu, leaky relu and erf without biases, else
2-D quadrature with ``order`` nodes per dimension; None: kernels.default_order). Works for one student; vmap
over students outside.

Derivatives: jax.grad / jax.hessian / jax.jacfwd(jax.jacrev) all work and stay finite at coincident, parallel,
antiparallel and zero neurons. At a zero ReLU neuron (w_i = 0) derivatives follow relu'(0) = 0 (see kernels).
For relu and leaky relu without biases :func:`population_value_and_grad` gives the gradient in closed form (what
the flows use: 2x fewer operations than reverse-mode through the kernel; equal to autodiff to rounding).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .kernels import pair_kernel
from .networks import TwoLayer

__all__ = ["kernel_matrix", "gram_kernel_matrix", "gram_quadratic_form", "population_loss", "has_closed_form_gradient",
           "population_value_and_grad"]


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


def has_closed_form_gradient(student: TwoLayer, teacher: TwoLayer) -> bool:
    """Whether :func:`population_value_and_grad` applies: no biases and an activation with kernel slopes."""
    return not (student.bias or teacher.bias) and student.activation.has_closed_form_slopes


def population_value_and_grad(student: TwoLayer, params, teacher: TwoLayer, teacher_params, wrt=("w", "a")):
    """(L, {name: dL/d name for name in wrt}) in closed form, for relu or leaky relu without biases.

    With the kernel slopes d k(w_i, u)/d w_i = A(w_i, u) w_i/|w_i| + B(w_i, u) u
    (:meth:`~landscape.problem.activations.AbstractActivation.pair_kernel_slopes`) and the symmetry of k:

        dL/dw_i = sum_j a_i a_j (A^ss_ij w_i/|w_i| + B^ss_ij w_j) - sum_j a_i c_j (A^st_ij w_i/|w_i| + B^st_ij v_j),
        dL/da   = K(W, W) a - K(W, V) c,

    the student sum running over j = i too (A = 0, B = 1/2 there for relu: d/dw_i of a_i^2 |w_i|^2 / 4). Every
    pair is evaluated once per ordered pair (i, j), by broadcasting: no gathers, so no scatters in a batch.
    The value is L of :func:`population_loss` to rounding (the student sum is taken over the full matrix).

    Args:
        student, teacher: two-layer nets without biases (:func:`has_closed_form_gradient`).
        params, teacher_params: full parameter dicts {"w": (m, d), "a": (m,)}, {"w": (r, d), "a": (r,)}.
        wrt: the parameter names to differentiate ("w" and/or "a"), static.

    Returns:
        (loss, grads): a scalar and a dict with the entries of ``wrt``.

    Raises:
        ValueError: if the closed form does not apply (biases, or an activation without slopes).
    """
    if not has_closed_form_gradient(student, teacher):
        raise ValueError(f"no closed-form population gradient for {student.activation.label} "
                         f"{'with biases' if student.bias or teacher.bias else ''}; use jax.value_and_grad")
    act = student.activation
    w, a = params["w"], params["a"]
    v, c = teacher_params["w"], teacher_params["a"]

    def pairs(x, y):
        return jax.vmap(lambda xi: jax.vmap(lambda yj: act.pair_kernel_slopes(xi, yj))(y))(x)

    kss, ass, bss = pairs(w, w)
    kst, ast, bst = pairs(w, v)
    tt = gram_quadratic_form(act, v, jnp.zeros(v.shape[0], v.dtype), c)
    loss = 0.5 * (a @ kss @ a - 2.0 * a @ kst @ c + tt)
    grads = {}
    if "w" in wrt:
        css, cst = a[:, None] * a[None, :], a[:, None] * c[None, :]
        nw2 = jnp.sum(w * w, axis=1)
        unit = w / jnp.where(nw2 > 0, jnp.sqrt(jnp.where(nw2 > 0, nw2, 1.0)), 1.0)[:, None]
        radial = jnp.sum(css * ass, axis=1) - jnp.sum(cst * ast, axis=1)
        grads["w"] = radial[:, None] * unit + (css * bss) @ w - (cst * bst) @ v
    if "a" in wrt:
        grads["a"] = kss @ a - kst @ c
    return loss, grads
