"""Predicted symmetry-induced subspace of a critical point, and numerical checks (issue 3, item 4).

For a reduced point (groups k with members j, zero-output neurons, dead neurons; :mod:`.reduce`) the set of
critical points with the same loss through theta contains (Şimşek et al. 2021; Fukumizu & Amari 2000):

- split ratios: for each group, a_j -> a_j + t_j / kappa_j with sum_j t_j = 0 (n_k - 1 directions; needs trainable
  output weights). With frozen output weights and p-homogeneous sigma the norms split instead: |u_j| moves with
  sum_j a_j |u_j|^p fixed (n_k - 1 directions); otherwise frozen output weights leave no split freedom;
- rescalings (p-homogeneous sigma, trainable a): (u_j, a_j) -> (c u_j, a_j / c^p), tangent (u_j, -p a_j), one per
  live neuron;
- zero-output neurons: at a zero-loss point the incoming vector u_j is free (D directions). At a point with nonzero
  residual the critical set is the level set E[sigma(u_j . x~) r(x)] = 0, tangent to the D - 1 directions orthogonal
  to g_j = d^2 L / da_j du_j (all D if a_j is frozen: the neuron is then inert). Exceptions where sigma(u_j . x~)
  vanishes on every input (u_j = 0 with sigma(0) = 0, or ReLU inactive on the whole sample): a_j is free as well
  (1 direction) when g_j = 0 or the residual vanishes; and for u_j = 0 with p-homogeneous sigma at a nonzero
  residual no incoming direction is predicted (E[sigma(u . x~) r] is p-homogeneous in u, its zero set is a cone that
  g_j, zero by the convention relu'(0) = 0, does not determine). All neurons zero-output (r = 0, e.g. the origin
  w = 0, a = 0) is the width-0 network embedded by zero neurons: the same rules apply;
- dead neurons: a_j free (1 direction), and for ReLU inactive on the whole sample also u_j (D, an open cone).

``predicted_dim`` is the rank of these tangent vectors. At a zero-loss point H = J^T J (the residual term
vanishes), so the Hessian null space is the Jacobian's and its dimension is predicted exactly (for generic points,
where sigma(v . x~) and sigma'(v . x~) x~_i of distinct v are linearly independent functions):

    dim null J = sum_k [(n_k - 1)(D + 1) + [p-homogeneous]] + Z D + Z0 + E (1 + D [ReLU inactive on the sample])

with trainable a (frozen a: sum_k (n_k - 1) D + Z D + E D [inactive]); Z0 counts the zero-output neurons with
sigma(u_j . x~) = 0 on every input (their a_j column of J vanishes too). The excess over ``predicted_dim``,
sum_k (n_k - 1) D, are the directions moving the members of a group apart with sum_j a_j du_j = 0: flat to second
order only (the loss grows at fourth order). Away from zero loss the excess comes from the reduced point itself
(null directions of the width-r Hessian) or from split blocks A_i that happen to be singular.
"""

from __future__ import annotations

import numpy as np

from .groups import neuron_matrix
from .reduce import Reduction, is_relu_type

__all__ = [
    "flat_index",
    "tangent_directions",
    "orthonormal_basis",
    "jacobian_null_prediction",
    "subspace_samples",
    "check_subspace",
    "projection_to_subspace",
]


def flat_index(theta) -> dict:
    """{key: int array of the leaf's shape}: positions of each trainable entry in ``ravel_pytree(theta)``."""
    out, off = {}, 0
    for k in sorted(theta):
        shape = np.shape(theta[k])
        size = int(np.prod(shape)) if shape else 1
        out[k] = off + np.arange(size).reshape(shape)
        off += size
    return out


def _u_idx(idx, j, bias):
    """Flat positions of u_j = (w_j, b_j) (only the trainable parts; entries -1 where frozen)."""
    w = idx["w"][j] if "w" in idx else None
    parts = [w]
    if bias:
        parts.append(np.array([idx["b"][j]]) if "b" in idx else np.array([-1]))
    return np.concatenate(parts)


def _sample_inactive(problem, u, bias) -> bool:
    if problem.x is None:
        return False
    xt = np.asarray(problem.x, float)
    if bias:
        xt = np.concatenate([xt, np.ones((xt.shape[0], 1))], axis=1)
    return bool(np.max(xt @ u) < 0.0)


def _input_inert(problem, U, red: Reduction) -> tuple[np.ndarray, np.ndarray]:
    """(null, inactive), each (m,) bool; either means sigma(u_j . x~) = 0 on every input. ``null``: u_j = 0
    (|u_j| <= u_tol max(1, max|u|), the test of :func:`.reduce.reduce_two_layer`) with sigma(0) = 0; ``inactive``: a
    ReLU-type unit with u_j . x~_n < 0 for the whole sample (an open set of u_j)."""
    act = problem.student.activation
    m = U.shape[0]
    null = np.zeros(m, bool)
    if act.zero_at_zero and m:
        nrm = np.linalg.norm(U, axis=1)
        null = nrm <= red.tol.u_tol * max(1.0, float(np.max(nrm)))
    inactive = np.zeros(m, bool)
    if is_relu_type(act):
        inactive = np.array([_sample_inactive(problem, U[j], red.bias) for j in range(m)], bool)
    return null, inactive


def tangent_directions(problem, theta, red: Reduction, *, residual_zero: bool, hessian=None):
    """Raw tangent vectors (P, k) of the predicted critical set at ``theta`` and a label for each.

    Args:
        problem: the Problem (two-layer student); theta: trainable dict; red: its :class:`Reduction`.
        residual_zero: the point has zero loss (zero-output neurons' incoming vectors are then free).
        hessian: (P, P) Hessian, used for the level-set directions of zero-output neurons when the residual is
            nonzero (if None those neurons contribute no incoming direction).
    Returns:
        (V, labels): V of shape (P, k), k = 0 when nothing is predicted (e.g. r = 0 with no free direction).
    """
    act = problem.student.activation
    p = act.homogeneity
    params = {k: np.asarray(v, float) for k, v in problem.full_params(theta).items()}
    U, a = neuron_matrix(params), params["a"]
    bias = "b" in params
    idx = flat_index(theta)
    P = sum(np.size(v) for v in idx.values())
    a_tr = "a" in idx
    vecs, labels = [], []

    def new():
        return np.zeros(P)

    def put_u(v, j, vals):
        pos = _u_idx(idx, j, bias)
        ok = pos >= 0
        v[pos[ok]] = np.asarray(vals)[ok]

    for k, g in enumerate(red.groups):
        j0 = g[0]
        for j in g[1:]:
            v = new()
            if a_tr:
                v[idx["a"][j0]] = 1.0 / red.kappa[j0]
                v[idx["a"][j]] = -1.0 / red.kappa[j]
            elif p is not None:
                for jj, sgn in ((j0, 1.0), (j, -1.0)):
                    nrm = np.linalg.norm(U[jj])
                    put_u(v, jj, sgn * U[jj] / nrm / (a[jj] * nrm ** (p - 1.0)))
            else:
                continue
            vecs.append(v)
            labels.append(f"split g{k}: n{j0}/n{j}")
        if p is not None and a_tr:
            for j in g:
                v = new()
                put_u(v, j, U[j])
                v[idx["a"][j]] = -p * a[j]
                vecs.append(v)
                labels.append(f"rescale n{j}")
    D = red.D
    null, inactive = _input_inert(problem, U, red)
    for j in red.zero:
        basis = np.eye(D)
        g_zero = bool(residual_zero or inactive[j])  # d phi / du_j = 0, phi(u) = E[sigma(u . x~) r(x)]
        if not residual_zero and a_tr and hessian is None:  # level set unknown (the zero-in line needs no Hessian)
            basis, kind = np.zeros((D, 0)), "free in"
        elif not residual_zero and a_tr:
            pos = _u_idx(idx, j, bias)
            gj = np.where(pos >= 0, np.asarray(hessian)[idx["a"][j], np.maximum(pos, 0)], 0.0)
            if np.linalg.norm(gj) > 1e-8 * max(1.0, float(np.max(np.abs(hessian)))):
                q, _ = np.linalg.qr(np.concatenate([gj[:, None], np.eye(D)], axis=1))
                basis = q[:, 1:D]
                kind = "level set"
            else:
                g_zero = True
                kind = "free in"
            if null[j] and p is not None:
                # u_j = 0 and sigma p-homogeneous: phi(u) = E[sigma(u . x~) r(x)] is p-homogeneous, its zero set near
                # u = 0 is a cone that the derivatives at 0 (relu'(0) = 0 by convention) do not determine
                basis = np.zeros((D, 0))
        else:
            kind = "free in"
        for i in range(basis.shape[1]):
            v = new()
            put_u(v, j, basis[:, i])
            if np.any(v):
                vecs.append(v)
                labels.append(f"{kind} n{j}")
        if a_tr and (null[j] or inactive[j]) and g_zero:
            # sigma(u_j . x~) = 0 (u_j = 0 with sigma(0) = 0, or relu inactive on the sample): a_j is free, and the
            # gradient in u_j, a_j d phi / du_j, stays zero along the line
            v = new()
            v[idx["a"][j]] = 1.0
            vecs.append(v)
            labels.append(f"zero in n{j}")
    for j in red.dead:
        if a_tr:
            v = new()
            v[idx["a"][j]] = 1.0
            vecs.append(v)
            labels.append(f"dead out n{j}")
        if is_relu_type(act) and _sample_inactive(problem, U[j], bias):
            for i in range(D):
                v = new()
                put_u(v, j, np.eye(D)[i])
                if np.any(v):
                    vecs.append(v)
                    labels.append(f"dead in n{j}")
    V = np.stack(vecs, axis=1) if vecs else np.zeros((P, 0))
    return V, labels


def orthonormal_basis(V, rtol: float = 1e-10):
    """Orthonormal basis (P, rank) of the column span of V (SVD, singular values above rtol * max)."""
    if V.shape[1] == 0:
        return V
    u, s, _ = np.linalg.svd(V, full_matrices=False)
    return u[:, s > rtol * max(s.max(), 1e-300)]


def jacobian_null_prediction(problem, theta, red: Reduction) -> int:
    """dim null J at a zero-loss point (formula in the module docstring), for trainable parameters."""
    act = problem.student.activation
    a_tr = "a" in theta
    D = red.D
    U = neuron_matrix({k: np.asarray(v, float) for k, v in problem.full_params(theta).items()})
    n = 0
    for g in red.groups:
        if a_tr:
            n += (len(g) - 1) * (D + 1) + (1 if act.homogeneity is not None else 0)
        else:
            n += (len(g) - 1) * D
    n += len(red.zero) * D
    if a_tr:  # a zero-output neuron with sigma(u_j . x~) = 0 on every input also has a zero a_j column
        null, inactive = _input_inert(problem, U, red)
        n += int(np.sum((null | inactive)[list(red.zero)]))
    for j in red.dead:
        n += int(a_tr) + (D if is_relu_type(act) and _sample_inactive(problem, U[j], red.bias) else 0)
    return n


def subspace_samples(problem, theta, red: Reduction, *, residual_zero: bool, rng, n: int = 8, spread: float = 0.3):
    """``n`` points (trainable dicts, stacked) of the predicted critical set through ``theta``, exactly on it.

    Split ratios beta_j (sum 1 per group) drawn around 1/n_k with the given spread, random rescalings
    c in exp(U(-spread, spread)) (homogeneous), fresh incoming vectors of zero-output neurons (zero loss only),
    random outgoing weights of dead neurons. Level sets of zero-output neurons (nonzero loss) are not sampled.
    """
    act = problem.student.activation
    p = act.homogeneity
    full = {k: np.asarray(v, float) for k, v in problem.full_params(theta).items()}
    keys = list(theta)
    a_tr = "a" in theta
    bias = "b" in full
    D = red.D
    out = []
    for _ in range(n):
        q = {k: v.copy() for k, v in full.items()}
        U = neuron_matrix(q)
        a = q["a"]
        for g in red.groups:
            g = list(g)
            if len(g) > 1 and a_tr:
                beta = 1.0 / len(g) + spread * rng.standard_normal(len(g))
                beta += (1.0 - beta.sum()) / len(g)
                A = float(np.sum(red.kappa[g] * a[g]))
                a[g] = beta * A / red.kappa[g]
            elif len(g) > 1 and p is not None:  # frozen a: redistribute norms, sum a_j |u_j|^p fixed
                rho = np.linalg.norm(U[g], axis=1)
                S = float(np.sum(a[g] * rho**p))
                new = rho * np.exp(spread * 0.3 * rng.standard_normal(len(g)))
                rest = S - float(np.sum(a[g][1:] * new[1:] ** p))
                if rest / a[g][0] > 0:
                    new[0] = (rest / a[g][0]) ** (1.0 / p)
                    U[g] = U[g] / rho[:, None] * new[:, None]
        if p is not None and a_tr:
            live = [j for g in red.groups for j in g]
            c = np.exp(rng.uniform(-spread, spread, len(live)))
            U[live] *= c[:, None]
            a[live] /= c**p
        if residual_zero:
            for j in red.zero:
                U[j] = rng.standard_normal(D) * max(np.linalg.norm(U[j]), 1.0) / np.sqrt(D)
        if a_tr:
            for j in red.dead:
                a[j] = rng.standard_normal()
        q["w"] = U[:, : D - int(bias)]
        if bias:
            q["b"] = U[:, -1]
        q["a"] = a
        out.append({k: q[k] for k in keys})
    return {k: np.stack([o[k] for o in out]) for k in keys}


def check_subspace(problem, theta, red: Reduction, *, residual_zero: bool, rng, n: int = 8, spread: float = 0.3):
    """Loss change and gradient norm at ``n`` sampled points of the predicted set: ``{max_dloss, max_grad_norm}``."""
    import jax
    import jax.numpy as jnp

    samples = subspace_samples(problem, theta, red, residual_zero=residual_zero, rng=rng, n=n, spread=spread)

    def one(t):
        val, g = jax.value_and_grad(problem.loss)(t)
        return val, jnp.sqrt(sum(jnp.sum(x**2) for x in jax.tree.leaves(g)))

    vals, gns = jax.jit(jax.vmap(one))(jax.tree.map(jnp.asarray, samples))
    l0 = float(problem.loss(jax.tree.map(jnp.asarray, theta)))
    return {"max_dloss": float(np.max(np.abs(np.asarray(vals) - l0))), "max_grad_norm": float(np.max(gns)),
            "loss": l0, "n": n}


def projection_to_subspace(problem, theta, red: Reduction, target_u_hat, target_A, group_target) -> dict:
    """The point of the predicted subspace of (target_u^, target_A) nearest to theta (members moved onto u^_t,
    outgoing weights projected onto sum_j kappa_j a_j = A_t, zero-output a_j -> 0); a trainable dict."""
    act = problem.student.activation
    p = act.homogeneity
    full = {k: np.asarray(v, float).copy() for k, v in problem.full_params(theta).items()}
    U, a = neuron_matrix(full), full["a"]
    bias = "b" in full
    a_tr = "a" in theta
    for k, g in enumerate(red.groups):
        t = group_target[k]
        if t < 0:
            continue
        g = list(g)
        for j in g:
            s = np.sign(red.kappa[j]) if act.odd else 1.0
            U[j] = s * target_u_hat[t] * (np.linalg.norm(U[j]) if p is not None else 1.0)
        if a_tr:
            kap = red.kappa[g]
            a[g] = a[g] + kap * (target_A[t] - kap @ a[g]) / (kap @ kap)
    if a_tr:
        a[list(red.zero)] = 0.0
    full["w"] = U[:, : red.D - int(bias)]
    if bias:
        full["b"] = U[:, -1]
    full["a"] = a
    return {k: full[k] for k in theta}
