"""Embedding a width-r critical point into width m, and the split-ratio scan (issue 3, item 5).

Splitting embedding (Fukumizu & Amari 2000; Şimşek et al. 2021; README science section 1): from theta_r = (u_k, a_k)
and a map pi: {1..m} -> {1..r} u {zero} with ratios beta_j (sum_{pi(j) = k} beta_j = 1),

    theta_m = (u_pi(j), beta_j a_pi(j))  for pi(j) = k,     (u_j free, a_j = 0)  for pi(j) = zero,

computes the same function, and is critical when theta_r is (zero neurons: when the residual vanishes). For a
two-way split of neuron i with ratio lambda the Hessian is congruent to blockdiag(H_r, lambda (1 - lambda) A_i, 0),

    A_i = a_i E[r(x) sigma''(u_i . x~) x~ x~^T],  r = f - y,

so its index is index(H_r) + index(lambda (1 - lambda) A_i): for a strict minimum theta_r with A_i positive definite,
minima for lambda in (0, 1) and saddles outside; A_i negative definite: the reverse; A_i indefinite: saddles for all
lambda. :func:`split_scan` measures the index along lambda and compares it with this prediction.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from ...problem.networks import TwoLayer

__all__ = ["problem_with_width", "embed", "split_matrix", "split_scan"]


def problem_with_width(problem, m: int):
    """The same problem with a two-layer student of width m (trainable output weights required)."""
    if "a" in problem.frozen:
        raise ValueError("problem_with_width needs trainable output weights (student.train_output_weights = true)")
    s = problem.student
    if not isinstance(s, TwoLayer):
        raise ValueError("problem_with_width works on two-layer students only")
    return problem.with_student(dataclasses.replace(s, width=m))


def embed(params_r, assignment, ratios=None, *, zero_incoming=None) -> dict:
    """theta_m from theta_r (full dicts, numpy) by splitting and zero neurons (see the module docstring).

    Args:
        params_r: ``{"w": (r, d), ["b": (r,)], "a": (r,)}``.
        assignment: length m; entry k in 0..r-1 (copy of neuron k) or -1 (zero-output neuron).
        ratios: length m, beta_j; within each group they must sum to 1 (default: equal split 1 / n_k).
        zero_incoming: (number of zero neurons, D) incoming vectors (u_j = (w_j, b_j)) of zero neurons
            (default: zeros).
    Returns:
        the width-m full parameter dict (numpy float64).
    """
    assignment = np.asarray(assignment, int)
    m = len(assignment)
    w = np.asarray(params_r["w"], float)
    a = np.asarray(params_r["a"], float)
    r = len(a)
    bias = "b" in params_r
    counts = np.bincount(assignment[assignment >= 0], minlength=r)
    if np.any(counts == 0):
        raise ValueError(f"assignment {assignment.tolist()} leaves reduced neurons {np.flatnonzero(counts == 0)} "
                         "unused; every neuron of theta_r needs at least one copy")
    if r == 0 and np.any(assignment >= 0):
        raise ValueError(f"assignment {assignment.tolist()} refers to neurons of a width-0 network; use -1 (zero)")
    n_k = counts[np.maximum(assignment, 0)] if r else np.ones(m, int)
    beta = np.where(assignment >= 0, 1.0 / np.maximum(n_k, 1), 0.0)
    if ratios is not None:
        beta = np.asarray(ratios, float)
        for k in range(r):
            s = beta[assignment == k].sum()
            if abs(s - 1.0) > 1e-12:
                raise ValueError(f"split ratios of neuron {k} sum to {s}, not 1")
    zi = np.flatnonzero(assignment < 0)
    D = w.shape[1] + int(bias)
    Z = np.zeros((len(zi), D)) if zero_incoming is None else np.asarray(zero_incoming, float).reshape(len(zi), D)
    src = np.maximum(assignment, 0)
    take = lambda v: v[src] if r else np.zeros((m, *v.shape[1:]))  # noqa: E731  (r = 0: every neuron zero)
    out_w = take(w).copy()
    out_w[zi] = Z[:, : w.shape[1]]
    out = {"w": out_w, "a": np.where(assignment >= 0, beta * take(a), 0.0)}
    if bias:
        b = take(np.asarray(params_r["b"], float)).copy()
        b[zi] = Z[:, -1]
        out["b"] = b
    assert out["w"].shape == (m, w.shape[1])
    return out


def split_matrix(problem_r, theta_r, i: int) -> np.ndarray:
    """A_i = a_i grad_u^2 E[r(x) sigma(u . x~)] at u = u_i, shape (D, D) (residual r of theta_r frozen).

    Computed as a_i d^2/du^2 of dL_{r+1}/da_new at a_new = 0, L_{r+1} the loss with an extra neuron (u, a_new).
    """
    prob1 = problem_with_width(problem_r, problem_r.student.width + 1)
    th = {k: jnp.asarray(v) for k, v in theta_r.items()}
    bias = "b" in th

    def corr(u):
        def lossa(an):
            ext = {"w": jnp.concatenate([th["w"], u[None, : th["w"].shape[1]]]),
                   "a": jnp.concatenate([th["a"], jnp.array([an])])}
            if bias:
                ext["b"] = jnp.concatenate([th["b"], u[-1:]])
            return prob1.loss(ext)

        return jax.grad(lossa)(0.0)

    u_i = th["w"][i] if not bias else jnp.concatenate([th["w"][i], th["b"][i : i + 1]])
    return float(th["a"][i]) * np.asarray(jax.jit(jax.hessian(corr))(u_i))


def split_scan(problem_r, theta_r, i: int, lambdas, *, zero_tol: float = 1e-7) -> dict:
    """Embed theta_r into width r + 1 splitting neuron i with ratios (lambda, 1 - lambda) and measure along lambda.

    Returns a dict of arrays over ``lambdas``: loss, grad_norm, index (measured), index_pred
    (index(H_r) + index(lambda (1 - lambda) A_i)), n_zero, min_eig; plus A_eigs, H_r eigenvalues and a verdict
    text ("minima inside (0,1), saddles outside", "saddles everywhere", ...).
    """
    from ..hessian import hessian_matrix

    lambdas = np.asarray(lambdas, float)
    r = problem_r.student.width
    prob_m = problem_with_width(problem_r, r + 1)
    A = split_matrix(problem_r, theta_r, i)
    A_eigs = np.linalg.eigvalsh(0.5 * (A + A.T))
    th_r = {k: jnp.asarray(v) for k, v in theta_r.items()}
    h_r = np.linalg.eigvalsh(np.asarray(jax.jit(hessian_matrix)(problem_r, th_r)))
    tau_r = zero_tol * np.max(np.abs(h_r))
    tau_a = zero_tol * max(np.max(np.abs(A_eigs)), 1e-300)
    idx_r = int(np.sum(h_r < -tau_r))
    full_r = {k: np.asarray(v, float) for k, v in theta_r.items()}
    assign = list(range(r)) + [i]
    thetas = []
    for lam in lambdas:
        beta = np.ones(r + 1)
        beta[i], beta[r] = lam, 1.0 - lam
        thetas.append(embed(full_r, assign, beta))
    batch = {k: jnp.asarray(np.stack([t[k] for t in thetas])) for k in thetas[0]}

    def one(t):
        val, g = jax.value_and_grad(prob_m.loss)(t)
        h = hessian_matrix(prob_m, t)
        return val, jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(g))), jnp.linalg.eigvalsh(h)

    vals, gns, eigs = (np.asarray(z) for z in jax.jit(jax.vmap(one))(batch))
    tau = zero_tol * np.max(np.abs(eigs), axis=1, keepdims=True)
    index = np.sum(eigs < -tau, axis=1)
    c = lambdas * (1.0 - lambdas)
    idx_pred = idx_r + np.where(c > 0, np.sum(A_eigs < -tau_a), np.where(c < 0, np.sum(A_eigs > tau_a), 0))
    pos, neg = np.all(A_eigs > tau_a), np.all(A_eigs < -tau_a)
    if idx_r == 0 and pos:
        verdict = "A_i positive definite: minima for lambda in (0,1), saddles outside"
    elif idx_r == 0 and neg:
        verdict = "A_i negative definite: saddles for lambda in (0,1), minima outside"
    else:
        verdict = "saddles for every lambda" + (" (A_i indefinite)" if not (pos or neg) else " (theta_r a saddle)")
    return {"lambda": lambdas, "loss": vals, "grad_norm": gns, "index": index, "index_pred": idx_pred,
            "n_zero": np.sum(np.abs(eigs) <= tau, axis=1), "min_eig": eigs[:, 0], "A_eigs": A_eigs,
            "H_r_eigs": h_r, "verdict": verdict}
