"""Gaussian kernels k(w, v) = E_x[sigma(w . x + b) sigma(v . x + c)], x ~ N(0, I_d), for the population loss.

Closed forms (no biases) belong to each activation (:meth:`AbstractActivation.pair_kernel` in
:mod:`landscape.problem.activations`), written to stay smooth at parallel, antiparallel and coincident neurons:

- ReLU, arc-cosine kernel (Cho & Saul 2009), with g(t) = sin t - t cos t:
      k(w, v) = |w||v| / (2 pi) * (sin theta + (pi - theta) cos theta) = |w||v| / (2 pi) * g(pi - theta)
              = w . v / 2 + |w||v| / (2 pi) * g(theta).
  g(t) = t^3/3 - t^5/30 + ... vanishes to third order, so the kernel is C^2 across theta = 0 and theta = pi with
  a zero second-order contribution from g there. We evaluate the form whose g argument is <= pi/2, compute
  theta = 2 atan2(|u - z|, |u + z|) from unit vectors u, z (accurate for tiny angles), use the series of g for
  small arguments and guard every square root so that derivatives at exactly parallel neurons are the limits.
- Leaky ReLU with slope alpha: leaky(z) = alpha z + (1 - alpha) relu(z) and E[u relu(v)] = E[u v] / 2, so
      k(w, v) = alpha w . v + (1 - alpha)^2 k_relu(w, v)  (for w, v != 0).
- erf (Williams 1997): k(w, v) = (2 / pi) arcsin(2 w . v / sqrt((1 + 2|w|^2)(1 + 2|v|^2))); smooth everywhere.

At a zero neuron (w = 0) ReLU kernels are only directionally differentiable. We use the convention relu'(0) = 0
of the autodiff finite-sample loss: every derivative is the expectation of the per-sample autodiff derivative.
For relu, k(0, v) and all its derivatives are 0 (a zero neuron's rows of the gradient and Hessian vanish);
for leaky relu, leaky'(0) = alpha, e.g. grad_w k(w, v) at w = 0 is alpha E[x leaky(v.x)] = alpha (1 + alpha) v / 2.

Smooth activations (and erf with biases): two-dimensional quadrature over (u, v) ~ N(mu, C) with C the Gram
matrix [[|w|^2, w.v], [w.v, |v|^2]] and mu = (b, c), on a truncated trapezoidal grid (:func:`_nodes`; error
exponentially small in the order, see DEFAULT_ORDER). Derivatives do not go through the Cholesky factor of C
(whose square roots are singular at parallel or zero neurons); a custom JVP applies Price's theorem instead:
    dF/dmu_1 = E[f' g],  dF/dC_11 = E[f'' g] / 2,  dF/dC_12 = E[f' g'],  dF/dC_22 = E[f g''] / 2,
themselves expectations of the same form, so Hessians follow by recursion and stay finite everywhere. All
moments one JVP needs (values and shifted moments) are computed in one pass that evaluates each derivative
sigma^(k) once on the grid. The grid is swept in blocks of rows (:func:`row_block`) inside a ``fori_loop``, so
memory per kernel evaluation is O(rows q), not O(q^2): vmapped over pairs, points and the accurate loss's
Gauss-Legendre nodes, full grids cost ~10x the memory (490 MiB per point for softplus, d = 4, m = 3, q = 128).
The quadrature derivatives are quadratures of the exact derivatives, consistent with the value to the
quadrature error.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from .activations import DEFAULT_ORDER, Activation

__all__ = [
    "DEFAULT_ORDER",
    "default_order",
    "gauss_kernel",
    "pair_kernel",
    "has_closed_form",
]


def default_order(act: Activation) -> int:
    """Nodes per dimension used when ``order`` is None: the activation's ``quadrature_order`` (128; 256 for the
    steep sigmoid4_softplus)."""
    return int(act.quadrature_order)


QUADRATURE_HALF_WIDTH = 9.0
"""Half-width L of the quadrature grid in standard-normal units: the Gaussian mass beyond |z| = 9 is 2e-19."""


@functools.cache
def _nodes(order: int):
    """Nodes z and weights for E_{z ~ N(0,1)}[f(z)]: truncated trapezoidal rule, ``order`` points on [-L, L].

    For integrands analytic in a strip |Im z| < a the error decays like exp(-2 pi a / h), h = 2 L / (order - 1),
    i.e. exponentially in ``order`` (Trefethen & Weideman, SIAM Rev. 2014); Gauss-Hermite only achieves
    exp(-c a sqrt(order)) and was 10-1000x less accurate at the same order for |w| >= 2. Weights are normalised
    to sum to 1, so constants integrate exactly.
    """
    if order < 2:
        raise ValueError(f"quadrature order must be >= 2, got {order}")
    z = np.linspace(-QUADRATURE_HALF_WIDTH, QUADRATURE_HALF_WIDTH, order)
    wts = np.exp(-0.5 * z * z)
    return z, wts / wts.sum()


GRID_BLOCK_NODES = 2048
"""Nodes of the q x q quadrature grid evaluated at once (per pair and derivative order): 16 KiB in float64."""


def row_block(order: int) -> int:
    """Rows of z1 per quadrature grid block: max(1, GRID_BLOCK_NODES // q), at most q (16 for q = 128, 8 for
    q = 256; one block, the whole grid, for q <= 45)."""
    return int(min(order, max(1, GRID_BLOCK_NODES // int(order))))


def grid_block_nodes(order: int) -> int:
    """Nodes in one quadrature grid block, ``row_block(order) * order`` (<= max(GRID_BLOCK_NODES, q)).

    Memory model (used by :func:`landscape.sweep.runner.bytes_per_trajectory`): one :func:`_moments` call keeps
    about (number of derivative orders of v) x (pairs vmapped together) x ``grid_block_nodes(q)`` float64 values
    live at once, instead of the full q^2 grid per pair.
    """
    return row_block(order) * int(order)


@functools.cache
def _derivative(act: Activation, k: int):
    """The k-th derivative of sigma as an elementwise function."""
    f = act.__call__
    for _ in range(k):
        f = jax.grad(f)
    return jnp.vectorize(f) if k else f


def _shifted(pairs):
    """Derivative orders the Price-rule JVP of E[sigma^(i)(u) sigma^(j)(v)], (i, j) in ``pairs``, needs."""
    out = set()
    for i, j in pairs:
        out |= {(i + 1, j), (i, j + 1), (i + 2, j), (i + 1, j + 1), (i, j + 2)}
    return tuple(sorted(out))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 1, 2))
def _moments(act: Activation, pairs, order: int, mu1, mu2, c11, c12, c22):
    """M_p = E[sigma^(i)(u) sigma^(j)(v)] for p = (i, j) in ``pairs``, (u, v) ~ N((mu1, mu2), [[c11, c12], [c12, c22]]).

    Two-dimensional quadrature (:func:`_nodes`) after u = mu1 + l11 z1, v = mu2 + l21 z1 + l22 z2 with the
    Cholesky factor clamped so that singular C (zero or parallel neurons) gives exact values. Each distinct
    derivative order is evaluated once per grid block and shared by all pairs. The q x q grid is swept in blocks
    of :func:`row_block` rows of z1 (a ``lax.fori_loop`` accumulating the partial sums), so that under vmap over
    pairs and points the live intermediates are (batch, rows, q), never (batch, q, q): see :func:`grid_block_nodes`.
    Returns shape (len(pairs),). Derivatives never touch the factor: see the Price-rule JVP below.
    """
    z, wq = _nodes(order)
    rows = row_block(order)
    n_blocks = -(-order // rows)
    pad = n_blocks * rows - order  # padded rows carry weight 0
    z1 = jnp.asarray(np.concatenate([z, np.zeros(pad)]).reshape(n_blocks, rows))
    w1 = jnp.asarray(np.concatenate([wq, np.zeros(pad)]).reshape(n_blocks, rows))
    z, wq = jnp.asarray(z), jnp.asarray(wq)
    l11 = jnp.sqrt(jnp.maximum(c11, 0.0))
    l21 = jnp.where(l11 > 0, c12 / jnp.where(l11 > 0, l11, 1.0), 0.0)
    l22 = jnp.sqrt(jnp.maximum(c22 - l21 * l21, 0.0))
    orders_u = sorted({i for i, _ in pairs})
    orders_v = sorted({j for _, j in pairs})

    def block(b):
        # rows z1[b] of the grid: sum over them of w(z1) sigma^(i)(u) E_z2[sigma^(j)(v)], for every pair
        zb, wb = z1[b], w1[b]
        u = mu1 + l11 * zb  # (rows,)
        v = mu2 + l21 * zb[:, None] + l22 * z[None, :]  # (rows, q): first index z1, second z2
        fu = {i: _derivative(act, i)(u) for i in orders_u}
        gv = {j: _derivative(act, j)(v) @ wq for j in orders_v}  # inner integral over z2, (rows,)
        return jnp.stack([jnp.sum(wb * fu[i] * gv[j]) for i, j in pairs])

    first = block(0)
    if n_blocks == 1:
        return first
    return jax.lax.fori_loop(1, n_blocks, lambda b, acc: acc + block(b), first)


@_moments.defjvp
def _moments_jvp(act, pairs, order, primals, tangents):
    """Price: dM_ij = M_{i+1,j} dmu1 + M_{i,j+1} dmu2 + M_{i+2,j} dc11 / 2 + M_{i+1,j+1} dc12 + M_{i,j+2} dc22 / 2."""
    dmu1, dmu2, dc11, dc12, dc22 = tangents
    # one pass for the values and the shifted moments: both share the grid (and its derivative evaluations)
    needed = tuple(sorted(set(pairs) | set(_shifted(pairs))))
    m = _moments(act, needed, order, *primals)
    at = {p: m[n] for n, p in enumerate(needed)}
    out = jnp.stack([at[p] for p in pairs])
    d = [
        at[(i + 1, j)] * dmu1
        + at[(i, j + 1)] * dmu2
        + 0.5 * at[(i + 2, j)] * dc11
        + at[(i + 1, j + 1)] * dc12
        + 0.5 * at[(i, j + 2)] * dc22
        for i, j in pairs
    ]
    return out, jnp.stack(d)


def gauss_kernel(act: Activation, w, b, v, c, order: int | None = None):
    """E[sigma(w.x + b) sigma(v.x + c)], x ~ N(0, I), by 2-D quadrature in (w.x, v.x) with Price-rule derivatives.

    ``order``: nodes per dimension (None: :func:`default_order`). w, v: (d,); b, c: scalars. Returns a scalar.
    """
    order = default_order(act) if order is None else int(order)
    return _moments(act, ((0, 0),), order, b, c, w @ w, w @ v, v @ v)[0]


def has_closed_form(act: Activation, bias: bool) -> bool:
    """Whether :func:`pair_kernel` uses the activation's exact closed form (only without biases)."""
    return not bias and act.has_closed_form


def pair_kernel(act: Activation, w, b, v, c, order: int | None = None, bias: bool = False):
    """k(w, v) = E[sigma(w.x + b) sigma(v.x + c)]: the activation's closed form where one exists, else quadrature.

    ``b`` and ``c`` are scalars (0.0 without biases); ``bias`` (static) decides whether a closed form applies.
    Quadrature needs a smooth activation (ReLU-type activations with biases have no kernel here; the config and
    :class:`landscape.problem.losses.PopulationLoss` refuse them).
    """
    if has_closed_form(act, bias):
        return act.pair_kernel(w, v)
    if not act.smooth:
        raise ValueError(f"population kernel for {act.label} {'with biases ' if bias else ''}is not available")
    return gauss_kernel(act, w, b, v, c, order)
