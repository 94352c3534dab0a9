"""Pure group actions on two-layer parameters f(x) = sum_j a_j sigma(w_j . x + b_j) (README science sections 1, 5).

Every action maps a full parameter dict ``{"w": (m, d), "b": (m,) optional, "a": (m,)}`` to one computing the
same function (numpy or jax arrays; pure, no side effects):

- :func:`permute`: (w, b, a) -> (w[pi], b[pi], a[pi]) for any activation;
- :func:`flip_signs`: (w_j, b_j, a_j) -> (s_j w_j, s_j b_j, s_j a_j), s_j = +-1, for odd sigma;
- :func:`rescale`: (w_j, b_j, a_j) -> (c_j w_j, c_j b_j, a_j / c_j^p), c_j > 0, for sigma positively
  homogeneous of degree p;
- :func:`random_symmetry`: a random composition of the actions the activation allows (for tests).

``neuron_matrix`` / ``from_neuron_matrix`` convert between the dict and U = [w | b] of shape (m, D).
"""

from __future__ import annotations

import numpy as np

__all__ = ["neuron_matrix", "permute", "flip_signs", "rescale", "random_symmetry", "canonical_sign_vector"]


def neuron_matrix(params) -> np.ndarray:
    """U = [w | b] of shape (m, D), D = d (+1 with biases), in float64."""
    w = np.asarray(params["w"], float)
    if "b" in params:
        return np.concatenate([w, np.asarray(params["b"], float)[:, None]], axis=1)
    return w


def permute(params, perm):
    """Reorder hidden neurons: every leaf indexed by ``perm`` along axis 0."""
    perm = np.asarray(perm)
    return {k: v[perm] for k, v in params.items()}


def flip_signs(params, signs):
    """(w_j, b_j, a_j) -> s_j (w_j, b_j, a_j); a symmetry when sigma is odd."""
    s = np.asarray(signs, float)
    out = {"w": params["w"] * s[:, None], "a": params["a"] * s}
    if "b" in params:
        out["b"] = params["b"] * s
    return out


def rescale(params, c, p: float):
    """(w_j, b_j, a_j) -> (c_j w_j, c_j b_j, a_j / c_j^p), c_j > 0; a symmetry for p-homogeneous sigma."""
    c = np.asarray(c, float)
    out = {"w": params["w"] * c[:, None], "a": params["a"] / c**p}
    if "b" in params:
        out["b"] = params["b"] * c
    return out


def random_symmetry(rng: np.random.Generator, params, activation):
    """A random element of the symmetry group the activation allows (permutation, sign flips, rescalings)."""
    m = np.asarray(params["a"]).shape[0]
    out = permute({k: np.asarray(v, float) for k, v in params.items()}, rng.permutation(m))
    if activation.odd:
        out = flip_signs(out, rng.choice([-1.0, 1.0], size=m))
    if activation.homogeneity is not None:
        out = rescale(out, np.exp(rng.uniform(-0.7, 0.7, size=m)), activation.homogeneity)
    return out


def canonical_sign_vector(D: int) -> np.ndarray:
    """A fixed generic vector c (c_i = 1 / sqrt(i-th prime)); odd-activation neurons are signed so that c . u > 0."""
    primes = [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71]
    while len(primes) < D:
        k = primes[-1] + 2
        while any(k % q == 0 for q in primes):
            k += 2
        primes.append(k)
    return 1.0 / np.sqrt(np.asarray(primes[:D], float))
