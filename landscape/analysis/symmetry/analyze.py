"""Per-point symmetry analysis of certified points, and :class:`SymmetryAnalysis`, its analyzer.

For each point (host-side numpy/scipy, :func:`analyze_point`, the reference; a batch at once with the same
columns in :func:`.batch.analyze_batch`, which :func:`analyze_points` and the analyzer use): reduce
(:mod:`.reduce`), identify (:mod:`.identify`), predict the symmetry-induced critical set and its tangent
(:mod:`.subspace`), and compare with the Hessian's numerical null space: how many near-zero eigenvalues exact
symmetry directions explain. The one classification rule (:func:`landscape.analysis.classify.classify`) then
calls a point without negative eigenvalues whose near-zero eigenvalues are all explained (tangent to a manifold
of critical points with the same loss: Morse-Bott) a ``minimum``, not ``degenerate`` (Şimşek et al. 2021;
README, science section 1).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from math import comb

import jax
import jax.numpy as jnp
import numpy as np

from ..analyzer import AbstractAnalyzer
from ..classify import classify, kind_names
from .batch import analyze_batch
from .counting import count_G, count_T
from .identify import CLASSES, identify, teacher_reduction
from .reduce import Reduction, Tolerances, reduce_two_layer
from .subspace import (
    jacobian_null_prediction,
    orthonormal_basis,
    projection_to_subspace,
    tangent_directions,
)

__all__ = ["analyze_point", "analyze_points", "explain_null_space", "summarize", "COLUMNS", "SymmetryAnalysis"]

FILL = {"reduced_width": -1, "sym_class": "not_analyzed", "subspace_label": "", "subspace_id": "", "partition": "",
        "n_zero_neurons": -1, "n_dead_neurons": -1, "multiplicities": "", "teacher_neurons": "",
        "teacher_match_err": np.nan, "predicted_dim": -1, "null_dim_measured": -1, "null_dim_explained": -1,
        "null_dim_excess": -1, "jacobian_null_pred": -1, "tangent_curvature": np.nan, "dist_to_predicted": np.nan,
        "group_spread": np.nan, "loose_merge": False, "null_directions": "", "symmetry_text": ""}
"""Every column the symmetry analysis writes, with its value for points it did not analyze."""

COLUMNS = tuple(FILL)


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


def explanation_text(sym_class, red: Reduction, *, n_null, tau, k, explained, labels, residual_zero, jac, curv) -> str:
    """The ``symmetry_text`` lines of one point (shared by the per-point and the batched analysis)."""
    text = [f"{sym_class}: reduced width {red.r} of {red.m}, partition {red.partition_string()}",
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
    return "\n".join(text)


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
    kind = str(kind_names(classify(lam, zero_tol=zero_tol, zero_loss=residual_zero, explained=explained)["code"]))
    text = explanation_text(ident.sym_class, red, n_null=n_null, tau=tau, k=k, explained=explained, labels=labels,
                            residual_zero=residual_zero, jac=jac, curv=curv)
    return {"predicted_dim": int(k), "predicted_basis": Q, "direction_labels": labels, "null_dim_measured": n_null,
            "null_dim_explained": explained, "null_dim_excess": n_null - explained, "jacobian_null_pred": jac,
            "tangent_curvature": curv, "index": n_neg, "sym_class": ident.sym_class, "subspace_label": ident.label,
            "subspace_id": ident.subspace_id, "partition": red.partition_string(), "kind_refined": kind,
            "zero_tol_abs": tau, "text": text}


def analyze_point(problem, theta, *, loss: float, hessian, zero_tol: float, global_loss_tol: float,
                  teacher=None, tol: Tolerances | None = None) -> dict:
    """The symmetry columns (:data:`COLUMNS`) of one point, plus ``kind_refined`` and ``_sym_global``.

    Args:
        problem: a problem with a two-layer student.
        theta: trainable parameter dict (numpy or jax arrays).
        loss: L(theta); hessian: (P, P) Hessian of the flattened trainable parameters.
        zero_tol: relative zero-eigenvalue tolerance; global_loss_tol: zero-loss threshold.
        teacher: :func:`teacher_reduction` of the problem (computed if None); tol: reduction tolerances.
    """
    tol = tol or Tolerances()
    if teacher is None:
        teacher = teacher_reduction(problem, tol)
    th = {k: np.asarray(v, float) for k, v in theta.items()}
    h = np.asarray(hessian, float)
    red, ident, loose = reduce_and_identify(problem, th, loss=float(loss), teacher=teacher, tol=tol,
                                            global_loss_tol=global_loss_tol)
    ex = explain_null_space(problem, th, h, zero_tol, loss=float(loss), global_loss_tol=global_loss_tol, tol=tol,
                            red=red, teacher=teacher)
    if ident.sym_class == "global_minimum" and teacher is not None and min(ident.teacher_of_group, default=0) >= 0:
        proj = projection_to_subspace(problem, th, red, teacher.u_hat, teacher.A, ident.teacher_of_group)
    elif ident.sym_class == "symmetry_induced":
        proj = projection_to_subspace(problem, th, red, red.u_hat, red.A, list(range(red.r)))
    else:
        proj = None
    dist = np.nan if proj is None else float(np.sqrt(sum(np.sum((proj[k] - th[k]) ** 2) for k in th)))
    return symmetry_row(red, ident, loose, predicted_dim=ex["predicted_dim"], n_null=ex["null_dim_measured"],
                        explained=ex["null_dim_explained"], jac=ex["jacobian_null_pred"],
                        curv=ex["tangent_curvature"], dist=dist, labels=ex["direction_labels"], text=ex["text"],
                        kind=ex["kind_refined"])


def symmetry_row(red: Reduction, ident, loose: bool, *, predicted_dim, n_null, explained, jac, curv, dist, labels,
                 text, kind) -> dict:
    """One point's row (:data:`COLUMNS`, ``kind_refined``, ``_sym_global``) from its analysis (shared by the
    per-point and the batched analysis)."""
    return {
        "reduced_width": int(red.r), "sym_class": ident.sym_class, "subspace_label": ident.label,
        "subspace_id": ident.subspace_id, "partition": red.partition_string(), "n_zero_neurons": len(red.zero),
        "n_dead_neurons": len(red.dead), "multiplicities": ",".join(map(str, red.multiplicities)),
        "teacher_neurons": ",".join(str(t) for t in ident.teacher_of_group)
        if ident.sym_class == "global_minimum" else "",
        "teacher_match_err": float(ident.teacher_match_err), "predicted_dim": int(predicted_dim),
        "null_dim_measured": int(n_null), "null_dim_explained": int(explained),
        "null_dim_excess": int(n_null) - int(explained), "jacobian_null_pred": -1 if jac is None else int(jac),
        "tangent_curvature": float(curv), "dist_to_predicted": dist, "group_spread": float(red.spread),
        "loose_merge": bool(loose), "null_directions": ";".join(labels), "symmetry_text": text, "kind_refined": kind,
        "_sym_global": ident.sym_class == "global_minimum",
    }


def analyze_points(problem, thetas, *, losses, grad_norms, hessians, zero_tol, global_loss_tol,
                   tol: Tolerances | None = None):
    """Symmetry columns and a summary for a batch of certified points (:func:`.batch.analyze_batch`: the
    columns of :func:`analyze_point`, computed over the batch at once).

    Args:
        problem: Problem with a two-layer student.
        thetas: trainable dict with a leading axis n on every leaf.
        losses, grad_norms: (n,) loss and gradient norm of each point.
        hessians: (n, P, P) Hessians of the flattened trainable parameters, or None (computed here).
        zero_tol: relative zero-eigenvalue tolerance; global_loss_tol: zero-loss threshold.
        tol: :class:`Tolerances` of reduction and labels (defaults reported in the summary).
    Returns:
        (columns, summary): ``columns`` maps each name of :data:`COLUMNS` and ``kind_refined`` to an (n,) numpy
        array; ``summary`` is a JSON-able dict (see :func:`summarize`).
    """
    from ..hessian import hessians as batched_hessians

    tol = tol or Tolerances()
    losses = np.asarray(losses, float)
    if hessians is None:
        hessians = batched_hessians(problem, {k: jnp.asarray(v) for k, v in thetas.items()})
    hessians = np.asarray(hessians, float)
    teacher = teacher_reduction(problem, tol)
    ok = np.isfinite(losses) & np.all(np.isfinite(hessians.reshape(len(losses), -1)), axis=1)
    for v in thetas.values():
        ok &= np.all(np.isfinite(np.asarray(v, float).reshape(len(losses), -1)), axis=1)
    sel = np.flatnonzero(ok)
    rows = [{**FILL, "kind_refined": "diverged"} for _ in range(len(losses))]
    batch = analyze_batch(problem, {k: np.asarray(v, float)[sel] for k, v in thetas.items()}, losses=losses[sel],
                          hessians=hessians[sel], zero_tol=zero_tol, global_loss_tol=global_loss_tol,
                          teacher=teacher, tol=tol)
    for i, row in zip(sel, batch, strict=True):
        rows[i] = row
    columns = {}
    for c in (*COLUMNS, "kind_refined"):
        default = FILL.get(c, "")
        dtype = object if isinstance(default, str) else np.asarray(default).dtype
        col = np.asarray([r[c] for r in rows], dtype=dtype)
        columns[c] = col.astype(str) if dtype is object else col
    summary = summarize(columns, problem, teacher_width=None if teacher is None else teacher.r, tol=tol,
                        zero_tol=zero_tol, global_loss_tol=global_loss_tol)
    return columns, summary


class SymmetryAnalysis(AbstractAnalyzer):
    """Symmetry analyzer (certified points of two-layer students, the whole batch at once); see the module
    docstring and :mod:`.batch`.

    Reads ``_hessian`` from :class:`landscape.analysis.hessian.HessianSpectrum`. Columns: :data:`COLUMNS`
    (``not_analyzed`` and fill values where it did not run); passes ``_sym_global`` (identified as a global
    minimum) on to :class:`landscape.analysis.classify.Classify`. Put it before ``classify`` so that ``kind``
    uses its identification.

    Args:
        zero_tol: relative zero-eigenvalue tolerance; global_loss_tol: zero-loss threshold.
        tolerances: reduction and labelling tolerances (:class:`Tolerances`).

    Example:
        >>> import jax, jax.numpy as jnp, landscape as ls
        >>> problem = ls.TeacherStudent(ls.Teacher.orthonormal(d=3, width=2), ls.TwoLayer(width=3),
        ...                             ls.SampleLoss.gaussian(n=16, d=3, key=jax.random.key(0)))
        >>> split = {"w": jnp.eye(3)[jnp.array([[0, 1, 1]])], "a": jnp.array([[1.0, 0.3, 0.7]])}  # neuron 2 split
        >>> points = ls.Point(theta=split, loss=jnp.zeros(1), grad_norm=jnp.zeros(1), certified=jnp.array([True]),
        ...                   finite=jnp.array([True]))
        >>> res = ls.run_analyzers([ls.HessianSpectrum(), ls.SymmetryAnalysis(), ls.Classify()], problem, points)
        >>> res.columns["sym_class"].tolist(), res.columns["reduced_width"].tolist(), res.columns["kind"].tolist()
        (['global_minimum'], [2], ['minimum'])

    References:
        Şimşek et al., Geometry of the loss landscape in overparameterized neural networks: symmetries and
        invariances, ICML 2021 (arXiv:2105.12221).
    """

    zero_tol: float = 1.0e-7
    global_loss_tol: float = 1.0e-20
    tolerances: Tolerances = dataclasses.field(default_factory=Tolerances)
    teacher: object = None

    name = "symmetry"
    requires = ("_hessian",)
    optional = ("eigenvalues", "_eigvecs")
    jittable = False
    only_certified = True
    columns = {**FILL, "_sym_global": False}

    def applies_to(self, problem) -> bool:
        from ...problem.networks import TwoLayer

        return isinstance(problem.student, TwoLayer)

    def prepare(self, problem) -> SymmetryAnalysis:
        return SymmetryAnalysis(self.zero_tol, self.global_loss_tol, self.tolerances,
                                teacher_reduction(problem, self.tolerances))

    def __call__(self, problem, point, previous):
        if not np.all(np.isfinite(previous["_hessian"])):
            raise ValueError("the Hessian is not finite")
        row = analyze_point(problem, point.theta, loss=float(point.loss), hessian=previous["_hessian"],
                            zero_tol=float(self.zero_tol), global_loss_tol=float(self.global_loss_tol),
                            teacher=self.teacher, tol=self.tolerances)
        row.pop("kind_refined")
        return row

    def call_batch(self, problem, points, previous):
        """Every point at once (:func:`.batch.analyze_batch`); the same rows as ``__call__`` point by point."""
        h = np.asarray(previous["_hessian"], float)
        losses = np.asarray(points.loss, float)
        theta = {k: np.asarray(v, float) for k, v in points.theta.items()}
        n = len(losses)
        ok = np.isfinite(losses) & np.all(np.isfinite(h.reshape(n, -1)), axis=1)
        for v in theta.values():
            ok &= np.all(np.isfinite(v.reshape(n, -1)), axis=1)
        eig = None  # the Hessian analyzer's decomposition (dense spectra only), when it returned one
        if "_eigvecs" in previous and "eigenvalues" in previous:
            lam, vec = np.asarray(previous["eigenvalues"], float), np.asarray(previous["_eigvecs"], float)
            if lam.shape == h.shape[:2] and vec.shape == h.shape:
                ok &= np.all(np.isfinite(lam), axis=1) & np.all(np.isfinite(vec.reshape(n, -1)), axis=1)
                eig = (lam, vec)
        out: list = [None] * n
        for i in np.flatnonzero(~ok):  # the reference labels these (a non-finite Hessian is an error)
            try:
                out[i] = self(problem, jax.tree.map(lambda x, i=i: x[i], points), {"_hessian": h[i]})
            except Exception as err:  # noqa: BLE001
                out[i] = err
        sel = np.flatnonzero(ok)
        rows = analyze_batch(problem, {k: v[sel] for k, v in theta.items()}, losses=losses[sel], hessians=h[sel],
                             zero_tol=float(self.zero_tol), global_loss_tol=float(self.global_loss_tol),
                             teacher=self.teacher if self.teacher is not None else teacher_reduction(
                                 problem, self.tolerances), tol=self.tolerances,
                             eig=None if eig is None else (eig[0][sel], eig[1][sel]))
        for i, row in zip(sel, rows, strict=True):
            row.pop("kind_refined")
            out[i] = row
        return out


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
        "kinds": {k: int(v) for k, v in Counter(np.asarray(columns.get("kind", columns.get("kind_refined", [])))
                                                .tolist()).items()},
        "null_dim_explained_all": int(np.sum(ok & (np.asarray(columns["null_dim_excess"]) == 0))),
    }
    if teacher_width is not None and m >= teacher_width:
        out["T"] = count_T(teacher_width, m)
        out["G"] = {r: count_G(r, m) for r in range(1, m + 1)}
    return out
