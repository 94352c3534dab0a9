"""Dense Hessians and their spectra in float64, for one student (vmap outside), and the Hessian analyzer.

The Hessian is taken with respect to the trainable parameters flattened by ``jax.flatten_util.ravel_pytree``
(a dict flattens in sorted-key order: ``"a"``, ``"b"``, ``"w"``, each leaf row-major). It is symmetrised,
H <- (H + H^T) / 2, before ``eigh``.

Dense or matrix-free: up to :data:`DENSE_MAX_PARAMS` trainable parameters the Hessian is formed and diagonalised
(all P eigenvalues, multiplicities included); above it, :func:`spectrum` and :class:`HessianSpectrum` switch to
Lanczos with full reorthogonalisation on Hessian-vector products (:mod:`landscape.analysis.krylov`) and return the
k most negative and k largest eigenvalues with their residuals. ``method="dense"`` or ``"lanczos"`` forces either.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..flow.polish import dense_hessian, flat_gradient, hessian_block_size
from .analyzer import AbstractAnalyzer

__all__ = ["flat_loss", "hessian_matrix", "hessians", "hvp", "spectrum", "eigh", "HessianSpectrum",
           "DENSE_MAX_PARAMS", "SPECTRUM_METHODS", "spectrum_method"]

DENSE_MAX_PARAMS = 4096
"""Above this many trainable parameters the automatic spectrum is matrix-free (a dense Hessian is 128 MiB here)."""

SPECTRUM_METHODS = ("auto", "dense", "lanczos")


def spectrum_method(problem, method: str = "auto") -> str:
    """``"dense"`` or ``"lanczos"``: ``method`` itself when forced, else by P <= :data:`DENSE_MAX_PARAMS`."""
    import math

    if method not in SPECTRUM_METHODS:
        raise ValueError(f"spectrum method {method!r} is not valid; use one of {', '.join(SPECTRUM_METHODS)}")
    if method != "auto":
        return method
    shape = lambda x: isinstance(x, tuple) and all(isinstance(i, int) for i in x)  # noqa: E731  (MLP: tuples of dicts)
    n = sum(math.prod(s) for s in jax.tree.leaves(problem.trainable_shapes, is_leaf=shape))
    return "dense" if n <= DENSE_MAX_PARAMS else "lanczos"


def _lanczos_pairs(problem, theta, k: int, num_matvecs):
    """(2k,) ascending: the k smallest then the k largest Ritz values, and their (2k,) residuals."""
    from .krylov import hessian_extremes

    ext = hessian_extremes(problem, theta, key=jax.random.PRNGKey(0), k=k, num_matvecs=num_matvecs)
    vals = jnp.concatenate([ext.smallest, ext.largest[::-1]])
    res = jnp.concatenate([ext.smallest_residuals, ext.largest_residuals[::-1]])
    # a Krylov space smaller than 2k (few distinct eigenvalues) lists a Ritz value at both ends, or none (NaN):
    # those slots repeat the largest Ritz value, which leaves the index and null-space counts unchanged
    dup = jnp.any(ext.largest[:, None] == ext.smallest[None, :], axis=1)[::-1]
    bad = jnp.concatenate([jnp.zeros(k, bool), dup]) | ~jnp.isfinite(vals)
    top = ext.largest[0]
    return jnp.where(bad, top, vals), jnp.where(bad, ext.largest_residuals[0], res)


def flat_loss(problem, theta):
    """``(f, flat)``: the loss as a function of the flattened trainable vector, and that vector at ``theta``."""
    flat, unravel = ravel_pytree(theta)
    return (lambda z: problem.loss(unravel(z))), flat


def hessian_matrix(problem, theta, *, block_size: int | None = None):
    """Dense symmetric Hessian d^2 L / d theta^2 of shape (P, P), P = number of trainable parameters.

    H_ij = d^2 L / d theta_i d theta_j over the flattened trainable vector (order of ``ravel_pytree``: ``"a"``, then
    ``"b"``, then ``"w"`` row-major), forward mode over the gradient, symmetrised (H + H^T) / 2. The gradient is the
    problem's closed form where it has one (:func:`landscape.flow.polish.flat_gradient`: 3x faster than
    forward-over-reverse for the relu population loss, equal to 1e-15 relative), else reverse mode. Columns are built in
    blocks of B unit tangents (:func:`landscape.flow.polish.dense_hessian`: the gradient linearised once, the blocks
    under ``lax.map``) so that only B tangents at a time travel through the loss's intermediates (sample activations,
    quadrature moments); B is static, from the problem's structure (:func:`landscape.flow.polish.hessian_block_size`),
    and B = P, one ``jax.jacfwd`` of the gradient, wherever the whole Hessian fits in ``HESSIAN_BLOCK_BYTES``
    (closed-form population losses, small samples). For ONE point: vmap over a batch (:func:`hessians`); under ``jit``
    the problem's arrays are traced and its structure static.
    Memory and time grow like P^2: meant for small and medium nets.

    Args:
        problem: a :class:`landscape.TeacherStudent`.
        theta: trainable parameter dict of one student.
        block_size: columns per block (static); None: automatic, as above.

    Returns:
        (P, P) float64 array.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> h = jax.jit(ls.hessian_matrix)(problem, {"w": jnp.eye(3)[:2], "a": jnp.ones(2)})
        >>> h.shape, bool(jnp.all(h == h.T))
        ((8, 8), True)

    References:
        Arjevani & Field, `Analytic Study of Families of Spurious Minima in Two-Layer ReLU Neural Networks:
        A Tale of Symmetry II <https://arxiv.org/abs/2107.10370>`_, NeurIPS 2021 (Hessian spectra at minima).
    """
    f, flat = flat_loss(problem, theta)
    block = hessian_block_size(problem, flat.shape[0]) if block_size is None else int(block_size)
    h = dense_hessian(f, flat, block, flat_gradient(problem, ravel_pytree(theta)[1]))
    return 0.5 * (h + h.T)


@jax.jit
def hessians(problem, thetas):
    """Batched :func:`hessian_matrix`: (n, P, P) for trainable dicts with a leading axis n (one jit per shape)."""
    return jax.vmap(lambda t: hessian_matrix(problem, t))(thetas)


def hvp(problem, theta, v):
    """Hessian-vector product H v (forward mode over the gradient), v flat of shape (P,); no dense matrix is formed.

    H v = d/de grad L(theta + e v) at e = 0, one JVP of the gradient (the closed form where the loss has one,
    :func:`landscape.flow.polish.flat_gradient`): the cost of a few gradients, memory O(P).
    Pure, jittable, vmappable (e.g. over v for several products).

    Args:
        problem: a :class:`landscape.TeacherStudent`.
        theta: trainable parameter dict of one student.
        v: flat direction of shape (P,), in the order of :func:`hessian_matrix`.

    Returns:
        (P,) array H v.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> theta, v = {"w": jnp.eye(3)[:2], "a": jnp.ones(2)}, jnp.arange(8.0)
        >>> hv = jax.jit(ls.hvp)(problem, theta, v)
        >>> bool(jnp.allclose(hv, jax.jit(ls.hessian_matrix)(problem, theta) @ v))
        True
    """
    flat, unravel = ravel_pytree(theta)
    return jax.jvp(flat_gradient(problem, unravel), (flat,), (v,))[1]


def eigh(h):
    """Eigenvalues (ascending) and orthonormal eigenvectors (columns) of a symmetric matrix."""
    return jnp.linalg.eigh(h)


def spectrum(problem, theta, *, method: str = "auto", k: int = 8, num_matvecs: int | None = None):
    """Sorted Hessian eigenvalues at ``theta``, shape (P,) (dense) or (2 k,) (Lanczos).

    Dense (P <= :data:`DENSE_MAX_PARAMS`, or forced): lambda_1 <= ... <= lambda_P of :func:`hessian_matrix`
    (``eigvalsh``, float64). Lanczos (above, or forced): the k smallest then the k largest Ritz values,
    ascending (:func:`landscape.analysis.krylov.hessian_extremes`; where the Krylov space is smaller than 2 k, the
    spare slots repeat the largest value, so index and null-space counts stay exact up to k). For ONE
    point; jittable and vmappable. Feed it to :func:`landscape.classify` (with Lanczos, an index above k is
    reported as k).

    Args:
        problem: a :class:`landscape.TeacherStudent`.
        theta: trainable parameter dict of one student.
        method: ``"auto"``, ``"dense"`` or ``"lanczos"`` (static).
        k, num_matvecs: Lanczos only: eigenvalues at each end and Krylov dimension (static).

    Returns:
        array of eigenvalues in ascending order.

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> eigs = jax.jit(ls.spectrum)(problem, {"w": jnp.eye(3)[:2], "a": jnp.ones(2)})  # the teacher
        >>> int(ls.classify(eigs, zero_tol=1e-7, zero_loss=True)["null_dim"])  # (w, a) -> (c w, a / c) per neuron
        2

    References:
        Arjevani & Field, `Analytic Study of Families of Spurious Minima in Two-Layer ReLU Neural Networks:
        A Tale of Symmetry II <https://arxiv.org/abs/2107.10370>`_, NeurIPS 2021.
    """
    if spectrum_method(problem, method) == "lanczos":
        return _lanczos_pairs(problem, theta, k, num_matvecs)[0]
    return jnp.linalg.eigvalsh(hessian_matrix(problem, theta))


class HessianSpectrum(AbstractAnalyzer):
    """The Hessian spectrum at a point, dense or matrix-free (jitted and vmapped over the batch).

    Dense (P <= :data:`DENSE_MAX_PARAMS` with ``method="auto"``, or ``"dense"``): returns ``eigenvalues`` (P,)
    (stored per point), ``_hessian`` (P, P) and ``_eigvecs`` (P, P), the orthonormal eigenvectors as columns in the
    order of ``eigenvalues`` (both passed to later analyzers: the symmetry analysis reuses the decomposition instead
    of diagonalising again on the host). Lanczos (above, or ``"lanczos"``):
    ``eigenvalues`` (2 k,), the k smallest then the k largest Ritz values ascending, the column ``max_residual``
    (largest |H y - theta y| among them) and a NaN (1, 1) ``_hessian`` (later analyzers that need the matrix mark
    the point instead of forming it; ``_eigvecs`` likewise). Runs on every finite point, certified or not.

    Args:
        method: ``"auto"`` (default), ``"dense"`` or ``"lanczos"`` (static).
        k: Lanczos: eigenvalues at each end (static, default 8).
        num_matvecs: Lanczos: Krylov dimension (static; default min(P, max(10 k, 120))).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> ls.HessianSpectrum().name
        'hessian'
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=2),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> thetas = {"w": jnp.stack([jnp.eye(3)[:2], jnp.zeros((2, 3))]), "a": jnp.stack([jnp.ones(2), jnp.zeros(2)])}
        >>> points = ls.Point(theta=thetas, loss=jax.vmap(problem.loss)(thetas), grad_norm=jnp.zeros(2),
        ...                   certified=jnp.array([True, True]), finite=jnp.array([True, True]))
        >>> ls.run_analyzers([ls.HessianSpectrum()], problem, points).arrays["eigenvalues"].shape
        (2, 8)
    """

    method: str = eqx.field(default="auto", static=True)
    k: int = eqx.field(default=8, static=True)
    num_matvecs: int | None = eqx.field(default=None, static=True)
    name = "hessian"
    device_only = ("_hessian", "_eigvecs")  # (n, P, P): to the host only for an analyzer that reads them

    def __call__(self, problem, point, previous):
        if spectrum_method(problem, self.method) == "lanczos":
            eigs, res = _lanczos_pairs(problem, point.theta, self.k, self.num_matvecs)
            nan = jnp.full((1, 1), jnp.nan)
            return {"eigenvalues": eigs, "max_residual": jnp.max(res), "_hessian": nan, "_eigvecs": nan}
        h = hessian_matrix(problem, point.theta)
        vals, vecs = jnp.linalg.eigh(h)  # the vectors cost nothing more on XLA:CPU and save later analyzers an eigh
        return {"eigenvalues": vals, "_hessian": h, "_eigvecs": vecs}
