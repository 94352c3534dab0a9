"""Canonical form and distance modulo symmetry (issue 3, item 2; README science sections 1 and 5).

Canonical form of a two-layer net: each neuron (u_j, a_j), u_j = (w_j, b_j), is brought to a representative of its
orbit under the activation's own symmetries -- balanced, |c u_j| = |a_j / c^p|, for p-homogeneous sigma, signed so
that c . u_j > 0 (fixed generic c) for odd sigma -- and neurons are sorted lexicographically by the rounded row
(u_j, a_j). Two parameter sets equal up to permutation, sign flips and rescalings have the same canonical form.

Distance modulo symmetry (Berner et al. 2019, "balance each neuron, match neurons"):

    d(theta, theta') = min_pi sqrt(sum_j |n_j - n'_pi(j)|^2),  n_j = canonical row (u_j, a_j)

over permutations pi (Hungarian assignment, ``scipy.optimize.linear_sum_assignment``); for odd sigma each pair
takes the better of n'_pi(j) and -n'_pi(j); the narrower net is padded with zero neurons. Host-side numpy.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .groups import canonical_sign_vector, neuron_matrix

__all__ = ["order_groups", "rounded_key", "canonical_rows", "canonicalize", "distance_mod_symmetry", "short_hash"]


def _round(x, decimals: int):
    return np.round(np.asarray(x, float), decimals) + 0.0  # + 0.0 turns -0.0 into 0.0


def _reduced_rows(u_hat, A) -> np.ndarray:
    """Rows (u^_k, A_k) of shape (r, D + 1); r = 0 (no reduced neuron, e.g. the origin) gives shape (0, D + 1)."""
    A = np.asarray(A, float).reshape(-1)
    u = np.asarray(u_hat, float)
    D = u.shape[-1] if u.ndim >= 2 else (u.size // len(A) if len(A) else 0)
    return np.concatenate([u.reshape(len(A), D), A[:, None]], axis=1)


def order_groups(u_hat: np.ndarray, A: np.ndarray, decimals: int) -> np.ndarray:
    """Canonical order of reduced neurons: lexicographic in the rounded rows (u^_k, A_k), ties by exact values."""
    rows = _reduced_rows(u_hat, A)
    keys = [tuple(_round(r, decimals)) + tuple(r) for r in rows]
    return np.asarray(sorted(range(len(keys)), key=lambda i: keys[i]), int)


def rounded_key(u_hat: np.ndarray, A: np.ndarray, decimals: int) -> str:
    """Text of the rounded canonical reduced point (u^_k, A_k), k in canonical order."""
    rows = _reduced_rows(u_hat, A)
    r = _round(rows, decimals)
    return ";".join(",".join(f"{v:.{decimals}f}" for v in row) for row in r)


def short_hash(text: str, n: int = 10) -> str:
    """First n hex digits of sha1(text): a deterministic, platform-independent label."""
    return hashlib.sha1(text.encode()).hexdigest()[:n]


def canonical_rows(params, activation) -> np.ndarray:
    """Rows n_j = (u_j, a_j) after balancing (homogeneous) and sign choice (odd), unsorted; shape (m, D + 1)."""
    U = neuron_matrix(params)
    a = np.asarray(params["a"], float).copy()
    p = activation.homogeneity
    if p is not None:
        nu = np.linalg.norm(U, axis=1)
        ok = (nu > 0) & (np.abs(a) > 0)
        c = np.where(ok, (np.abs(a) / np.where(ok, nu, 1.0)) ** (1.0 / (p + 1.0)), 1.0)
        U = U * c[:, None]
        a = a / c**p
    if activation.odd:
        s = np.sign(U @ canonical_sign_vector(U.shape[1]))
        s = np.where(s == 0, 1.0, s)
        U, a = U * s[:, None], a * s
    return np.concatenate([U, a[:, None]], axis=1)


def canonicalize(params, activation, decimals: int = 8) -> dict:
    """The canonical representative of ``params`` (same function): balanced, signed, sorted neurons."""
    rows = canonical_rows(params, activation)
    order = sorted(range(len(rows)), key=lambda i: tuple(_round(rows[i], decimals)) + tuple(rows[i]))
    rows = rows[order]
    bias = "b" in params
    D = rows.shape[1] - 1
    out = {"w": rows[:, : D - int(bias)], "a": rows[:, -1]}
    if bias:
        out["b"] = rows[:, D - 1]
    return out


def distance_mod_symmetry(params1, params2, activation) -> tuple[float, np.ndarray]:
    """(distance, assignment): min over neuron matchings of the canonical-row distance (see module docstring).

    ``assignment[j]`` is the neuron of ``params2`` matched to neuron j of ``params1`` (-1: matched to padding).
    """
    n1, n2 = canonical_rows(params1, activation), canonical_rows(params2, activation)
    m = max(len(n1), len(n2))
    pad = lambda n: np.concatenate([n, np.zeros((m - len(n), n.shape[1]))], axis=0)  # noqa: E731
    p1, p2 = pad(n1), pad(n2)
    cost = np.sum((p1[:, None, :] - p2[None, :, :]) ** 2, axis=-1)
    if activation.odd:
        cost = np.minimum(cost, np.sum((p1[:, None, :] + p2[None, :, :]) ** 2, axis=-1))
    from scipy.optimize import linear_sum_assignment  # lazy: importing scipy.optimize costs ~0.4 s
    rows, cols = linear_sum_assignment(cost)
    assign = np.full(len(n1), -1, int)
    for i, j in zip(rows, cols, strict=True):
        if i < len(n1):
            assign[i] = j if j < len(n2) else -1
    return float(np.sqrt(cost[rows, cols].sum())), assign
