"""Dense Hessians and their spectra in float64, for one student (vmap outside).

The Hessian is taken with respect to the trainable parameters flattened by ``jax.flatten_util.ravel_pytree``
(a dict flattens in sorted-key order: ``"a"``, ``"b"``, ``"w"``, each leaf row-major). It is symmetrised,
H <- (H + H^T) / 2, before ``eigh``. For big nets a matrix-free Lanczos spectrum will sit behind the same
``spectrum(problem, theta)`` signature; :func:`hvp` is the matrix-free primitive it will use.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..problem.problem import loss

__all__ = ["flat_loss", "hessian_matrix", "hvp", "spectrum", "eigh"]


def flat_loss(problem, theta):
    """``(f, flat)``: the loss as a function of the flattened trainable vector, and that vector at ``theta``."""
    flat, unravel = ravel_pytree(theta)
    return (lambda z: loss(problem, unravel(z))), flat


def hessian_matrix(problem, theta):
    """Dense symmetric Hessian d^2 L / d theta^2 of shape (P, P), P = number of trainable parameters."""
    f, flat = flat_loss(problem, theta)
    h = jax.hessian(f)(flat)
    return 0.5 * (h + h.T)


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
