"""The symmetry analysis of a whole batch at once: the columns of :func:`.analyze.analyze_point`, fast.

Same maths as the per-point reference (:mod:`.reduce`, :mod:`.identify`, :mod:`.subspace`, :mod:`.analyze`), same
values (floats to rounding; ints and strings equal), organised over the batch (issue 13, item 3):

1. numerics of all n points in one call each, with BLAS limited to one thread (for P x P matrices of a few dozen
   rows a multi-threaded LAPACK call spends ~100x its work waking threads on a loaded CPU): eigendecompositions
   H = V diag(lambda) V^T of the symmetrised Hessians, null masks |lambda| <= zero_tol max|lambda|;
2. the reduction of every point vectorised (:func:`reduce_batch`): zero-output and dead masks, canonical incoming
   vectors, pairwise coincidence, groups as connected components (transitive closure by boolean matrix products);
   points are then grouped by their *structure* (which neurons are zero, dead, and in which group), and each
   structure's group means, outgoing weights, spreads and canonical order (``np.lexsort`` over the rounded rows
   (u^_k, A_k)) are computed for all its points at once;
3. identification per point (Hungarian matching of r <= m rows and a label hash, tens of microseconds);
4. the predicted tangent directions of the reference, orthonormalised and compared with the null spaces by SVDs
   batched over points of equal shapes; the classification rule once, vmapped over the batch.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict

import numpy as np

from .canonical import _round
from .reduce import Reduction, Tolerances, canonical_neuron, is_relu_type

__all__ = ["analyze_batch", "reduce_batch", "one_blas_thread", "full_params_batch", "CHUNK_ELEMENTS"]

CHUNK_ELEMENTS = 1 << 24
"""Largest per-chunk work array (float64 elements, 128 MiB): batches are cut into chunks of points below it."""


@contextlib.contextmanager
def one_blas_thread():
    """BLAS/LAPACK limited to one thread inside (threadpoolctl, a scikit-learn dependency; a no-op without it)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def full_params_batch(problem, thetas) -> dict:
    """Full parameter dict (numpy float64, leading axis n on every leaf): trainable leaves plus frozen ones."""
    th = {k: np.asarray(v, float) for k, v in thetas.items()}
    n = next(iter(th.values())).shape[0]
    one = problem.full_params({k: v[0] for k, v in th.items()}) if n else {}
    out = dict(th)
    for k, v in one.items():
        if k not in th:
            v = np.asarray(v, float)
            out[k] = np.broadcast_to(v, (n, *v.shape))
    return out


def _components(close: np.ndarray) -> np.ndarray:
    """(n, m) smallest member index of each neuron's connected component in the symmetric graphs ``close``."""
    n, m, _ = close.shape
    reach = close | np.eye(m, dtype=bool)[None]
    while True:
        nxt = np.matmul(reach.astype(np.int32), reach.astype(np.int32)) > 0
        if np.array_equal(nxt, reach):
            break
        reach = nxt
    return np.argmax(reach, axis=2)


def _dot_norms(x: np.ndarray) -> np.ndarray:
    """Euclidean norms of the rows of x (..., D), computed as ``np.linalg.norm`` does for one vector (sqrt(x . x))."""
    flat = x.reshape(-1, x.shape[-1])
    return np.sqrt(np.fromiter((v.dot(v) for v in flat), float, count=flat.shape[0])).reshape(x.shape[:-1])


def reduce_batch(full: dict, activation, *, x=None, tol: Tolerances | None = None) -> list[Reduction]:
    """:func:`.reduce.reduce_two_layer` of n points at once (full dicts with a leading axis n); a list of n.

    Args:
        full: ``{"w": (n, m, d), ["b": (n, m)], "a": (n, m)}`` full parameters (numpy).
        activation: the student's activation; x: (N, d) sample inputs or None; tol: :class:`Tolerances`.
    Returns:
        the n :class:`Reduction` that ``reduce_two_layer`` gives point by point (same groups, order, values).
    """
    tol = tol or Tolerances()
    bias = "b" in full
    w = np.asarray(full["w"], float)
    U = np.concatenate([w, np.asarray(full["b"], float)[..., None]], axis=2) if bias else w
    a = np.asarray(full["a"], float)
    n, m, D = U.shape
    if n == 0:
        return []
    chunk = max(1, CHUNK_ELEMENTS // max(1, m * m * D))  # the pairwise differences are (n, m, m, D)
    if n > chunk:
        return [red for s in range(0, n, chunk)
                for red in reduce_batch({k: v[s:s + chunk] for k, v in full.items()}, activation, x=x, tol=tol)]
    a_ref = np.maximum(1.0, np.max(np.abs(a), axis=1)) if m else np.ones(n)
    u_norm = np.linalg.norm(U, axis=2)
    u_ref = np.maximum(1.0, np.max(u_norm, axis=1)) if m else np.ones(n)
    zero = np.abs(a) <= tol.a_tol * a_ref[:, None]
    dead = np.zeros((n, m), bool)
    if activation.zero_at_zero:
        dead |= u_norm <= tol.u_tol * u_ref[:, None]
    if is_relu_type(activation) and x is not None:
        xt = np.asarray(x, float)
        if bias:
            xt = np.concatenate([xt, np.ones((xt.shape[0], 1))], axis=1)
        dead |= np.stack([np.max(xt @ U[i].T, axis=0) for i in range(n)]) <= 0.0
    dead &= ~zero
    live = ~zero & ~dead
    uh_flat, kappa_flat = canonical_neuron(U.reshape(n * m, D), activation)
    uh_all, kappa_all = uh_flat.reshape(n, m, D), kappa_flat.reshape(n, m)
    nrm = np.linalg.norm(uh_all, axis=2)
    dist = np.linalg.norm(uh_all[:, :, None, :] - uh_all[:, None, :, :], axis=-1)
    scale = np.maximum(1.0, np.maximum(nrm[:, :, None], nrm[:, None, :]))
    close = (dist <= tol.u_tol * scale) & live[:, :, None] & live[:, None, :]
    label = np.where(zero, -1, np.where(dead, -2, _components(close) if m else np.zeros((n, 0), int)))
    out: list[Reduction | None] = [None] * n
    structures, inverse = np.unique(label, axis=0, return_inverse=True)
    members = np.split(np.argsort(inverse.reshape(-1), kind="stable"), np.cumsum(np.bincount(inverse.reshape(-1)))[:-1])
    for lab, idx in zip(structures, members, strict=True):
        for i, red in zip(idx, _reduce_structure(lab, idx, U, a, uh_all, kappa_all, zero, dead, a_ref, activation,
                                                 bias, tol), strict=True):
            out[i] = red
    return out


def _reduce_structure(lab, idx, U, a, uh_all, kappa_all, zero, dead, a_ref, activation, bias, tol):
    """The reductions of the points ``idx`` that share the neuron-to-group structure ``lab`` (m,)."""
    ns, (m, D) = len(idx), U.shape[1:]
    groups_u = [np.flatnonzero(lab == c) for c in np.unique(lab[lab >= 0])]  # by smallest member, as union-find
    r = len(groups_u)
    uh, kap, av = uh_all[idx], kappa_all[idx], a[idx]
    u_hat = np.zeros((ns, r, D))
    A = np.zeros((ns, r))
    spread = np.zeros(ns)
    for k, g in enumerate(groups_u):
        mean = uh[:, g].mean(axis=1)
        if activation.homogeneity is not None:
            mean = mean / np.maximum(_dot_norms(mean), 1e-300)[:, None]
        spread = np.maximum(spread, np.max(np.linalg.norm(uh[:, g] - mean[:, None], axis=2), axis=1))
        u_hat[:, k] = mean
        A[:, k] = np.sum(kap[:, g] * av[:, g], axis=1)
    rows = np.concatenate([u_hat, A[..., None]], axis=2)
    rnd = _round(rows, tol.label_decimals)
    keys = [rows[..., c] for c in reversed(range(D + 1))] + [rnd[..., c] for c in reversed(range(D + 1))]
    order = np.lexsort(keys, axis=-1) if r else np.zeros((ns, 0), int)
    u_hat = np.take_along_axis(u_hat, order[..., None], axis=1)
    A = np.take_along_axis(A, order, axis=1)
    opp = np.zeros((ns, r, r), bool)
    if activation.homogeneity == 1.0 and r > 1:
        s = np.linalg.norm(u_hat[:, :, None, :] + u_hat[:, None, :, :], axis=-1)
        near = np.abs(s - tol.u_tol) <= 1e-12 * max(1.0, tol.u_tol)  # decide borderline pairs as np.linalg.norm does
        for i, k, l in zip(*np.nonzero(near), strict=True):
            v = u_hat[i, k] + u_hat[i, l]
            s[i, k, l] = np.sqrt(v.dot(v))
        opp = s <= tol.u_tol
    groups_t = [tuple(int(j) for j in g) for g in groups_u]
    zero_t, dead_t = tuple(np.flatnonzero(zero[idx[0]])), tuple(np.flatnonzero(dead[idx[0]]))
    base_group_of = np.full(m, -1, int)
    base_group_of[dead[idx[0]]] = -2
    out = []
    for q, i in enumerate(idx):
        o = order[q]
        groups = tuple(groups_t[c] for c in o)
        group_of = base_group_of.copy()
        kappa = np.zeros(m)
        for k, g in enumerate(groups):
            group_of[list(g)] = k
            kappa[list(g)] = kappa_all[i, list(g)]
        uq, Aq = u_hat[q], A[q]
        reduced = {"w": uq[:, : D - int(bias)], "a": Aq}
        if bias:
            reduced["b"] = uq[:, -1]
        opposite = []
        if activation.homogeneity == 1.0:
            for k, l in zip(*np.nonzero(np.triu(opp[q], 1)), strict=True):
                opposite.append((int(k), int(l), bool(abs(Aq[k] + Aq[l]) <= tol.a_tol * a_ref[i])))
        out.append(Reduction(m=m, r=r, D=D, bias=bias, groups=groups, zero=zero_t, dead=dead_t, group_of=group_of,
                             kappa=kappa, u_hat=uq, A=Aq, reduced=reduced, opposite=tuple(opposite),
                             spread=float(spread[q]), odd=activation.odd, tol=tol))
    return out


def _by_shape(shapes) -> dict:
    """{shape: indices} grouping the items of ``shapes`` (a list of hashables)."""
    out = defaultdict(list)
    for i, sh in enumerate(shapes):
        out[sh].append(i)
    return {k: np.asarray(v, int) for k, v in out.items()}


class _Tangents:
    """Candidate tangent columns of one structure, for all its points (:func:`.subspace.tangent_directions`).

    ``V`` (n_s, P, C) holds every candidate column, ``keep`` (n_s, C) which ones each point has, ``block`` (C,) the
    unordered group a column belongs to (-1: zero-output and dead neurons, after all groups), ``labels`` (C,) label
    templates (``{k}``: the group's canonical index at that point).
    """

    def __init__(self, ns, P):
        self.ns, self.P = ns, P
        self.cols, self.keep, self.block, self.labels = [], [], [], []

    def new(self, block, label, keep=None):
        v = np.zeros((self.ns, self.P))
        self.cols.append(v)
        self.keep.append(np.ones(self.ns, bool) if keep is None else np.asarray(keep, bool))
        self.block.append(block)
        self.labels.append(label)
        return v


def _structure_tangents(problem, idx_flat, reds, U, a, h, residual_zero, null, inactive):
    """(V (n_s, P, C), keep (n_s, C), block (C,), labels (C,)) of points sharing one unordered structure."""
    from .subspace import _u_idx

    act = problem.student.activation
    p = act.homogeneity
    red0 = reds[0]
    bias, D = red0.bias, red0.D
    a_tr = "a" in idx_flat
    P = sum(np.size(v) for v in idx_flat.values())
    ns = len(reds)
    kappa = np.stack([r.kappa for r in reds])
    T = _Tangents(ns, P)

    def put_u(v, j, vals):
        pos = _u_idx(idx_flat, j, bias)
        ok = pos >= 0
        v[:, pos[ok]] = np.asarray(vals)[..., ok]

    for u, g in enumerate(sorted(red0.groups)):
        j0 = g[0]
        for j in g[1:]:
            if a_tr:
                v = T.new(u, f"split g{{k}}: n{j0}/n{j}")
                v[:, idx_flat["a"][j0]] = 1.0 / kappa[:, j0]
                v[:, idx_flat["a"][j]] = -1.0 / kappa[:, j]
            elif p is not None:
                v = T.new(u, f"split g{{k}}: n{j0}/n{j}")
                for jj, sgn in ((j0, 1.0), (j, -1.0)):
                    nrm = _dot_norms(U[:, jj])[:, None]
                    put_u(v, jj, sgn * U[:, jj] / nrm / (a[:, jj, None] * nrm ** (p - 1.0)))
        if p is not None and a_tr:
            for j in g:
                v = T.new(u, f"rescale n{j}")
                put_u(v, j, U[:, j])
                v[:, idx_flat["a"][j]] = -p * a[:, j]
    hmax = np.maximum(1.0, np.max(np.abs(h), axis=(1, 2)))
    eye = np.eye(D)
    for j in red0.zero:
        g_zero = residual_zero | inactive[:, j]
        mode_free = np.ones(ns, bool)
        mode_level = np.zeros(ns, bool)
        q = None
        if a_tr:
            pos = _u_idx(idx_flat, j, bias)
            nz = ~residual_zero
            gj = np.where(pos >= 0, h[:, idx_flat["a"][j], np.maximum(pos, 0)], 0.0)
            level = nz & (_dot_norms(gj) > 1e-8 * hmax)
            g_zero = g_zero | (nz & ~level)
            mode_level, mode_free = level, ~level
            if p is not None:  # u_j = 0 with p-homogeneous sigma at a nonzero residual: no incoming direction
                blocked = null[:, j] & nz
                mode_level, mode_free = mode_level & ~blocked, mode_free & ~blocked
            if np.any(mode_level):
                q = np.zeros((ns, D, D))
                sel = np.flatnonzero(mode_level)
                q[sel] = np.linalg.qr(np.concatenate([gj[sel][:, :, None], np.broadcast_to(eye, (len(sel), D, D))],
                                                     axis=2))[0]
        for i in range(D):
            v = T.new(-1, f"free in n{j}", mode_free)
            put_u(v, j, np.broadcast_to(eye[:, i], (ns, D)))
        for i in range(1, D):
            v = T.new(-1, f"level set n{j}", mode_level)
            if q is not None:
                put_u(v, j, q[:, :, i])
        if a_tr:
            v = T.new(-1, f"zero in n{j}", (null[:, j] | inactive[:, j]) & g_zero)
            v[:, idx_flat["a"][j]] = 1.0
    for j in red0.dead:
        if a_tr:
            v = T.new(-1, f"dead out n{j}")
            v[:, idx_flat["a"][j]] = 1.0
        if is_relu_type(act):
            for i in range(D):
                v = T.new(-1, f"dead in n{j}", inactive[:, j])
                put_u(v, j, np.broadcast_to(eye[:, i], (ns, D)))
    if not T.cols:
        return np.zeros((ns, P, 0)), np.zeros((ns, 0), bool), np.zeros(0, int), []
    V = np.stack(T.cols, axis=2)
    keep = np.stack(T.keep, axis=1) & np.any(V != 0, axis=1)
    return V, keep, np.asarray(T.block, int), T.labels


def _inert(problem, U, u_tol):
    """(null, inactive), each (n, m): :func:`.subspace._input_inert` for n points at once."""
    act = problem.student.activation
    n, m, D = U.shape
    null = np.zeros((n, m), bool)
    if act.zero_at_zero and m:
        nrm = np.linalg.norm(U, axis=2)
        null = nrm <= u_tol[:, None] * np.maximum(1.0, np.max(nrm, axis=1))[:, None]
    inactive = np.zeros((n, m), bool)
    if is_relu_type(act) and problem.x is not None:
        xt = np.asarray(problem.x, float)
        if D == xt.shape[1] + 1:
            xt = np.concatenate([xt, np.ones((xt.shape[0], 1))], axis=1)
        inactive = np.max(np.einsum("nd,imd->imn", xt, U), axis=2) < 0.0
    return null, inactive


def _jacobian_null(problem, red, a_tr, null, inactive):
    """:func:`.subspace.jacobian_null_prediction` for points of one structure; (n_s,) ints."""
    act = problem.student.activation
    D = red.D
    c = 0
    for g in red.groups:
        c += (len(g) - 1) * (D + 1) + (1 if act.homogeneity is not None else 0) if a_tr else (len(g) - 1) * D
    c += len(red.zero) * D
    out = np.full(null.shape[0], c, int)
    zero, dead = list(red.zero), list(red.dead)
    if a_tr and zero:
        out += np.sum((null | inactive)[:, zero], axis=1)
    for j in dead:
        out += int(a_tr) + (D * inactive[:, j] if is_relu_type(act) else 0)
    return out


def _projection_distance(problem, th, full, reds, idents, teacher, pos):
    """:func:`.subspace.projection_to_subspace` distances of points of one structure ((n_s,), NaN: no target)."""
    act = problem.student.activation
    p = act.homogeneity
    ns = len(reds)
    red0 = reds[0]
    bias, D, r = red0.bias, red0.D, red0.r
    a_tr = "a" in th
    dist = np.full(ns, np.nan)
    glob = np.asarray([i.sym_class == "global_minimum" and teacher is not None
                       and min(i.teacher_of_group, default=0) >= 0 for i in idents], bool)
    sym = np.asarray([i.sym_class == "symmetry_induced" for i in idents], bool) & ~glob
    todo = np.flatnonzero(glob | sym)
    if todo.size == 0:
        return dist
    tu = np.zeros((ns, r, D))  # target (u^_t, A_t) of each unordered group
    tA = np.zeros((ns, r))
    for q in todo:
        o = pos[q]
        if glob[q]:
            t = np.asarray(idents[q].teacher_of_group, int)[o]
            tu[q], tA[q] = teacher.u_hat[t], teacher.A[t]
        else:
            tu[q], tA[q] = reds[q].u_hat[o], reds[q].A[o]
    w = np.asarray(full["w"], float)[todo]
    U = np.concatenate([w, np.asarray(full["b"], float)[todo][..., None]], axis=2) if bias else w.copy()
    a = np.asarray(full["a"], float)[todo].copy()
    kappa = np.stack([reds[q].kappa for q in todo])
    U0 = U.copy()
    for u, g in enumerate(sorted(red0.groups)):
        g = list(g)
        for j in g:
            s = np.sign(kappa[:, j])[:, None] if act.odd else 1.0
            U[:, j] = s * tu[todo, u] * (_dot_norms(U0[:, j])[:, None] if p is not None else 1.0)
        if a_tr:
            kap = kappa[:, g]
            a[:, g] = a[:, g] + kap * (tA[todo, u] - np.einsum("ij,ij->i", kap, a[:, g]))[:, None] / np.einsum(
                "ij,ij->i", kap, kap)[:, None]
    if a_tr:
        a[:, list(red0.zero)] = 0.0
    proj = {"w": U[:, :, : D - int(bias)], "a": a}
    if bias:
        proj["b"] = U[:, :, -1]
    total = 0
    for key in th:
        diff = proj[key] - th[key][todo]
        total = total + np.sum((diff**2).reshape(len(todo), -1), axis=1)
    dist[todo] = np.sqrt(total)
    return dist


def analyze_batch(problem, thetas, *, losses, hessians, zero_tol: float, global_loss_tol: float, teacher,
                  tol: Tolerances, eig: tuple | None = None) -> list[dict]:
    """The rows of :func:`.analyze.analyze_point` for n finite points at once (module docstring).

    Args:
        problem: a problem with a two-layer student; thetas: trainable dict, leading axis n on every leaf.
        losses: (n,) losses; hessians: (n, P, P) Hessians (finite); zero_tol, global_loss_tol: as the reference.
        teacher: :func:`.identify.teacher_reduction` of the problem; tol: :class:`Tolerances`.
        eig: optional ``(eigenvalues (n, P) ascending, eigenvectors (n, P, P) as columns)`` of the symmetrised
            Hessians, already computed (the Hessian analyzer's ``eigenvalues`` and ``_eigvecs``, on the device);
            None: ``numpy.linalg.eigh`` here.
    Returns:
        list of n dicts: :data:`.analyze.COLUMNS`, ``kind_refined`` and ``_sym_global`` per point.

    Example:
        >>> import jax, jax.numpy as jnp, numpy as np, landscape as ls
        >>> from landscape.analysis.symmetry import Tolerances, analyze_batch, teacher_reduction
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=3),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> split = {"w": np.eye(3)[[0, 1, 1]], "a": np.array([1.0, 0.3, 0.7])}  # neuron 2 split in two
        >>> h = jax.jit(ls.hessian_matrix)(problem, jax.tree.map(jnp.asarray, split))
        >>> rows = analyze_batch(problem, {k: v[None] for k, v in split.items()}, losses=np.zeros(1),
        ...                      hessians=np.asarray(h)[None], zero_tol=1e-7, global_loss_tol=1e-20,
        ...                      teacher=teacher_reduction(problem), tol=Tolerances())
        >>> rows[0]["sym_class"], rows[0]["partition"], rows[0]["kind_refined"]
        ('global_minimum', '{1,2}{0}|z{}|d{}', 'minimum')
    """
    import dataclasses

    from ..classify import kind_names
    from .analyze import explanation_text, symmetry_row
    from .identify import identify
    from .subspace import flat_index

    th = {k: np.asarray(v, float) for k, v in thetas.items()}
    losses = np.asarray(losses, float)
    n = len(losses)
    if n == 0:
        return []
    P = int(np.shape(hessians)[1])
    chunk = max(1, CHUNK_ELEMENTS // max(1, P * P))  # eigenvectors and tangent candidates are (n, P, <= P)
    if n > chunk:
        return [row for s in range(0, n, chunk)
                for row in analyze_batch(problem, {k: v[s:s + chunk] for k, v in th.items()},
                                         losses=losses[s:s + chunk], hessians=hessians[s:s + chunk],
                                         zero_tol=zero_tol, global_loss_tol=global_loss_tol, teacher=teacher,
                                         tol=tol, eig=None if eig is None else (eig[0][s:s + chunk],
                                                                                eig[1][s:s + chunk]))]
    with one_blas_thread():
        h = np.asarray(hessians, float)
        if eig is None:
            lam, vec = np.linalg.eigh(0.5 * (h + np.swapaxes(h, 1, 2)))
        else:
            lam, vec = np.asarray(eig[0], float), np.asarray(eig[1], float)
        scale = np.maximum(np.max(np.abs(lam), axis=1), 1e-300)
        tau = zero_tol * scale
        null_eig = np.abs(lam) <= tau[:, None]
        n_null = null_eig.sum(axis=1)
        act = problem.student.activation
        full = full_params_batch(problem, th)
        reds = reduce_batch(full, act, x=problem.x, tol=tol)
        idents = [identify(red, loss=float(losses[i]), teacher=teacher, global_loss_tol=global_loss_tol)
                  for i, red in enumerate(reds)]
        loose = np.zeros(n, bool)
        retry = [i for i, ident in enumerate(idents) if ident.sym_class != "global_minimum"
                 and losses[i] <= np.sqrt(global_loss_tol) and tol.u_tol_loose > tol.u_tol]
        if retry:
            loose_tol = dataclasses.replace(tol, u_tol=tol.u_tol_loose)
            sub = {k: v[retry] for k, v in full.items()}
            for i, red2 in zip(retry, reduce_batch(sub, act, x=problem.x, tol=loose_tol), strict=True):
                ident2 = identify(red2, loss=float(losses[i]), teacher=teacher, global_loss_tol=global_loss_tol)
                if ident2.sym_class == "global_minimum":
                    reds[i], idents[i], loose[i] = red2, ident2, True
        glob = np.asarray([ident.sym_class == "global_minimum" for ident in idents], bool)
        bias = "b" in full
        w = np.asarray(full["w"], float)
        U = np.concatenate([w, np.asarray(full["b"], float)[..., None]], axis=2) if bias else w
        a = np.asarray(full["a"], float)
        null, inactive = _inert(problem, U, np.asarray([red.tol.u_tol for red in reds]))
        idx_flat = flat_index({k: v[0] for k, v in th.items()})
        a_tr = "a" in th
        # per structure (unordered groups, zero-output and dead neurons, tolerance): tangents, Jacobian, projection
        Qs: list = [None] * n
        labels: list = [None] * n
        jac = np.full(n, -1, int)
        dist = np.full(n, np.nan)
        keys = [(tuple(sorted(red.groups)), red.zero, red.dead, red.tol.u_tol) for red in reds]
        Vsel: dict = defaultdict(list)  # (P, k) -> [(point, V)]
        for sel in _by_shape(keys).values():
            sreds = [reds[i] for i in sel]
            ordered = sorted(sreds[0].groups)
            pos = np.asarray([[red.groups.index(g) for g in ordered] for red in sreds], int).reshape(len(sel), -1)
            V, keep, block, templ = _structure_tangents(problem, idx_flat, sreds, U[sel], a[sel], h[sel], glob[sel],
                                                        null[sel], inactive[sel])
            padded = np.concatenate([pos, np.zeros((len(sel), 1), int)], axis=1)  # r = 0: no group columns
            rank = np.where(block[None, :] >= 0, padded[:, np.maximum(block, 0)], len(ordered))  # (n_s, C)
            order = np.argsort(rank, axis=1, kind="stable")
            for q, i in enumerate(sel):
                cols = order[q][keep[q][order[q]]]
                Vsel[(V.shape[1], len(cols))].append((i, V[q][:, cols]))
                labels[i] = [templ[c].format(k=pos[q][block[c]]) if block[c] >= 0 else templ[c] for c in cols]
            jsel = sel[glob[sel]]
            if jsel.size:
                jac[jsel] = _jacobian_null(problem, sreds[0], a_tr, null[jsel], inactive[jsel])
            dist[sel] = _projection_distance(problem, {k: v[sel] for k, v in th.items()},
                                             {k: v[sel] for k, v in full.items()}, sreds, [idents[i] for i in sel],
                                             teacher, pos)
        # orthonormal bases (SVD, singular values above 1e-10 max), batched over points with equal shapes
        for (_, kc), items in Vsel.items():
            sel = [i for i, _ in items]
            if kc == 0:
                for i, V in items:
                    Qs[i] = V
                continue
            u, s, _ = np.linalg.svd(np.stack([V for _, V in items]), full_matrices=False)
            keepq = s > 1e-10 * np.maximum(s.max(axis=1), 1e-300)[:, None]
            for q, i in enumerate(sel):
                Qs[i] = u[q][:, keepq[q]]
        k = np.asarray([Q.shape[1] for Q in Qs], int)
        explained = np.zeros(n, int)
        curv = np.zeros(n)
        for (kk, nn), sel in _by_shape(list(zip(k.tolist(), n_null.tolist(), strict=True))).items():
            if kk == 0:
                continue
            Q = np.stack([Qs[i] for i in sel])
            if nn:
                N = np.stack([vec[i][:, null_eig[i]] for i in sel])
                cos = np.linalg.svd(np.swapaxes(N, 1, 2) @ Q, compute_uv=False)
                explained[sel] = np.sum(cos >= 1.0 - tol.cos_tol, axis=1)
            curv[sel] = np.max(np.abs(np.einsum("npi,npq,nqi->ni", Q, h[sel], Q)), axis=1) / scale[sel]
        kinds = kind_names(_classify_codes(lam, zero_tol, glob, explained))
        rows = []
        for i in range(n):
            red, ident = reds[i], idents[i]
            ji = int(jac[i]) if glob[i] else None
            text = explanation_text(ident.sym_class, red, n_null=int(n_null[i]), tau=float(tau[i]), k=int(k[i]),
                                    explained=int(explained[i]), labels=labels[i], residual_zero=bool(glob[i]),
                                    jac=ji, curv=float(curv[i]))
            rows.append(symmetry_row(red, ident, bool(loose[i]), predicted_dim=k[i], n_null=n_null[i],
                                     explained=explained[i], jac=ji, curv=curv[i],
                                     dist=float(dist[i]) if np.isfinite(dist[i]) else np.nan, labels=labels[i],
                                     text=text, kind=str(kinds[i])))
    return rows


def _classify_codes(lam, zero_tol, zero_loss, explained) -> np.ndarray:
    """:func:`landscape.analysis.classify.classify` codes of n points: one jitted vmap, the batch padded to a power
    of two (at least 64) so that a few compilations serve every batch size."""
    import jax

    n = lam.shape[0]
    size = max(64, 1 << (n - 1).bit_length())
    pad = lambda x: np.concatenate([x, np.repeat(x[:1], size - n, axis=0)])  # noqa: E731
    codes = _classify_jit(pad(lam), np.float64(zero_tol), pad(np.asarray(zero_loss, bool)),
                          pad(np.asarray(explained, np.int64)))
    return np.asarray(jax.device_get(codes))[:n]


def _classify_jit(lam, zero_tol, zero_loss, explained):
    import jax

    from ..classify import classify

    global _CLASSIFY
    if _CLASSIFY is None:
        _CLASSIFY = jax.jit(jax.vmap(lambda e, t, z, x: classify(e, zero_tol=t, zero_loss=z, explained=x)["code"],
                                     in_axes=(0, None, 0, 0)))
    return _CLASSIFY(lam, zero_tol, zero_loss, explained)


_CLASSIFY = None
