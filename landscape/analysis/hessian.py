"""Dense Hessians and their spectra in float64, for one student (vmap outside), and the Hessian analyzer.

The Hessian is taken with respect to the trainable parameters flattened by ``jax.flatten_util.ravel_pytree``
(a dict flattens in sorted-key order: ``"a"``, ``"b"``, ``"w"``, each leaf row-major). It is symmetrised,
H <- (H + H^T) / 2, before ``eigh``. For big nets a matrix-free Lanczos spectrum will sit behind the same
``spectrum(problem, theta)`` signature; :func:`hvp` is the matrix-free primitive it will use.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from .analyzer import AbstractAnalyzer

__all__ = ["flat_loss", "hessian_matrix", "hessians", "hvp", "spectrum", "eigh", "HessianSpectrum"]


def flat_loss(problem, theta):
    """``(f, flat)``: the loss as a function of the flattened trainable vector, and that vector at ``theta``."""
    flat, unravel = ravel_pytree(theta)
    return (lambda z: problem.loss(unravel(z))), flat


def hessian_matrix(problem, theta):
    """Dense symmetric Hessian d^2 L / d theta^2 of shape (P, P), P = number of trainable parameters."""
    f, flat = flat_loss(problem, theta)
    h = jax.hessian(f)(flat)
    return 0.5 * (h + h.T)


@jax.jit
def hessians(problem, thetas):
    """Batched :func:`hessian_matrix`: (n, P, P) for trainable dicts with a leading axis n (one jit per shape)."""
    return jax.vmap(lambda t: hessian_matrix(problem, t))(thetas)


def hvp(problem, theta, v):
    """Hessian-vector product H v (forward-over-reverse), v flat of shape (P,); no dense matrix is formed."""
    f, flat = flat_loss(problem, theta)
    return jax.jvp(jax.grad(f), (flat,), (v,))[1]


def eigh(h):
    """Eigenvalues (ascending) and orthonormal eigenvectors (columns) of a symmetric matrix."""
    return jnp.linalg.eigh(h)


def spectrum(problem, theta):
    """Sorted Hessian eigenvalues at ``theta``, shape (P,)."""
    return jnp.linalg.eigvalsh(hessian_matrix(problem, theta))


class HessianSpectrum(AbstractAnalyzer):
    """The dense Hessian at a point and its sorted eigenvalues (jitted and vmapped over the batch).

    Returns ``eigenvalues`` (P,) (stored per point) and ``_hessian`` (P, P) (passed to later analyzers).
    Runs on every finite point, certified or not, so spectra of not-converged points can be inspected too.

    Example:
        >>> import landscape as ls
        >>> ls.HessianSpectrum().name
        'hessian'
    """

    name = "hessian"

    def __call__(self, problem, point, previous):
        h = hessian_matrix(problem, point.theta)
        return {"eigenvalues": jnp.linalg.eigvalsh(h), "_hessian": h}
