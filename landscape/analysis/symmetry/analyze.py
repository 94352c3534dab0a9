"""Per-point symmetry analysis of converged points: the run pipeline's entry point (issue 3, items 3, 4, 7).

``analyze_points`` runs once per point after the flow and polish (host-side numpy/scipy; Hessians in jax if not
given). For each point: reduce (:mod:`.reduce`), identify (:mod:`.identify`), predict the symmetry-induced critical
set and its tangent (:mod:`.subspace`), compare with the Hessian's numerical null space, and refine the Hessian
classification: a point without negative eigenvalues whose near-zero eigenvalues are all explained by exact symmetry
directions (tangent to a manifold of critical points with the same loss: Morse-Bott) is a ``minimum``, not
``degenerate`` (column ``kind_refined``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from math import comb

import jax
import jax.numpy as jnp
import numpy as np

from .counting import count_G, count_T
from .identify import CLASSES, identify, teacher_reduction
from .reduce import Reduction, Tolerances, reduce_two_layer
from .subspace import (
    jacobian_null_prediction,
    orthonormal_basis,
    projection_to_subspace,
    tangent_directions,
)

__all__ = ["analyze_points", "explain_null_space", "summarize", "COLUMNS"]

COLUMNS = ("reduced_width", "sym_class", "subspace_label", "subspace_id", "partition", "n_zero_neurons",
           "n_dead_neurons", "multiplicities", "teacher_neurons", "teacher_match_err", "predicted_dim",
           "null_dim_measured", "null_dim_explained", "null_dim_excess", "jacobian_null_pred", "tangent_curvature",
           "dist_to_predicted", "group_spread", "kind_refined", "loose_merge")


def reduce_and_identify(problem, theta, *, loss, teacher, tol: Tolerances, global_loss_tol: float):
    """(Reduction, Identity, loose): reduce at ``u_tol``; if a near-zero-loss point (L <= sqrt(global_loss_tol)) is
    not a global minimum there, retry at ``u_tol_loose`` and keep that if it identifies a global minimum."""
    act = problem.student.activation
    full = problem.full_params(theta)
    red = reduce_two_layer(full, act, x=problem.x, tol=tol)
    ident = identify(red, loss=loss, teacher=teacher, global_loss_tol=global_loss_tol)
    if ident.sym_class != "global_minimum" and loss <= np.sqrt(global_loss_tol) and tol.u_tol_loose > tol.u_tol:
        loose = dataclasses.replace(tol, u_tol=tol.u_tol_loose)
        red2 = reduce_two_layer(full, act, x=problem.x, tol=loose)
        ident2 = identify(red2, loss=loss, teacher=teacher, global_loss_tol=global_loss_tol)
        if ident2.sym_class == "global_minimum":
            return red2, ident2, True
    return red, ident, False


def _null_basis(h, zero_tol):
    h = 0.5 * (np.asarray(h, float) + np.asarray(h, float).T)
    lam, vec = np.linalg.eigh(h)
    scale = max(float(np.max(np.abs(lam))), 1e-300)
    tau = zero_tol * scale
    null = np.abs(lam) <= tau
    return lam, vec[:, null], scale, tau


def explain_null_space(problem, theta, hessian, zero_tol, *, loss=None, global_loss_tol: float = 1e-20,
                       tol: Tolerances | None = None, red: Reduction | None = None, teacher=None) -> dict:
    """Which Hessian null directions at ``theta`` are explained by symmetry (for ``landscape hessian``).

    Args:
        problem: Problem with a two-layer student; theta: trainable dict; hessian: (P, P) Hessian of the
            flattened trainable parameters; zero_tol: |lambda| <= zero_tol * max|lambda| counts as zero.
        loss: L(theta) (computed if None); global_loss_tol: zero-loss threshold (then H = J^T J).
    Returns:
        dict: predicted_dim, predicted_basis (P, k) orthonormal, direction_labels, null_dim_measured,
        null_dim_explained (principal cosines >= 1 - cos_tol), null_dim_excess, jacobian_null_pred (zero loss
        only, else None), tangent_curvature (max |t^T H t| / max|lambda| over predicted unit t), index, sym_class,
        subspace_label, partition, kind_refined, text.
    """
    tol = tol or Tolerances()
    theta_np = {k: np.asarray(v, float) for k, v in theta.items()}
    if loss is None:
        loss = float(problem.loss({k: jnp.asarray(v) for k, v in theta_np.items()}))
    if teacher is None:
        teacher = teacher_reduction(problem, tol)
    if red is None:
        red, ident, _ = reduce_and_identify(problem, theta_np, loss=loss, teacher=teacher, tol=tol,
                                            global_loss_tol=global_loss_tol)
    else:
        ident = identify(red, loss=loss, teacher=teacher, global_loss_tol=global_loss_tol)
    residual_zero = ident.sym_class == "global_minimum"
    h = np.asarray(hessian, float)
    lam, N, scale, tau = _null_basis(h, zero_tol)
    V, labels = tangent_directions(problem, theta_np, red, residual_zero=residual_zero, hessian=h)
    Q = orthonormal_basis(V)
    k = Q.shape[1]
    if k and N.shape[1]:
        cos = np.linalg.svd(N.T @ Q, compute_uv=False)
        explained = int(np.sum(cos >= 1.0 - tol.cos_tol))
    else:
        explained = 0
    curv = float(np.max(np.abs(np.einsum("pi,pq,qi->i", Q, h, Q)))) / scale if k else 0.0
    n_null = int(N.shape[1])
    n_neg = int(np.sum(lam < -tau))
    jac = jacobian_null_prediction(problem, theta_np, red) if residual_zero else None
    if n_neg > 0:
        kind = "saddle"
    elif n_null == 0 or residual_zero or (explained == n_null and k >= n_null):
        kind = "minimum"
    else:
        kind = "degenerate"
    text = [f"{ident.sym_class}: reduced width {red.r} of {red.m}, partition {red.partition_string()}",
            f"null space: {n_null} measured (|lambda| <= {tau:.2e}), {k} predicted by symmetry, {explained} explained"]
    if k:
        kinds = Counter(lbl.split(" n")[0].split(" g")[0] for lbl in labels)
        text.append("predicted directions: " + ", ".join(f"{v} {kk}" for kk, v in kinds.items()))
    if n_null > explained:
        if residual_zero and jac is not None:
            text.append(f"zero loss: H = J^T J, predicted dim null J = {jac} (excess {jac - k} flat to second order "
                        "only: group members moving apart with sum_j a_j du_j = 0)")
        else:
            text.append(f"{n_null - explained} unexplained null directions: null directions of the reduced width-"
                        f"{red.r} point, singular split blocks, or higher-order flatness")
    if k > explained:
        text.append(f"{k - explained} predicted directions are not numerically null (max curvature {curv:.1e} of "
                    "max|lambda|): the point may not be converged onto the subspace")
    return {"predicted_dim": int(k), "predicted_basis": Q, "direction_labels": labels, "null_dim_measured": n_null,
            "null_dim_explained": explained, "null_dim_excess": n_null - explained, "jacobian_null_pred": jac,
            "tangent_curvature": curv, "index": n_neg, "sym_class": ident.sym_class, "subspace_label": ident.label,
            "subspace_id": ident.subspace_id, "partition": red.partition_string(), "kind_refined": kind,
            "zero_tol_abs": tau, "text": "\n".join(text)}


def _hessians(problem, thetas):
    from ..hessian import hessian_matrix

    return np.asarray(jax.jit(jax.vmap(lambda t: hessian_matrix(problem, t)))(thetas))


def analyze_points(problem, thetas, *, losses, grad_norms, hessians, zero_tol, global_loss_tol,
                   tol: Tolerances | None = None):
    """Symmetry columns for points.parquet and a summary section, for a batch of converged points.

    Args:
        problem: Problem with a two-layer student.
        thetas: trainable dict with a leading axis n on every leaf.
        losses, grad_norms: (n,) loss and gradient norm of each point.
        hessians: (n, P, P) Hessians of the flattened trainable parameters, or None (computed here).
        zero_tol: relative zero-eigenvalue tolerance; global_loss_tol: zero-loss threshold.
        tol: :class:`Tolerances` of reduction and labels (defaults reported in the summary).
    Returns:
        (columns, summary): ``columns`` maps each name of :data:`COLUMNS` to an (n,) numpy array;
        ``summary`` is a JSON-able dict (see :func:`summarize`).
    """
    tol = tol or Tolerances()
    thetas = {k: np.asarray(v, float) for k, v in thetas.items()}
    n = len(np.asarray(losses))
    losses = np.asarray(losses, float)
    if hessians is None:
        hessians = _hessians(problem, {k: jnp.asarray(v) for k, v in thetas.items()})
    teacher = teacher_reduction(problem, tol)
    cols = {c: [] for c in COLUMNS}
    for i in range(n):
        th = {k: v[i] for k, v in thetas.items()}
        h = np.asarray(hessians[i], float)
        finite = np.isfinite(losses[i]) and all(np.all(np.isfinite(v)) for v in th.values()) and np.all(
            np.isfinite(h))
        if not finite:
            for c, d in zip(COLUMNS, _missing_row(), strict=True):
                cols[c].append(d)
            continue
        red, ident, loose = reduce_and_identify(problem, th, loss=float(losses[i]), teacher=teacher, tol=tol,
                                                global_loss_tol=global_loss_tol)
        ex = explain_null_space(problem, th, h, zero_tol, loss=float(losses[i]), global_loss_tol=global_loss_tol,
                                tol=tol, red=red, teacher=teacher)
        if ident.sym_class == "global_minimum" and teacher is not None and min(ident.teacher_of_group, default=0) >= 0:
            proj = projection_to_subspace(problem, th, red, teacher.u_hat, teacher.A, ident.teacher_of_group)
        elif ident.sym_class == "symmetry_induced":
            proj = projection_to_subspace(problem, th, red, red.u_hat, red.A, list(range(red.r)))
        else:
            proj = None
        dist = np.nan if proj is None else float(np.sqrt(sum(np.sum((proj[k] - th[k]) ** 2) for k in th)))
        row = (red.r, ident.sym_class, ident.label, ident.subspace_id, red.partition_string(), len(red.zero),
               len(red.dead), ",".join(map(str, red.multiplicities)),
               ",".join(str(t) for t in ident.teacher_of_group) if ident.sym_class == "global_minimum" else "",
               ident.teacher_match_err, ex["predicted_dim"], ex["null_dim_measured"], ex["null_dim_explained"],
               ex["null_dim_excess"], -1 if ex["jacobian_null_pred"] is None else ex["jacobian_null_pred"],
               ex["tangent_curvature"], dist, red.spread, ex["kind_refined"], bool(loose))
        for c, v in zip(COLUMNS, row, strict=True):
            cols[c].append(v)
    dtypes = {"reduced_width": np.int64, "n_zero_neurons": np.int64, "n_dead_neurons": np.int64,
              "predicted_dim": np.int64, "null_dim_measured": np.int64, "null_dim_explained": np.int64,
              "null_dim_excess": np.int64, "jacobian_null_pred": np.int64, "teacher_match_err": float,
              "tangent_curvature": float, "dist_to_predicted": float, "group_spread": float,
              "loose_merge": bool}
    columns = {c: np.asarray(v, dtype=dtypes.get(c, object)) for c, v in cols.items()}
    for c in columns:
        if columns[c].dtype == object:
            columns[c] = columns[c].astype(str)
    summary = summarize(columns, problem, teacher_width=None if teacher is None else teacher.r, tol=tol,
                        zero_tol=zero_tol, global_loss_tol=global_loss_tol)
    return columns, summary


def unanalyzed_columns(n: int) -> dict:
    """Columns for ``n`` points that were not analyzed (not certified or not finite): sym_class "not_analyzed"."""
    row = _missing_row()
    return {c: np.asarray([v] * n) for c, v in zip(COLUMNS, row, strict=True)}


def _missing_row():
    return (-1, "not_analyzed", "", "", "", -1, -1, "", "", np.nan, -1, -1, -1, -1, -1, np.nan, np.nan, np.nan,
            "diverged", False)


def summarize(columns: dict, problem, *, teacher_width, tol: Tolerances, zero_tol, global_loss_tol) -> dict:
    """JSON-able summary: tolerances, counts and fractions per class, distinct labels and subspaces, T and G.

    ``subspaces`` lists, per (class, reduced width r, zero-output count z), the distinct subspace ids reached and the
    number predicted: C(m, z) G(r, m - z) per reduced critical point (per distinct label without the multiplicity
    part), summed over the distinct reduced points reached.
    """
    m = problem.student.width
    cls = np.asarray(columns["sym_class"])
    n = len(cls)
    counts = {c: int(np.sum(cls == c)) for c in (*CLASSES, "not_analyzed") if np.sum(cls == c) or c in CLASSES}
    groups = {}
    for c, r, z, lab, sid in zip(cls, columns["reduced_width"], columns["n_zero_neurons"], columns["subspace_label"],
                                 columns["subspace_id"], strict=True):
        if c == "not_analyzed":
            continue
        key = f"{c}|r={int(r)}|z={int(z)}"
        g = groups.setdefault(key, {"class": str(c), "r": int(r), "zeros": int(z), "points": 0, "labels": set(),
                                    "ids": set(), "reduced_points": set()})
        g["points"] += 1
        g["labels"].add(str(lab))
        g["ids"].add(str(sid))
        g["reduced_points"].add(str(lab).split("|n=")[0])
    sub = []
    for key in sorted(groups):
        g = groups[key]
        per = comb(m, g["zeros"]) * count_G(g["r"], m - g["zeros"]) if m - g["zeros"] >= g["r"] else 0
        sub.append({"key": key, "class": g["class"], "r": g["r"], "zeros": g["zeros"], "points": g["points"],
                    "distinct_labels": len(g["labels"]), "distinct_subspaces": len(g["ids"]),
                    "distinct_reduced_points": len(g["reduced_points"]),
                    "predicted_subspaces": per * len(g["reduced_points"])})
    ok = cls != "not_analyzed"
    out = {
        "tolerances": {**tol.as_dict(), "zero_tol (relative to max|eig|)": zero_tol,
                       "global_loss_tol": global_loss_tol},
        "activation": problem.student.activation.facts(),
        "student_width": m,
        "teacher_width_reduced": teacher_width,
        "classes": counts,
        "fractions": {c: (v / n if n else 0.0) for c, v in counts.items()},
        "distinct_labels": int(len(set(np.asarray(columns["subspace_label"])[ok]))),
        "distinct_subspaces": int(len(set(np.asarray(columns["subspace_id"])[ok]))),
        "distinct_global_subspaces": int(len(set(np.asarray(columns["subspace_id"])[cls == "global_minimum"]))),
        "subspaces": sub,
        "kind_refined": {k: int(v) for k, v in Counter(np.asarray(columns["kind_refined"]).tolist()).items()},
        "null_dim_explained_all": int(np.sum(ok & (np.asarray(columns["null_dim_excess"]) == 0))),
    }
    if teacher_width is not None and m >= teacher_width:
        out["T"] = count_T(teacher_width, m)
        out["G"] = {r: count_G(r, m) for r in range(1, m + 1)}
    return out
